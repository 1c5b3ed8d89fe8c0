//! FHIR R4 knowledge the gateway needs: formats, routes, parsing, the canonical form, well-formedness
//! and OperationOutcome.

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

#[cfg(test)]
mod proptests;
