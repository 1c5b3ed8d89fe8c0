//! A FHIR R4 `Consent` (scope patient-privacy) compiled into an immutable [`ConsentModel`]: its base
//! effect and its provision tree, flattened, with each provision's FHIRPath for explanations.
//!
//! Compilation refuses what cannot be enforced faithfully (another scope, no patient, an unreadable
//! period, a nested provision without `type`), each with the FHIRPath of the offending element, so a
//! consent write can be answered with a precise OperationOutcome rather than stored and half-applied.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::time::Interval;
use crate::fhir::reference::local_reference;

const CONSENT_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const ACT_CODE_OID: &str = "urn:oid:2.16.840.1.113883.5.4";
/// The code system of `Consent.provision.class` codes that are resource types.
pub const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";

/// Provisions beyond this depth are refused: real consents have three or four levels, and the limit
/// bounds the evaluation's recursion.
const MAX_DEPTH: usize = 16;
/// Provisions per consent beyond this are refused, for the same reason.
const MAX_PROVISIONS: usize = 1024;

/// Permit or deny: a provision's `type`, or a consent's base effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The rule permits.
    Permit,
    /// The rule denies.
    Deny,
}

/// `Consent.status`. Only [`ConsentStatus::Active`] consents are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentStatus {
    /// `draft`.
    Draft,
    /// `proposed`.
    Proposed,
    /// `active`: the only status that applies.
    Active,
    /// `rejected`.
    Rejected,
    /// `inactive`: revoked or expired.
    Inactive,
    /// `entered-in-error`: never valid.
    EnteredInError,
}

/// A consent that cannot be enforced, with the FHIRPath of the element at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expression}: {message}")]
pub struct ConsentError {
    /// FHIRPath of the offending element, e.g. `Consent.provision.provision[1].type`.
    pub expression: String,
    /// What is wrong.
    pub message: String,
}

fn err(expression: impl Into<String>, message: impl Into<String>) -> ConsentError {
    ConsentError {
        expression: expression.into(),
        message: message.into(),
    }
}

/// A coding as `(system, code)`; `system` absent matches any system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coding {
    /// The code system, when given.
    pub system: Option<Box<str>>,
    /// The code.
    pub code: Box<str>,
}

impl Coding {
    /// Whether `(system, code)` is this coding: the codes are equal and the systems are equal or one of
    /// them is absent.
    pub fn matches(&self, system: Option<&str>, code: &str) -> bool {
        *self.code == *code
            && match (self.system.as_deref(), system) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// One value of `provision.class`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassRule {
    /// A resource type (system `http://hl7.org/fhir/resource-types`, or a bare R4 type name).
    ResourceType(Box<str>),
    /// A profile canonical URL, matched against `meta.profile` without version.
    Profile(Box<str>),
    /// Anything else (a CDA document type, ...): never matches a FHIR resource.
    Other,
}

/// `provision.data.meaning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMeaning {
    /// The referenced resource itself.
    Instance,
    /// The referenced resource and every resource that references it.
    Related,
    /// Treated like [`DataMeaning::Related`]: R4 gives no way to tell a dependent from a referrer.
    Dependents,
    /// Resources whose author-like elements (author, performer, recorder, ...) reference it.
    AuthoredBy,
}

/// One value of `provision.data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRule {
    /// How the reference relates to the data covered.
    pub meaning: DataMeaning,
    /// The reference as `Type/id`.
    pub reference: Box<str>,
}

/// One provision (the root or a nested one), with its conditions. An empty list is no condition.
#[derive(Debug, Clone)]
pub struct Provision {
    /// FHIRPath, e.g. `Consent.provision.provision[1]`.
    pub path: Arc<str>,
    /// What the provision does when it matches (for the root, the consent's base effect).
    pub effect: Effect,
    /// Indices of the nested provisions in [`ConsentModel::provisions`].
    pub children: Vec<usize>,
    /// `actor.reference` as `Type/id` (roles are not read: any role matches).
    pub actors: Vec<Box<str>>,
    /// `action` codings (consentaction codes).
    pub actions: Vec<Coding>,
    /// `purpose` codings (v3-ActReason).
    pub purposes: Vec<Coding>,
    /// `period`: the time during which the provision applies.
    pub period: Option<Interval>,
    /// `securityLabel` codings.
    pub security_labels: Vec<Coding>,
    /// `class` values.
    pub classes: Vec<ClassRule>,
    /// `code` codings (all codings of all CodeableConcepts).
    pub codes: Vec<Coding>,
    /// `dataPeriod`: the span the data's clinically relevant date must lie in.
    pub data_period: Option<Interval>,
    /// `data` values.
    pub data: Vec<DataRule>,
}

impl Provision {
    /// Whether the provision has conditions on the resource (and so can only be decided per resource).
    pub fn on_resource(&self) -> bool {
        !self.security_labels.is_empty()
            || !self.classes.is_empty()
            || !self.codes.is_empty()
            || self.data_period.is_some()
            || !self.data.is_empty()
    }
}

/// A compiled, immutable Consent.
#[derive(Debug, Clone)]
pub struct ConsentModel {
    /// `Consent.id`.
    pub id: Arc<str>,
    /// `Consent.meta.versionId`, when present.
    pub version: Option<Arc<str>>,
    /// The patient as `Patient/id`.
    pub patient: String,
    /// `Consent.status`.
    pub status: ConsentStatus,
    /// `Consent.dateTime`, as written.
    pub date_time: Option<String>,
    /// The `policyRule` codes, as written (`OPTIN`, ...).
    pub policy_rule: Vec<String>,
    /// The root provision's effect.
    pub base_effect: Effect,
    /// The provisions, root first (index 0), depth-first in document order.
    pub provisions: Vec<Provision>,
}

impl ConsentModel {
    /// Compiles a FHIR R4 Consent.
    pub fn compile(consent: &Value) -> Result<Self, ConsentError> {
        if consent.get("resourceType").and_then(Value::as_str) != Some("Consent") {
            return Err(err("Consent", "not a Consent resource"));
        }
        let id = consent.get("id").and_then(Value::as_str).ok_or_else(|| {
            err(
                "Consent.id",
                "a consent needs an id to be recorded and cited",
            )
        })?;
        let status = parse_status(consent.get("status"))?;
        check_scope(consent.get("scope"))?;
        let patient = consent
            .get("patient")
            .and_then(|p| p.get("reference"))
            .and_then(Value::as_str)
            .and_then(local_reference)
            .filter(|r| r.starts_with("Patient/"))
            .ok_or_else(|| {
                err(
                    "Consent.patient",
                    "a patient-privacy consent must reference its patient as Patient/[id]",
                )
            })?
            .to_owned();
        let policy_rule = codings(consent.get("policyRule"), "Consent.policyRule")?;
        let root = consent.get("provision");
        let base_effect = match root.and_then(|p| p.get("type")) {
            Some(t) => parse_effect(t, "Consent.provision.type")?,
            None => effect_of_policy_rule(&policy_rule).ok_or_else(|| {
                err(
                    "Consent.policyRule",
                    "no base effect: give Consent.provision.type, or a policyRule of OPTIN, OPTINR, OPTOUT or OPTOUTE (v3-ActCode)",
                )
            })?,
        };
        let mut provisions = Vec::new();
        let empty = Value::Object(Default::default());
        compile_provision(
            root.unwrap_or(&empty),
            "Consent.provision".into(),
            Some(base_effect),
            0,
            &mut provisions,
        )?;
        Ok(Self {
            id: id.into(),
            version: consent
                .get("meta")
                .and_then(|m| m.get("versionId"))
                .and_then(Value::as_str)
                .map(Arc::from),
            patient,
            status,
            date_time: consent
                .get("dateTime")
                .and_then(Value::as_str)
                .map(str::to_owned),
            policy_rule: policy_rule.into_iter().map(|c| c.code.into()).collect(),
            base_effect,
            provisions,
        })
    }

    /// Whether the consent is enforced at all (status `active`).
    pub fn is_active(&self) -> bool {
        self.status == ConsentStatus::Active
    }

    /// The root provision.
    pub fn root(&self) -> &Provision {
        // `compile` always pushes the root first.
        &self.provisions[0]
    }
}

fn parse_status(v: Option<&Value>) -> Result<ConsentStatus, ConsentError> {
    Ok(match v.and_then(Value::as_str) {
        Some("draft") => ConsentStatus::Draft,
        Some("proposed") => ConsentStatus::Proposed,
        Some("active") => ConsentStatus::Active,
        Some("rejected") => ConsentStatus::Rejected,
        Some("inactive") => ConsentStatus::Inactive,
        Some("entered-in-error") => ConsentStatus::EnteredInError,
        Some(other) => return Err(err("Consent.status", format!("unknown status {other:?}"))),
        None => return Err(err("Consent.status", "status is required")),
    })
}

fn check_scope(scope: Option<&Value>) -> Result<(), ConsentError> {
    let privacy = codings(scope, "Consent.scope")?.iter().any(|c| {
        *c.code == *"patient-privacy" && c.system.as_deref().is_none_or(|s| s == CONSENT_SCOPE)
    });
    if privacy {
        Ok(())
    } else {
        Err(err(
            "Consent.scope",
            "only patient-privacy consents (consentscope#patient-privacy) govern disclosure",
        ))
    }
}

fn effect_of_policy_rule(rules: &[Coding]) -> Option<Effect> {
    rules.iter().find_map(|c| {
        if c.system
            .as_deref()
            .is_some_and(|s| s != ACT_CODE && s != ACT_CODE_OID)
        {
            return None;
        }
        match &*c.code {
            "OPTIN" | "OPTINR" => Some(Effect::Permit),
            "OPTOUT" | "OPTOUTE" => Some(Effect::Deny),
            _ => None,
        }
    })
}

fn parse_effect(v: &Value, path: &str) -> Result<Effect, ConsentError> {
    match v.as_str() {
        Some("permit") => Ok(Effect::Permit),
        Some("deny") => Ok(Effect::Deny),
        _ => Err(err(path, "type must be permit or deny")),
    }
}

/// Codings of a CodeableConcept, a Coding, or an array of either; every coding needs a code.
fn codings(v: Option<&Value>, path: &str) -> Result<Vec<Coding>, ConsentError> {
    let mut out = Vec::new();
    if let Some(v) = v {
        push_codings(v, path, &mut out)?;
    }
    Ok(out)
}

fn push_codings(v: &Value, path: &str, out: &mut Vec<Coding>) -> Result<(), ConsentError> {
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                push_codings(item, &format!("{path}[{i}]"), out)?;
            }
            Ok(())
        }
        Value::Object(obj) => {
            if let Some(cs) = obj.get("coding") {
                return push_codings(cs, &format!("{path}.coding"), out);
            }
            if obj.contains_key("text") && !obj.contains_key("code") {
                // A text-only CodeableConcept: nothing to match, and no condition we could enforce.
                return Err(err(
                    path,
                    "a text-only concept cannot be enforced; give a coding",
                ));
            }
            let code = obj
                .get("code")
                .and_then(Value::as_str)
                .ok_or_else(|| err(path, "coding without a code"))?;
            out.push(Coding {
                system: obj.get("system").and_then(Value::as_str).map(Box::from),
                code: code.into(),
            });
            Ok(())
        }
        _ => Err(err(path, "expected a Coding or CodeableConcept")),
    }
}

fn period(v: Option<&Value>, path: String) -> Result<Option<Interval>, ConsentError> {
    v.map(|p| {
        Interval::from_period(p).ok_or_else(|| {
            err(
                path,
                "a period needs FHIR dateTime start/end with start before end",
            )
        })
    })
    .transpose()
}

fn compile_provision(
    p: &Value,
    path: String,
    root_effect: Option<Effect>,
    depth: usize,
    out: &mut Vec<Provision>,
) -> Result<usize, ConsentError> {
    if depth >= MAX_DEPTH || out.len() >= MAX_PROVISIONS {
        return Err(err(
            path,
            format!("more than {MAX_DEPTH} levels or {MAX_PROVISIONS} provisions"),
        ));
    }
    if !p.is_object() {
        return Err(err(path, "a provision must be an object"));
    }
    let effect = match root_effect {
        Some(e) => e,
        None => match p.get("type") {
            Some(t) => parse_effect(t, &format!("{path}.type"))?,
            None => {
                return Err(err(
                    format!("{path}.type"),
                    "a nested provision needs a type (permit or deny)",
                ))
            }
        },
    };
    let idx = out.len();
    let at = |e: &str| format!("{path}.{e}");
    let mut actors = Vec::new();
    for (i, a) in array(p.get("actor"), &at("actor"))?.iter().enumerate() {
        actors.push(literal(
            a.get("reference"),
            &format!("{path}.actor[{i}].reference"),
        )?);
    }
    let mut actions = Vec::new();
    for (i, a) in array(p.get("action"), &at("action"))?.iter().enumerate() {
        push_codings(a, &format!("{path}.action[{i}]"), &mut actions)?;
    }
    let purposes = codings(p.get("purpose"), &at("purpose"))?;
    let security_labels = codings(p.get("securityLabel"), &at("securityLabel"))?;
    let classes = codings(p.get("class"), &at("class"))?
        .into_iter()
        .map(class_rule)
        .collect();
    let mut codes = Vec::new();
    for (i, c) in array(p.get("code"), &at("code"))?.iter().enumerate() {
        push_codings(c, &format!("{path}.code[{i}]"), &mut codes)?;
    }
    let mut data = Vec::new();
    for (i, d) in array(p.get("data"), &at("data"))?.iter().enumerate() {
        data.push(data_rule(d, &format!("{path}.data[{i}]"))?);
    }
    out.push(Provision {
        path: path.as_str().into(),
        effect,
        children: Vec::new(),
        actors,
        actions,
        purposes,
        period: period(p.get("period"), at("period"))?,
        security_labels,
        classes,
        codes,
        data_period: period(p.get("dataPeriod"), at("dataPeriod"))?,
        data,
    });
    for (i, child) in array(p.get("provision"), &at("provision"))?
        .iter()
        .enumerate()
    {
        let c = compile_provision(
            child,
            format!("{path}.provision[{i}]"),
            None,
            depth + 1,
            out,
        )?;
        out[idx].children.push(c);
    }
    Ok(idx)
}

fn array<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a [Value], ConsentError> {
    match v {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(err(path, "expected an array")),
    }
}

fn class_rule(c: Coding) -> ClassRule {
    let is_type = |code: &str| crate::fhir::route::resource_type(code).is_some();
    match c.system.as_deref() {
        Some(RESOURCE_TYPES) if is_type(&c.code) => ClassRule::ResourceType(c.code),
        None if is_type(&c.code) => ClassRule::ResourceType(c.code),
        _ if c.code.starts_with("http://") || c.code.starts_with("https://") => {
            let url = c.code.split_once('|').map_or(&*c.code, |(u, _)| u);
            ClassRule::Profile(url.into())
        }
        _ => ClassRule::Other,
    }
}

fn data_rule(d: &Value, path: &str) -> Result<DataRule, ConsentError> {
    let meaning = match d.get("meaning").and_then(Value::as_str) {
        Some("instance") => DataMeaning::Instance,
        Some("related") => DataMeaning::Related,
        Some("dependents") => DataMeaning::Dependents,
        Some("authoredby") => DataMeaning::AuthoredBy,
        _ => {
            return Err(err(
                format!("{path}.meaning"),
                "meaning must be instance, related, dependents or authoredby",
            ))
        }
    };
    let reference = literal(d.get("reference"), &format!("{path}.reference"))?;
    Ok(DataRule { meaning, reference })
}

/// A Reference that must be literal and local (`Type/id`, possibly absolute): a logical or contained
/// reference could never be matched, which would silently disable the provision.
fn literal(reference: Option<&Value>, path: &str) -> Result<Box<str>, ConsentError> {
    reference
        .and_then(|r| r.get("reference"))
        .and_then(Value::as_str)
        .and_then(local_reference)
        .map(Box::from)
        .ok_or_else(|| {
            err(
                path,
                "must be a literal reference to a resource ([type]/[id]); logical, contained and urn: references cannot be matched",
            )
        })
}

#[cfg(test)]
#[path = "consent_tests.rs"]
mod tests;
