//! FHIR R4 knowledge the gateway needs: formats, routes, parsing, the canonical form, well-formedness
//! and OperationOutcome.

pub mod bounds;
pub mod canonical;
pub mod compartment;
pub mod format;
pub mod joins;
pub mod lazy;
pub mod narrative;
pub mod outcome;
pub mod parameters;
pub mod parse;
pub mod reference;
pub mod route;
pub mod wellformed;

pub use format::{BodyKind, Format};
pub use outcome::{Issue, IssueType, OperationOutcome, Severity};
pub use route::{Interaction, Route, RouteError};

/// serde_json's name for a number kept in its lexical form (`arbitrary_precision`, on in this build):
/// a visitor sees such a number as a map whose first member has this name. Our own JSON visitors
/// (the checked parse, the text canonicaliser) read it exactly as serde_json's tree does.
pub(crate) const SERDE_NUMBER_TOKEN: &str = "$serde_json::private::Number";

#[cfg(test)]
mod proptests;
