//! Structural bounds on a request body (nodes, attributes per XML element, Bundle entries), counted
//! while the body is read so that a hostile one is refused before the work it would cause.

use crate::config::LimitsConfig;

/// What a body may hold. The byte size is bounded earlier, as it is read off the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most nodes: JSON values; XML elements, attributes, text, comments and processing instructions.
    pub max_nodes: usize,
    /// Most attributes on one XML element.
    pub max_attributes: usize,
    /// Most entries in a Bundle at the root of the body.
    pub max_entries: usize,
}

/// A body over one of its [`Bounds`]. The message names the bound and its setting, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TooCostly(pub String);

impl Bounds {
    /// The bounds of bodies read without a configuration at hand (upstream answers, definition files,
    /// the offline validator): only the attributes per element, which keep the XML converter linear
    /// whatever the source; their size is bounded by the limit they were read within.
    pub fn converter() -> Self {
        Bounds {
            max_nodes: usize::MAX,
            max_entries: usize::MAX,
            ..Bounds::default()
        }
    }

    /// Refuses a count over `max`, naming what was counted and the setting that bounds it.
    pub fn check(count: usize, max: usize, what: &str, setting: &str) -> Result<(), TooCostly> {
        if count > max {
            return Err(TooCostly(format!(
                "the body has more than {max} {what} (limits.{setting})"
            )));
        }
        Ok(())
    }
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds::from(&LimitsConfig::default())
    }
}

impl From<&LimitsConfig> for Bounds {
    fn from(l: &LimitsConfig) -> Self {
        Bounds {
            max_nodes: l.max_nodes,
            max_attributes: l.max_xml_attributes,
            max_entries: l.max_bundle_entries,
        }
    }
}
