//! Computes what a PATCH would produce (RFC 6902 JSON Patch, or FHIRPath Patch for its common path
//! forms), so the gateway can validate the *result* before the upstream applies the patch.
//!
//! JSON Patch is applied by the `json-patch` crate. FHIRPath Patch has no Rust implementation, so the
//! subset real clients send is implemented here: paths made of element names, `[n]` indexers,
//! `first()`, `last()` and `where(element = 'literal')`. Any other path form is reported as unsupported,
//! and the caller refuses the patch rather than forwarding something it could not check.
//!
//! Both are applied within a [`Budget`]: each operation is measured before it is applied, and one that
//! would make the result too large, too deep or too costly to compute is refused (see `patch_budget`).

use serde_json::{Map, Value};

use super::model::{Model, Target};
use super::patch_budget::{self, levels, Budget, PatchLimits, Size};
use crate::fhir::parameters;

/// Why a patch's result could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The patch document is not a JSON Patch array or a FHIRPath Patch `Parameters`.
    #[error("{0}")]
    Malformed(String),
    /// A path uses FHIRPath the gateway cannot evaluate to a location.
    #[error(
        "the gateway cannot apply this FHIRPath Patch path, so cannot validate its result: {0}"
    )]
    Unsupported(String),
    /// An operation does not apply to the current version (the upstream would refuse it too).
    #[error("{0}")]
    Failed(String),
    /// Applying the patch would pass the gateway's limits on the result or on the work.
    #[error("{0}")]
    TooCostly(String),
}

/// Applies an RFC 6902 JSON Patch document to `doc`, within `limits`.
pub fn apply_json_patch(
    doc: &mut Value,
    patch: &Value,
    limits: PatchLimits,
) -> Result<(), PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Malformed(format!("not a JSON Patch document: {e}")))?;
    patch_budget::apply_json(doc, &ops, limits)
}

/// Applies a FHIRPath Patch (`Parameters` of `operation`s) to the resource `doc`, within `limits`.
pub fn apply_fhirpath_patch(
    model: &Model,
    doc: &mut Value,
    params: &Value,
    limits: PatchLimits,
) -> Result<(), PatchError> {
    if params.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(PatchError::Malformed(
            "a FHIRPath Patch body must be a Parameters resource".into(),
        ));
    }
    let ops = parameters::list(params, "parameter");
    let mut budget = Budget::new(doc, limits, "FHIRPath Patch");
    for (n, op) in ops.iter().enumerate() {
        if op.get("name").and_then(Value::as_str) != Some("operation") {
            return Err(PatchError::Malformed(format!(
                "Parameters.parameter[{n}] is not an 'operation'"
            )));
        }
        budget.operation(n);
        apply_operation(model, doc, &Operation::read(op, n)?, &mut budget)?;
    }
    Ok(())
}

/// One FHIRPath Patch operation's parts.
#[derive(Debug)]
struct Operation<'a> {
    kind: &'a str,
    path: &'a str,
    name: Option<&'a str>,
    value: Option<Value>,
    index: Option<usize>,
    source: Option<usize>,
    destination: Option<usize>,
    at: usize,
}

impl<'a> Operation<'a> {
    fn read(op: &'a Value, at: usize) -> Result<Self, PatchError> {
        let parts = parameters::list(op, "part");
        let find = |name: &str| parameters::named(parts, name);
        let text = |name: &str| find(name).and_then(parameters::value_text);
        let number = |name: &str| {
            find(name)
                .and_then(|p| p.get("valueInteger"))
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
        };
        let missing = |what: &str| {
            PatchError::Malformed(format!("Parameters.parameter[{at}] has no '{what}' part"))
        };
        Ok(Self {
            kind: text("type").ok_or_else(|| missing("type"))?,
            path: text("path").ok_or_else(|| missing("path"))?,
            name: text("name"),
            value: find("value").map(part_value).transpose()?,
            index: number("index"),
            source: number("source"),
            destination: number("destination"),
            at,
        })
    }

    fn need<T>(&self, v: Option<T>, what: &str) -> Result<T, PatchError> {
        v.ok_or_else(|| {
            PatchError::Malformed(format!(
                "Parameters.parameter[{}] ({}) needs a '{what}' part",
                self.at, self.kind
            ))
        })
    }
}

/// The value a `value` part carries: its `value[x]`, or an object built from its own parts.
fn part_value(part: &Value) -> Result<Value, PatchError> {
    let obj = part.as_object().into_iter().flatten();
    for (k, v) in obj {
        if k.starts_with("value") && k.len() > 5 {
            return Ok(v.clone());
        }
    }
    let Some(parts) = part.get("part").and_then(Value::as_array) else {
        return Err(PatchError::Malformed(
            "a 'value' part has neither value[x] nor parts".into(),
        ));
    };
    let mut out = Map::new();
    for p in parts {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Malformed("a value part has no name".into()))?;
        out.insert(name.to_owned(), part_value(p)?);
    }
    Ok(Value::Object(out))
}

/// Where a path step landed: the JSON pointer of each item, and (for a name step) of the array holding
/// them, when the element is a list.
#[derive(Debug, Default)]
struct Located {
    items: Vec<String>,
    list: Option<String>,
    /// The element names from the root, for looking the element up in the model.
    names: Vec<String>,
}

/// Accounts for `op` before it is applied: the locations its path selects, the value it puts and what
/// that replaces, and the list items it shifts.
fn account(
    budget: &mut Budget,
    doc: &Value,
    at: &Located,
    op: &Operation<'_>,
) -> Result<(), PatchError> {
    budget.work(at.items.len() + 1)?;
    let one = match at.items.as_slice() {
        [one] => Some(one.as_str()),
        _ => None,
    };
    let list_len = at
        .list
        .as_deref()
        .and_then(|l| doc.pointer(l))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let value = match (op.kind, &op.value) {
        ("add" | "insert" | "replace", Some(v)) => budget.measure(v)?,
        _ => Size::default(),
    };
    match (op.kind, one) {
        // A member of the element, perhaps in a new list.
        ("add", Some(p)) => {
            let added = value.wrapped(op.name.unwrap_or_default(), true);
            budget.place(levels(p) + 1, added, Size::default())
        }
        ("insert", _) => {
            budget.work(list_len)?;
            // A list not there yet is made under the path's elements, each at most two levels deep.
            let level = at
                .list
                .as_deref()
                .map_or(2 * at.names.len(), |l| levels(l) + 1);
            budget.place(level, value.wrapped("", at.list.is_none()), Size::default())
        }
        ("replace", Some(p)) => {
            let removed = budget.measure_at(doc, p)?;
            budget.place(levels(p), value, removed)
        }
        ("delete", Some(p)) => {
            budget.shift(doc, p)?;
            let removed = budget.measure_at(doc, p)?;
            budget.place(0, Size::default(), removed)
        }
        ("move", _) => budget.work(2 * list_len),
        _ => Ok(()),
    }
}

fn apply_operation(
    model: &Model,
    doc: &mut Value,
    op: &Operation<'_>,
    budget: &mut Budget,
) -> Result<(), PatchError> {
    let at = locate(doc, op.path)?;
    account(budget, doc, &at, op)?;
    let failed =
        |what: String| PatchError::Failed(format!("FHIRPath Patch operation {}: {what}", op.at));
    match op.kind {
        "add" => {
            let name = op.need(op.name, "name")?;
            let value = op.need(op.value.clone(), "value")?;
            let [container] = at.items.as_slice() else {
                return Err(failed(format!(
                    "'{}' must match exactly one element",
                    op.path
                )));
            };
            let mut names = at.names.clone();
            names.push(name.to_owned());
            let repeats = repeats(model, doc, &names);
            let obj = doc
                .pointer_mut(container)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| failed(format!("'{}' is not an element with children", op.path)))?;
            match (obj.get_mut(name), repeats) {
                (Some(Value::Array(list)), _) => list.push(value),
                (Some(_), _) => return Err(failed(format!("'{name}' already has a value"))),
                (None, true) => {
                    obj.insert(name.to_owned(), Value::Array(vec![value]));
                }
                (None, false) => {
                    obj.insert(name.to_owned(), value);
                }
            }
        }
        "insert" => {
            let index = op.need(op.index, "index")?;
            let value = op.need(op.value.clone(), "value")?;
            let list = list_of(doc, &at, op)?;
            if index > list.len() {
                return Err(failed(format!("index {index} is beyond the list")));
            }
            list.insert(index, value);
        }
        "delete" => match at.items.as_slice() {
            [] => {}
            [one] => remove(doc, one),
            _ => {
                return Err(failed(format!(
                    "'{}' matches more than one element",
                    op.path
                )))
            }
        },
        "replace" => {
            let value = op.need(op.value.clone(), "value")?;
            let [one] = at.items.as_slice() else {
                return Err(failed(format!(
                    "'{}' must match exactly one element",
                    op.path
                )));
            };
            if let Some(slot) = doc.pointer_mut(one) {
                *slot = value;
            }
        }
        "move" => {
            let (from, to) = (
                op.need(op.source, "source")?,
                op.need(op.destination, "destination")?,
            );
            let list = list_of(doc, &at, op)?;
            if from >= list.len() || to >= list.len() {
                return Err(failed("source or destination is beyond the list".into()));
            }
            let item = list.remove(from);
            list.insert(to, item);
        }
        other => {
            return Err(PatchError::Malformed(format!(
                "unknown FHIRPath Patch operation type '{other}'"
            )))
        }
    }
    Ok(())
}

/// The list a path names, created empty when it does not exist yet.
fn list_of<'d>(
    doc: &'d mut Value,
    at: &Located,
    op: &Operation<'_>,
) -> Result<&'d mut Vec<Value>, PatchError> {
    let pointer = match (&at.list, at.items.as_slice()) {
        (Some(list), _) => list.clone(),
        // An absent element: its would-be array, under the element holding it.
        (None, []) => {
            let (parent, name) = op
                .path
                .rsplit_once('.')
                .ok_or_else(|| PatchError::Unsupported(op.path.to_owned()))?;
            let holder = locate(doc, parent)?;
            let [h] = holder.items.as_slice() else {
                return Err(PatchError::Failed(format!(
                    "'{}' must match exactly one list",
                    op.path
                )));
            };
            let obj = doc
                .pointer_mut(h)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| PatchError::Failed(format!("'{parent}' has no children")))?;
            obj.insert(name.to_owned(), Value::Array(Vec::new()));
            format!("{h}/{}", escape(name))
        }
        _ => return Err(PatchError::Failed(format!("'{}' is not a list", op.path))),
    };
    doc.pointer_mut(&pointer)
        .and_then(Value::as_array_mut)
        .ok_or_else(|| PatchError::Failed(format!("'{}' is not a list", op.path)))
}

/// Removes the value at `pointer`: an array item, or a property (dropping an array it empties).
fn remove(doc: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = unescape(last);
    match doc.pointer_mut(parent) {
        Some(Value::Array(list)) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < list.len() {
                    list.remove(i);
                }
            }
            if list.is_empty() {
                remove(doc, parent);
            }
        }
        Some(Value::Object(obj)) => {
            obj.remove(&last);
        }
        _ => {}
    }
}

/// Evaluates a FHIRPath Patch path to the JSON locations it selects.
fn locate(doc: &Value, path: &str) -> Result<Located, PatchError> {
    let unsupported = || PatchError::Unsupported(path.chars().take(200).collect());
    let steps = split_steps(path).ok_or_else(unsupported)?;
    let (first, rest) = steps.split_first().ok_or_else(unsupported)?;
    if doc.get("resourceType").and_then(Value::as_str) != Some(first.as_str()) {
        return Err(PatchError::Failed(format!(
            "the path '{}' does not start with the resource's type",
            path.chars().take(200).collect::<String>()
        )));
    }
    let mut at = Located {
        items: vec![String::new()],
        ..Located::default()
    };
    for step in rest {
        at = step_into(doc, at, step).ok_or_else(unsupported)?;
    }
    Ok(at)
}

/// Splits `Patient.name.where(use = 'official').given[0]` at the dots outside parentheses and quotes.
fn split_steps(path: &str) -> Option<Vec<String>> {
    let (mut steps, mut cur, mut depth, mut quoted) = (Vec::new(), String::new(), 0u32, false);
    for c in path.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.checked_sub(1)?,
            '.' if !quoted && depth == 0 => {
                steps.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    steps.push(cur);
    (depth == 0 && !quoted && steps.iter().all(|s| !s.trim().is_empty()))
        .then(|| steps.into_iter().map(|s| s.trim().to_owned()).collect())
}

/// One path step: `name`, `name[n]`, `first()`, `last()` or `where(child = 'literal')`.
fn step_into(doc: &Value, at: Located, step: &str) -> Option<Located> {
    match step {
        "first()" => {
            return Some(Located {
                items: at.items.into_iter().take(1).collect(),
                list: None,
                names: at.names,
            })
        }
        "last()" => {
            let last = at.items.last().cloned();
            return Some(Located {
                items: last.into_iter().collect(),
                list: None,
                names: at.names,
            });
        }
        _ => {}
    }
    if let Some(cond) = step
        .strip_prefix("where(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let (child, literal) = cond.split_once('=')?;
        let (child, literal) = (child.trim(), literal.trim());
        let literal = literal.strip_prefix('\'')?.strip_suffix('\'')?;
        if !is_name(child) || literal.contains('\'') || literal.contains('\\') {
            return None;
        }
        let items = at
            .items
            .into_iter()
            .filter(|p| {
                doc.pointer(p)
                    .and_then(|v| v.get(child))
                    .and_then(Value::as_str)
                    == Some(literal)
            })
            .collect();
        return Some(Located {
            items,
            list: None,
            names: at.names,
        });
    }
    let (name, index) = match step.split_once('[') {
        Some((n, i)) => (n, Some(i.strip_suffix(']')?.trim().parse::<usize>().ok()?)),
        None => (step, None),
    };
    if !is_name(name) {
        return None;
    }
    let mut out = Located {
        names: at.names,
        ..Located::default()
    };
    out.names.push(name.to_owned());
    for p in &at.items {
        let here = format!("{p}/{}", escape(name));
        match doc.pointer(p).and_then(|v| v.get(name)) {
            Some(Value::Array(list)) => {
                out.list = (at.items.len() == 1).then(|| here.clone());
                out.items
                    .extend((0..list.len()).map(|i| format!("{here}/{i}")));
            }
            Some(_) => out.items.push(here),
            None => {}
        }
    }
    if let Some(i) = index {
        out.items = out.items.get(i).cloned().into_iter().collect();
        out.list = None;
    }
    Some(out)
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether the element reached by `names` from the resource root repeats (`max` > 1), per the base
/// definitions; unknown elements count as single, and validation then reports them.
fn repeats(model: &Model, doc: &Value, names: &[String]) -> bool {
    let Some(&tid) = doc
        .get("resourceType")
        .and_then(Value::as_str)
        .and_then(|t| model.resources.get(t))
    else {
        return false;
    };
    let (mut def, mut node) = (model.def(tid), 0);
    let mut max = 1;
    for name in names {
        let holder = def.node(def.node(node).children_of.unwrap_or(node));
        let Some(child) = holder.children.get(name.as_str()) else {
            return false;
        };
        let n = def.node(child.node);
        max = n.max;
        node = child.node;
        if n.children_of.is_none() && n.children.is_empty() {
            if let Some(Target::Complex(t)) = n.types.get(usize::from(child.ty)).map(|t| t.target) {
                def = model.def(t);
                node = 0;
            }
        }
    }
    max > 1
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validate::Validator;

    fn op(kind: &str, path: &str, extra: Value) -> Value {
        let mut parts = vec![
            json!({"name": "type", "valueCode": kind}),
            json!({"name": "path", "valueString": path}),
        ];
        if let Value::Array(more) = extra {
            parts.extend(more);
        }
        json!({"name": "operation", "part": parts})
    }

    fn fhirpath(doc: &mut Value, ops: Vec<Value>) -> Result<(), PatchError> {
        let params = json!({"resourceType": "Parameters", "parameter": ops});
        apply_fhirpath_patch(
            Validator::r4().model(),
            doc,
            &params,
            PatchLimits::default(),
        )
    }

    fn patient() -> Value {
        json!({"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01",
               "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
                        {"use": "usual", "given": ["Jim"]}]})
    }

    #[test]
    fn json_patch_is_applied_or_refused() {
        let mut p = patient();
        apply_json_patch(
            &mut p,
            &json!([{"op": "replace", "path": "/birthDate", "value": "1971"}]),
            PatchLimits::default(),
        )
        .unwrap();
        assert_eq!(p["birthDate"], "1971");
        let e = apply_json_patch(
            &mut p,
            &json!([{"op": "remove", "path": "/nope"}]),
            PatchLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::Failed(_)), "{e:?}");
        let e =
            apply_json_patch(&mut p, &json!({"op": "remove"}), PatchLimits::default()).unwrap_err();
        assert!(matches!(e, PatchError::Malformed(_)), "{e:?}");
    }

    #[test]
    fn fhirpath_patch_operations() {
        let mut p = patient();
        fhirpath(
            &mut p,
            vec![
                op("replace", "Patient.birthDate", json!([{"name": "value", "valueDate": "1980-02-03"}])),
                op("add", "Patient", json!([{"name": "name", "valueString": "gender"},
                                              {"name": "value", "valueCode": "male"}])),
                // `telecom` repeats: added as a list even though absent.
                op("add", "Patient", json!([{"name": "name", "valueString": "telecom"},
                    {"name": "value", "part": [{"name": "system", "valueCode": "phone"},
                                               {"name": "value", "valueString": "555"}]}])),
                op("insert", "Patient.name.where(use = 'official').given",
                   json!([{"name": "index", "valueInteger": 0}, {"name": "value", "valueString": "Dr"}])),
                op("delete", "Patient.name[1]", json!([])),
                op("move", "Patient.name[0].given",
                   json!([{"name": "source", "valueInteger": 0}, {"name": "destination", "valueInteger": 2}])),
                op("delete", "Patient.deceased", json!([])),
            ],
        )
        .unwrap();
        assert_eq!(
            p,
            json!({"resourceType": "Patient", "id": "p1", "birthDate": "1980-02-03",
                   "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James", "Dr"]}],
                   "gender": "male", "telecom": [{"system": "phone", "value": "555"}]})
        );
    }

    #[test]
    fn unsupported_and_failing_paths_are_errors_not_guesses() {
        let mut p = patient();
        let e = fhirpath(
            &mut p,
            vec![op("delete", "Patient.name.select(given)", json!([]))],
        );
        assert!(matches!(e, Err(PatchError::Unsupported(_))), "{e:?}");
        let e = fhirpath(
            &mut p,
            vec![op(
                "replace",
                "Patient.name",
                json!([{"name": "value", "valueString": "x"}]),
            )],
        );
        assert!(matches!(e, Err(PatchError::Failed(_))), "{e:?}");
        let e = fhirpath(&mut p, vec![op("delete", "Observation.status", json!([]))]);
        assert!(matches!(e, Err(PatchError::Failed(_))), "{e:?}");
        let e = fhirpath(&mut p, vec![json!({"name": "operation", "part": []})]);
        assert!(matches!(e, Err(PatchError::Malformed(_))), "{e:?}");
        assert_eq!(p, patient(), "nothing changes on failure paths tested here");
    }
}
