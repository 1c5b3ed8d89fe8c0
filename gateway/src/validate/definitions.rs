//! FHIR definitions indexed by URL: the ones embedded in the binary (`profiles/*.ndjson.gz`), and
//! extra StructureDefinitions, ValueSets and CodeSystems loaded at run time from files or directories.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde_json::Value;

/// R4 core StructureDefinitions and SearchParameters.
static R4_CORE: &[u8] = include_bytes!("../../../profiles/r4-core.ndjson.gz");
/// R4 ValueSets (mostly expanded) and CodeSystems.
static R4_TERMINOLOGY: &[u8] = include_bytes!("../../../profiles/r4-terminology.ndjson.gz");
/// International Patient Summary 2.0.0 profiles, the extensions they use, and their ValueSets.
static IPS: &[u8] = include_bytes!("../../../profiles/ips-2.0.0.ndjson.gz");
/// Where each core extension may be used, by the extension pack the HL7 validator judges R4 by
/// (`hl7.fhir.uv.extensions.r4` 5.3.0-ballot-tc1): url, version and `context` only.
static EXTENSION_CONTEXTS: &[u8] =
    include_bytes!("../../../profiles/extension-contexts-5.3.0-ballot-tc1.ndjson.gz");

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

/// Why a definitions file given at run time cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file or directory cannot be read.
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The file is not a FHIR resource in JSON or XML.
    #[error("{0}: {1}")]
    Parse(PathBuf, crate::fhir::parse::ParseError),
    /// The file is a resource, but not a StructureDefinition, ValueSet, CodeSystem or a Bundle of them.
    #[error(
        "{0}: a {1} is not a definition (StructureDefinition, ValueSet, CodeSystem or Bundle)"
    )]
    NotADefinition(PathBuf, String),
}

/// StructureDefinitions, ValueSets and CodeSystems by canonical URL (without `|version`).
#[derive(Debug, Default)]
pub struct Definitions {
    /// StructureDefinitions by `url`.
    pub structures: HashMap<String, Value>,
    /// ValueSets by `url`.
    pub value_sets: HashMap<String, Value>,
    /// CodeSystems by `url`: only those loaded at run time (the embedded R4 ones are skipped, their
    /// ValueSets come expanded).
    pub code_systems: HashMap<String, Value>,
}

impl Definitions {
    /// Decodes the embedded R4 core and terminology bundles.
    pub fn r4() -> Result<Self, DefinitionsError> {
        let mut defs = Self::default();
        defs.load("r4-core.ndjson.gz", R4_CORE)?;
        defs.load("r4-terminology.ndjson.gz", R4_TERMINOLOGY)?;
        Ok(defs)
    }

    /// Decodes the embedded IPS 2.0.0 bundle (profiles, the extensions they use, ValueSets).
    pub fn ips() -> Result<Self, DefinitionsError> {
        let mut defs = Self::default();
        defs.load("ips-2.0.0.ndjson.gz", IPS)?;
        Ok(defs)
    }

    /// Whether nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.structures.is_empty() && self.value_sets.is_empty() && self.code_systems.is_empty()
    }

    /// Moves every definition of `other` into this one; `other`'s win.
    pub fn merge(&mut self, other: Definitions) {
        self.structures.extend(other.structures);
        self.value_sets.extend(other.value_sets);
        self.code_systems.extend(other.code_systems);
    }

    /// Adds one resource: a StructureDefinition, ValueSet or CodeSystem (by `url`; later ones win), or
    /// every such resource in a Bundle. Returns how many were added.
    pub fn add(&mut self, resource: Value) -> usize {
        let rt = resource.get("resourceType").and_then(Value::as_str);
        if rt == Some("Bundle") {
            let entries = match resource {
                Value::Object(mut o) => o.remove("entry"),
                _ => None,
            };
            let Some(Value::Array(entries)) = entries else {
                return 0;
            };
            return entries
                .into_iter()
                .filter_map(|mut e| e.get_mut("resource").map(Value::take))
                .map(|r| self.add(r))
                .sum();
        }
        let map = match rt {
            Some("StructureDefinition") => &mut self.structures,
            Some("ValueSet") => &mut self.value_sets,
            Some("CodeSystem") => &mut self.code_systems,
            _ => return 0,
        };
        let Some(url) = resource.get("url").and_then(Value::as_str) else {
            return 0;
        };
        map.insert(strip_version(url).to_owned(), resource);
        1
    }

    /// Loads a file (FHIR JSON or XML, by its `.xml` extension) or every `.json`/`.xml` file under a
    /// directory. A file that is not a definition is an error; in a directory, such files are skipped
    /// (a package folder also holds examples). Returns how many definitions were added.
    pub fn load_path(&mut self, path: &Path) -> Result<usize, LoadError> {
        let meta = std::fs::metadata(path).map_err(|e| LoadError::Io(path.into(), e))?;
        if !meta.is_dir() {
            let resource = read_resource(path)?;
            let rt = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let n = self.add(resource);
            if n == 0 && rt != "Bundle" {
                return Err(LoadError::NotADefinition(path.into(), rt));
            }
            return Ok(n);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| LoadError::Io(path.into(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        let mut n = 0;
        for f in files {
            let ext = f.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if f.is_dir() {
                n += self.load_path(&f)?;
            } else if ext.eq_ignore_ascii_case("json") || ext.eq_ignore_ascii_case("xml") {
                n += self.add(read_resource(&f)?);
            }
        }
        Ok(n)
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

/// The embedded StructureDefinitions (R4 core and IPS) as JSON text by URL, without parsing them: what a
/// snapshot generator reads its bases from.
pub fn embedded_structure_sources() -> Result<HashMap<String, String>, DefinitionsError> {
    let mut out = HashMap::new();
    for (name, gz) in [("r4-core.ndjson.gz", R4_CORE), ("ips-2.0.0.ndjson.gz", IPS)] {
        let mut text = String::new();
        GzDecoder::new(gz)
            .read_to_string(&mut text)
            .map_err(|e| DefinitionsError::Decompress(name, e))?;
        for line in text.lines() {
            // The bundles are written with `resourceType`, `id`, `url` first (profiles/README.md).
            if !line.starts_with("{\"resourceType\":\"StructureDefinition\"") {
                continue;
            }
            let Some(rest) = line.split_once("\"url\":\"").map(|(_, r)| r) else {
                continue;
            };
            if let Some((url, _)) = rest.split_once('"') {
                out.insert(url.to_owned(), line.to_owned());
            }
        }
    }
    Ok(out)
}

/// The display of every concept of the embedded R4 CodeSystems, by (system, code).
pub fn embedded_code_system_displays() -> Result<HashMap<(String, String), String>, DefinitionsError>
{
    let name = "r4-terminology.ndjson.gz";
    let mut text = String::new();
    GzDecoder::new(R4_TERMINOLOGY)
        .read_to_string(&mut text)
        .map_err(|e| DefinitionsError::Decompress(name, e))?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if !line.starts_with("{\"resourceType\":\"CodeSystem\"") {
            continue;
        }
        let cs: Value =
            serde_json::from_str(line).map_err(|e| DefinitionsError::Json(name, n + 1, e))?;
        let Some(url) = cs.get("url").and_then(Value::as_str) else {
            continue;
        };
        let mut stack: Vec<&Value> = vec![&cs];
        while let Some(holder) = stack.pop() {
            for c in holder
                .get("concept")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(code), Some(display)) = (
                    c.get("code").and_then(Value::as_str),
                    c.get("display").and_then(Value::as_str),
                ) {
                    out.insert((url.to_owned(), code.to_owned()), display.to_owned());
                }
                stack.push(c);
            }
        }
    }
    Ok(out)
}

/// The extension pack's records of the core extensions (`url`, `version`, `context`), by URL.
pub fn extension_pack_contexts() -> Result<HashMap<String, Value>, DefinitionsError> {
    let name = "extension-contexts-5.3.0-ballot-tc1.ndjson.gz";
    let mut text = String::new();
    GzDecoder::new(EXTENSION_CONTEXTS)
        .read_to_string(&mut text)
        .map_err(|e| DefinitionsError::Decompress(name, e))?;
    let mut out = HashMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value =
            serde_json::from_str(line).map_err(|e| DefinitionsError::Json(name, n + 1, e))?;
        if let Some(url) = v.get("url").and_then(Value::as_str) {
            out.insert(url.to_owned(), v);
        }
    }
    Ok(out)
}

/// Reads one FHIR resource file, XML when its extension says so, else JSON.
pub fn read_resource(path: &Path) -> Result<Value, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::Io(path.into(), e))?;
    let xml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xml"));
    let format = if xml {
        crate::fhir::Format::Xml
    } else {
        crate::fhir::Format::Json
    };
    crate::fhir::parse::parse(format, &bytes).map_err(|e| LoadError::Parse(path.into(), e))
}

/// A canonical URL without its `|version` suffix.
pub fn strip_version(url: &str) -> &str {
    url.split_once('|').map_or(url, |(u, _)| u)
}
