//! Enforcement on the write path: which writes are validated, in which mode, and the 422 refusal.
//!
//! Creates, updates (plain and conditional) and batch or transaction Bundles (every entry's resource
//! with them) are validated before anything is forwarded. Patches are not yet: their result must be
//! computed from the current version first.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{is_valid, Validator};
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
}

impl ValidationConfig {
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
    let outcome = Validator::r4().validate(&value);
    if is_valid(&outcome) {
        Ok(())
    } else {
        Err(GatewayError::Invalid(outcome))
    }
}
