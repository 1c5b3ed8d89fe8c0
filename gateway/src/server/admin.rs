//! Admin endpoints outside the FHIR base: `/healthz` (liveness), `/readyz` (upstream reachable, ledger
//! able to anchor) and
//! `/metrics` (Prometheus).

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Response, StatusCode};

use crate::body::{self, Body};
use crate::error::{outcome_response, GatewayError};
use crate::fhir::{Format, Issue, IssueType, OperationOutcome};
use crate::server::state::Gateway;

/// Answers an admin path, or `None` when `path` is not one.
pub async fn handle(
    gw: &Gateway,
    method: &Method,
    path: &str,
) -> Option<Result<Response<Body>, GatewayError>> {
    let known = matches!(path, "/healthz" | "/readyz" | "/metrics");
    if !known {
        return None;
    }
    if method != Method::GET && method != Method::HEAD {
        return Some(Err(GatewayError::Route(
            crate::fhir::RouteError::MethodNotAllowed {
                method: method.clone(),
                allowed: "GET, HEAD",
            },
        )));
    }
    Some(Ok(match path {
        "/healthz" => json(StatusCode::OK, r#"{"status":"ok"}"#),
        "/readyz" => {
            let ledger_problem = gw.ledger.as_ref().and_then(|l| l.problem());
            if let Some(problem) = ledger_problem {
                let oo = OperationOutcome::single(Issue::error(
                    IssueType::Transient,
                    format!("not ready: the ledger cannot anchor writes: {problem}"),
                ));
                outcome_response(StatusCode::SERVICE_UNAVAILABLE, &oo, Format::Json)
            } else if gw.upstream_ready().await {
                json(StatusCode::OK, r#"{"status":"ready"}"#)
            } else {
                let oo = OperationOutcome::single(Issue::error(
                    IssueType::Transient,
                    "not ready: the upstream FHIR server does not answer GET metadata",
                ));
                outcome_response(StatusCode::SERVICE_UNAVAILABLE, &oo, Format::Json)
            }
        }
        _ => {
            if let Some(ledger) = &gw.ledger {
                let (entries, batches) = ledger.stats();
                gw.metrics.ledger_entries.set(entries as i64);
                gw.metrics.ledger_batches.set(batches as i64);
            }
            let mut resp = Response::new(body::full(gw.metrics.encode()));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            resp
        }
    }))
}

fn json(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
