//! StructureDefinition snapshots compiled into per-type element trees: for each element, its children by
//! JSON name (choice types expanded), cardinality, types, binding, fixed/pattern value and `maxLength`.
//!
//! Every StructureDefinition compiles the same way, base types and profiles alike (a profile is a
//! snapshot too). Slices are not part of this tree: [`super::profile`] compiles a profile's slices,
//! slicing rules and type profiles into a tree of its own.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use super::definitions::{strip_version, Definitions};
use super::invariant::{self, InvariantId};
use super::primitive::Primitives;

/// Index of a [`TypeDef`] in [`Model::defs`].
pub type TypeId = u32;
/// Index of a [`Node`] in [`TypeDef::nodes`]; the root element is 0.
pub type NodeId = u32;

/// `*` as a maximum.
pub const UNBOUNDED: u32 = u32::MAX;

/// What a StructureDefinition defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A primitive type (`string`, `dateTime`, …).
    Primitive,
    /// A complex data type (`HumanName`, `Extension`, …) or a profile of one.
    Complex,
    /// A resource or a profile of one.
    Resource,
    /// A logical model: not validated against.
    Logical,
}

impl Kind {
    /// The kind a StructureDefinition's `kind` code names.
    pub fn of(sd: &Value) -> Self {
        match sd.get("kind").and_then(Value::as_str) {
            Some("primitive-type") => Kind::Primitive,
            Some("complex-type") => Kind::Complex,
            Some("resource") => Kind::Resource,
            _ => Kind::Logical,
        }
    }
}

/// Binding strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// Codes must come from the value set.
    Required,
    /// Codes should come from it; others allowed when none fits.
    Extensible,
    /// Encouraged.
    Preferred,
    /// Illustrative.
    Example,
}

/// An element's terminology binding.
#[derive(Debug, Clone)]
pub struct Binding {
    /// How strict.
    pub strength: Strength,
    /// The ValueSet's canonical URL, without `|version`.
    pub value_set: Box<str>,
}

/// What an element type points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A primitive, by name in [`Primitives`] (the name is in [`TypeRef::code`]).
    Primitive,
    /// A complex type's compiled definition.
    Complex(TypeId),
    /// Any resource, dispatched on `resourceType` (`contained`, `Bundle.entry.resource`).
    Resource,
    /// Not known here: accepted unchecked.
    Unknown,
}

/// One allowed type of an element.
#[derive(Debug, Clone)]
pub struct TypeRef {
    /// The FHIR type name (`string`, `Quantity`, `Age`).
    pub code: Box<str>,
    /// What to validate a value against.
    pub target: Target,
}

/// A child reached by a JSON property name.
#[derive(Debug, Clone, Copy)]
pub struct Child {
    /// The child element.
    pub node: NodeId,
    /// Which of its types this JSON name selects (always 0 unless it is a choice).
    pub ty: u8,
}

/// One compiled element.
#[derive(Debug)]
pub struct Node {
    /// The element name without `[x]` (`value`).
    pub name: Box<str>,
    /// The element path (`Observation.value[x]`), for messages.
    pub path: Box<str>,
    /// Minimum cardinality.
    pub min: u32,
    /// Maximum cardinality, [`UNBOUNDED`] for `*`.
    pub max: u32,
    /// Whether the element is `[x]`.
    pub choice: bool,
    /// Allowed types, in snapshot order.
    pub types: Vec<TypeRef>,
    /// JSON names the element may appear under: one per type for choices, else one.
    pub json_names: Vec<Box<str>>,
    /// Children defined inline (BackboneElement) or through `contentReference`: the node holding them.
    pub children_of: Option<NodeId>,
    /// Children by JSON property name (own inline children only).
    pub children: HashMap<Box<str>, Child>,
    /// Children with `min > 0`.
    pub required: Vec<NodeId>,
    /// Terminology binding.
    pub binding: Option<Binding>,
    /// `fixed[x]`: the value must equal it.
    pub fixed: Option<Value>,
    /// `pattern[x]`: the value must contain it.
    pub pattern: Option<Value>,
    /// `maxLength` on a string-like element.
    pub max_length: Option<usize>,
    /// Its `constraint`s, in [`Model::invariants`].
    pub invariants: Vec<InvariantId>,
}

/// A compiled StructureDefinition.
#[derive(Debug)]
pub struct TypeDef {
    /// Canonical URL.
    pub url: Box<str>,
    /// The type it defines or constrains (`Patient`, `Quantity`).
    pub type_name: Box<str>,
    /// What it is.
    pub kind: Kind,
    /// Abstract types (`Resource`, `DomainResource`) have no instances of their own.
    pub is_abstract: bool,
    /// Elements; 0 is the root.
    pub nodes: Vec<Node>,
}

/// All compiled definitions.
#[derive(Debug)]
pub struct Model {
    /// Every definition.
    pub defs: Vec<TypeDef>,
    /// Definitions by canonical URL.
    pub by_url: HashMap<Box<str>, TypeId>,
    /// Concrete base resource types by name.
    pub resources: HashMap<Box<str>, TypeId>,
    /// `Element`: what `_x` primitive-extension objects are validated against.
    pub element: Option<TypeId>,
    /// Primitive types.
    pub primitives: Primitives,
    /// Every distinct FHIRPath invariant, parsed once.
    pub invariants: invariant::Table,
}

impl Model {
    /// Compiles every StructureDefinition with a snapshot.
    pub fn compile(defs: &Definitions) -> Self {
        let primitives = Primitives::compile(defs);
        let mut urls: Vec<&String> = defs.structures.keys().collect();
        urls.sort();
        let by_url: HashMap<Box<str>, TypeId> = urls
            .iter()
            .enumerate()
            .filter_map(|(i, u)| Some((u.as_str().into(), TypeId::try_from(i).ok()?)))
            .collect();
        let resolver = Resolver {
            by_url: &by_url,
            primitives: &primitives,
            defs,
            invariants: RefCell::new(invariant::Compiler::default()),
        };
        let compiled: Vec<TypeDef> = urls
            .iter()
            .map(|u| compile_sd(&defs.structures[*u], &resolver))
            .collect();
        let resources = compiled
            .iter()
            .zip(0..)
            .filter(|(d, _)| d.kind == Kind::Resource && !d.is_abstract && is_base(d))
            .map(|(d, i)| (d.type_name.clone(), i))
            .collect();
        let invariants = resolver.invariants.into_inner().finish();
        let element = by_url
            .get("http://hl7.org/fhir/StructureDefinition/Element")
            .copied();
        Self {
            defs: compiled,
            by_url,
            resources,
            element,
            primitives,
            invariants,
        }
    }

    /// The definition with this id.
    pub fn def(&self, id: TypeId) -> &TypeDef {
        &self.defs[id as usize]
    }
}

impl TypeDef {
    /// The element with this id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }
}

/// Whether a definition is the core one for its type (not a profile).
fn is_base(d: &TypeDef) -> bool {
    d.url
        .strip_prefix("http://hl7.org/fhir/StructureDefinition/")
        .is_some_and(|rest| rest == &*d.type_name)
}

/// Maps type codes to targets while compiling.
struct Resolver<'a> {
    by_url: &'a HashMap<Box<str>, TypeId>,
    primitives: &'a Primitives,
    defs: &'a Definitions,
    invariants: RefCell<invariant::Compiler>,
}

impl Resolver<'_> {
    fn target(&self, code: &str) -> Target {
        if self.primitives.get(code).is_some() {
            return Target::Primitive;
        }
        let url = if code.contains(':') {
            code.to_owned()
        } else {
            format!("http://hl7.org/fhir/StructureDefinition/{code}")
        };
        let Some(&id) = self.by_url.get(url.as_str()) else {
            return Target::Unknown;
        };
        match self.defs.structures[&url]
            .get("kind")
            .and_then(Value::as_str)
        {
            Some("resource") => Target::Resource,
            Some("complex-type") => Target::Complex(id),
            _ => Target::Unknown,
        }
    }
}

/// Compiles one StructureDefinition's snapshot.
fn compile_sd(sd: &Value, r: &Resolver<'_>) -> TypeDef {
    let s = |k: &str| sd.get(k).and_then(Value::as_str).unwrap_or_default();
    let kind = Kind::of(sd);
    let mut def = TypeDef {
        url: s("url").into(),
        type_name: s("type").into(),
        kind,
        is_abstract: sd.get("abstract").and_then(Value::as_bool) == Some(true),
        nodes: Vec::new(),
    };
    let elements = sd
        .pointer("/snapshot/element")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut by_path: HashMap<&str, NodeId> = HashMap::new();
    let mut content_refs: Vec<(NodeId, &str)> = Vec::new();
    for e in elements {
        let path = e.get("path").and_then(Value::as_str).unwrap_or_default();
        let id = e.get("id").and_then(Value::as_str).unwrap_or(path);
        // Slices (and their children) constrain an element already compiled; `profile.rs` checks them.
        if e.get("sliceName").is_some() || id.contains(':') || by_path.contains_key(path) {
            continue;
        }
        let Ok(node_id) = NodeId::try_from(def.nodes.len()) else {
            break;
        };
        let root = def.nodes.is_empty();
        let node = compile_element(e, path, root, kind, r);
        if let Some(target) = e.get("contentReference").and_then(Value::as_str) {
            content_refs.push((node_id, target.trim_start_matches('#')));
        }
        if !root {
            let parent = path.rsplit_once('.').map(|(p, _)| p).unwrap_or_default();
            if let Some(&pid) = by_path.get(parent) {
                let p = &mut def.nodes[pid as usize];
                p.children_of = Some(pid);
                if node.min > 0 {
                    p.required.push(node_id);
                }
                for (i, name) in node.json_names.iter().enumerate() {
                    let ty = u8::try_from(i).unwrap_or(u8::MAX);
                    p.children.insert(name.clone(), Child { node: node_id, ty });
                }
            }
        }
        by_path.insert(path, node_id);
        def.nodes.push(node);
    }
    for (node, target) in content_refs {
        if let Some(&t) = by_path.get(target) {
            def.nodes[node as usize].children_of = Some(t);
        }
    }
    def
}

/// Compiles one ElementDefinition (children are linked by the caller).
fn compile_element(e: &Value, path: &str, root: bool, kind: Kind, r: &Resolver<'_>) -> Node {
    let last = path.rsplit('.').next().unwrap_or(path);
    let choice = last.ends_with("[x]");
    let name: Box<str> = last.trim_end_matches("[x]").into();
    let min = e
        .get("min")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    let max = match e.get("max").and_then(Value::as_str) {
        Some("*") | None => UNBOUNDED,
        Some(n) => n.parse().unwrap_or(UNBOUNDED),
    };
    // R4 snapshots give `Resource.id` the FHIRPath type System.String; instances follow `id`.
    let resource_id =
        kind == Kind::Resource && !root && path.matches('.').count() == 1 && last == "id";
    let types: Vec<TypeRef> = e
        .get("type")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let code = if resource_id { "id" } else { type_code(t)? };
            Some(TypeRef {
                code: code.into(),
                target: r.target(code),
            })
        })
        .collect();
    let json_names = if choice {
        types
            .iter()
            .map(|t| format!("{name}{}", upper_first(&t.code)).into())
            .collect()
    } else {
        vec![name.clone()]
    };
    Node {
        name,
        path: path.into(),
        min,
        max,
        choice,
        types,
        json_names,
        children_of: None,
        children: HashMap::new(),
        required: Vec::new(),
        binding: binding(e),
        fixed: prefixed(e, "fixed"),
        pattern: prefixed(e, "pattern"),
        max_length: e
            .get("maxLength")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok()),
        invariants: r.invariants.borrow_mut().element(e),
    }
}

/// A type's FHIR code; FHIRPath system types map to the FHIR type in their `fhir-type` extension.
fn type_code(t: &Value) -> Option<&str> {
    let code = t.get("code").and_then(Value::as_str)?;
    if !code.starts_with("http://hl7.org/fhirpath/") {
        return Some(code);
    }
    t.get("extension")
        .and_then(Value::as_array)?
        .iter()
        .find(|x| {
            x.get("url").and_then(Value::as_str)
                == Some("http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type")
        })
        .and_then(|x| x.get("valueUrl").or_else(|| x.get("valueUri")))
        .and_then(Value::as_str)
        .or(Some("string"))
}

fn binding(e: &Value) -> Option<Binding> {
    let b = e.get("binding")?;
    let strength = match b.get("strength").and_then(Value::as_str)? {
        "required" => Strength::Required,
        "extensible" => Strength::Extensible,
        "preferred" => Strength::Preferred,
        _ => Strength::Example,
    };
    let value_set = strip_version(b.get("valueSet").and_then(Value::as_str)?).into();
    Some(Binding {
        strength,
        value_set,
    })
}

/// The value of the first `<prefix>Xxx` property (`fixedUri`, `patternCodeableConcept`).
fn prefixed(e: &Value, prefix: &str) -> Option<Value> {
    e.as_object()?
        .iter()
        .find(|(k, _)| {
            k.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        })
        .map(|(_, v)| v.clone())
}

/// `dateTime` → `DateTime`.
pub fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}
