//! The small `[limits]`, `[timeouts]`, `[upstream_client]`, `[tls]` and `[log]` sections, and their defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const MIB: usize = 1024 * 1024;

/// Which FHIR format the upstream is spoken to in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamFormat {
    /// Whatever the client negotiates.
    #[default]
    Auto,
    /// Always FHIR JSON.
    Json,
    /// Always FHIR XML.
    Xml,
}

/// Body-size, structure and concurrency limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes; larger answers 413.
    pub max_request_body: usize,
    /// Largest FHIR response body the gateway will inspect, in bytes; larger answers 502.
    /// Non-FHIR bodies (e.g. raw Binary) stream through and are not limited.
    pub max_response_body: usize,
    /// Requests processed at once; beyond this the gateway answers 503 at once rather than queueing.
    pub max_concurrent_requests: usize,
    /// HTTP/2 streams per client connection.
    pub max_h2_streams: u32,
    /// Most nodes in one document: JSON values in a request body or in a PATCH's result, and XML
    /// elements, attributes and text in an XML body. A body over it answers 413, a patch whose result
    /// would pass it 422; applying a patch may also touch at most four times as many nodes.
    pub max_nodes: usize,
    /// Most attributes on one XML element; more answers 413. FHIR elements carry one to three and
    /// narrative XHTML a handful; the XML converter's work per element grows with the square of this.
    pub max_xml_attributes: usize,
    /// Most entries in a request Bundle (a batch or transaction, or a Bundle written as a resource);
    /// more answers 413, before any entry is authorised or validated.
    pub max_bundle_entries: usize,
}

/// Timeouts, each in milliseconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// Time a client has to send its request headers.
    pub client_header_ms: u64,
    /// Time a client has to send its whole request body; slower answers 408.
    pub client_body_ms: u64,
    /// Time to open a connection to the upstream; failure answers 502.
    pub upstream_connect_ms: u64,
    /// Time the upstream has to send response headers; slower answers 504.
    pub upstream_response_ms: u64,
    /// Time the upstream has to send a response body the gateway inspects; slower answers 504.
    pub upstream_body_ms: u64,
    /// Time given to in-flight requests after SIGTERM before the gateway exits.
    pub shutdown_grace_ms: u64,
}

/// How the gateway talks to the upstream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamClientConfig {
    /// Use HTTP/2 without negotiation (h2c) for a plain-HTTP upstream. For HTTPS upstreams HTTP/2 is
    /// negotiated with ALPN whatever this says.
    pub http2_prior_knowledge: bool,
    /// Idle keep-alive connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept, in milliseconds.
    pub pool_idle_timeout_ms: u64,
    /// PEM file with extra CA certificates to trust for an HTTPS upstream.
    pub ca_file: Option<PathBuf>,
}

/// TLS termination for client connections.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Structured logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `anchorgate=debug`.
    pub level: String,
    /// `auto` (default: pretty on a terminal, JSON otherwise), `json` or `pretty`.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty when stderr is a terminal (a person is reading), JSON otherwise (a collector is).
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            _ => Err(format!("{s:?}: expected auto, json or pretty")),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_body: 16 * MIB,
            max_response_body: 64 * MIB,
            max_concurrent_requests: 4096,
            max_h2_streams: 256,
            // A 100-patient Synthea transaction (24,140 entries, 80 MB) is 1.4 million JSON nodes
            // and 2.0 million XML ones; 16 MiB of real FHIR is well under one million.
            max_nodes: 4_000_000,
            max_xml_attributes: 64,
            max_bundle_entries: 50_000,
        }
    }
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            client_header_ms: 10_000,
            client_body_ms: 30_000,
            upstream_connect_ms: 3_000,
            upstream_response_ms: 60_000,
            upstream_body_ms: 60_000,
            shutdown_grace_ms: 25_000,
        }
    }
}

impl Default for UpstreamClientConfig {
    fn default() -> Self {
        Self {
            http2_prior_knowledge: false,
            pool_max_idle_per_host: 256,
            pool_idle_timeout_ms: 60_000,
            ca_file: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Auto,
        }
    }
}

impl TimeoutsConfig {
    /// [`Self::client_header_ms`] as a duration.
    pub fn client_header(&self) -> Duration {
        Duration::from_millis(self.client_header_ms)
    }
    /// [`Self::client_body_ms`] as a duration.
    pub fn client_body(&self) -> Duration {
        Duration::from_millis(self.client_body_ms)
    }
    /// [`Self::upstream_connect_ms`] as a duration.
    pub fn upstream_connect(&self) -> Duration {
        Duration::from_millis(self.upstream_connect_ms)
    }
    /// [`Self::upstream_response_ms`] as a duration.
    pub fn upstream_response(&self) -> Duration {
        Duration::from_millis(self.upstream_response_ms)
    }
    /// [`Self::upstream_body_ms`] as a duration.
    pub fn upstream_body(&self) -> Duration {
        Duration::from_millis(self.upstream_body_ms)
    }
    /// [`Self::shutdown_grace_ms`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}
