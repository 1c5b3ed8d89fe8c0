//! The profiles a validator knows, by canonical URL: those embedded (R4 core profiles and extensions,
//! IPS) and, in an overlay, those loaded at run time, compiled on top of the shared base so that the
//! base model is never compiled again.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::definitions::{embedded_structure_sources, strip_version, Definitions};
use super::profile::Profile;
use super::profile_constraints::BaseKeys;
use super::snapshot::{snapshot_of, Bases};
use super::terminology::Membership;
use super::valueset::ValueSets;

/// Compiled profiles, with the value sets their required bindings name.
#[derive(Debug, Default)]
pub struct Profiles {
    own: HashMap<Box<str>, Arc<Profile>>,
    /// Profiles that could not be compiled, and why (reported when used).
    broken: HashMap<Box<str>, String>,
    value_sets: ValueSets,
    /// The StructureDefinitions this layer was compiled from (overlays only: snapshot sources for
    /// later lookups are the embedded ones otherwise).
    sources: HashMap<String, Value>,
    parent: Option<Arc<Profiles>>,
}

/// What a profile URL resolves to.
#[derive(Debug, Clone)]
pub enum Lookup<'a> {
    /// A compiled profile.
    Found(&'a Profile),
    /// Known, but not usable (no snapshot and none could be generated).
    Broken(&'a str),
    /// Not known.
    Unknown,
}

impl Profiles {
    /// Compiles every constraining StructureDefinition of `defs`, over `parent` when given.
    pub fn compile(defs: &Definitions, parent: Option<Arc<Profiles>>) -> Self {
        let mut out = Self {
            parent,
            ..Self::default()
        };
        let snapshots = Snapshots {
            defs,
            parent: out.parent.as_deref(),
            memo: Default::default(),
        };
        for (url, sd) in &defs.structures {
            if sd.get("derivation").and_then(Value::as_str) != Some("constraint") {
                continue;
            }
            match snapshots.get(url) {
                Ok(snap) => {
                    let ty = sd.get("type").and_then(Value::as_str).unwrap_or_default();
                    let core = snapshots
                        .get(&format!("http://hl7.org/fhir/StructureDefinition/{ty}"))
                        .unwrap_or_default();
                    let base = BaseKeys::of(&core);
                    out.own.insert(
                        url.as_str().into(),
                        Arc::new(Profile::compile(sd, &snap, &base)),
                    );
                }
                Err(why) => {
                    out.broken.insert(url.as_str().into(), why);
                }
            }
        }
        let mut wanted: Vec<Box<str>> = out
            .own
            .values()
            .flat_map(|p| p.elems.iter())
            .filter_map(|e| e.binding.as_ref())
            .map(|b| b.value_set.clone())
            .collect();
        wanted.extend(
            out.own
                .values()
                .flat_map(|p| super::profile_constraints::value_sets(p))
                .map(Into::into),
        );
        out.value_sets = ValueSets::build(defs, wanted.iter().map(|s| &**s));
        if out.parent.is_some() {
            out.sources = defs.structures.clone();
        }
        out
    }

    /// The profile with this canonical URL (a `|version` suffix is ignored).
    pub fn lookup(&self, url: &str) -> Lookup<'_> {
        let url = strip_version(url);
        if let Some(p) = self.own.get(url) {
            return Lookup::Found(p);
        }
        if let Some(why) = self.broken.get(url) {
            return Lookup::Broken(why);
        }
        match &self.parent {
            Some(p) => p.lookup(url),
            None => Lookup::Unknown,
        }
    }

    /// The profile with this URL, if compiled.
    pub fn get(&self, url: &str) -> Option<&Profile> {
        match self.lookup(url) {
            Lookup::Found(p) => Some(p),
            _ => None,
        }
    }

    /// Membership in a value set this layer (or a parent) expanded.
    pub fn member(&self, url: &str, system: Option<&str>, code: &str) -> Membership {
        match self.value_sets.member(url, system, code) {
            Membership::Unknown => self
                .parent
                .as_ref()
                .map_or(Membership::Unknown, |p| p.member(url, system, code)),
            m => m,
        }
    }

    /// How many profiles this layer compiled (not counting the parent's).
    pub fn len(&self) -> usize {
        self.own.len()
    }

    /// Whether this layer compiled none.
    pub fn is_empty(&self) -> bool {
        self.own.is_empty()
    }

    /// The snapshot of `sd` (which need not be one of these profiles): its own, or generated over the
    /// definitions known here.
    pub fn snapshot_for(&self, sd: &Value) -> Result<Vec<Value>, String> {
        let none = Definitions::default();
        let snapshots = Snapshots {
            defs: &none,
            parent: Some(self),
            memo: Default::default(),
        };
        snapshot_of(sd, &snapshots).map_err(|e| e.to_string())
    }

    /// The StructureDefinition JSON of `url` from this layer or its parents' sources (the embedded
    /// ones at the bottom).
    pub fn source(&self, url: &str) -> Option<Value> {
        if let Some(sd) = self.sources.get(url) {
            return Some(sd.clone());
        }
        match &self.parent {
            Some(p) => p.source(url),
            None => embedded()
                .get(url)
                .and_then(|s| serde_json::from_str(s).ok()),
        }
    }
}

/// The embedded StructureDefinitions' JSON text by URL, decoded on first use (only overlays need it).
fn embedded() -> &'static HashMap<String, String> {
    static SOURCES: OnceLock<HashMap<String, String>> = OnceLock::new();
    SOURCES.get_or_init(|| embedded_structure_sources().unwrap_or_default())
}

/// Snapshot lookups while compiling a layer: its own definitions (generated, memoised), then the
/// parent's sources.
struct Snapshots<'a> {
    defs: &'a Definitions,
    parent: Option<&'a Profiles>,
    memo: std::cell::RefCell<HashMap<String, Result<Vec<Value>, String>>>,
}

impl Snapshots<'_> {
    fn get(&self, url: &str) -> Result<Vec<Value>, String> {
        let url = strip_version(url);
        if let Some(r) = self.memo.borrow().get(url) {
            return r.clone();
        }
        // A cycle (a base that derives from itself) ends here as unknown.
        self.memo
            .borrow_mut()
            .insert(url.to_owned(), Err(format!("{url} derives from itself")));
        let sd = match self.defs.structures.get(url) {
            Some(sd) => Some(sd.clone()),
            None => match self.parent {
                Some(p) => p.source(url),
                None => embedded()
                    .get(url)
                    .and_then(|s| serde_json::from_str(s).ok()),
            },
        };
        let result = match sd {
            Some(sd) => snapshot_of(&sd, self).map_err(|e| e.to_string()),
            None => Err(format!("{url} is unknown")),
        };
        self.memo
            .borrow_mut()
            .insert(url.to_owned(), result.clone());
        result
    }
}

impl Bases for Snapshots<'_> {
    fn snapshot(&self, url: &str) -> Option<Vec<Value>> {
        self.get(url).ok()
    }
}
