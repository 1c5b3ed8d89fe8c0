//! Enforcement on the write path: which writes are validated, in which mode, and what happens to the
//! issues (a 422 refusal, or findings carried to the response in `warn` mode).
//!
//! Creates, updates (plain and conditional), patches (their *result*: see [`super::patch`]) and batch or
//! transaction Bundles are validated before anything is forwarded. In a Bundle every entry's resource is
//! judged in the mode of its own type, so `Binary = "off"` holds inside a transaction too; the Bundle's
//! own structure is judged in the `Bundle` mode.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::definitions::Definitions;
use super::{is_valid, ValidateOptions, Validator};
use crate::error::GatewayError;
use crate::fhir::outcome::Issue;
use crate::fhir::parse::{is_resource, parse_wellformed, ParseError};
use crate::fhir::{Format, Interaction, OperationOutcome, Route};

/// What to do with a write that fails validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationMode {
    /// Refuse it with 422 and an OperationOutcome listing every issue.
    #[default]
    Enforce,
    /// Forward it, and tell the client what is wrong alongside the upstream's response.
    Warn,
    /// Do not validate.
    Off,
}

/// Validation settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// The mode for every resource type not listed in `per_type`.
    pub mode: ValidationMode,
    /// Modes for particular resource types, e.g. `Binary = "off"`.
    pub per_type: BTreeMap<String, ValidationMode>,
    /// Profiles (canonical URLs of embedded profiles: R4 core, IPS 2.0.0) that writes of a resource
    /// type must conform to, e.g.
    /// `Patient = ["http://hl7.org/fhir/uv/ips/StructureDefinition/Patient-uv-ips"]`. Resources inside a
    /// batch or transaction Bundle are held to their type's profiles too.
    pub profiles: BTreeMap<String, Vec<String>>,
    /// StructureDefinitions, ValueSets and CodeSystems (JSON or XML files, Bundles of them, or
    /// directories) loaded at start-up on top of the embedded R4 core and IPS definitions, so that
    /// `profiles`, `meta.profile` and `$validate?profile=` can name local profiles.
    pub definitions: Vec<PathBuf>,
    /// Also check writes against HL7's R4 JSON Schema, as a second opinion after the
    /// StructureDefinition walk (which already covers what the schema checks). Off by default: it costs
    /// about 1.5× the walk again. `$validate` and `anchorgate validate` always run it.
    pub json_schema: bool,
    /// Reject extensions whose definition is unknown, as the HL7 validator does by default. Off by
    /// default: EHRs (and Synthea) carry their own extensions, whose definitions a gateway rarely has;
    /// turn it on once `definitions` holds them.
    pub strict_extensions: bool,
    /// Reject a Coding whose display differs from its (R4) code system's, as the HL7 validator does.
    pub check_displays: bool,
}

impl ValidationConfig {
    /// The gateway's validator: the embedded definitions plus `definitions`, with every configured
    /// profile known and for its type. Built once at start-up and shared.
    pub fn build_validator(&self) -> Result<Validator, String> {
        let mut defs = Definitions::default();
        for path in &self.definitions {
            defs.load_path(path).map_err(|e| e.to_string())?;
        }
        let validator = Validator::r4().with_definitions(&defs);
        check_profiles(&self.profiles, &validator)?;
        Ok(validator)
    }

    /// The mode for `resource_type`.
    pub fn mode_for(&self, resource_type: &str) -> ValidationMode {
        self.per_type
            .get(resource_type)
            .copied()
            .unwrap_or(self.mode)
    }

    /// Whether no resource type is validated at all.
    fn all_off(&self) -> bool {
        self.mode == ValidationMode::Off
            && self.per_type.values().all(|m| *m == ValidationMode::Off)
    }
}

/// Why configured profiles cannot be used, if they cannot: unknown, broken, or for another type.
fn check_profiles(
    profiles: &BTreeMap<String, Vec<String>>,
    validator: &Validator,
) -> Result<(), String> {
    for (ty, urls) in profiles {
        for url in urls {
            if let Some(why) = validator.profile_problem(url) {
                return Err(format!("{ty}: profile {url} cannot be used: {why}"));
            }
            let Some(for_type) = validator.profile_type(url) else {
                return Err(format!("{ty}: unknown profile {url}"));
            };
            if for_type != *ty {
                return Err(format!("{ty}: profile {url} is for {for_type}"));
            }
        }
    }
    Ok(())
}

/// Issues found in `warn`-mode parts of a write that was forwarded anyway, for the response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// Issues about the resource written, or about a Bundle as a whole.
    pub outcome: OperationOutcome,
    /// Issues about batch or transaction entries, by entry index (for `entry.response.outcome`).
    pub entries: BTreeMap<usize, OperationOutcome>,
}

impl Findings {
    /// Whether there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.outcome.issues.is_empty() && self.entries.is_empty()
    }
}

/// The resource type a write interaction carries in its body, if it carries one to validate.
pub fn write_root(route: &Route) -> Option<&'static str> {
    match route.interaction {
        Interaction::Create
        | Interaction::Update
        | Interaction::ConditionalUpdate
        | Interaction::Patch
        | Interaction::ConditionalPatch => route.resource_type,
        Interaction::BatchOrTransaction => Some("Bundle"),
        _ => None,
    }
}

/// Validates a create, update or Bundle body, already checked well-formed, when its mode calls for it.
/// `Ok(None)`: nothing to report; `Ok(Some)`: forward, and attach the findings to the response.
/// `parsed`, when given, is the body's tree, already built by the well-formedness check.
pub fn check_write(
    cfg: &ValidationConfig,
    validator: &Validator,
    route: &Route,
    format: Format,
    body: &[u8],
    parsed: Option<&Value>,
) -> Result<Option<Findings>, GatewayError> {
    if matches!(
        route.interaction,
        Interaction::Patch | Interaction::ConditionalPatch
    ) {
        // The body is a patch, not the resource: its result is checked by `check_resource`.
        return Ok(None);
    }
    let Some(root) = write_root(route) else {
        return Ok(None);
    };
    if skipped(cfg, root) {
        return Ok(None);
    }
    let owned;
    let value = match parsed {
        Some(v) => {
            not_a_resource(is_resource(v), root)?;
            v
        }
        None => {
            owned = parse_body(format, body, root)?;
            &owned
        }
    };
    let body_type = value
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if body_type != root {
        return Err(GatewayError::bad_request(
            format!("the body is a {body_type}, but this interaction takes a {root}"),
            Some(format!("{body_type}.resourceType")),
        ));
    }
    check_resource(cfg, validator, value)
}

/// Whether a write of `root` needs no validation at all under `cfg`.
pub fn skipped(cfg: &ValidationConfig, root: &str) -> bool {
    if root == "Bundle" {
        cfg.all_off()
    } else {
        cfg.mode_for(root) == ValidationMode::Off
    }
}

/// Parses a body the request filter has already checked well-formed.
pub fn parse_body(format: Format, body: &[u8], root: &str) -> Result<Value, GatewayError> {
    not_a_resource(parse_wellformed(format, body), root)
}

/// A parse failure as the client hears it: a malformed body, located at the resource's root.
fn not_a_resource<T>(parsed: Result<T, ParseError>, root: &str) -> Result<T, GatewayError> {
    parsed.map_err(|e| match e {
        ParseError::TooCostly(message) => GatewayError::BodyTooCostly(message),
        ParseError::Malformed(message) | ParseError::NotAResource(message) => {
            GatewayError::MalformedBody {
                message,
                expression: Some(root.to_owned()),
            }
        }
    })
}

/// Validates one resource about to be written (a Bundle's entries each in their own type's mode) and
/// applies the modes: errors in `enforce` parts refuse the write; issues in `warn` parts become findings.
pub fn check_resource(
    cfg: &ValidationConfig,
    validator: &Validator,
    resource: &Value,
) -> Result<Option<Findings>, GatewayError> {
    let root = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let options =
        ValidateOptions::with_profiles(cfg.profiles.get(root).into_iter().flatten().cloned())
            .json_schema(cfg.json_schema)
            .strict_extensions(cfg.strict_extensions)
            .check_displays(cfg.check_displays);
    let mut outcome = validator.validate_with(resource, &options);
    if root == "Bundle" && !cfg.profiles.is_empty() {
        entry_profiles(cfg, validator, resource, &mut outcome);
    }
    judge(cfg, resource, outcome)
}

/// Checks each entry resource of a Bundle against its type's configured profiles.
fn entry_profiles(
    cfg: &ValidationConfig,
    validator: &Validator,
    bundle: &Value,
    outcome: &mut OperationOutcome,
) {
    let entries = bundle.get("entry").and_then(Value::as_array);
    for (i, entry) in entries.into_iter().flatten().enumerate() {
        let Some(resource) = entry.get("resource") else {
            continue;
        };
        let ty = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(urls) = cfg.profiles.get(ty) else {
            continue;
        };
        let location = format!("Bundle.entry[{i}].resource");
        outcome
            .issues
            .extend(validator.profile_issues(resource, urls, &location));
    }
}

/// Applies the configured modes to a validation outcome of `resource`.
pub fn judge(
    cfg: &ValidationConfig,
    resource: &Value,
    outcome: OperationOutcome,
) -> Result<Option<Findings>, GatewayError> {
    let root_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let entries = resource.get("entry").and_then(Value::as_array);
    let mut refused = OperationOutcome::default();
    let mut findings = Findings::default();
    for issue in outcome.issues {
        let entry = (root_type == "Bundle")
            .then(|| entry_of(&issue))
            .flatten()
            .filter(|(_, in_resource)| *in_resource);
        let mode = match entry {
            Some((i, _)) => entries
                .and_then(|e| e.get(i))
                .and_then(|e| e.pointer("/resource/resourceType"))
                .and_then(Value::as_str)
                .map_or(cfg.mode_for(root_type), |t| cfg.mode_for(t)),
            None => cfg.mode_for(root_type),
        };
        match mode {
            ValidationMode::Enforce => refused.issues.push(issue),
            ValidationMode::Warn => match entry {
                Some((i, _)) => findings.entries.entry(i).or_default().issues.push(issue),
                None => findings.outcome.issues.push(issue),
            },
            ValidationMode::Off => {}
        }
    }
    if !is_valid(&refused) {
        return Err(GatewayError::Invalid(refused));
    }
    Ok((!findings.is_empty()).then_some(findings))
}

/// The Bundle entry an issue is located in (`Bundle.entry[3]…`), and whether it is inside the entry's
/// resource rather than its request/response/fullUrl.
fn entry_of(issue: &Issue) -> Option<(usize, bool)> {
    let e = issue.expression.first()?;
    let rest = e.strip_prefix("Bundle.entry[")?;
    let (n, after) = rest.split_once(']')?;
    Some((n.parse().ok()?, after.starts_with(".resource")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg(toml_text: &str) -> ValidationConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn check(c: &str, v: &Value) -> Result<Option<Findings>, GatewayError> {
        check_resource(&cfg(c), Validator::r4(), v)
    }

    fn bad_patient() -> Value {
        json!({"resourceType": "Patient", "gender": "sometimes"})
    }

    #[test]
    fn enforce_refuses_warn_reports_off_ignores() {
        let p = bad_patient();
        assert!(matches!(check("", &p), Err(GatewayError::Invalid(_))));
        let f = check("mode = \"warn\"", &p).unwrap().unwrap();
        assert!(!f.outcome.issues.is_empty());
        assert!(f.entries.is_empty());
        assert_eq!(check("mode = \"off\"", &p).unwrap(), None);
        let ok = json!({"resourceType": "Patient", "gender": "female"});
        assert_eq!(check("mode = \"warn\"", &ok).unwrap(), None);
    }

    #[test]
    fn bundle_entries_are_judged_in_their_own_types_mode() {
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Observation", "status": "final",
                          "code": {"text": "x"}}, "request": {"method": "POST", "url": "Observation"}},
            {"resource": bad_patient(), "request": {"method": "POST", "url": "Patient"}}
        ]});
        assert!(matches!(check("", &b), Err(GatewayError::Invalid(_))));
        let f = check("[per_type]\nPatient = \"warn\"", &b)
            .unwrap()
            .unwrap();
        assert_eq!(f.entries.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert!(f.outcome.issues.is_empty());
        assert_eq!(check("[per_type]\nPatient = \"off\"", &b).unwrap(), None);
        // The Bundle's own structure follows the Bundle mode.
        let broken = json!({"resourceType": "Bundle", "type": "nonsense"});
        assert!(check("[per_type]\nPatient = \"off\"", &broken).is_err());
        assert!(!skipped(
            &cfg("mode = \"off\"\n[per_type]\nPatient = \"warn\""),
            "Bundle"
        ));
        assert!(skipped(&cfg("mode = \"off\""), "Bundle"));
    }
}
