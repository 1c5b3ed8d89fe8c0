//! Consent enforcement decisions: FHIR `Consent` compiled into provision trees, the decision engine of
//! DESIGN.md §4, organisation policies in Cedar, and explainable decisions.
//!
//! ```text
//! ConsentModel::compile(&consent_json)            once per consent version (at write or import)
//! PolicyEngine::new(org_policies, default_policy)  once at start-up (PolicyConfig::build_engine)
//! engine.evaluate(&request_facts, &consents)       once per request and patient: the pre-decision
//!   .decision()   Permit | Deny  -> answer now      PermitWithFilter -> forward, then:
//!   .admit(&ResourceFacts::new(&resource)?)        once per returned resource
//! ```
//!
//! The caller (the request pipeline) owns identity, SMART scopes, the consent store and its ledger
//! checks, Group membership lookups and decision records; this module decides.

pub mod consent;
pub mod decision;
pub mod engine;
pub mod facts;
pub mod org;
pub mod time;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use consent::{ConsentError, ConsentModel, ConsentStatus, Effect};
pub use decision::{
    Admission, Decision, FilterAxis, FilterTally, Obligation, Outcome, PolicyEffect, Reason,
};
pub use engine::{DefaultPolicy, PolicyEngine, RequestEvaluation};
pub use facts::{ActionKind, NoResourceType, RequestFacts, ResourceFacts};
pub use org::{OrgPolicies, OrgPolicyError};

/// The `[policy]` settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// What applies when none of the patient's consents does: `deny` (opt-in, the default) or `permit`
    /// (opt-out). Env `ANCHORGATE_DEFAULT_POLICY`.
    pub default_policy: DefaultPolicy,
    /// Directory of organisation policies: `policy.toml` and `*.cedar` (see `policies/README.md`). Unset,
    /// the policies shipped in the repository's `policies/` (compiled in) apply.
    pub dir: Option<PathBuf>,
}

impl PolicyConfig {
    /// Loads and validates the organisation policies.
    pub fn load_org(&self) -> Result<OrgPolicies, OrgPolicyError> {
        match &self.dir {
            Some(dir) => OrgPolicies::load_dir(dir),
            None => OrgPolicies::shipped(),
        }
    }

    /// The engine these settings describe.
    pub fn build_engine(&self) -> Result<PolicyEngine, OrgPolicyError> {
        Ok(PolicyEngine::new(self.load_org()?, self.default_policy))
    }
}

#[cfg(test)]
mod scenarios;
