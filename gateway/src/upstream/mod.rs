//! The upstream EHR: a pooled HTTP/1.1 and HTTP/2 client, request URL mapping, header hygiene and
//! timeouts, with each failure classified as unreachable (502) or too slow (504).

pub mod headers;
mod tls;

use std::time::Duration;

use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use crate::config::{TimeoutsConfig, UpstreamClientConfig};
use crate::error::GatewayError;

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamBuildError {
    /// The TLS trust store could not be assembled.
    #[error("upstream TLS setup failed: {0}")]
    Tls(String),
}

/// A connection-pooled client bound to one upstream FHIR base.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: Url,
    /// The base's path without a trailing slash.
    base_path: String,
    response_timeout: Duration,
}

impl Upstream {
    /// Builds the client for `base`; the pool is shared by every request.
    pub fn new(
        base: Url,
        client_cfg: &UpstreamClientConfig,
        timeouts: &TimeoutsConfig,
    ) -> Result<Self, UpstreamBuildError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeouts.upstream_connect()));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = tls::client_config(client_cfg.ca_file.as_deref())?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_millis(client_cfg.pool_idle_timeout_ms))
            .pool_max_idle_per_host(client_cfg.pool_max_idle_per_host)
            .http2_only(client_cfg.http2_prior_knowledge)
            .build(https);
        let base_path = base.path().trim_end_matches('/').to_owned();
        Ok(Self {
            client,
            base,
            base_path,
            response_timeout: timeouts.upstream_response(),
        })
    }

    /// The upstream's FHIR base.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `url` split into the path after the upstream's FHIR base and its query, when it is under that
    /// base (a paging link the upstream handed out); `None` for anything else, which is never followed.
    pub fn relative(&self, url: &str) -> Option<(String, Option<String>)> {
        let u = Url::parse(url).ok()?;
        if u.scheme() != self.base.scheme()
            || u.host_str() != self.base.host_str()
            || u.port_or_known_default() != self.base.port_or_known_default()
        {
            return None;
        }
        let rest = u.path().strip_prefix(self.base_path.as_str())?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        Some((
            rest.trim_start_matches('/').to_owned(),
            u.query().map(str::to_owned),
        ))
    }

    /// The upstream URI for `rest` (the path after the FHIR base, without a leading slash) and `query`.
    pub fn uri_for(&self, rest: &str, query: Option<&str>) -> Result<Uri, GatewayError> {
        let mut pq = String::with_capacity(
            self.base_path.len() + rest.len() + 2 + query.map_or(0, str::len),
        );
        pq.push_str(&self.base_path);
        if !rest.is_empty() {
            pq.push('/');
            pq.push_str(rest);
        }
        if pq.is_empty() {
            pq.push('/');
        }
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let pq = PathAndQuery::try_from(pq)
            .map_err(|_| GatewayError::bad_request("the request URL cannot be forwarded", None))?;
        let authority = self.base.port().map_or_else(
            || self.base.host_str().unwrap_or_default().to_owned(),
            |p| format!("{}:{p}", self.base.host_str().unwrap_or_default()),
        );
        Uri::builder()
            .scheme(self.base.scheme())
            .authority(authority)
            .path_and_query(pq)
            .build()
            .map_err(|e| GatewayError::Internal(format!("upstream URI: {e}")))
    }

    /// Sends `req` and waits for the response head, within the response timeout.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, GatewayError> {
        match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
            Err(_) => Err(GatewayError::UpstreamTimeout(
                self.response_timeout.as_millis(),
            )),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, connect = e.is_connect(), "upstream request failed");
                Err(GatewayError::UpstreamUnreachable)
            }
        }
    }

    /// Whether the upstream answers `GET metadata` with a non-5xx status within `timeout`.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let Ok(uri) = self.uri_for("metadata", None) else {
            return false;
        };
        let Ok(req) = Request::get(uri)
            .header(http::header::ACCEPT, "application/fhir+json")
            .body(Full::new(Bytes::new()))
        else {
            return false;
        };
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => !resp.status().is_server_error(),
            _ => false,
        }
    }
}
