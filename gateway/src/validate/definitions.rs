//! The FHIR definitions embedded in the binary (`profiles/*.ndjson.gz`), decoded and indexed by URL.

use std::collections::HashMap;
use std::io::Read;

use flate2::read::GzDecoder;
use serde_json::Value;

/// R4 core StructureDefinitions and SearchParameters.
static R4_CORE: &[u8] = include_bytes!("../../../profiles/r4-core.ndjson.gz");
/// R4 ValueSets (mostly expanded) and CodeSystems.
static R4_TERMINOLOGY: &[u8] = include_bytes!("../../../profiles/r4-terminology.ndjson.gz");

/// Why a definitions bundle cannot be read. Only a corrupt build could produce one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionsError {
    /// The gzip stream or its UTF-8 is broken.
    #[error("cannot decompress {0}: {1}")]
    Decompress(&'static str, std::io::Error),
    /// A line is not a JSON resource.
    #[error("{0} line {1}: {2}")]
    Json(&'static str, usize, serde_json::Error),
}

/// StructureDefinitions and ValueSets by canonical URL (without `|version`).
#[derive(Debug, Default)]
pub struct Definitions {
    /// StructureDefinitions by `url`.
    pub structures: HashMap<String, Value>,
    /// ValueSets by `url`.
    pub value_sets: HashMap<String, Value>,
}

impl Definitions {
    /// Decodes the embedded R4 core and terminology bundles.
    pub fn r4() -> Result<Self, DefinitionsError> {
        let mut defs = Self::default();
        defs.load("r4-core.ndjson.gz", R4_CORE)?;
        defs.load("r4-terminology.ndjson.gz", R4_TERMINOLOGY)?;
        Ok(defs)
    }

    /// Adds every StructureDefinition and ValueSet of a gzip NDJSON bundle; later ones win.
    pub fn load(&mut self, name: &'static str, gz: &[u8]) -> Result<(), DefinitionsError> {
        let mut text = String::new();
        GzDecoder::new(gz)
            .read_to_string(&mut text)
            .map_err(|e| DefinitionsError::Decompress(name, e))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            // SearchParameters and CodeSystems are skipped before a full parse: they are half the bytes.
            // A differently formatted bundle only costs a parse each: the match below still filters.
            if line.starts_with("{\"resourceType\":\"SearchParameter\"")
                || line.starts_with("{\"resourceType\":\"CodeSystem\"")
            {
                continue;
            }
            let v: Value =
                serde_json::from_str(line).map_err(|e| DefinitionsError::Json(name, n + 1, e))?;
            let Some(url) = v.get("url").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            match v.get("resourceType").and_then(Value::as_str) {
                Some("StructureDefinition") => {
                    self.structures.insert(url, v);
                }
                Some("ValueSet") => {
                    self.value_sets.insert(url, v);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A canonical URL without its `|version` suffix.
pub fn strip_version(url: &str) -> &str {
    url.split_once('|').map_or(url, |(u, _)| u)
}
