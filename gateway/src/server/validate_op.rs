//! `$validate` (`[base]/[type]/$validate`, `[base]/[type]/[id]/$validate`, `[base]/$validate`), answered
//! by the gateway itself with its own validator, so clients see exactly the verdict a write would get.
//!
//! The body is the resource itself or a `Parameters` with `resource`, and optionally `mode` and
//! `profile` (also accepted as query parameters). The answer is `200 OK` with an OperationOutcome
//! whether or not the resource is valid (R4 §operation-resource-validate); a request that cannot be
//! validated at all (no resource, wrong type, unknown mode) gets a 4xx.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::Value;

use crate::body::Body;
use crate::error::{outcome_response, GatewayError};
use crate::fhir::outcome::{Issue, IssueType, Severity};
use crate::fhir::parameters;
use crate::fhir::route::RouteError;
use crate::fhir::{Format, OperationOutcome, Route};
use crate::validate::enforce::parse_body;
use crate::validate::{ValidateOptions, Validator};

/// Whether this route is the `$validate` operation.
pub fn is_validate(route: &Route) -> bool {
    route.operation.as_deref() == Some("validate")
}

/// What the request asks to validate, and how.
#[derive(Debug)]
struct Request {
    resource: Value,
    mode: Option<String>,
    profile: Option<String>,
}

/// Answers `$validate` in the client's `format`; `body_format` is the body's format, when it has one.
pub fn handle(
    validator: &Validator,
    method: &Method,
    route: &Route,
    query: Option<&str>,
    body_format: Option<Format>,
    body: &Bytes,
    format: Format,
) -> Result<Response<Body>, GatewayError> {
    if *method != Method::POST {
        return Err(RouteError::MethodNotAllowed {
            method: method.clone(),
            allowed: "POST",
        }
        .into());
    }
    let req = read(route, query, body_format, body)?;
    match req.mode.as_deref() {
        None | Some("create" | "update" | "profile") => {}
        Some("delete") => return Err(GatewayError::bad_request(
            "mode=delete is not supported: deleting is checked by the upstream, and the gateway \
                 validates content only",
            Some("Parameters.parameter.where(name = 'mode')".into()),
        )),
        Some(other) => {
            return Err(GatewayError::bad_request(
                format!(
                    "unknown mode '{}': use create, update or profile",
                    other.chars().take(40).collect::<String>()
                ),
                Some("Parameters.parameter.where(name = 'mode')".into()),
            ))
        }
    }
    if req.mode.as_deref() == Some("update") {
        check_update_id(route, &req.resource)?;
    }
    let mut outcome = validate(validator, &req.resource, req.profile.as_deref())?;
    if outcome.issues.is_empty() {
        outcome.issues.push(Issue {
            severity: Severity::Information,
            code: IssueType::Informational,
            diagnostics: "No issues detected during validation".into(),
            expression: Vec::new(),
        });
    }
    Ok(outcome_response(StatusCode::OK, &outcome, format))
}

/// Validates against the base specification, the profiles in `meta.profile`, and a named profile.
fn validate(
    v: &Validator,
    resource: &Value,
    profile: Option<&str>,
) -> Result<OperationOutcome, GatewayError> {
    let Some(url) = profile else {
        return Ok(v.validate_with(resource, &ValidateOptions::default().json_schema(true)));
    };
    let at = Some("Parameters.parameter.where(name = 'profile')".to_owned());
    let shown: String = url.chars().take(200).collect();
    if let Some(why) = v.profile_problem(url) {
        return Err(GatewayError::bad_request(
            format!("the profile '{shown}' cannot be used: {why}"),
            at,
        ));
    }
    let Some(for_type) = v.profile_type(url) else {
        return Err(GatewayError::bad_request(
            format!(
                "unknown profile '{shown}': the gateway knows the R4 core and IPS 2.0.0 profiles"
            ),
            at,
        ));
    };
    let rt = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if for_type != rt {
        return Err(GatewayError::bad_request(
            format!("the profile '{shown}' constrains {for_type}, not {rt}"),
            at,
        ));
    }
    Ok(v.validate_with(
        resource,
        &ValidateOptions::with_profile(url).json_schema(true),
    ))
}

fn read(
    route: &Route,
    query: Option<&str>,
    body_format: Option<Format>,
    body: &Bytes,
) -> Result<Request, GatewayError> {
    let root = route.resource_type.unwrap_or("Resource");
    let Some(format) = body_format.filter(|_| !body.is_empty()) else {
        return Err(GatewayError::bad_request(
            "$validate needs the resource to validate in the body, as FHIR JSON or XML",
            None,
        ));
    };
    let value = parse_body(format, body, root)?;
    let mut mode = None;
    let mut profile = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "mode" => mode = Some(v.into_owned()),
            "profile" => profile = Some(v.into_owned()),
            _ => {}
        }
    }
    let body_type = value.get("resourceType").and_then(Value::as_str);
    let resource = if body_type == Some("Parameters") && route.resource_type != Some("Parameters") {
        let params = parameters::list(&value, "parameter");
        let named = |n: &str| parameters::named(params, n);
        let text = |n: &str| named(n).and_then(parameters::value_text).map(str::to_owned);
        mode = text("mode").or(mode);
        profile = text("profile").or(profile);
        named("resource")
            .and_then(|p| p.get("resource"))
            .cloned()
            .ok_or_else(|| {
                GatewayError::bad_request(
                    "the Parameters has no 'resource' parameter to validate",
                    Some("Parameters.parameter".into()),
                )
            })?
    } else {
        value
    };
    let rt = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(expected) = route.resource_type {
        if rt != expected {
            return Err(GatewayError::bad_request(
                format!("the resource is a {rt}, but this is {expected}/$validate"),
                Some(format!("{rt}.resourceType")),
            ));
        }
    }
    Ok(Request {
        resource,
        mode,
        profile,
    })
}

/// `mode=update` on an instance: the resource must carry the id in the URL.
fn check_update_id(route: &Route, resource: &Value) -> Result<(), GatewayError> {
    let rt = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body_id = resource.get("id").and_then(Value::as_str);
    match (route.id.as_deref(), body_id) {
        (_, None) => Err(GatewayError::bad_request(
            "mode=update needs the resource's id",
            Some(format!("{rt}.id")),
        )),
        (Some(url_id), Some(id)) if url_id != id => Err(GatewayError::bad_request(
            "the resource's id does not match the id in the URL",
            Some(format!("{rt}.id")),
        )),
        _ => Ok(()),
    }
}
