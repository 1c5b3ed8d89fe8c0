//! Enforcement on the write path: which writes are validated, in which mode, and the 422 refusal.
//!
//! Creates, updates (plain and conditional) and batch or transaction Bundles (every entry's resource
//! with them) are validated before anything is forwarded. Patches are not yet: their result must be
//! computed from the current version first.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{is_valid, ValidateOptions, Validator};
use crate::error::GatewayError;
use crate::fhir::parse::{parse_wellformed, ParseError};
use crate::fhir::{Format, Interaction, Route};

/// What to do with a write that fails validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationMode {
    /// Refuse it with 422 and an OperationOutcome listing every issue.
    #[default]
    Enforce,
    /// Do not validate.
    Off,
}

/// Validation settings.
#[derive(Debug, Clone, Default, Deserialize)]
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
}

impl ValidationConfig {
    /// Why the configured profiles cannot be used, if they cannot: unknown, or for another type.
    pub fn check_profiles(&self) -> Result<(), String> {
        for (ty, urls) in &self.profiles {
            for url in urls {
                let Some(for_type) = Validator::r4().profile_type(url) else {
                    return Err(format!("{ty}: unknown profile {url}"));
                };
                if for_type != *ty {
                    return Err(format!("{ty}: profile {url} is for {for_type}"));
                }
            }
        }
        Ok(())
    }

    /// The mode for `resource_type`.
    pub fn mode_for(&self, resource_type: &str) -> ValidationMode {
        self.per_type
            .get(resource_type)
            .copied()
            .unwrap_or(self.mode)
    }
}

/// Validates a write's body, already checked well-formed, when the interaction and mode call for it.
pub fn check_write(
    cfg: &ValidationConfig,
    route: &Route,
    format: Format,
    body: &[u8],
) -> Result<(), GatewayError> {
    let root = match route.interaction {
        Interaction::Create | Interaction::Update | Interaction::ConditionalUpdate => {
            route.resource_type
        }
        Interaction::BatchOrTransaction => Some("Bundle"),
        _ => None,
    };
    let Some(root) = root else { return Ok(()) };
    if cfg.mode_for(root) == ValidationMode::Off {
        return Ok(());
    }
    // The request filter has already checked the body well-formed.
    let value = parse_wellformed(format, body).map_err(|e| {
        let (ParseError::Malformed(message) | ParseError::NotAResource(message)) = e;
        GatewayError::MalformedBody {
            message,
            expression: Some(root.to_owned()),
        }
    })?;
    let body_type = value
        .get("resourceType")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    if body_type != root {
        return Err(GatewayError::bad_request(
            format!("the body is a {body_type}, but this interaction takes a {root}"),
            Some(format!("{body_type}.resourceType")),
        ));
    }
    let options =
        ValidateOptions::with_profiles(cfg.profiles.get(root).into_iter().flatten().cloned());
    let mut outcome = Validator::r4().validate_with(&value, &options);
    if root == "Bundle" && !cfg.profiles.is_empty() {
        entry_profiles(cfg, &value, &mut outcome);
    }
    if is_valid(&outcome) {
        Ok(())
    } else {
        Err(GatewayError::Invalid(outcome))
    }
}

/// Checks each entry resource of a Bundle against its type's configured profiles.
fn entry_profiles(
    cfg: &ValidationConfig,
    bundle: &serde_json::Value,
    outcome: &mut crate::fhir::OperationOutcome,
) {
    let entries = bundle.get("entry").and_then(|e| e.as_array());
    for (i, entry) in entries.into_iter().flatten().enumerate() {
        let Some(resource) = entry.get("resource") else {
            continue;
        };
        let ty = resource
            .get("resourceType")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        let Some(urls) = cfg.profiles.get(ty) else {
            continue;
        };
        let location = format!("Bundle.entry[{i}].resource");
        let issues = Validator::r4().profile_issues(resource, urls, &location);
        outcome.issues.extend(issues);
    }
}
