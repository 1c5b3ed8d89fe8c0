//! The response filter: what the gateway changes in an upstream answer before the client sees it.
//!
//! That is the base URL (an upstream base must never reach a client), the CapabilityStatement marking,
//! entry-by-entry filtering of Bundles with sealed paging cursors (what consent withholds), and
//! `warn`-mode validation findings.

pub mod base;
pub mod capability;
pub mod cursor;
pub mod entries;
pub mod findings;
pub mod headers;
pub mod json;
pub mod splice;
pub mod xml;

pub use base::BaseMap;

use crate::fhir::Format;

/// A FHIR body that could not be tokenised for rewriting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RewriteError(String);

/// Rewrites absolute URLs under `map`'s source base in a FHIR body; `Ok(None)` when nothing changed.
pub fn rewrite_body(
    format: Format,
    body: &[u8],
    map: &BaseMap,
) -> Result<Option<Vec<u8>>, RewriteError> {
    match format {
        Format::Json => json::rewrite(body, map).map_err(|e| RewriteError(e.to_string())),
        Format::Xml => xml::rewrite(body, map).map_err(|e| RewriteError(e.to_string())),
    }
}

/// Marks a CapabilityStatement body (already re-homed) as served through the gateway.
pub fn mark_capabilities(format: Format, body: &[u8], public_base: &str) -> Option<Vec<u8>> {
    match format {
        Format::Json => capability::mark_json(body, public_base),
        Format::Xml => capability::mark_xml(body, public_base).ok().flatten(),
    }
}
