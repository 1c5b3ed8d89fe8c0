//! The phases of one FHIR request, in order, each a named function over one per-request context.
//!
//! ```text
//!  client ──▶ observe (request id, metrics, log) ──▶ admin, /ledger and /audit endpoints
//!                  │
//!                  └─▶ concurrency budget ─▶ route ─▶ identity ─────────▶ request filter ─────▶ validate
//!                                           (FHIR     (token, scopes,     (media type, size,    (base R4,
//!                                            path)     joins, purpose)     time, well-formed)    profiles)
//!   ─▶ ledger gate ─────────▶ upstream ─▶ anchor ──────────▶ judge ─────────▶ response filter ─▶ client
//!      (a write the ledger    (pooled     (a write's answer,  (consent, per    (base URLs, metadata
//!       cannot anchor: 503)    client)     before the client)  resource)        marking, findings)
//!   ─▶ finish: the request's decision record queued for the recorder
//! ```
//!
//! `metadata` skips identity (SMART discovery needs it public); `$verify`, `$receipt` and `$validate`
//! are answered by the gateway after the request filter. Each phase returns a [`GatewayError`] on
//! failure, and [`observe`] turns it into the response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, IF_MATCH};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::{
    anchor, audit_api, bridge, enforce, ledger_api, patch, public_base, validate_op, verify_op,
    write_authz, ConnInfo,
};
use crate::body::{self, Body, CollectError};
use crate::error::GatewayError;
use crate::fhir::bounds::Bounds;
use crate::fhir::format::{body_kind, negotiate};
use crate::fhir::wellformed::Refused;
use crate::fhir::{wellformed, BodyKind, Format, Interaction, Route};
use crate::filter::{self, BaseMap};
use crate::server::admin;
use crate::server::state::Gateway;
use crate::telemetry::metrics::{InteractionLabels, RequestLabels, UpstreamErrorLabels};
use crate::upstream::headers as hop;
use crate::validate::enforce::{check_write, Findings};

/// Header carrying the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// What is known about a request as it moves through the phases; logged and measured at the end.
#[derive(Debug)]
struct Ctx {
    request_id: String,
    format: Format,
    interaction: Option<Interaction>,
    resource_type: Option<&'static str>,
    upstream_status: Option<u16>,
    upstream_elapsed: Option<Duration>,
    /// The request's decision record, once it has one.
    decision: Option<String>,
    /// What identity and policy decided, until [`observe`] finishes the decision record: the one
    /// exit every request that got a decision id goes through, whatever ended it.
    guard: Option<enforce::Guard>,
}

/// Handles one request end to end and never fails: every error becomes an OperationOutcome.
pub async fn observe(gw: Arc<Gateway>, conn: ConnInfo, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let mut ctx = Ctx {
        request_id: request_id(&gw, &conn, &req),
        format: negotiate(req.uri().query(), req.headers()),
        interaction: None,
        resource_type: None,
        upstream_status: None,
        upstream_elapsed: None,
        decision: None,
        guard: None,
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let in_flight = InFlight::enter(&gw);
    let admin_route = !is_under(&path, &gw.fhir_path);
    let result = if admin_route && is_under(&path, audit_api::PREFIX) {
        audit(&gw, &method, &path, &req).await
    } else if admin_route {
        match admin::handle(&gw, &method, &path).await {
            Some(r) => r,
            None => match ledger_api::handle(&gw, &method, &path, req.uri().query()).await {
                Some(r) => r,
                None => Err(GatewayError::NoEndpoint(format!("{}/", gw.fhir_path))),
            },
        }
    } else {
        match gw.limiter.clone().try_acquire_owned() {
            Ok(_permit) => fhir_guarded(&gw, &conn, &mut ctx, req).await,
            Err(_) => Err(GatewayError::Overloaded),
        }
    };
    drop(in_flight);
    // The one exit: a request that got a decision id gets its record, however it ended (an answer,
    // a refusal after identity, a 4xx or 5xx from any phase, a panic).
    if let Some(mut g) = ctx.guard.take() {
        enforce::finish(&gw.enforcer, &mut g, status_of(&result)).await;
    }
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(kind) = upstream_error_kind(&e) {
                gw.metrics
                    .upstream_errors
                    .get_or_create(&UpstreamErrorLabels { kind })
                    .inc();
            }
            tracing::info!(request_id = %ctx.request_id, error = %e, side = ?e.side(), "request refused or failed");
            e.into_response(ctx.format)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    if let Some(v) = ctx
        .decision
        .as_deref()
        .and_then(|d| HeaderValue::from_str(d).ok())
    {
        resp.headers_mut().insert(enforce::DECISION_HEADER, v);
    }
    let elapsed = started.elapsed();
    let interaction = match (admin_route, ctx.interaction) {
        (true, _) => "admin",
        (false, Some(i)) => i.name(),
        (false, None) => "unrouted",
    };
    gw.metrics.record(
        RequestLabels {
            interaction,
            resource_type: ctx.resource_type.unwrap_or("none"),
            status: resp.status().as_u16(),
        },
        elapsed,
    );
    if !admin_route {
        // Method, interaction, type and status only: paths and queries can carry identifiers and PHI.
        tracing::info!(
            request_id = %ctx.request_id,
            method = %method,
            interaction,
            resource_type = ctx.resource_type.unwrap_or(""),
            status = resp.status().as_u16(),
            upstream_status = ctx.upstream_status,
            upstream_ms = ctx.upstream_elapsed.map(|d| d.as_secs_f64() * 1000.0),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }
    resp
}

/// `/audit/decisions...`: compliance reviewers only (a verified token with `enforcement.audit_scope`).
async fn audit(
    gw: &Arc<Gateway>,
    method: &Method,
    path: &str,
    req: &Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    if *method != Method::GET && *method != Method::HEAD {
        return Err(GatewayError::Route(
            crate::fhir::route::RouteError::MethodNotAllowed {
                method: method.clone(),
                allowed: "GET, HEAD",
            },
        ));
    }
    let principal = gw
        .enforcer
        .identity
        .authenticate(req.headers(), enforce::now_unix())
        .await?;
    if !gw.enforcer.is_reviewer(&principal) {
        return Err(GatewayError::Forbidden(format!(
            "decision records are for compliance reviewers (scope {})",
            gw.enforcer.config.audit_scope
        )));
    }
    audit_api::decisions_api(gw, path, req.uri().query()).await
}

/// Counts a request in the in-flight gauge until dropped, even when the handler unwinds.
struct InFlight<'a>(&'a Gateway);

impl<'a> InFlight<'a> {
    fn enter(gw: &'a Gateway) -> Self {
        gw.metrics.in_flight.inc();
        Self(gw)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
    }
}

fn upstream_error_kind(e: &GatewayError) -> Option<&'static str> {
    match e {
        GatewayError::UpstreamUnreachable => Some("unreachable"),
        GatewayError::UpstreamTimeout(_) => Some("timeout"),
        GatewayError::UpstreamBadResponse(_) => Some("bad_response"),
        _ => None,
    }
}

/// Whether `path` is `base` or below it.
fn is_under(path: &str, base: &str) -> bool {
    path.strip_prefix(base)
        .is_some_and(|r| r.is_empty() || r.starts_with('/'))
}

/// A trusted proxy's well-formed `X-Request-Id`, or a fresh one.
fn request_id(gw: &Gateway, conn: &ConnInfo, req: &Request<Incoming>) -> String {
    let incoming = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()));
    match incoming {
        Some(v) if gw.is_trusted_proxy(conn.peer.ip()) => v.to_owned(),
        _ => fresh_request_id(),
    }
}

/// A request id unique across restarts: a random per-process prefix and a counter.
///
/// A UUID per request costs a `getrandom` system call each time; ids need to be unique, not secret.
fn fresh_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..16].to_owned());
    format!("{prefix}{:016x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The FHIR phases.
async fn fhir(
    gw: &Gateway,
    conn: &ConnInfo,
    ctx: &mut Ctx,
    req: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, body) = req.into_parts();
    let rest = parts.uri.path()[gw.fhir_path.len()..]
        .trim_start_matches('/')
        .to_owned();
    let query = parts
        .uri
        .query()
        .filter(|q| !q.is_empty())
        .map(str::to_owned);

    // Route: which interaction this is, or a 404/405 before anything else happens.
    let route = if gw
        .config
        .passthrough_paths
        .iter()
        .any(|p| rest.starts_with(p.as_str()))
    {
        Route::passthrough(&parts.method, &rest)?
    } else {
        Route::parse(&parts.method, &rest, query.is_some())?
    };
    ctx.interaction = Some(route.interaction);
    ctx.resource_type = route.resource_type;
    let public = public_base::resolve(gw, &parts, conn)?;
    let (mut rest, mut query) = (rest, query);

    // Identity, scopes, joins and purpose, before anything reaches the upstream. The capability
    // statement stays public (SMART discovery needs it).
    ctx.guard = match route.interaction {
        Interaction::Capabilities => None,
        _ => Some(
            enforce::before(
                gw,
                &parts,
                &route,
                &ctx.request_id,
                &mut rest,
                &mut query,
                &mut ctx.decision,
            )
            .await?,
        ),
    };
    if let (Some("AuditEvent"), Some(g)) = (route.resource_type, ctx.guard.as_mut()) {
        g.reviewed(matches!(
            route.interaction,
            Interaction::Read | Interaction::SearchType
        ));
        return audit_events(gw, &route, &public, query.as_deref(), ctx.format).await;
    }

    // Request filter: media type, size, time and well-formedness of the body.
    let (body, mut parsed_body) = request_body(gw, &parts, &route, body).await?;

    let kind = body_kind(&parts.headers);

    // Joins wherever search parameters travel besides the URL (checked in `enforce::before`).
    if let Some(g) = ctx.guard.as_mut() {
        let form = (kind == BodyKind::Form && parts.method == Method::POST)
            .then(|| String::from_utf8_lossy(&body).into_owned());
        let if_none_exist = parts
            .headers
            .get("if-none-exist")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        enforce::refuse_joins(
            &gw.enforcer,
            g,
            &[
                ("the form-encoded body", form.as_deref().unwrap_or_default()),
                (
                    "If-None-Exist",
                    if_none_exist.as_deref().unwrap_or_default(),
                ),
            ],
        )?;
    }

    // A batch or transaction: parsed once (its body is already checked well-formed), authorised
    // entry by entry before any of it reaches the upstream, and kept for anchoring its versions.
    let request_bundle = match (route.interaction, kind) {
        (Interaction::BatchOrTransaction, BodyKind::Fhir(f)) => {
            crate::fhir::parse::resource_from(parsed_body.take(), f, &body).ok()
        }
        _ => None,
    };
    if let (Some(g), Some(bundle)) = (ctx.guard.as_mut(), &request_bundle) {
        enforce::authorize_bundle(gw, g, bundle).await?;
    }
    // Writes are authorised like reads: the resource written, and the version it replaces.
    if let (Some(g), BodyKind::Fhir(f)) = (ctx.guard.as_mut(), kind) {
        if matches!(
            route.interaction,
            Interaction::Create | Interaction::Update | Interaction::ConditionalUpdate
        ) {
            let parsed;
            let written = match parsed_body.as_ref() {
                Some(v) => Some(v),
                None => {
                    parsed = crate::fhir::parse::parse(f, &body).ok();
                    parsed.as_ref()
                }
            };
            if let Some(resource) = written {
                let scope = g.scope().clone();
                write_authz::authorize_written(g, &scope, resource, "the written resource")?;
            }
        }
    }
    if let Some(g) = ctx.guard.as_mut() {
        write_authz::authorize_current(gw, g, &parts, &route).await?;
    }

    // `$verify` and `$receipt` are the ledger's.
    if route.interaction == Interaction::Operation && verify_op::is_ledger_op(&route) {
        return verify_op::handle(gw, &parts, &route, ctx.format, ctx.guard.as_mut()).await;
    }

    // `$validate` is the gateway's own: the answer is exactly the verdict a write would get.
    if route.interaction == Interaction::Operation && validate_op::is_validate(&route) {
        let body_format = match kind {
            BodyKind::Fhir(f) => Some(f),
            _ => None,
        };
        return validate_op::handle(
            &gw.validator,
            &parts.method,
            &route,
            query.as_deref(),
            body_format,
            &body,
            ctx.format,
        );
    }

    // Validation: nothing invalid reaches the upstream. A patch is judged by its result.
    let mut findings = match kind {
        BodyKind::Fhir(format) => {
            let parsed = parsed_body.as_ref().or(request_bundle.as_ref());
            check_write(
                &gw.config.validation,
                &gw.validator,
                &route,
                format,
                &body,
                parsed,
            )?
        }
        _ => None,
    };
    let mut pin = None;
    if matches!(
        route.interaction,
        Interaction::Patch | Interaction::ConditionalPatch
    ) {
        let checked = patch::check(
            gw,
            &parts,
            &route,
            query.as_deref(),
            &body,
            parsed_body.take(),
        )
        .await?;
        findings = checked.findings;
        pin = checked.if_match;
    }
    // Anchoring: refuse writes the ledger cannot anchor before they reach the EHR, and learn now what
    // the write will need to be anchored afterwards.
    let write = match (&gw.ledger, anchor::is_anchored(route.interaction)) {
        (Some(ledger), true) => {
            if !ledger.healthy() {
                return Err(GatewayError::LedgerUnavailable(
                    ledger.problem().unwrap_or_default(),
                ));
            }
            Some(write_context(gw, &parts, &route, query.as_deref(), request_bundle).await?)
        }
        _ => None,
    };
    let body = rehome_request_body(gw, &parts, &public, body)?;

    // Upstream, in its own format when one is configured.
    let mut headers = parts.headers;
    if let Some(version) = pin {
        headers.insert(IF_MATCH, version);
    }
    let upstream_format = bridge::fixed(gw.config.upstream_format);
    let (query, body) = match upstream_format {
        Some(f) => bridge::request(f, &mut headers, query, body, body_root(&route))?,
        None => (query, body),
    };
    hop::for_upstream(&mut headers);
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert(REQUEST_ID, v);
    }
    let mut up_req = Request::new(Full::new(body));
    *up_req.method_mut() = parts.method.clone();
    *up_req.uri_mut() = gw.upstream.uri_for(&rest, query.as_deref())?;
    *up_req.headers_mut() = headers;
    let sent = Instant::now();
    let up_resp = gw.upstream.send(up_req).await?;
    let up_elapsed = sent.elapsed();
    ctx.upstream_status = Some(up_resp.status().as_u16());
    ctx.upstream_elapsed = Some(up_elapsed);
    gw.metrics
        .upstream_duration
        .get_or_create(&InteractionLabels {
            interaction: route.interaction.name(),
        })
        .observe(up_elapsed.as_secs_f64());

    // Response filter, then re-encoding for the client when the upstream format is fixed.
    let client_format = upstream_format.map(|_| ctx.format);
    let filtered = ResponseFilter {
        route: &route,
        method: &parts.method,
        public: &public,
        client_format,
        findings: findings.as_ref(),
        write: write.as_ref(),
    };
    let result = response_filter(gw, filtered, up_resp, ctx.guard.as_mut()).await;
    if route.resource_type == Some("Group") && !matches!(parts.method, Method::GET | Method::HEAD) {
        gw.enforcer.groups_changed();
    }
    result
}

/// [`fhir`], with a panic in any of its phases turned into a 500 here, so that the request's decision
/// record is still finished (the panic guard in `stack.rs` stays outermost, for bugs outside the phases).
async fn fhir_guarded(
    gw: &Gateway,
    conn: &ConnInfo,
    ctx: &mut Ctx,
    req: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    use futures_util::FutureExt as _;
    // The phases' state is per request and finished as a 500 record; shared state is atomics, a
    // semaphore permit and poison-tolerant mutexes, as for the outer guard.
    match std::panic::AssertUnwindSafe(fhir(gw, conn, ctx, req))
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(_) => {
            gw.metrics.panics.inc();
            tracing::error!(request_id = %ctx.request_id, "a request phase panicked; answered 500");
            Err(GatewayError::Internal(
                "internal gateway error; the failure has been logged".into(),
            ))
        }
    }
}

/// The status a result answers with.
fn status_of(result: &Result<Response<Body>, GatewayError>) -> u16 {
    match result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.classify().0.as_u16(),
    }
}

/// `[base]/AuditEvent` reads and searches, answered from the decision records for reviewers.
async fn audit_events(
    gw: &Gateway,
    route: &Route,
    public: &str,
    query: Option<&str>,
    format: Format,
) -> Result<Response<Body>, GatewayError> {
    match route.interaction {
        Interaction::Read => {
            audit_api::audit_events(gw, public, route.id.as_deref(), query, format).await
        }
        Interaction::SearchType => audit_api::audit_events(gw, public, None, query, format).await,
        _ => Err(GatewayError::Forbidden(
            "AuditEvents are produced by the gateway and cannot be written".into(),
        )),
    }
}

/// What anchoring a write will need: the request Bundle of a batch or transaction, and the ids a
/// conditional delete is about to delete (resolved now, with the client's credentials).
async fn write_context<'a>(
    gw: &Gateway,
    parts: &Parts,
    route: &'a Route,
    query: Option<&str>,
    request_bundle: Option<serde_json::Value>,
) -> Result<anchor::Write<'a>, GatewayError> {
    let auth = parts.headers.get(http::header::AUTHORIZATION).cloned();
    let mut deleted_ids = Vec::new();
    if route.interaction == Interaction::ConditionalDelete {
        let rt = route.resource_type.unwrap_or_default();
        let q = format!("{}&_elements=id&_count=1000", query.unwrap_or_default());
        let found = super::readback::get(
            gw,
            auth.as_ref(),
            rt,
            Some(&q),
            "resolving a conditional delete",
        )
        .await?;
        if found.status == StatusCode::OK {
            deleted_ids = found
                .value
                .iter()
                .flat_map(super::readback::matches)
                .filter_map(|e| {
                    e.pointer("/resource/id")
                        .and_then(serde_json::Value::as_str)
                })
                .map(str::to_owned)
                .collect();
        }
    }
    Ok(anchor::Write {
        route,
        auth,
        request_bundle,
        deleted_ids,
    })
}

/// The FHIRPath root of a request body: its resource type, or what the interaction carries.
fn body_root(route: &Route) -> &'static str {
    route.resource_type.unwrap_or(match route.interaction {
        Interaction::BatchOrTransaction => "Bundle",
        _ => "Parameters",
    })
}

/// Reads the request body within the size and time limits and checks its media type and syntax;
/// answers it with the tree of a FHIR JSON body, which the check builds.
async fn request_body(
    gw: &Gateway,
    parts: &Parts,
    route: &Route,
    body: Incoming,
) -> Result<(Bytes, Option<serde_json::Value>), GatewayError> {
    let limit = gw.config.limits.max_request_body;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::BodyTooLarge(limit));
    }
    let timeout = gw.config.timeouts.client_body();
    let bytes = body::collect(body, limit, timeout)
        .await
        .map_err(|e| match e {
            CollectError::TooLarge(n) => GatewayError::BodyTooLarge(n),
            CollectError::Timeout(d) => GatewayError::ClientTimeout(d.as_millis()),
            CollectError::Io(e) => {
                GatewayError::bad_request(format!("the request body could not be read: {e}"), None)
            }
        })?;
    let kind = body_kind(&parts.headers);
    let root = body_root(route);
    let bounds = Bounds::from(&gw.config.limits);
    let refused = |r: Refused, expression: Option<&str>| match r {
        Refused::TooCostly(t) => GatewayError::BodyTooCostly(t.0),
        Refused::Malformed(m) => GatewayError::MalformedBody {
            message: m.0,
            expression: expression.map(str::to_owned),
        },
    };
    let check = |format: Format| {
        wellformed::check_parsed(format, &bytes, &bounds).map_err(|r| refused(r, Some(root)))
    };
    let is_binary = route.resource_type == Some("Binary");
    let post = parts.method == Method::POST;
    let parsed = match (route.interaction, kind) {
        (i, BodyKind::Fhir(f)) if i.has_resource_body() => check(f),
        (Interaction::Patch | Interaction::ConditionalPatch, BodyKind::JsonPatch) => {
            wellformed::check_json(&bytes, &bounds)
                .map(|()| None)
                .map_err(|r| refused(r, None))
        }
        // Binary content may be sent raw, in its own media type (R4 §3.1.0.1.10).
        (i, BodyKind::Other) if i.has_resource_body() && is_binary => Ok(None),
        (i, BodyKind::Missing) if i.has_resource_body() => Err(GatewayError::UnsupportedMediaType(
            "a Content-Type of application/fhir+json or application/fhir+xml is required".to_owned(),
        )),
        (i, _) if i.has_resource_body() => Err(GatewayError::UnsupportedMediaType(format!(
            "Content-Type {} is not accepted here; use application/fhir+json or application/fhir+xml{}",
            content_type_text(parts),
            if matches!(i, Interaction::Patch | Interaction::ConditionalPatch) {
                " (FHIRPath Patch) or application/json-patch+json"
            } else {
                ""
            }
        ))),
        (Interaction::SearchType | Interaction::SearchSystem, k) if post => match k {
            BodyKind::Form => Ok(None),
            BodyKind::Missing if bytes.is_empty() => Ok(None),
            _ => Err(GatewayError::UnsupportedMediaType(format!(
                "Content-Type {} is not accepted for _search; use application/x-www-form-urlencoded",
                content_type_text(parts)
            ))),
        },
        (Interaction::Operation, BodyKind::Fhir(f)) if post => check(f),
        _ => Ok(None),
    }?;
    Ok((bytes, parsed))
}

fn content_type_text(parts: &Parts) -> String {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(100).collect())
        .unwrap_or_else(|| "(none)".to_owned())
}

/// Re-homes absolute URLs under the public base (e.g. a transaction's `fullUrl`s) onto the upstream base.
fn rehome_request_body(
    gw: &Gateway,
    parts: &Parts,
    public: &str,
    body: Bytes,
) -> Result<Bytes, GatewayError> {
    let BodyKind::Fhir(format) = body_kind(&parts.headers) else {
        return Ok(body);
    };
    let Ok(public_url) = url::Url::parse(public) else {
        return Ok(body);
    };
    let map = BaseMap::new(&public_url, gw.upstream.base().as_str());
    match filter::rewrite_body(format, &body, &map) {
        Ok(Some(new)) => Ok(Bytes::from(new)),
        Ok(None) => Ok(body),
        // Already checked well-formed, so this is unreachable in practice; refuse rather than guess.
        Err(e) => Err(GatewayError::MalformedBody {
            message: e.to_string(),
            expression: None,
        }),
    }
}

/// What the response filter needs to know about the request.
struct ResponseFilter<'a> {
    route: &'a Route,
    method: &'a Method,
    /// The public base the client used.
    public: &'a str,
    /// The client's format, when the upstream's is fixed and the answer must be re-encoded.
    client_format: Option<Format>,
    /// `warn`-mode validation findings to carry to the client.
    findings: Option<&'a Findings>,
    /// The write to anchor once the upstream accepted it.
    write: Option<&'a anchor::Write<'a>>,
}

/// Cleans the upstream response and re-homes every upstream URL under the public base.
async fn response_filter(
    gw: &Gateway,
    f: ResponseFilter<'_>,
    resp: Response<Incoming>,
    guard: Option<&mut enforce::Guard>,
) -> Result<Response<Body>, GatewayError> {
    let ResponseFilter {
        route,
        method,
        public,
        client_format,
        findings,
        write,
    } = f;
    let (mut parts, body) = resp.into_parts();
    hop::strip_hop_by_hop(&mut parts.headers);
    let map = BaseMap::new(gw.upstream.base(), public);

    // Anchoring reads the answer as the upstream sent it, before anything is rewritten.
    let body = if let (Some(w), Some(ledger), true) = (write, &gw.ledger, parts.status.is_success())
    {
        let bytes = collect_upstream(gw, body).await?;
        let format = match body_kind(&parts.headers) {
            BodyKind::Fhir(f) => Some(f),
            _ => None,
        };
        let bundle = route.interaction == Interaction::BatchOrTransaction;
        // A single JSON answer is anchored from its text; a Bundle or XML is parsed once, for
        // anchoring and for marking a Bundle's entries.
        let text = (format == Some(Format::Json) && !bundle)
            .then(|| std::str::from_utf8(&bytes).ok())
            .flatten();
        let parsed = format
            .filter(|_| text.is_none())
            .and_then(|f| crate::fhir::parse::parse_wellformed(f, &bytes).ok());
        let anchored =
            anchor::anchor_write(gw, ledger, w, &parts.headers, parsed.as_ref(), text).await;
        let mut bytes = bytes;
        match anchored {
            Ok(leaves) => {
                if let Some(v) = anchor::leaf_header(&leaves, bundle) {
                    parts.headers.insert(anchor::LEAF_HEADER, v);
                }
                if let (true, Some(f)) = (bundle, format) {
                    if let Some(marked) = anchor::mark_bundle_body(f, &bytes, parsed, &leaves) {
                        bytes = marked;
                    }
                }
            }
            Err(e) => {
                // The EHR has the write; saying so is the truth, but it is NOT anchored, and the
                // response says that too (LEDGER.md, "When the ledger fails").
                tracing::error!(error = %e, interaction = route.interaction.name(), "write accepted upstream but NOT anchored");
                gw.metrics.unanchored_writes.inc();
                parts
                    .headers
                    .insert(anchor::ANCHOR_HEADER, HeaderValue::from_static("failed"));
            }
        }
        UpstreamBody::Collected(bytes)
    } else {
        UpstreamBody::Streaming(body)
    };
    filter::headers::rewrite(&mut parts.headers, &map);

    let bodiless = *method == Method::HEAD
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
        || parts.status.is_informational();
    let body_format = body_kind(&parts.headers);
    if let (Some(f), true) = (
        findings,
        bodiless || !matches!(body_format, BodyKind::Fhir(_)),
    ) {
        let format = client_format.unwrap_or(Format::Json);
        filter::findings::attach(format, &mut parts.headers, None, f);
    }
    let BodyKind::Fhir(format) = body_format else {
        // Not FHIR (e.g. raw Binary content): nothing to inspect, so stream it through.
        return Ok(Response::from_parts(parts, body.into_body()));
    };
    if bodiless {
        return Ok(Response::from_parts(parts, body.into_body()));
    }
    let mut bytes = match body {
        UpstreamBody::Collected(b) => b,
        UpstreamBody::Streaming(b) => collect_upstream(gw, b).await?,
    };
    // Consent: every resource that leaves is judged; a denied read ends here. An answer nothing was
    // withheld from keeps its exact bytes.
    if let Some(g) = guard.filter(|g| g.judges() && parts.status.is_success()) {
        if let Some(judged) = enforce::judge_answer(gw, g, public, format, &bytes).await? {
            bytes = Bytes::from(judged);
        }
    }
    let rewritten = filter::rewrite_body(format, &bytes, &map)
        .map_err(|e| GatewayError::UpstreamBadResponse(e.to_string()))?;
    let mut out = rewritten.map_or(bytes, Bytes::from);
    if route.interaction == Interaction::Capabilities && parts.status.is_success() {
        if let Some(marked) = filter::mark_capabilities(format, &out, map.target()) {
            out = Bytes::from(marked);
        }
    }
    if let Some(f) = findings {
        out = filter::findings::attach(format, &mut parts.headers, Some(out.clone()), f)
            .unwrap_or(out);
    }
    if let Some(client) = client_format {
        out = bridge::response(format, client, &mut parts.headers, out)?;
    }
    // The body may have changed length; hyper sets Content-Length from the buffered body.
    parts.headers.remove(CONTENT_LENGTH);
    Ok(Response::from_parts(parts, body::full(out)))
}

/// An upstream response body: still streaming, or already read (for anchoring).
enum UpstreamBody {
    Streaming(Incoming),
    Collected(Bytes),
}

impl UpstreamBody {
    fn into_body(self) -> Body {
        match self {
            UpstreamBody::Streaming(b) => b.map_err(Into::into).boxed_unsync(),
            UpstreamBody::Collected(b) => body::full(b),
        }
    }
}

/// Reads an upstream body within the response size and time limits.
async fn collect_upstream(gw: &Gateway, body: Incoming) -> Result<Bytes, GatewayError> {
    let limit = gw.config.limits.max_response_body;
    let timeout = gw.config.timeouts.upstream_body();
    body::collect(body, limit, timeout)
        .await
        .map_err(|e| match e {
            CollectError::TooLarge(n) => {
                GatewayError::UpstreamBadResponse(format!("body larger than {n} bytes"))
            }
            CollectError::Timeout(d) => GatewayError::UpstreamTimeout(d.as_millis()),
            CollectError::Io(e) => {
                GatewayError::UpstreamBadResponse(format!("body broke off: {e}"))
            }
        })
}
