//! Bounds on applying a PATCH: the result's size, node count and depth, and the work spent, checked
//! before each operation, so a patch that would blow up is refused before it allocates anything.
//!
//! A patch document is small, but what it asks for need not be: RFC 6902 `copy` duplicates whatever
//! it names, so 30 copies of an array into itself ask for 2³⁰ times the array (a red team's 2.5 KB
//! patch took the gateway past 21 GB). Each operation is therefore measured first, from the values it
//! would insert and remove, and applied only when the result stays within `limits.max_request_body`
//! bytes (as compact JSON), `limits.max_nodes` values and the JSON nesting limit. Measuring, copying,
//! comparing and shifting list items count as work, bounded at [`WORK_FACTOR`] times `max_nodes`, so
//! many cheap-looking operations on a large document cannot add up to minutes of CPU either.

use std::fmt::Write as _;

use json_patch::PatchOperation;
use serde_json::Value;

use super::patch::PatchError;
use crate::config::LimitsConfig;
use crate::fhir::wellformed::MAX_JSON_DEPTH;

/// How many times `max_nodes` the work of applying one patch may reach: measuring, copying and
/// comparing values and shifting list items, one unit per value.
pub const WORK_FACTOR: usize = 4;

/// What a patch's result may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchLimits {
    /// Most bytes of the result as compact JSON (`limits.max_request_body`).
    pub max_bytes: usize,
    /// Most JSON values in the result (`limits.max_nodes`).
    pub max_nodes: usize,
}

impl From<&LimitsConfig> for PatchLimits {
    fn from(l: &LimitsConfig) -> Self {
        PatchLimits {
            max_bytes: l.max_request_body,
            max_nodes: l.max_nodes,
        }
    }
}

impl Default for PatchLimits {
    fn default() -> Self {
        PatchLimits::from(&LimitsConfig::default())
    }
}

/// A JSON value's size as the budget counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    /// Its length as compact JSON, not counting escapes in strings.
    pub bytes: usize,
    /// Its values, itself included.
    pub nodes: usize,
    /// Its nesting of arrays and objects (0 for a primitive), as serde_json counts it.
    pub depth: usize,
}

impl Size {
    /// This value put in a container under `name`, with what that adds around it: the name, its
    /// punctuation and, when `list` is new, the array holding it.
    pub fn wrapped(self, name: &str, list: bool) -> Size {
        Size {
            bytes: self.bytes + name.len() + 4 + if list { 2 } else { 0 },
            nodes: self.nodes + usize::from(list),
            depth: self.depth + usize::from(list),
        }
    }
}

/// Measures `v`, iteratively so that no depth can exhaust the stack.
pub fn measure(v: &Value) -> Size {
    let mut size = Size::default();
    let mut stack = vec![(v, 0usize)];
    while let Some((v, level)) = stack.pop() {
        size.nodes += 1;
        size.bytes += match v {
            Value::Null | Value::Bool(true) => 4,
            Value::Bool(false) => 5,
            Value::Number(n) => {
                let mut digits = Counter(0);
                let _ = write!(digits, "{n}");
                digits.0
            }
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                size.depth = size.depth.max(level + 1);
                stack.extend(items.iter().map(|i| (i, level + 1)));
                items.len().saturating_sub(1) + 2
            }
            Value::Object(members) => {
                size.depth = size.depth.max(level + 1);
                stack.extend(members.values().map(|m| (m, level + 1)));
                let names: usize = members.keys().map(|k| k.len() + 3).sum();
                names + members.len().saturating_sub(1) + 2
            }
        };
    }
    size
}

/// Counts the bytes a value's `Display` writes, without keeping them.
struct Counter(usize);

impl std::fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// The running account of one patch: the document's size now, and the work left.
#[derive(Debug)]
pub struct Budget {
    size: Size,
    max_bytes: usize,
    max_nodes: usize,
    work_left: usize,
    /// Which kind of patch, and which of its operations is being accounted, for messages.
    kind: &'static str,
    op: usize,
}

impl Budget {
    /// The account of a `kind` patch on `doc`. A document already over a limit (the upstream's own,
    /// read within `limits.max_response_body`) may still be patched, but not grow.
    pub fn new(doc: &Value, limits: PatchLimits, kind: &'static str) -> Self {
        let size = measure(doc);
        let max_nodes = limits.max_nodes.max(size.nodes);
        Budget {
            max_bytes: limits.max_bytes.max(size.bytes),
            max_nodes,
            work_left: max_nodes.saturating_mul(WORK_FACTOR),
            size,
            kind,
            op: 0,
        }
    }

    /// Starts accounting operation `op` (its index in the patch, for messages).
    pub fn operation(&mut self, op: usize) {
        self.op = op;
    }

    /// Charges `n` units of work.
    pub fn work(&mut self, n: usize) -> Result<(), PatchError> {
        match self.work_left.checked_sub(n) {
            Some(left) => {
                self.work_left = left;
                Ok(())
            }
            None => Err(PatchError::TooCostly(format!(
                "applying the {} takes more work than the gateway allows ({WORK_FACTOR} × \
                 limits.max_nodes values copied, compared or moved); stopped at operation {}",
                self.kind, self.op
            ))),
        }
    }

    /// Measures `v`, charging the work.
    pub fn measure(&mut self, v: &Value) -> Result<Size, PatchError> {
        let size = measure(v);
        self.work(size.nodes)?;
        Ok(size)
    }

    /// Measures the value at `pointer` in `doc` (nothing when there is none), charging the work.
    pub fn measure_at(&mut self, doc: &Value, pointer: &str) -> Result<Size, PatchError> {
        doc.pointer(pointer)
            .map_or(Ok(Size::default()), |v| self.measure(v))
    }

    /// Accounts for a value of size `added` put `level` containers below the root, where one of size
    /// `removed` was; refuses it when the result would pass a limit.
    pub fn place(&mut self, level: usize, added: Size, removed: Size) -> Result<(), PatchError> {
        let refuse = |what: String| {
            PatchError::TooCostly(format!(
                "{} operation {} would make the result {what}",
                self.kind, self.op
            ))
        };
        if level.saturating_add(added.depth) > MAX_JSON_DEPTH {
            return Err(refuse(format!(
                "nested deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        let bytes = self.size.bytes.saturating_sub(removed.bytes) + added.bytes;
        if bytes > self.max_bytes {
            return Err(refuse(format!(
                "larger than {} bytes (limits.max_request_body)",
                self.max_bytes
            )));
        }
        let nodes = self.size.nodes.saturating_sub(removed.nodes) + added.nodes;
        if nodes > self.max_nodes {
            return Err(refuse(format!(
                "hold more than {} values (limits.max_nodes)",
                self.max_nodes
            )));
        }
        self.size.bytes = bytes;
        self.size.nodes = nodes;
        Ok(())
    }

    /// Charges what shifting the members that follow `pointer` in its container costs (an array
    /// insert or removal, or an ordered object's removal, moves every later item).
    pub fn shift(&mut self, doc: &Value, pointer: &str) -> Result<(), PatchError> {
        let len = match parent(pointer).and_then(|p| doc.pointer(p)) {
            Some(Value::Array(a)) => a.len(),
            Some(Value::Object(o)) => o.len(),
            _ => 0,
        };
        self.work(len + 1)
    }

    /// Accounts for one RFC 6902 operation on `doc`, before it is applied.
    fn json_op(&mut self, doc: &Value, op: &PatchOperation) -> Result<(), PatchError> {
        let path = op.path().as_str();
        self.shift(doc, path)?;
        let level = levels(path);
        let name = path.rsplit('/').next().unwrap_or_default();
        match op {
            PatchOperation::Add(a) => {
                let added = self.measure(&a.value)?.wrapped(name, false);
                let removed = self.replaced_by_add(doc, path)?;
                self.place(level, added, removed)
            }
            PatchOperation::Replace(r) => {
                let added = self.measure(&r.value)?;
                let removed = self.measure_at(doc, path)?;
                self.place(level, added, removed)
            }
            PatchOperation::Remove(_) => {
                let removed = self.measure_at(doc, path)?;
                self.place(level, Size::default(), removed)
            }
            PatchOperation::Copy(c) => {
                let added = self.measure_at(doc, c.from.as_str())?.wrapped(name, false);
                let removed = self.replaced_by_add(doc, path)?;
                self.place(level, added, removed)
            }
            // The size stays (a member it replaces is not subtracted: the estimate only errs high),
            // but the value may land deeper.
            PatchOperation::Move(m) => {
                self.shift(doc, m.from.as_str())?;
                let moved = self.measure_at(doc, m.from.as_str())?;
                self.place(level, moved, moved)
            }
            // Comparing stops at the smaller side, and the test's value is the patch's own.
            PatchOperation::Test(t) => self.measure(&t.value).map(drop),
        }
    }

    /// What an `add` (or `copy`) at `pointer` replaces: an object's member of that name, or the whole
    /// document at the root; an array item is shifted, not replaced.
    fn replaced_by_add(&mut self, doc: &Value, pointer: &str) -> Result<Size, PatchError> {
        match parent(pointer).map(|p| doc.pointer(p)) {
            None => self.measure(doc),
            Some(Some(Value::Object(_))) => self.measure_at(doc, pointer),
            Some(_) => Ok(Size::default()),
        }
    }
}

/// Applies RFC 6902 `ops` to `doc` one at a time, each only once the budget allows its result.
pub fn apply_json(
    doc: &mut Value,
    ops: &[PatchOperation],
    limits: PatchLimits,
) -> Result<(), PatchError> {
    let mut budget = Budget::new(doc, limits, "JSON Patch");
    for (i, op) in ops.iter().enumerate() {
        budget.operation(i);
        budget.json_op(doc, op)?;
        json_patch::patch(doc, std::slice::from_ref(op)).map_err(|e| {
            PatchError::Failed(format!(
                "JSON Patch operation {i} failed at path '{}': {}",
                e.path, e.kind
            ))
        })?;
    }
    Ok(())
}

/// The JSON pointer of the container holding `pointer`'s target; `None` for the root.
pub fn parent(pointer: &str) -> Option<&str> {
    pointer.rsplit_once('/').map(|(p, _)| p)
}

/// How many containers below the root `pointer`'s target sits.
pub fn levels(pointer: &str) -> usize {
    pointer.bytes().filter(|&b| b == b'/').count()
}

#[cfg(test)]
mod tests;
