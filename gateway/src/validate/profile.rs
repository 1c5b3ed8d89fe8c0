//! Profiles (constraining StructureDefinitions, extension definitions included) compiled from their
//! snapshots into element trees that keep what the base model leaves out: slices, slicing rules, type
//! and target profiles, the base cardinality each element tightens, and extension contexts.

use serde_json::Value;

use super::invariant;
use super::model::{upper_first, Binding, Kind, Strength, UNBOUNDED};
use super::profile_constraints::{BaseKeys, Constraint};
use super::snapshot::split_last;

/// Index of an [`Elem`] in [`Profile::elems`]; the root is 0.
pub type ElemId = usize;

/// A compiled profile.
#[derive(Debug)]
pub struct Profile {
    /// Canonical URL.
    pub url: Box<str>,
    /// The type it constrains (`Patient`, `Extension`).
    pub type_name: Box<str>,
    /// Resource, complex type, ….
    pub kind: Kind,
    /// Where an extension may be used (empty: anywhere, or not an extension).
    pub contexts: Vec<Context>,
    /// Elements; 0 is the root.
    pub elems: Vec<Elem>,
    /// The constraints this profile adds to the base (see [`Elem::constraints`]), compiled.
    pub invariants: invariant::Table,
}

/// One `StructureDefinition.context`.
#[derive(Debug, Clone)]
pub enum Context {
    /// An element path or type name (`Patient`, `Patient.name`, `Address`, `Element`).
    Element(Box<str>),
    /// Inside the extension with this URL.
    Extension(Box<str>),
    /// `path.where(field = 'value')`: the element at `path` whose `field` is `value`.
    Where {
        /// The element path.
        path: Box<str>,
        /// The holder's property compared.
        field: Box<str>,
        /// The value it must have.
        value: Box<str>,
    },
    /// Any other FHIRPath expression: not evaluated, so accepted.
    FhirPath,
}

/// One allowed type of an element, with the profiles it must meet.
#[derive(Debug, Clone)]
pub struct ElemType {
    /// The type code.
    pub code: Box<str>,
    /// `type.profile`: the value must meet one of them.
    pub profiles: Vec<Box<str>>,
    /// `type.targetProfile`: what a Reference may point at.
    pub target_profiles: Vec<Box<str>>,
}

/// How the repeats of an element are sliced.
#[derive(Debug, Clone)]
pub struct Slicing {
    /// Discriminators, all of which must match.
    pub discriminators: Vec<Discriminator>,
    /// Whether repeats must follow slice order.
    pub ordered: bool,
    /// `closed`, `open` or `openAtEnd`.
    pub rules: Rules,
}

/// Slicing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// No repeats outside the slices.
    Closed,
    /// Other repeats allowed anywhere.
    Open,
    /// Other repeats allowed after the slices.
    OpenAtEnd,
}

/// One discriminator.
#[derive(Debug, Clone)]
pub struct Discriminator {
    /// `value`, `pattern`, `type`, `profile` or `exists`.
    pub kind: DiscriminatorKind,
    /// The FHIRPath (restricted) from the repeat to the discriminating element.
    pub path: Box<str>,
}

/// Discriminator types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscriminatorKind {
    /// Fixed value, pattern or required binding at the path.
    Value,
    /// The same as `Value` in practice.
    Pattern,
    /// The type at the path.
    Type,
    /// Conformance to the profile at the path.
    Profile,
    /// Presence or absence at the path.
    Exists,
}

/// One compiled element.
#[derive(Debug)]
pub struct Elem {
    /// Element id (`Patient.identifier:mrn.system`).
    pub id: Box<str>,
    /// Element path, for messages.
    pub path: Box<str>,
    /// The last path segment without `[x]`.
    pub name: Box<str>,
    /// Whether the element is a choice.
    pub choice: bool,
    /// The slice name, on a slice.
    pub slice_name: Option<Box<str>>,
    /// Cardinality in this profile.
    pub min: u32,
    /// Cardinality in this profile, [`UNBOUNDED`] for `*`.
    pub max: u32,
    /// Cardinality in the base specification: only tighter bounds are checked here.
    pub base_min: u32,
    /// See `base_min`.
    pub base_max: u32,
    /// Allowed types.
    pub types: Vec<ElemType>,
    /// `fixed[x]`.
    pub fixed: Option<Value>,
    /// `pattern[x]`.
    pub pattern: Option<Value>,
    /// Required binding (weaker ones are not checked).
    pub binding: Option<Binding>,
    /// `maxLength`.
    pub max_length: Option<usize>,
    /// The `minLength` extension.
    pub min_length: Option<usize>,
    /// Narrative language control (`narrative-language-control`): `_no`, `_yes`, `_resource` or codes.
    pub narrative_languages: Option<Box<str>>,
    /// Narrative source control (`narrative-source-control`): every top-level node needs a source class.
    pub narrative_sources: bool,
    /// `mustHaveValue` (R5, as a cross-version extension): extensions alone do not make a value.
    pub must_have_value: bool,
    /// `valueAlternatives` (R5, as cross-version extensions): the extensions that may replace an absent
    /// value.
    pub value_alternatives: Vec<Box<str>>,
    /// `minValue[x]`, with its type suffix.
    pub min_value: Option<(Box<str>, Value)>,
    /// `maxValue[x]`, with its type suffix.
    pub max_value: Option<(Box<str>, Value)>,
    /// `slicing`, on a sliced element.
    pub slicing: Option<Slicing>,
    /// Constraints added to the base definition's ([`super::profile_constraints`]).
    pub constraints: Vec<Constraint>,
    /// Child elements (not slices).
    pub children: Vec<ElemId>,
    /// Slices of this element, in order.
    pub slices: Vec<ElemId>,
    /// `contentReference`: the element whose children apply.
    pub content_ref: Option<ElemId>,
}

impl Profile {
    /// Compiles a profile from its StructureDefinition and snapshot elements; `base` holds the
    /// constraints of the base definition, which the profile does not check again.
    pub fn compile(sd: &Value, snapshot: &[Value], base: &BaseKeys) -> Self {
        let s = |k: &str| sd.get(k).and_then(Value::as_str).unwrap_or_default();
        let kind = Kind::of(sd);
        let contexts = contexts_of(sd);
        let mut p = Profile {
            url: s("url").into(),
            type_name: s("type").into(),
            kind,
            contexts,
            elems: Vec::with_capacity(snapshot.len()),
            invariants: invariant::Table::default(),
        };
        let mut compiler = invariant::Compiler::default();
        let mut by_id: std::collections::HashMap<String, ElemId> = Default::default();
        for e in snapshot {
            let path = e.get("path").and_then(Value::as_str).unwrap_or_default();
            let id = e
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or(path)
                .to_owned();
            let idx = p.elems.len();
            let mut elem = compile_elem(e, &id, path);
            elem.constraints = super::profile_constraints::compile(e, path, base, &mut compiler);
            if idx > 0 {
                let (parent, last) = split_last(&id);
                if let Some((name, _)) = last.split_once(':') {
                    // A slice: its sliced element is `parent.name`.
                    let sliced = if parent.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{parent}.{name}")
                    };
                    if let Some(&b) = by_id.get(&sliced) {
                        p.elems[b].slices.push(idx);
                    }
                } else if let Some(&pid) = by_id.get(parent) {
                    p.elems[pid].children.push(idx);
                }
            }
            by_id.insert(id, idx);
            p.elems.push(elem);
        }
        p.invariants = compiler.finish();
        // A `contentReference` (`Parameters.parameter.part`) is not followed: the profile's
        // constraints on the referenced element are for that element, not for every recursion of it
        // (the HL7 validator reads them the same way); the base walk checks the recursion's structure.
        p
    }

    /// The element with this id.
    pub fn elem(&self, id: ElemId) -> &Elem {
        &self.elems[id]
    }

    /// The child of `e` (through a `contentReference` if need be) named `name` (without `[x]`).
    pub fn child(&self, e: ElemId, name: &str) -> Option<ElemId> {
        self.children_of(e)
            .iter()
            .copied()
            .find(|&c| &*self.elems[c].name == name)
    }

    /// The children that apply to `e`'s values.
    pub fn children_of(&self, e: ElemId) -> &[ElemId] {
        let el = &self.elems[e];
        match el.content_ref {
            Some(r) if el.children.is_empty() => &self.elems[r].children,
            _ => &el.children,
        }
    }
}

impl Elem {
    /// The type whose JSON suffix (for a choice) or code is `suffix`.
    pub fn type_for_suffix(&self, suffix: &str) -> Option<&ElemType> {
        self.types.iter().find(|t| upper_first(&t.code) == suffix)
    }
}

fn compile_elem(e: &Value, id: &str, path: &str) -> Elem {
    let last = path.rsplit('.').next().unwrap_or(path);
    let num = |v: Option<&Value>| {
        v.and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    let max_of = |v: Option<&Value>| match v.and_then(Value::as_str) {
        Some("*") | None => UNBOUNDED,
        Some(n) => n.parse().unwrap_or(UNBOUNDED),
    };
    let min = num(e.get("min"));
    let max = max_of(e.get("max"));
    let base = e.get("base");
    let urls = |t: &Value, k: &str| -> Vec<Box<str>> {
        t.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|u| super::definitions::strip_version(u).into())
            .collect()
    };
    let types = e
        .get("type")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some(ElemType {
                code: t.get("code").and_then(Value::as_str)?.into(),
                profiles: urls(t, "profile"),
                target_profiles: urls(t, "targetProfile"),
            })
        })
        .collect();
    let slicing = e.get("slicing").map(|s| Slicing {
        discriminators: s
            .get("discriminator")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|d| {
                let kind = match d.get("type").and_then(Value::as_str)? {
                    "value" => DiscriminatorKind::Value,
                    "pattern" => DiscriminatorKind::Pattern,
                    "type" => DiscriminatorKind::Type,
                    "profile" => DiscriminatorKind::Profile,
                    "exists" => DiscriminatorKind::Exists,
                    _ => return None,
                };
                Some(Discriminator {
                    kind,
                    path: d.get("path").and_then(Value::as_str)?.into(),
                })
            })
            .collect(),
        ordered: s.get("ordered").and_then(Value::as_bool) == Some(true),
        rules: match s.get("rules").and_then(Value::as_str) {
            Some("closed") => Rules::Closed,
            Some("openAtEnd") => Rules::OpenAtEnd,
            _ => Rules::Open,
        },
    });
    let binding = e.get("binding").and_then(|b| {
        (b.get("strength").and_then(Value::as_str) == Some("required")).then_some(())?;
        Some(Binding {
            strength: Strength::Required,
            value_set: super::definitions::strip_version(
                b.get("valueSet").and_then(Value::as_str)?,
            )
            .into(),
        })
    });
    Elem {
        id: id.into(),
        path: path.into(),
        name: last.trim_end_matches("[x]").into(),
        choice: last.ends_with("[x]"),
        slice_name: e.get("sliceName").and_then(Value::as_str).map(Into::into),
        min,
        max,
        base_min: base.map_or(min, |b| num(b.get("min"))),
        base_max: base.map_or(max, |b| max_of(b.get("max"))),
        types,
        fixed: prefixed(e, "fixed").map(|(_, v)| v.clone()),
        pattern: prefixed(e, "pattern").map(|(_, v)| v.clone()),
        binding,
        max_length: e
            .get("maxLength")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok()),
        min_length: extension(e, "http://hl7.org/fhir/StructureDefinition/minLength")
            .and_then(|x| x.get("valueInteger"))
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok()),
        narrative_sources: extension(e, super::narrative_control::SOURCE_CONTROL).is_some(),
        narrative_languages: extension(e, super::narrative_control::LANGUAGE_CONTROL)
            .and_then(|x| x.get("valueCode").or_else(|| x.get("valueString")))
            .and_then(Value::as_str)
            .map(Into::into),
        must_have_value: extension(e, super::value_absence::MUST_HAVE_VALUE)
            .and_then(|x| x.get("valueBoolean"))
            .and_then(Value::as_bool)
            == Some(true),
        value_alternatives: extensions(e, super::value_absence::VALUE_ALTERNATIVES)
            .filter_map(|x| x.get("valueCanonical").and_then(Value::as_str))
            .map(Into::into)
            .collect(),
        min_value: prefixed(e, "minValue").map(|(t, v)| (t.into(), v.clone())),
        max_value: prefixed(e, "maxValue").map(|(t, v)| (t.into(), v.clone())),
        slicing,
        constraints: Vec::new(),
        children: Vec::new(),
        slices: Vec::new(),
        content_ref: None,
    }
}

/// The contexts (`StructureDefinition.context`) of an extension definition.
pub fn contexts_of(sd: &Value) -> Vec<Context> {
    sd.get("context")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let e = c.get("expression").and_then(Value::as_str)?;
            Some(match c.get("type").and_then(Value::as_str) {
                Some("extension") => Context::Extension(e.into()),
                Some("fhirpath") => where_context(e).unwrap_or(Context::FhirPath),
                _ => Context::Element(e.into()),
            })
        })
        .collect()
}

/// Parses `Patient.address.where(use = 'home')`.
fn where_context(e: &str) -> Option<Context> {
    let (path, rest) = e.split_once(".where(")?;
    let cond = rest.strip_suffix(')')?;
    let (field, value) = cond.split_once('=')?;
    let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    let field = field.trim();
    if !field.chars().all(|c| c.is_ascii_alphanumeric()) || path.contains('(') {
        return None;
    }
    Some(Context::Where {
        path: path.into(),
        field: field.into(),
        value: value.into(),
    })
}

/// The first `<prefix>Xxx` property, as (`Xxx`, value).
fn prefixed<'v>(e: &'v Value, prefix: &str) -> Option<(&'v str, &'v Value)> {
    e.as_object()?.iter().find_map(|(k, v)| {
        let rest = k.strip_prefix(prefix)?;
        rest.starts_with(|c: char| c.is_ascii_uppercase())
            .then_some((rest, v))
    })
}

/// The extension with `url` on an element definition.
fn extension<'v>(e: &'v Value, url: &str) -> Option<&'v Value> {
    extensions(e, url).next()
}

/// The extensions with `url` on an element definition.
fn extensions<'v, 'u>(e: &'v Value, url: &'u str) -> impl Iterator<Item = &'v Value> + use<'v, 'u> {
    e.get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |x| x.get("url").and_then(Value::as_str) == Some(url))
}
