//! Snapshot generation for profiles that ship only a `differential`: the base definition's snapshot with
//! the differential's constraints merged in, slices added, and data types expanded where the
//! differential reaches inside them.
//!
//! This covers what profiles written by hand do (constraining elements and their children, slicing,
//! nested slices, type profiles); it is not the full HL7 algorithm (no re-slicing merges, no
//! `valueQuantity`-style renamed choice paths beyond the simple case).

use serde_json::{Map, Value};

/// Where the generator finds base snapshots: a StructureDefinition's elements by canonical URL.
pub trait Bases {
    /// The snapshot elements of the StructureDefinition with this URL, generated if need be.
    fn snapshot(&self, url: &str) -> Option<Vec<Value>>;
}

/// Why a snapshot cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SnapshotError(pub String);

/// The snapshot of `sd`: its own when it has one, else generated from its base and its differential.
pub fn snapshot_of(sd: &Value, bases: &dyn Bases) -> Result<Vec<Value>, SnapshotError> {
    if let Some(elements) = sd.pointer("/snapshot/element").and_then(Value::as_array) {
        return Ok(elements.clone());
    }
    let url = sd.get("url").and_then(Value::as_str).unwrap_or_default();
    let base_url = sd
        .get("baseDefinition")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            SnapshotError(format!("{url} has neither a snapshot nor a baseDefinition"))
        })?;
    let base = bases.snapshot(base_url).ok_or_else(|| {
        SnapshotError(format!(
            "cannot generate the snapshot of {url}: its base {base_url} is unknown"
        ))
    })?;
    let diff = sd
        .pointer("/differential/element")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut gen = Generator {
        original: base.clone(),
        elements: base,
        bases,
    };
    gen.ensure_ids();
    let ids = differential_ids(diff);
    for (d, id) in diff.iter().zip(ids) {
        gen.apply(d, &id)
            .map_err(|e| SnapshotError(format!("{url}: {e}")))?;
    }
    Ok(gen.elements)
}

struct Generator<'a> {
    elements: Vec<Value>,
    /// The base snapshot before any merge: what a `contentReference` expands to.
    original: Vec<Value>,
    bases: &'a dyn Bases,
}

impl Generator<'_> {
    /// Older snapshots may lack element ids: derive them from paths and slice names.
    fn ensure_ids(&mut self) {
        let mut current: Vec<(String, String)> = Vec::new();
        for e in &mut self.elements {
            if e.get("id").and_then(Value::as_str).is_some() {
                continue;
            }
            let id = derive_id(e, &mut current);
            if let Some(o) = e.as_object_mut() {
                o.insert("id".into(), Value::String(id));
            }
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.elements
            .iter()
            .position(|e| e.get("id").and_then(Value::as_str) == Some(id))
    }

    /// Merges differential element `d` (with id `id`) into the snapshot.
    fn apply(&mut self, d: &Value, id: &str) -> Result<(), String> {
        let at = self.locate(id)?;
        if let Some(path) = d.get("path").and_then(Value::as_str) {
            check_path(&self.elements[at], path)?;
        }
        merge(&mut self.elements[at], d);
        Ok(())
    }

    /// The index of element `id`, creating it (a slice, or a data type's expanded child) if need be.
    fn locate(&mut self, id: &str) -> Result<usize, String> {
        if let Some(i) = self.position(id) {
            return Ok(i);
        }
        let (parent, last) = split_last(id);
        if let Some((name, slice)) = last.split_once(':') {
            // A new slice of `parent.name`: a copy of the sliced element (and its expanded children),
            // placed after the sliced element's existing subtree and slices.
            let sliced_id = join(parent, name);
            let b = self.locate(&sliced_id)?;
            let end = self.subtree_end(b, &sliced_id, true);
            let mut copies: Vec<Value> = Vec::new();
            for e in &self.elements[b..self.subtree_end(b, &sliced_id, false)] {
                let eid = e.get("id").and_then(Value::as_str).unwrap_or_default();
                let mut c = e.clone();
                if let Some(o) = c.as_object_mut() {
                    o.insert(
                        "id".into(),
                        Value::String(format!("{id}{}", &eid[sliced_id.len()..])),
                    );
                    if copies.is_empty() {
                        o.remove("slicing");
                        o.insert("sliceName".into(), Value::String(slice.to_owned()));
                    }
                }
                copies.push(c);
            }
            self.elements.splice(end..end, copies);
            return Ok(end);
        }
        if parent.is_empty() {
            return Err(format!("no element {id} in the base"));
        }
        let p = self.locate(parent)?;
        if !self.has_children(parent) {
            self.expand(p, parent)?;
        }
        if let Some(i) = self.position(id) {
            return Ok(i);
        }
        // A choice renamed for one type (`Observation.valueQuantity`) constrains `value[x]`.
        let prefix = format!("{parent}.");
        let renamed = self.elements.iter().position(|e| {
            e.get("id")
                .and_then(Value::as_str)
                .and_then(|i| i.strip_prefix(&prefix))
                .and_then(|rest| rest.strip_suffix("[x]"))
                .is_some_and(|name| {
                    last.strip_prefix(name)
                        .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))
                })
        });
        renamed.ok_or_else(|| format!("no element {id} in the base"))
    }

    fn has_children(&self, id: &str) -> bool {
        let prefix = format!("{id}.");
        self.elements.iter().any(|e| {
            e.get("id")
                .and_then(Value::as_str)
                .is_some_and(|i| i.starts_with(&prefix))
        })
    }

    /// The index after element `b`'s children (and, with `slices`, after its slices too).
    fn subtree_end(&self, b: usize, id: &str, slices: bool) -> usize {
        let dot = format!("{id}.");
        let colon = format!("{id}:");
        let mut i = b + 1;
        while let Some(e) = self.elements.get(i) {
            let eid = e.get("id").and_then(Value::as_str).unwrap_or_default();
            if eid.starts_with(&dot) || (slices && eid.starts_with(&colon)) {
                i += 1;
            } else {
                break;
            }
        }
        i
    }

    /// Inserts the children of element `p` (id `id`) from its type's snapshot.
    fn expand(&mut self, p: usize, id: &str) -> Result<(), String> {
        let e = &self.elements[p];
        if let Some(target) = e.get("contentReference").and_then(Value::as_str) {
            let target = target.trim_start_matches('#').to_owned();
            return self.expand_reference(p, id, &target);
        }
        let path = e
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let types: Vec<&Value> = e
            .get("type")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let [t] = types.as_slice() else {
            return Err(format!(
                "cannot constrain inside {id}: it has {} types",
                types.len()
            ));
        };
        let code = t.get("code").and_then(Value::as_str).unwrap_or_default();
        let url = t
            .get("profile")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("http://hl7.org/fhir/StructureDefinition/{code}"));
        let base = self
            .bases
            .snapshot(&url)
            .ok_or_else(|| format!("cannot constrain inside {id}: type {url} is unknown"))?;
        let mut inserted = Vec::new();
        for c in base.into_iter().skip(1) {
            let (Some(cid), Some(cpath)) = (
                c.get("id").and_then(Value::as_str),
                c.get("path").and_then(Value::as_str),
            ) else {
                continue;
            };
            let (_, rest_id) = cid.split_once('.').unwrap_or((cid, ""));
            let (_, rest_path) = cpath.split_once('.').unwrap_or((cpath, ""));
            let mut c2 = c.clone();
            if let Some(o) = c2.as_object_mut() {
                o.insert("id".into(), Value::String(format!("{id}.{rest_id}")));
                o.insert("path".into(), Value::String(format!("{path}.{rest_path}")));
            }
            inserted.push(c2);
        }
        self.elements.splice(p + 1..p + 1, inserted);
        Ok(())
    }
}

impl Generator<'_> {
    /// Inserts under element `p` (id `id`) copies of the children of the element at path `target`
    /// (`Parameters.parameter.part` → `Parameters.parameter`).
    fn expand_reference(&mut self, p: usize, id: &str, target: &str) -> Result<(), String> {
        let t = self
            .original
            .iter()
            .position(|e| e.get("id").and_then(Value::as_str) == Some(target))
            .ok_or_else(|| format!("cannot constrain inside {id}: no element {target}"))?;
        let path = self.elements[p]
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let prefix = format!("{target}.");
        let mut copies = Vec::new();
        for e in self.original[t + 1..].iter().take_while(|e| {
            e.get("id")
                .and_then(Value::as_str)
                .is_some_and(|i| i.starts_with(&prefix))
        }) {
            let eid = e.get("id").and_then(Value::as_str).unwrap_or_default();
            let epath = e.get("path").and_then(Value::as_str).unwrap_or_default();
            // Slices of the referenced element are the profile's, not the base's: not copied.
            let (Some(rid), Some(rpath)) = (eid.strip_prefix(&prefix), epath.strip_prefix(&prefix))
            else {
                continue;
            };
            if rid.contains(':') {
                continue;
            }
            let mut c = e.clone();
            if let Some(o) = c.as_object_mut() {
                o.insert("id".into(), Value::String(format!("{id}.{rid}")));
                o.insert("path".into(), Value::String(format!("{path}.{rpath}")));
            }
            copies.push(c);
        }
        let ty = self.original[t].get("type").cloned();
        if let Some(o) = self.elements[p].as_object_mut() {
            o.remove("contentReference");
            if let Some(ty) = ty {
                o.insert("type".into(), ty);
            }
        }
        self.elements.splice(p + 1..p + 1, copies);
        Ok(())
    }
}

/// A differential element's `path` must name the element its id located: by its own name, or, for a
/// choice, renamed for one of its types (`value[x]` as `valueQuantity`); HL7's snapshot generator
/// refuses anything else (`Observation.valueBla`). Only the last step of a path at the same depth is
/// compared: earlier steps of an expanded choice (`valueQuantity.code`) differ in form between
/// differential and snapshot, and a path that disagrees with its id in depth is left to the id (HL7
/// accepts such differentials).
fn check_path(located: &Value, path: &str) -> Result<(), String> {
    let own = located
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (want_parent, want) = split_last(own);
    let (got_parent, got) = split_last(path);
    if want == got || want_parent.matches('.').count() != got_parent.matches('.').count() {
        return Ok(());
    }
    let renamed_ok = want.strip_suffix("[x]").is_some_and(|name| {
        got.strip_prefix(name).is_some_and(|suffix| {
            located
                .get("type")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("code").and_then(Value::as_str))
                .any(|code| super::model::upper_first(code) == suffix)
        })
    });
    if renamed_ok {
        Ok(())
    } else {
        Err(format!("the path must be '{own}' not '{path}'"))
    }
}

/// Ids for differential elements, derived from path and slice name where missing: a child follows the
/// slice most recently opened on its parent path.
fn differential_ids(diff: &[Value]) -> Vec<String> {
    let mut current: Vec<(String, String)> = Vec::new();
    diff.iter()
        .map(|e| match e.get("id").and_then(Value::as_str) {
            Some(id) => {
                let path = e.get("path").and_then(Value::as_str).unwrap_or_default();
                set_current(&mut current, path, id);
                id.to_owned()
            }
            None => derive_id(e, &mut current),
        })
        .collect()
}

fn derive_id(e: &Value, current: &mut Vec<(String, String)>) -> String {
    let path = e.get("path").and_then(Value::as_str).unwrap_or_default();
    let (parent, last) = split_last(path);
    let parent_id = current
        .iter()
        .rev()
        .find(|(p, _)| p == parent)
        .map_or(parent.to_owned(), |(_, id)| id.clone());
    let mut id = join(&parent_id, last);
    if let Some(s) = e.get("sliceName").and_then(Value::as_str) {
        id = format!("{id}:{s}");
    }
    set_current(current, path, &id);
    id
}

fn set_current(current: &mut Vec<(String, String)>, path: &str, id: &str) {
    current.retain(|(p, _)| p != path && !p.starts_with(&format!("{path}.")));
    current.push((path.to_owned(), id.to_owned()));
}

/// `a.b:s.c` → (`a.b:s`, `c`); the split ignores dots inside slice names' URLs is not needed: slice
/// names are tokens.
pub fn split_last(id: &str) -> (&str, &str) {
    id.rsplit_once('.').unwrap_or(("", id))
}

fn join(parent: &str, last: &str) -> String {
    if parent.is_empty() {
        last.to_owned()
    } else {
        format!("{parent}.{last}")
    }
}

/// Merges a differential element into a snapshot element: the differential's properties win;
/// constraints add up.
fn merge(s: &mut Value, d: &Value) {
    let (Some(so), Some(dobj)) = (s.as_object_mut(), d.as_object()) else {
        return;
    };
    for (k, v) in dobj {
        match k.as_str() {
            "id" | "path" | "base" => {}
            "constraint" => append(so, k, v),
            _ => {
                if k.starts_with("fixed") || k.starts_with("pattern") {
                    so.retain(|sk, _| !(sk.starts_with("fixed") || sk.starts_with("pattern")));
                }
                so.insert(k.clone(), v.clone());
            }
        }
    }
}

fn append(so: &mut Map<String, Value>, k: &str, v: &Value) {
    let mut items = so
        .get(k)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    items.extend(v.as_array().into_iter().flatten().cloned());
    so.insert(k.to_owned(), Value::Array(items));
}
