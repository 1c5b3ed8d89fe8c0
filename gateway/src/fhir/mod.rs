//! FHIR R4 knowledge the gateway needs: formats, routes, well-formedness and OperationOutcome.

pub mod format;
pub mod outcome;
pub mod route;
pub mod wellformed;

pub use format::{BodyKind, Format};
pub use outcome::{Issue, IssueType, OperationOutcome, Severity};
pub use route::{Interaction, Route, RouteError};
