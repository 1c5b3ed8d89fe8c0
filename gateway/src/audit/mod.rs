//! Decision records for compliance: what is recorded per request, how it is anchored and stored, and how reviewers query it.

pub mod auditevent;
pub mod export;
pub mod query;
pub mod record;
pub mod recorder;

pub use record::{DecisionRecord, PrincipalSummary};
pub use recorder::Recorder;
