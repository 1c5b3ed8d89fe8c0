//! Anchorgate: a FHIR R4 gateway that proxies an existing EHR and adds validation, consent
//! enforcement and tamper evidence.
//!
//! The modules follow a request's path: [`server`] (ingress and the phase pipeline), [`fhir`]
//! (routes, formats, well-formedness, OperationOutcome), [`upstream`] (the EHR client), [`filter`]
//! (the response filter), [`identity`] (bearer tokens, SMART scopes, the partner registry), with [`config`], [`error`] and [`telemetry`] alongside.

pub mod audit;
pub mod body;
pub mod config;
pub mod error;
pub mod fhir;
pub mod filter;
pub mod identity;
pub mod ledger;
pub mod policy;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod threads;
pub mod upstream;
pub mod validate;
