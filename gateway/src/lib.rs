//! Anchorgate: a FHIR R4 gateway that proxies an existing EHR and adds validation, consent
//! enforcement and tamper evidence.
//!
//! The modules follow a request's path: [`server`] (ingress, the phase pipeline and the phases that
//! enforce, anchor and answer the gateway's own endpoints), [`fhir`] (routes, formats, well-formedness,
//! the canonical form, OperationOutcome), [`identity`] (bearer tokens, SMART scopes, the partner
//! registry), [`validate`] (R4 and profile validation), [`policy`] (consent and organisation
//! policies), [`upstream`] (the EHR client), [`filter`] (the response filter), [`ledger`] (the Merkle
//! log), [`audit`] (decision records) and [`store`] (the consent index and decision records on disk),
//! with [`config`], [`error`], [`telemetry`], [`body`] and [`threads`] alongside.

pub mod audit;
pub mod body;
pub mod config;
pub mod error;
pub mod fhir;
pub mod filter;
pub mod identity;
pub mod ledger;
pub mod policy;
pub mod progress;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod threads;
pub mod upstream;
pub mod validate;

#[cfg(test)]
mod test_data;
