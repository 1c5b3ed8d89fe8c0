//! TLS trust for HTTPS upstreams: the system roots plus an optional private CA file.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;

use super::UpstreamBuildError;

/// A rustls client config trusting the system roots and `ca_file`'s certificates.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, UpstreamBuildError> {
    let mut roots = RootCertStore::empty();
    // A machine without system roots is fine for a plain-HTTP or private-CA upstream.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        for cert in crate::server::tls::read_certs(path).map_err(UpstreamBuildError::Tls)? {
            roots
                .add(cert)
                .map_err(|e| UpstreamBuildError::Tls(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamBuildError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
