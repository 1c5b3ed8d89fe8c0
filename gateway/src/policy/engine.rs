//! The decision algorithm of DESIGN.md §4, steps 2–7: the patient's active consents, evaluated provision
//! by provision, combined, defaulted, then judged by the organisation policies.
//!
//! Semantics, in the order they apply:
//! - A consent applies only when `active` and its root provision matches; otherwise it says nothing.
//! - A provision matches when every element it has matches (AND), each element matching when any of
//!   its values does (OR). Request elements: `actor` (the principal's fhirUser, organisation or Groups;
//!   `role` is not read), `action` (reads match `access`, `use`, `disclose`; writes match `correct`),
//!   `purpose` (v3-ActReason code of the request), `period` (now). Resource elements: `securityLabel`,
//!   `class` (resource type or profile), `code`, `dataPeriod` (see `facts` for the date of each type),
//!   `data` (instance, related/dependents, authoredby).
//! - When the resource's date is partly inside `dataPeriod`, or the resource has none, the condition
//!   is unknown and resolved toward denial: a `deny` provision matches, a `permit` provision does not.
//! - Within a consent, a matching provision's matching children override it, recursively (the deepest
//!   matching provision wins); among matching siblings deny wins.
//! - Across consents deny wins. With none applying, the default policy answers.
//! - The organisation policies (Cedar, `org`) then judge that answer.
//!
//! [`PolicyEngine::evaluate`] does all of that once per request without the resource: the provisions'
//! request elements are decided, and the possible per-resource answers enumerated. If every possible
//! answer is the same the request is a plain Permit or Deny; otherwise it is PermitWithFilter and
//! [`RequestEvaluation::admit`] judges each resource.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::consent::{ClassRule, Coding, ConsentModel, DataMeaning, Effect, Provision};
use super::decision::{Admission, Decision, FilterAxis, Obligation, Outcome, Reason};
use super::facts::{ActionKind, RequestFacts, ResourceFacts};
use super::org::{LayerInput, OrgPolicies, OrgVerdict, Prepared};
use super::time::Overlap;
use crate::fhir::reference::local_reference;

const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const ACT_REASON_OID: &str = "urn:oid:2.16.840.1.113883.5.8";
const CONSENT_ACTION: &str = "http://terminology.hl7.org/CodeSystem/consentaction";

/// What applies when no active consent of the patient does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultPolicy {
    /// Opt-in regime: nothing without a consent.
    #[default]
    Deny,
    /// Opt-out regime: everything unless a consent denies.
    Permit,
}

impl DefaultPolicy {
    fn effect(self) -> Effect {
        match self {
            DefaultPolicy::Deny => Effect::Deny,
            DefaultPolicy::Permit => Effect::Permit,
        }
    }
}

impl std::str::FromStr for DefaultPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "deny" => Ok(DefaultPolicy::Deny),
            "permit" => Ok(DefaultPolicy::Permit),
            _ => Err(format!("{s:?}: expected deny or permit")),
        }
    }
}

/// The decision engine: organisation policies and the default policy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PolicyEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    org: OrgPolicies,
    default_policy: DefaultPolicy,
}

/// Per provision, after the request facts are known.
const REACH: u8 = 1; // its request elements match, and so do its ancestors'
const NAMED: u8 = 2; // it or an ancestor names the principal's organisation as actor

/// One consent with its provisions' request-level state.
#[derive(Debug)]
struct Pruned {
    model: Arc<ConsentModel>,
    flags: Vec<u8>,
}

/// A request judged before its response: the pre-decision, and [`Self::admit`] for each resource.
#[derive(Debug)]
pub struct RequestEvaluation {
    engine: PolicyEngine,
    consents: Vec<Pruned>,
    /// The request's Cedar entities and verdicts, shared with other requests of the same identity.
    cedar: Arc<Prepared>,
    decision: Decision,
    /// When the outcome does not depend on the resource: what every resource gets.
    constant: Option<Admission>,
}

/// The request facts the provisions read, normalised once.
struct Ctx<'a> {
    actors: Vec<&'a str>,
    organization: Option<&'a str>,
    purpose: Option<&'a str>,
    action: ActionKind,
    now: i64,
}

/// A consent's deciding provision for one resource.
#[derive(Debug, Clone, Copy)]
struct Hit {
    effect: Effect,
    named: bool,
    at: usize,
}

/// The consent layer's answer for one resource.
struct Layer {
    input: LayerInput,
    reasons: Vec<Reason>,
}

// Possible answers of the consent layer, as a bit set.
const NOTHING: u8 = 1;
const DENY: u8 = 2;
const PERMIT: u8 = 4;
const PERMIT_NAMED: u8 = 8;

impl PolicyEngine {
    /// An engine with these organisation policies and default policy.
    pub fn new(org: OrgPolicies, default_policy: DefaultPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                org,
                default_policy,
            }),
        }
    }

    /// The default policy.
    pub fn default_policy(&self) -> DefaultPolicy {
        self.inner.default_policy
    }

    /// The organisation policies.
    pub fn org(&self) -> &OrgPolicies {
        &self.inner.org
    }

    /// Judges a request for one patient, whose consents (any status: only active ones apply) the
    /// caller has loaded and checked against the ledger.
    pub fn evaluate(
        &self,
        facts: &RequestFacts,
        consents: &[Arc<ConsentModel>],
    ) -> RequestEvaluation {
        let ctx = Ctx::new(facts);
        let consents: Vec<Pruned> = consents
            .iter()
            .filter(|c| c.is_active())
            .map(|c| prune(c, &ctx))
            .filter(|p| p.flags.first().is_some_and(|f| f & REACH != 0))
            .collect();
        let cedar = self.inner.org.prepare(facts);
        let mut eval = RequestEvaluation {
            engine: self.clone(),
            consents,
            cedar,
            decision: Decision {
                outcome: Outcome::PermitWithFilter,
                obligations: Vec::new(),
                break_glass: false,
                reasons: Vec::new(),
                filtered: None,
            },
            constant: None,
        };
        eval.pre_decide();
        eval
    }
}

impl<'a> Ctx<'a> {
    fn new(facts: &'a RequestFacts) -> Self {
        let mut actors: Vec<&str> = Vec::new();
        let organization = facts.organization.as_deref().and_then(local_reference);
        let all = facts
            .fhir_user
            .iter()
            .chain(facts.organization.iter())
            .chain(facts.groups.iter());
        for a in all.filter_map(|a| local_reference(a)) {
            if !actors.contains(&a) {
                actors.push(a);
            }
        }
        Ctx {
            actors,
            organization,
            purpose: facts.purpose.as_deref(),
            action: facts.action,
            now: facts.now,
        }
    }

    fn matches(&self, p: &Provision) -> bool {
        (p.actors.is_empty() || p.actors.iter().any(|a| self.actors.contains(&&**a)))
            && (p.actions.is_empty() || p.actions.iter().any(|c| self.action_matches(c)))
            && (p.purposes.is_empty()
                || self
                    .purpose
                    .is_some_and(|pp| p.purposes.iter().any(|c| purpose_matches(c, pp))))
            && p.period.is_none_or(|i| i.contains(self.now))
    }

    fn action_matches(&self, c: &Coding) -> bool {
        if c.system.as_deref().is_some_and(|s| s != CONSENT_ACTION) {
            return false;
        }
        match self.action {
            ActionKind::Read => matches!(&*c.code, "access" | "use" | "disclose"),
            ActionKind::Write => &*c.code == "correct",
        }
    }
}

fn purpose_matches(c: &Coding, purpose: &str) -> bool {
    *c.code == *purpose
        && c.system
            .as_deref()
            .is_none_or(|s| s == ACT_REASON || s == ACT_REASON_OID)
}

fn prune(model: &Arc<ConsentModel>, ctx: &Ctx<'_>) -> Pruned {
    let mut flags = vec![0u8; model.provisions.len()];
    mark(model, ctx, 0, false, &mut flags);
    Pruned {
        model: model.clone(),
        flags,
    }
}

fn mark(model: &ConsentModel, ctx: &Ctx<'_>, idx: usize, named_above: bool, flags: &mut [u8]) {
    let p = &model.provisions[idx];
    if !ctx.matches(p) {
        return;
    }
    let named = named_above
        || ctx
            .organization
            .is_some_and(|o| p.actors.iter().any(|a| &**a == o));
    flags[idx] = REACH | if named { NAMED } else { 0 };
    for &c in &p.children {
        mark(model, ctx, c, named, flags);
    }
}

/// Whether the resource elements of `p` match `res`; without a resource, a provision with resource
/// elements does not match.
fn resource_matches(p: &Provision, res: Option<&ResourceFacts<'_>>) -> bool {
    if !p.on_resource() {
        return true;
    }
    let Some(res) = res else {
        return false;
    };
    let labels = || {
        p.security_labels
            .iter()
            .any(|l| res.security().any(|(s, c)| l.matches(s, c)))
    };
    let classes = || {
        p.classes.iter().any(|c| match c {
            ClassRule::ResourceType(t) => **t == *res.resource_type(),
            ClassRule::Profile(url) => res.profiles().any(|p| p == &**url),
            ClassRule::Other => false,
        })
    };
    let codes = || {
        p.codes
            .iter()
            .any(|c| res.codes().iter().any(|(s, code)| c.matches(*s, code)))
    };
    let data = || {
        p.data.iter().any(|d| match d.meaning {
            DataMeaning::Instance => res.is(&d.reference),
            DataMeaning::Related | DataMeaning::Dependents => {
                res.is(&d.reference) || res.references().contains(&&*d.reference)
            }
            DataMeaning::AuthoredBy => res.authors().contains(&&*d.reference),
        })
    };
    let period = || match p.data_period {
        None => true,
        Some(dp) => match res.date().map_or(Overlap::Unknown, |d| dp.overlap(&d)) {
            Overlap::Inside => true,
            Overlap::Outside => false,
            // Unknown resolves toward denial (module docs).
            Overlap::Unknown => p.effect == Effect::Deny,
        },
    };
    (p.security_labels.is_empty() || labels())
        && (p.classes.is_empty() || classes())
        && (p.codes.is_empty() || codes())
        && (p.data.is_empty() || data())
        && period()
}

/// The deciding provision of the subtree at `idx` for `res`, or `None` when `idx` does not match.
fn resolve(c: &Pruned, idx: usize, res: Option<&ResourceFacts<'_>>) -> Option<Hit> {
    let p = &c.model.provisions[idx];
    if c.flags[idx] & REACH == 0 || !resource_matches(p, res) {
        return None;
    }
    let mut best: Option<Hit> = None;
    for &child in &p.children {
        if let Some(h) = resolve(c, child, res) {
            best = Some(match best {
                None => h,
                Some(b) => sibling(b, h),
            });
        }
    }
    Some(best.unwrap_or(Hit {
        effect: p.effect,
        named: c.flags[idx] & NAMED != 0,
        at: idx,
    }))
}

/// Deny wins among siblings; among permits, one naming the organisation is kept (it is what a
/// cross-border rule needs to cite).
fn sibling(a: Hit, b: Hit) -> Hit {
    match (a.effect, b.effect) {
        (Effect::Deny, _) => a,
        (_, Effect::Deny) => b,
        _ if !a.named && b.named => b,
        _ => a,
    }
}

/// The possible answers of the subtree at `idx` over all resources, given that `idx` matches.
fn possible(c: &Pruned, idx: usize) -> u8 {
    let p = &c.model.provisions[idx];
    let mut acc = NOTHING;
    for &child in &p.children {
        if c.flags[child] & REACH == 0 {
            continue;
        }
        let pc = possible(c, child);
        acc = if c.model.provisions[child].on_resource() {
            acc | combine(acc, pc)
        } else {
            combine(acc, pc)
        };
    }
    if acc & NOTHING != 0 {
        let own = match p.effect {
            Effect::Deny => DENY,
            Effect::Permit if c.flags[idx] & NAMED != 0 => PERMIT_NAMED,
            Effect::Permit => PERMIT,
        };
        acc = (acc & !NOTHING) | own;
    }
    acc
}

/// Combines two sets of possible answers, element by element: deny wins, a named permit beats a plain
/// one, "nothing" is neutral.
fn combine(a: u8, b: u8) -> u8 {
    let mut out = 0;
    for x in [NOTHING, DENY, PERMIT, PERMIT_NAMED] {
        if a & x == 0 {
            continue;
        }
        for y in [NOTHING, DENY, PERMIT, PERMIT_NAMED] {
            if b & y == 0 {
                continue;
            }
            out |= if x == NOTHING {
                y
            } else if y == NOTHING {
                x
            } else if x == DENY || y == DENY {
                DENY
            } else if x == PERMIT_NAMED || y == PERMIT_NAMED {
                PERMIT_NAMED
            } else {
                PERMIT
            };
        }
    }
    out
}

impl RequestEvaluation {
    /// The request-level decision: Permit or Deny for every resource, or PermitWithFilter.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Whether judging a resource may follow every reference in it (a `data` provision meaning
    /// related or dependents), rather than only the elements [`super::facts::element_reader`] names.
    pub fn reads_all_references(&self) -> bool {
        self.constant.is_none()
            && self.consents.iter().any(|c| {
                c.model.provisions.iter().any(|p| {
                    p.data.iter().any(|d| {
                        matches!(d.meaning, DataMeaning::Related | DataMeaning::Dependents)
                    })
                })
            })
    }

    /// Whether every resource gets the same admission, whatever it holds: [`Self::admit`] then reads
    /// no resource fact.
    pub fn is_constant(&self) -> bool {
        self.constant.is_some()
    }

    /// Judges one resource of the request's response (or of a write's body).
    pub fn admit(&self, res: &ResourceFacts<'_>) -> Admission {
        if let Some(a) = &self.constant {
            return a.clone();
        }
        let layer = self.layer(Some(res));
        let verdict = self.judge(layer.input, res);
        let permit = verdict.permit == Some(true);
        let mut reasons = layer.reasons;
        reasons.extend(verdict.reasons.iter().cloned());
        Admission {
            permit,
            break_glass: permit && verdict.alert,
            reasons,
        }
    }

    /// The decision on a single-resource request (a read, vread or write) once the resource is known.
    pub fn decide(&self, res: &ResourceFacts<'_>) -> Decision {
        self.admit(res).into_decision()
    }

    fn judge(&self, input: LayerInput, res: &ResourceFacts<'_>) -> Arc<OrgVerdict> {
        let mut codes: Vec<&str> = res.confidentiality().collect();
        codes.sort_unstable();
        codes.dedup();
        self.engine
            .inner
            .org
            .resource_verdict(&self.cedar, input, res.resource_type(), &codes)
    }

    /// The consent layer for one resource (or, without one, for a resource matching no resource
    /// condition).
    fn layer(&self, res: Option<&ResourceFacts<'_>>) -> Layer {
        let mut denies = Vec::new();
        let mut permits = Vec::new();
        let mut named = false;
        for c in &self.consents {
            let Some(hit) = resolve(c, 0, res) else {
                continue;
            };
            let reason = Reason::Consent {
                consent: c.model.id.clone(),
                version: c.model.version.clone(),
                provision: c.model.provisions[hit.at].path.clone(),
                effect: hit.effect,
            };
            match hit.effect {
                Effect::Deny => denies.push(reason),
                Effect::Permit => {
                    named |= hit.named;
                    permits.push(reason);
                }
            }
        }
        if !denies.is_empty() {
            Layer {
                input: LayerInput {
                    effect: Effect::Deny,
                    by_default: false,
                    names_organization: false,
                },
                reasons: denies,
            }
        } else if !permits.is_empty() {
            Layer {
                input: LayerInput {
                    effect: Effect::Permit,
                    by_default: false,
                    names_organization: named,
                },
                reasons: permits,
            }
        } else {
            let effect = self.engine.inner.default_policy.effect();
            Layer {
                input: LayerInput {
                    effect,
                    by_default: true,
                    names_organization: false,
                },
                reasons: vec![Reason::DefaultPolicy { effect }],
            }
        }
    }

    /// The possible consent-layer answers over every resource, and the filter axes they depend on.
    fn possibilities(&self) -> (u8, Vec<FilterAxis>) {
        let mut overall = NOTHING;
        let mut axes = Vec::new();
        for c in &self.consents {
            let mut set = possible(c, 0);
            if c.model.root().on_resource() {
                set |= NOTHING;
            }
            overall = combine(overall, set);
            for (p, f) in c.model.provisions.iter().zip(&c.flags) {
                if f & REACH != 0 {
                    axes_of(p, &mut axes);
                }
            }
        }
        (overall, axes)
    }

    fn pre_decide(&mut self) {
        let default = self.engine.inner.default_policy.effect();
        let (set, mut axes) = self.possibilities();
        let inputs = [
            (NOTHING, default, true, false),
            (DENY, Effect::Deny, false, false),
            (PERMIT, Effect::Permit, false, false),
            (PERMIT_NAMED, Effect::Permit, false, true),
        ];
        let org = &self.engine.inner.org;
        let verdicts: Vec<Arc<OrgVerdict>> = inputs
            .iter()
            .filter(|(bit, ..)| set & bit != 0)
            .map(|&(_, effect, by_default, names_organization)| {
                org.request_verdict(
                    &self.cedar,
                    LayerInput {
                        effect,
                        by_default,
                        names_organization,
                    },
                )
            })
            .collect();
        let all = |want: bool| verdicts.iter().all(|v| v.permit == Some(want));
        let permit = if all(true) {
            true
        } else if all(false) {
            false
        } else {
            if verdicts.iter().any(|v| v.permit.is_none()) {
                axes.push(FilterAxis::OrganisationPolicy);
            }
            axes.sort_unstable();
            axes.dedup();
            self.decision.obligations = vec![
                Obligation::FilterEntries { on: axes },
                Obligation::SuppressTotal,
            ];
            return;
        };
        // Constant: the reasons are those of a resource matching no resource condition, which is one
        // of the possible resources and so has this same outcome.
        let mut reasons = self.layer(None).reasons;
        for v in &verdicts {
            for r in &v.reasons {
                if !reasons.contains(r) {
                    reasons.push(r.clone());
                }
            }
        }
        let break_glass = permit && verdicts.iter().all(|v| v.alert);
        self.decision.outcome = if permit {
            Outcome::Permit
        } else {
            Outcome::Deny
        };
        self.decision.break_glass = break_glass;
        self.decision.reasons = reasons.clone();
        self.constant = Some(Admission {
            permit,
            break_glass,
            reasons,
        });
    }
}

fn axes_of(p: &Provision, axes: &mut Vec<FilterAxis>) {
    let mut add = |present: bool, axis| {
        if present && !axes.contains(&axis) {
            axes.push(axis);
        }
    };
    add(!p.security_labels.is_empty(), FilterAxis::SecurityLabel);
    add(!p.classes.is_empty(), FilterAxis::Class);
    add(!p.codes.is_empty(), FilterAxis::Code);
    add(p.data_period.is_some(), FilterAxis::DataPeriod);
    add(!p.data.is_empty(), FilterAxis::Data);
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
