//! What a decision says: the outcome, the obligations on the response, the break-glass alert flag, and
//! the reasons a compliance reviewer reads (consent id, version and provision path; policy ids).
//!
//! Everything here serialises to JSON for decision records; ids are `Arc<str>` because one consent's
//! reasons are cited for many resources of one search.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::consent::Effect;

/// The request-level answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every resource the request can touch may be disclosed.
    Permit,
    /// No resource may be disclosed: refuse before contacting the upstream.
    Deny,
    /// Some may, some may not: forward, then admit each resource with `RequestEvaluation::admit`.
    PermitWithFilter,
}

/// How a Cedar organisation policy took part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyEffect {
    /// A satisfied `permit` policy.
    Permit,
    /// A satisfied `forbid` policy.
    Forbid,
    /// The policy failed to evaluate, which denies (fail closed).
    Error,
}

/// One reason for an outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// A consent provision decided (the deepest matching one on its branch).
    Consent {
        /// `Consent.id`.
        consent: Arc<str>,
        /// `Consent.meta.versionId`, when known.
        version: Option<Arc<str>>,
        /// FHIRPath of the deciding provision, e.g. `Consent.provision.provision[0]`.
        provision: Arc<str>,
        /// Its effect.
        effect: Effect,
    },
    /// No active consent applied, so the configured default policy did.
    DefaultPolicy {
        /// `policy.default_policy`.
        effect: Effect,
    },
    /// An organisation policy (Cedar) decided.
    Policy {
        /// The policy's `@id`.
        policy: Arc<str>,
        /// Permit, forbid, or an evaluation error.
        effect: PolicyEffect,
        /// The policy's `@description`, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<Arc<str>>,
    },
}

/// What resource elements a per-resource filter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FilterAxis {
    /// `meta.security` (a provision's `securityLabel`).
    SecurityLabel,
    /// The resource type or profile (`class`).
    Class,
    /// The resource's codes (`code`).
    Code,
    /// The clinically relevant date (`dataPeriod`).
    DataPeriod,
    /// The resource's identity or references (`data`).
    Data,
    /// Resource facts an organisation policy reads (type, confidentiality).
    OrganisationPolicy,
}

/// Something the enforcement point must do with the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Obligation {
    /// Admit every returned resource one by one (`RequestEvaluation::admit`); `on` says what the filter
    /// reads, for the record.
    FilterEntries {
        /// The resource facts the filter depends on.
        on: Vec<FilterAxis>,
    },
    /// Leave `Bundle.total` out when anything was removed: a count would reveal hidden data. The
    /// enforcement point leaves it out more often (`filter::entries::total_disclosable`).
    SuppressTotal,
}

/// Counts of a filtered response, kept by [`Decision::record`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterTally {
    /// Resources disclosed.
    pub admitted: u32,
    /// Resources removed.
    pub removed: u32,
}

/// A decision on a request, or on one resource ([`RequestEvaluation::decide`]).
///
/// [`RequestEvaluation::decide`]: super::RequestEvaluation::decide
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Permit, deny, or permit with a per-resource filter.
    pub outcome: Outcome,
    /// What the enforcement point must do.
    pub obligations: Vec<Obligation>,
    /// Access was granted only by break-glass: a security alert.
    pub break_glass: bool,
    /// Why, without duplicates.
    pub reasons: Vec<Reason>,
    /// For a filtered response: how many resources were admitted and removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtered: Option<FilterTally>,
}

/// The answer for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// May the resource be disclosed.
    pub permit: bool,
    /// It is disclosed only because of break-glass.
    pub break_glass: bool,
    /// Why.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// Folds one resource's admission into a filtered request's decision: counts it, raises the alert
    /// when break-glass disclosed it, and keeps the reasons of removals and break-glass disclosures.
    pub fn record(&mut self, admission: &Admission) {
        let tally = self.filtered.get_or_insert_with(FilterTally::default);
        if admission.permit {
            tally.admitted = tally.admitted.saturating_add(1);
        } else {
            tally.removed = tally.removed.saturating_add(1);
        }
        if !admission.permit || admission.break_glass {
            self.break_glass |= admission.break_glass;
            for r in &admission.reasons {
                if !self.reasons.contains(r) {
                    self.reasons.push(r.clone());
                }
            }
        }
    }

    /// Whether anything was removed from the response so far.
    pub fn removed_any(&self) -> bool {
        self.filtered.is_some_and(|t| t.removed > 0)
    }
}

impl Admission {
    /// This admission as the decision on a single-resource request (a read).
    pub fn into_decision(self) -> Decision {
        Decision {
            outcome: if self.permit {
                Outcome::Permit
            } else {
                Outcome::Deny
            },
            obligations: Vec::new(),
            break_glass: self.break_glass,
            reasons: self.reasons,
            filtered: None,
        }
    }
}
