//! PATCH validation: fetch the current version from the upstream, apply the patch locally, validate the
//! result, and pin the forwarded patch to the version that was validated (`If-Match`).
//!
//! Pinning closes the race where another write lands between our read and the upstream's patch: the
//! upstream then answers 412 instead of patching a version nobody validated.

use bytes::Bytes;
use http::header::{AUTHORIZATION, ETAG, IF_MATCH};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use super::readback;
use crate::error::GatewayError;
use crate::fhir::format::body_kind;
use crate::fhir::outcome::{Issue, IssueType, Severity};
use crate::fhir::parse::{resource_from, ParseError};
use crate::fhir::{BodyKind, Interaction, OperationOutcome, Route};
use crate::server::state::Gateway;
use crate::validate::enforce::{self, Findings, ValidationMode};
use crate::validate::patch::{apply_fhirpath_patch, apply_json_patch, PatchError};
use crate::validate::patch_budget::PatchLimits;

/// What checking a patch decided: findings for the response, and an `If-Match` to add.
#[derive(Debug, Default)]
pub struct Checked {
    /// `warn`-mode issues of the result.
    pub findings: Option<Findings>,
    /// The version validated, when the client did not pin one itself.
    pub if_match: Option<HeaderValue>,
}

/// Validates the result of a PATCH, or explains why it is refused. `parsed` is the tree of a FHIR
/// JSON body when the request filter already built it.
pub async fn check(
    gw: &Gateway,
    parts: &Parts,
    route: &Route,
    query: Option<&str>,
    body: &Bytes,
    parsed: Option<Value>,
) -> Result<Checked, GatewayError> {
    let cfg = &gw.config.validation;
    let Some(rt) = route.resource_type else {
        return Ok(Checked::default());
    };
    if enforce::skipped(cfg, rt) {
        return Ok(Checked::default());
    }
    let patch =
        match body_kind(&parts.headers) {
            BodyKind::JsonPatch => Patch::Json(serde_json::from_slice(body).map_err(|e| {
                GatewayError::MalformedBody {
                    message: format!("the JSON Patch document is not JSON: {e}"),
                    expression: None,
                }
            })?),
            BodyKind::Fhir(f) => match resource_from(parsed, f, body) {
            Ok(v) if v.get("resourceType").and_then(Value::as_str) == Some("Parameters") => {
                Patch::FhirPath(v)
            }
            Err(ParseError::TooCostly(message)) => return Err(GatewayError::BodyTooCostly(message)),
            Ok(_) | Err(ParseError::NotAResource(_)) => {
                return Err(GatewayError::UnsupportedMediaType(
                    "a PATCH in a FHIR media type must be a FHIRPath Patch (a Parameters resource); \
                     send JSON Patch as application/json-patch+json"
                        .into(),
                ))
            }
            Err(ParseError::Malformed(message)) => {
                return Err(GatewayError::MalformedBody {
                    message,
                    expression: Some("Parameters".into()),
                })
            }
        },
            _ => return Ok(Checked::default()),
        };
    let Some((mut current, etag)) = fetch_current(gw, parts, route, query).await? else {
        // Nothing to patch (absent, deleted, ambiguous or not visible): the upstream answers that.
        return Ok(Checked::default());
    };
    // Each operation is measured before it is applied: a patch asking for more than a client may send
    // (`limits.max_request_body`, `limits.max_nodes`) is refused before the result is built.
    let limits = PatchLimits::from(&gw.config.limits);
    let applied = match &patch {
        Patch::Json(p) => apply_json_patch(&mut current, p, limits),
        Patch::FhirPath(p) => apply_fhirpath_patch(gw.validator.model(), &mut current, p, limits),
    };
    match applied {
        Ok(()) => {}
        // Refused whatever the validation mode: the limits protect the gateway, not the data.
        Err(PatchError::TooCostly(m)) => return Err(GatewayError::PatchTooCostly(m)),
        Err(PatchError::Malformed(m)) => return Err(GatewayError::bad_request(m, None)),
        // The patch does not apply to the current version: the upstream says so in its own words.
        Err(PatchError::Failed(_)) => return Ok(Checked::default()),
        Err(e @ PatchError::Unsupported(_)) => return unsupported(cfg.mode_for(rt), e),
    }
    let findings = enforce::check_resource(cfg, &gw.validator, &current)?;
    let if_match = (!parts.headers.contains_key(IF_MATCH))
        .then_some(etag)
        .flatten();
    Ok(Checked { findings, if_match })
}

enum Patch {
    Json(Value),
    FhirPath(Value),
}

/// A patch whose result cannot be computed: refused in `enforce` mode (deny when unsure), reported in
/// `warn` mode.
fn unsupported(mode: ValidationMode, e: PatchError) -> Result<Checked, GatewayError> {
    let issue = Issue {
        severity: if mode == ValidationMode::Enforce {
            Severity::Error
        } else {
            Severity::Warning
        },
        code: IssueType::NotSupported,
        diagnostics: e.to_string(),
        expression: vec!["Parameters.parameter.part.where(name = 'path')".into()],
    };
    match mode {
        ValidationMode::Enforce => Err(GatewayError::Invalid(OperationOutcome::single(issue))),
        _ => Ok(Checked {
            findings: Some(Findings {
                outcome: OperationOutcome::single(issue),
                ..Findings::default()
            }),
            if_match: None,
        }),
    }
}

/// The current version of the resource a PATCH targets, with its ETag; `None` when there is no single
/// current version the client may see.
async fn fetch_current(
    gw: &Gateway,
    parts: &Parts,
    route: &Route,
    query: Option<&str>,
) -> Result<Option<(Value, Option<HeaderValue>)>, GatewayError> {
    let rt = route.resource_type.unwrap_or_default();
    let (rest, q) = match (route.interaction, &route.id) {
        (Interaction::Patch, Some(id)) => (format!("{rt}/{id}"), None),
        (Interaction::ConditionalPatch, _) => (
            rt.to_owned(),
            Some(format!("{}&_count=2", query.unwrap_or_default())),
        ),
        _ => return Ok(None),
    };
    let fetched = readback::get(
        gw,
        parts.headers.get(AUTHORIZATION),
        &rest,
        q.as_deref(),
        "reading the current version to check a PATCH",
    )
    .await?;
    let status = fetched.status;
    if status.is_client_error() {
        return Ok(None);
    }
    if status != StatusCode::OK {
        return Err(GatewayError::UpstreamBadResponse(format!(
            "reading the current version to check a PATCH gave {status}"
        )));
    }
    let value = fetched.value.ok_or_else(|| {
        GatewayError::UpstreamBadResponse("the current version came without a FHIR body".into())
    })?;
    if route.interaction == Interaction::Patch {
        return Ok(Some((value, fetched.headers.get(ETAG).cloned())));
    }
    // A conditional patch: exactly one match, or the upstream decides (404 or 412).
    let entries: Vec<&Value> = readback::matches(&value).collect();
    let [only] = entries.as_slice() else {
        return Ok(None);
    };
    let Some(resource) = only.get("resource").cloned() else {
        return Ok(None);
    };
    let etag = resource
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .and_then(|v| HeaderValue::from_str(&format!("W/\"{v}\"")).ok());
    Ok(Some((resource, etag)))
}
