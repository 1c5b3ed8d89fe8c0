//! The service stack, assembled in request order in one place.
//!
//! ```text
//! panic guard ─▶ observe ─▶ [admin | concurrency budget ─▶ route ─▶ request filter ─▶ upstream ─▶ response filter]
//! ```
//!
//! Order matters: the panic guard is outermost so that a bug anywhere, even in logging, becomes a 500
//! OperationOutcome instead of a dropped connection; `observe` wraps everything else so that every
//! response, refusals included, carries a request id and is counted. The FHIR phases themselves are
//! in [`super::pipeline`], each one a named function.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{pipeline, ConnInfo};
use crate::body::Body;
use crate::error::outcome_response;
use crate::fhir::{Format, Issue, IssueType, OperationOutcome};
use crate::server::state::Gateway;

/// The service for one client connection.
pub fn service(
    gw: Arc<Gateway>,
    conn: ConnInfo,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send {
    tower::service_fn(move |req: Request<Incoming>| {
        let gw = gw.clone();
        async move {
            // The handler's state is per request and dropped on unwind, so no broken invariant can be
            // observed afterwards; shared state is atomics, a semaphore permit and a poison-tolerant mutex.
            let handled = AssertUnwindSafe(pipeline::observe(gw.clone(), conn, req))
                .catch_unwind()
                .await;
            Ok::<_, Infallible>(handled.unwrap_or_else(|_| panic_response(&gw)))
        }
    })
}

fn panic_response(gw: &Gateway) -> Response<Body> {
    gw.metrics.panics.inc();
    tracing::error!("a request handler panicked; answered 500");
    let oo = OperationOutcome::single(Issue::error(
        IssueType::Exception,
        "internal gateway error; the failure has been logged",
    ));
    outcome_response(StatusCode::INTERNAL_SERVER_ERROR, &oo, Format::Json)
}
