//! Writes authorised like reads: what a write puts in the EHR, and what it overwrites or deletes, must
//! lie within the token's scopes, its `patient/` launch context and granular restrictions included.
//!
//! SMART scopes grant access to resources, not to resource types alone: `patient/Observation.u` lets
//! an app update the launch patient's Observations, never another patient's. A read is checked on
//! what the EHR answers; a write is checked on the resource it sends, and, for an update, patch or
//! delete of an existing resource, on the version it replaces (so a body that names the caller's own
//! patient cannot overwrite someone else's record).

use http::request::Parts;
use serde_json::Value;

use super::enforce::{deny, Guard};
use super::readback;
use super::state::Gateway;
use crate::error::GatewayError;
use crate::fhir::{compartment, Interaction, Route};
use crate::identity::scopes::ScopeDecision;

/// Refuses (403, recorded on the guard) a written `resource` that `scope` does not cover.
pub fn authorize_written(
    guard: &mut Guard,
    scope: &ScopeDecision,
    resource: &Value,
    at: &str,
) -> Result<(), GatewayError> {
    let patients = compartment::patient_ids(resource);
    let launch = guard.principal().launch_patient.as_deref();
    let in_launch = |_: &Value| launch.is_some_and(|p| patients.iter().any(|id| id == p));
    if scope.permits(resource, in_launch) {
        return Ok(());
    }
    let why = format!(
        "{at}: the token's scopes do not cover this resource (its patient context or granular \
         restrictions)"
    );
    Err(deny(guard, "forbidden", "smart-scopes", why))
}

/// For an update, patch or delete of `[type]/[id]`: the version it replaces must be covered as well.
/// Read with the client's credentials, as a PATCH's current version is; a resource that does not
/// exist yet (update as create) has nothing to check.
pub async fn authorize_current(
    gw: &Gateway,
    guard: &mut Guard,
    parts: &Parts,
    route: &Route,
) -> Result<(), GatewayError> {
    let replaces = matches!(
        route.interaction,
        Interaction::Update | Interaction::Patch | Interaction::Delete
    );
    let (Some(rtype), Some(id), true) = (route.resource_type, route.id.as_deref(), replaces) else {
        return Ok(());
    };
    if restrictions_free(guard.scope()) {
        return Ok(());
    }
    let auth = parts.headers.get(http::header::AUTHORIZATION);
    let current = readback::get(
        gw,
        auth,
        &format!("{rtype}/{id}"),
        None,
        "the current version",
    )
    .await?;
    match current.value {
        Some(v) if current.status.is_success() => {
            let scope = guard.scope().clone();
            authorize_written(
                guard,
                &scope,
                &v,
                &format!("{rtype}/{id} (its current version)"),
            )
        }
        _ => Ok(()),
    }
}

/// A scope without restrictions covers every resource of its type: nothing to read back.
fn restrictions_free(scope: &ScopeDecision) -> bool {
    matches!(scope, ScopeDecision::Granted { restrictions } if restrictions.is_empty())
}
