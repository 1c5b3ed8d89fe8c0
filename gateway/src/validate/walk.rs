//! The recursive walk over a resource's JSON, checking it against the compiled element trees.

use serde_json::{Map, Value};

use super::extension::Site;
use super::invariant::{self, InvariantId, Level};
use super::model::{Child, Kind, Model, Node, Strength, Target, TypeDef, TypeRef, UNBOUNDED};
use super::path::{Path, Seg};
use super::primitive::json_kind_of;
use super::registry::Profiles;
use super::terminology::{Membership, Terminology};
use super::values::{contains, count, equal, ext_at, is_absolute};
use crate::fhir::outcome::{Issue, IssueType, Severity};

/// One validation run: the location stack and the issues found so far.
#[derive(Debug)]
pub struct Walker<'a> {
    model: &'a Model,
    terms: &'a Terminology,
    path: Path<'a>,
    /// How many Extensions enclose the current object: nested ones name themselves with relative URLs.
    ext_depth: u32,
    /// The enclosing resources, innermost last, each with the index of its `%rootResource`.
    resources: Vec<(&'a Value, usize)>,
    /// Whether best-practice (warning) invariants are checked too.
    pub best_practice: bool,
    /// Whether extensions with no known definition are errors ([`super::ValidateOptions`]).
    pub strict_extensions: bool,
    /// Whether Coding displays are checked ([`super::ValidateOptions`]).
    pub check_displays: bool,
    /// Codings whose display their code system does not give: issues unless a profile offers it.
    pub display_findings: Vec<super::displays::Finding>,
    /// Issues in document order.
    pub issues: Vec<Issue>,
    /// Known profiles and extension definitions: `meta.profile` and extensions are checked against them.
    profiles: Option<&'a Profiles>,
    /// The elements enclosing the current object (path, type name, resource root): where an extension
    /// found there is used.
    sites: Vec<(&'a str, &'a str, bool, Option<&'a Value>)>,
    /// URLs of the extensions enclosing the current object.
    ext_urls: Vec<&'a str>,
}

impl<'a> Walker<'a> {
    /// A walker with no issues yet.
    pub fn new(model: &'a Model, terms: &'a Terminology) -> Self {
        Self {
            model,
            terms,
            path: Path::default(),
            ext_depth: 0,
            resources: Vec::new(),
            best_practice: false,
            strict_extensions: false,
            check_displays: false,
            display_findings: Vec::new(),
            issues: Vec::new(),
            profiles: None,
            sites: Vec::new(),
            ext_urls: Vec::new(),
        }
    }

    /// Also checks `meta.profile` and extensions against these profiles and extension definitions.
    pub fn with_profiles(mut self, profiles: &'a Profiles) -> Self {
        self.profiles = Some(profiles);
        self
    }

    /// Runs `f` with `site` as the enclosing element.
    fn in_site(
        &mut self,
        site: (&'a str, &'a str, bool, Option<&'a Value>),
        f: impl FnOnce(&mut Self),
    ) {
        self.sites.push(site);
        f(self);
        self.sites.pop();
    }

    fn report(&mut self, severity: Severity, code: IssueType, diagnostics: String) {
        self.issues.push(Issue {
            severity,
            code,
            diagnostics,
            expression: vec![self.path.render()],
        });
    }

    fn error(&mut self, code: IssueType, diagnostics: String) {
        self.report(Severity::Error, code, diagnostics);
    }

    /// Validates a resource: the outermost one (`top`), or one nested where the caller's path points.
    pub fn resource(&mut self, v: &'a Value, top: bool) {
        self.nested_resource(v, top, false);
    }

    /// [`Self::resource`]; a `contained` one keeps its container as `%rootResource`.
    fn nested_resource(&mut self, v: &'a Value, top: bool, contained: bool) {
        let Some(obj) = v.as_object() else {
            return self.error(
                IssueType::Structure,
                format!("a resource must be a JSON object, not {}", json_kind_of(v)),
            );
        };
        let Some(rt) = obj.get("resourceType").and_then(Value::as_str) else {
            return self.error(
                IssueType::Structure,
                "the resource has no resourceType".into(),
            );
        };
        let id = obj.get("id").and_then(Value::as_str);
        self.path.push(if top {
            Seg::Root(rt)
        } else {
            Seg::Resource(rt, id)
        });
        match self.model.resources.get(rt) {
            Some(&tid) => {
                let def = self.model.def(tid);
                let root = match self.resources.last() {
                    Some(&(_, root)) if contained => root,
                    _ => self.resources.len(),
                };
                self.resources.push((v, root));
                self.in_site((&def.type_name, &def.type_name, true, Some(v)), |w| {
                    w.object(def, 0, obj, true)
                });
                self.invariants(&def.node(0).invariants, &[], v, Some((def, 0)));
                self.narrative_links(obj);
                self.resources.pop();
                if let Some(reg) = self.profiles {
                    let loc = self.path.render();
                    super::meta_profiles(reg, self.terms, v, loc, &mut self.issues);
                }
            }
            None => self.error(
                IssueType::Structure,
                format!("unknown resource type '{rt}'"),
            ),
        }
        self.path.pop();
    }

    /// Validates the properties of `obj` against the children of `def`'s node `node`.
    fn object(&mut self, def: &'a TypeDef, node: u32, obj: &'a Map<String, Value>, resource: bool) {
        let holder = def.node(def.node(node).children_of.unwrap_or(node));
        if !resource && obj.keys().all(|k| k == "id") {
            self.error(
                IssueType::Invariant,
                "ele-1: all FHIR elements must have a value or children".into(),
            );
        }
        let is_extension = &*def.type_name == "Extension" && def.kind == Kind::Complex;
        if is_extension {
            self.extension_rules(obj);
            self.ext_depth += 1;
        }
        let mut choices_seen: Vec<u32> = Vec::new();
        for (key, val) in obj {
            if resource && key == "resourceType" {
                continue;
            }
            let (name, underscore) = match key.strip_prefix('_') {
                Some(n) => (n, true),
                None => (key.as_str(), false),
            };
            let Some(&child) = holder.children.get(name) else {
                self.error(
                    IssueType::Structure,
                    format!("unrecognized property '{key}'"),
                );
                continue;
            };
            let n = def.node(child.node);
            if n.choice && !underscore {
                if choices_seen.contains(&child.node) {
                    self.error(
                        IssueType::Structure,
                        format!("{}: only one of its types may be present", n.path),
                    );
                }
                choices_seen.push(child.node);
            }
            if underscore {
                self.primitive_ext(def, child, val, obj);
            } else {
                self.property(def, child, val, obj);
            }
        }
        for &r in &holder.required {
            let n = def.node(r);
            let found = count(n, obj);
            if found < n.min {
                self.error(
                    IssueType::Required,
                    format!(
                        "{}: minimum required = {}, but only found {found}",
                        n.path, n.min
                    ),
                );
            }
        }
        if is_extension {
            self.ext_depth -= 1;
        }
        match &*def.type_name {
            "Attachment" if def.kind == Kind::Complex => self.attachment_size(obj),
            "Bundle" if resource => self.bundle_full_urls(obj),
            _ => {}
        }
    }

    /// A property (not `_x`): JSON shape for its cardinality, then each value.
    fn property(
        &mut self,
        def: &'a TypeDef,
        child: Child,
        val: &'a Value,
        parent: &'a Map<String, Value>,
    ) {
        let n = def.node(child.node);
        self.push_field(n, child.ty);
        match val {
            Value::Array(items) => {
                if n.max <= 1 {
                    self.error(
                        IssueType::Structure,
                        format!("{}: must be a single value, not a JSON array", n.path),
                    );
                } else if items.is_empty() {
                    self.error(
                        IssueType::Invalid,
                        "an array cannot be empty: leave the property out".into(),
                    );
                } else if n.max != UNBOUNDED && items.len() > n.max as usize {
                    self.error(
                        IssueType::Structure,
                        format!(
                            "{}: max allowed = {}, but found {}",
                            n.path,
                            n.max,
                            items.len()
                        ),
                    );
                }
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Seg::Index(i));
                    if item.is_null() {
                        if !ext_at(parent, &n.json_names[usize::from(child.ty)], i) {
                            self.error(
                                IssueType::Structure,
                                "null is only allowed in an array whose _ twin has an extension at the same index".into(),
                            );
                        }
                    } else {
                        self.value(def, child, item);
                    }
                    self.path.pop();
                }
            }
            Value::Null => self.error(
                IssueType::Structure,
                "null is not allowed: leave the property out".into(),
            ),
            _ => {
                if n.max > 1 {
                    self.error(
                        IssueType::Structure,
                        format!(
                            "{}: must be a JSON array, not {}",
                            n.path,
                            json_kind_of(val)
                        ),
                    );
                }
                self.value(def, child, val);
            }
        }
        self.path.pop();
    }

    /// An `_x` property: the id and extensions of primitive `x`.
    fn primitive_ext(
        &mut self,
        def: &'a TypeDef,
        child: Child,
        val: &'a Value,
        parent: &'a Map<String, Value>,
    ) {
        let n = def.node(child.node);
        let primitive = n
            .types
            .get(usize::from(child.ty))
            .is_some_and(|t| t.target == Target::Primitive);
        self.push_field(n, child.ty);
        if !primitive {
            self.error(
                IssueType::Structure,
                format!("{}: only primitive elements have a '_' twin", n.path),
            );
        } else {
            match val {
                Value::Array(items) if n.max > 1 => {
                    let twin = parent.get(&*n.json_names[usize::from(child.ty)]);
                    if let Some(Value::Array(values)) = twin {
                        if values.len() != items.len() {
                            self.error(
                                IssueType::Structure,
                                "the '_' array must have as many items as its twin".into(),
                            );
                        }
                    }
                    let code = &n.types[usize::from(child.ty)].code;
                    for (i, item) in items.iter().enumerate() {
                        self.path.push(Seg::Index(i));
                        self.in_site((&n.path, code, false, None), |w| w.element_ext(item, true));
                        self.path.pop();
                    }
                }
                Value::Object(_) if n.max <= 1 => {
                    let code = &n.types[usize::from(child.ty)].code;
                    self.in_site((&n.path, code, false, None), |w| w.element_ext(val, false));
                }
                _ => self.error(
                    IssueType::Structure,
                    format!("{}: the '_' twin has the wrong JSON shape", n.path),
                ),
            }
        }
        self.path.pop();
    }

    /// The object in an `_x` property, validated as an `Element` (id and extensions only).
    fn element_ext(&mut self, v: &'a Value, null_ok: bool) {
        match (v, self.model.element) {
            (Value::Null, _) if null_ok => {}
            (Value::Object(obj), Some(el)) => self.object(self.model.def(el), 0, obj, false),
            (Value::Object(_), None) => {}
            _ => self.error(
                IssueType::Structure,
                format!("a '_' value must be a JSON object, not {}", json_kind_of(v)),
            ),
        }
    }

    /// One value of an element (an array item, or the property itself).
    fn value(&mut self, def: &'a TypeDef, child: Child, v: &'a Value) {
        let n = def.node(child.node);
        if let Some(holder) = n.children_of {
            // A `contentReference` (`PlanDefinition.action.action`) is the element it names, for
            // extension contexts as for the HL7 validator's logical paths.
            let logical = &def.node(holder).path;
            match v.as_object() {
                Some(obj) => self.in_site((logical, "BackboneElement", false, Some(v)), |w| {
                    w.object(def, holder, obj, false)
                }),
                None => self.not_object(v),
            }
        } else if let Some(t) = n.types.get(usize::from(child.ty)) {
            self.in_site((&n.path, &t.code, false, Some(v)), |w| w.typed(n, t, v));
        }
        if let Some(fixed) = &n.fixed {
            if !equal(v, fixed) {
                self.error(
                    IssueType::Value,
                    format!("{}: the value must equal the fixed value", n.path),
                );
            }
        }
        if let Some(pattern) = &n.pattern {
            if !contains(v, pattern) {
                self.error(
                    IssueType::Value,
                    format!("{}: the value does not match the required pattern", n.path),
                );
            }
        }
        // A complex type's own invariants sit on its root element; resources check theirs themselves.
        let (type_root, shape) = match n.types.get(usize::from(child.ty)).map(|t| t.target) {
            _ if n.children_of.is_some() => (&[][..], n.children_of.map(|h| (def, h))),
            Some(Target::Complex(tid)) => {
                let d = self.model.def(tid);
                (&d.node(0).invariants[..], Some((d, 0)))
            }
            _ => (&[][..], None),
        };
        self.invariants(&n.invariants, type_root, v, shape);
    }

    /// Checks an element's invariants, then those of its type not already among them. `shape` is the
    /// definition and node whose children the value holds, to tell choice properties apart.
    fn invariants(
        &mut self,
        own: &[InvariantId],
        of_type: &[InvariantId],
        v: &'a Value,
        shape: Option<(&'a TypeDef, u32)>,
    ) {
        if own.is_empty() && of_type.is_empty() {
            return;
        }
        let (resource, root) = match self.resources.last() {
            Some(&(r, root)) => (r, self.resources.get(root).map_or(r, |x| x.0)),
            None => (v, v),
        };
        let scope = invariant::Scope { resource, root };
        let model = self.model;
        let ids = own
            .iter()
            .chain(of_type.iter().filter(|i| !own.contains(i)))
            .copied();
        let mut failed = Vec::new();
        let is_choice = |key: &str, root: &str| {
            shape.is_some_and(|(d, node)| {
                let holder = d.node(d.node(node).children_of.unwrap_or(node));
                holder.children.get(key).is_some_and(|c| {
                    let n = d.node(c.node);
                    n.choice && &*n.name == root
                })
            })
        };
        model
            .invariants
            .check(ids, v, scope, &is_choice, self.best_practice, &mut failed);
        for f in failed {
            let inv = f.invariant;
            let severity = match inv.level {
                Level::Error => Severity::Error,
                Level::Warning => Severity::Warning,
            };
            self.report(
                severity,
                IssueType::Invariant,
                format!("{}: {}", inv.key, inv.human),
            );
        }
    }

    fn typed(&mut self, n: &'a Node, t: &'a TypeRef, v: &'a Value) {
        match t.target {
            Target::Primitive => {
                if let Some(p) = self.model.primitives.get(&t.code) {
                    if let Err(e) = p.check(v) {
                        return self.error(IssueType::Invalid, e.0);
                    }
                }
                if let (Some(max), Some(s)) = (n.max_length, v.as_str()) {
                    if s.chars().count() > max {
                        self.error(
                            IssueType::Invalid,
                            format!("{}: longer than maxLength {max}", n.path),
                        );
                    }
                }
                self.binding(n, t, v);
            }
            Target::Complex(tid) => match v.as_object() {
                Some(obj) => {
                    if self.check_displays && &*t.code == "Coding" {
                        self.display(n, v);
                    }
                    let d = self.model.def(tid);
                    let ext = &*d.type_name == "Extension" && d.kind == Kind::Complex;
                    if ext {
                        self.extension_definition(v, obj);
                    }
                    self.object(d, 0, obj, false);
                    if ext {
                        self.ext_urls.pop();
                    }
                    self.binding(n, t, v);
                }
                None => self.not_object(v),
            },
            Target::Resource => self.nested_resource(v, false, &*n.name == "contained"),
            Target::Unknown => {}
        }
    }

    fn not_object(&mut self, v: &Value) {
        self.error(
            IssueType::Structure,
            format!("must be a JSON object, not {}", json_kind_of(v)),
        );
    }

    /// Records a Coding whose display its code system does not give; the element a profile would bind
    /// is the CodeableConcept holding it, or the Coding element itself.
    fn display(&mut self, n: &Node, v: &Value) {
        let element = match self.sites.iter().rev().nth(1) {
            Some(&(holder, ..)) if &*n.path == "CodeableConcept.coding" => holder,
            _ => &n.path,
        };
        let path = &self.path;
        if let Some(f) = super::displays::check(v, || path.render(), element) {
            self.display_findings.push(f);
        }
    }

    /// A required binding on a code, Coding, CodeableConcept or Quantity.
    fn binding(&mut self, n: &Node, t: &TypeRef, v: &Value) {
        let Some(b) = n
            .binding
            .as_ref()
            .filter(|b| b.strength == Strength::Required)
        else {
            return;
        };
        let vs = &*b.value_set;
        let verdict = match &*t.code {
            "code" | "string" | "uri" => v
                .as_str()
                .map_or(Membership::Unknown, |c| self.terms.member(vs, None, c)),
            "Coding" | "Quantity" => self.coding(vs, v),
            "CodeableConcept" => {
                let verdicts: Vec<Membership> = v
                    .get("coding")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|c| self.coding(vs, c))
                    .collect();
                if verdicts.iter().any(|m| *m != Membership::NotIn) {
                    Membership::In
                } else if verdicts.is_empty() {
                    Membership::Unknown
                } else {
                    Membership::NotIn
                }
            }
            _ => Membership::Unknown,
        };
        if verdict == Membership::NotIn {
            self.error(
                IssueType::CodeInvalid,
                format!("{}: the code is not in the required value set {vs}", n.path),
            );
        }
    }

    fn coding(&self, vs: &str, c: &Value) -> Membership {
        let system = c.get("system").and_then(Value::as_str);
        match c.get("code").and_then(Value::as_str) {
            Some(code) => self.terms.member(vs, system, code),
            None => Membership::Unknown,
        }
    }

    /// `Extension`: `url` absolute; `ext-1`, value or nested extensions but not both.
    fn extension_rules(&mut self, obj: &Map<String, Value>) {
        if let Some(url) = obj.get("url").and_then(Value::as_str) {
            if self.ext_depth == 0 && !is_absolute(url) {
                self.error(
                    IssueType::Invalid,
                    "Extension.url must be an absolute URL".into(),
                );
            }
        }
        let has_value = obj.keys().any(|k| k.starts_with("value"));
        let has_ext = obj.contains_key("extension");
        if has_value == has_ext {
            self.error(
                IssueType::Invariant,
                "ext-1: an extension must have either extensions or a value, not both".into(),
            );
        }
    }

    /// An extension with a known definition is checked against it, and where it is used against the
    /// definition's contexts (nested extensions, with relative URLs, are their outer one's business).
    fn extension_definition(&mut self, v: &'a Value, obj: &'a Map<String, Value>) {
        let url = obj.get("url").and_then(Value::as_str).unwrap_or_default();
        let outer = self.ext_urls.last().copied();
        self.ext_urls.push(url);
        let Some(reg) = self.profiles else { return };
        if self.ext_depth > 0 && !is_absolute(url) {
            return;
        }
        // The innermost site is the `extension` element itself; the one before holds it.
        let Some(&(path, type_name, resource, holder)) = self.sites.iter().rev().nth(1) else {
            return;
        };
        let in_definition_value = self.sites.iter().any(|(p, ..)| {
            p.starts_with("ElementDefinition.example.value")
                || p.starts_with("ElementDefinition.fixed")
                || p.starts_with("ElementDefinition.pattern")
        });
        let site = Site {
            path,
            type_name,
            resource,
            outer,
            holder,
            in_definition_value,
        };
        let found = super::extension::check(
            reg,
            self.terms,
            v,
            &site,
            self.path.render(),
            self.strict_extensions,
        );
        self.issues.extend(found);
    }

    /// The internal links of the current resource's narrative must resolve within its root resource
    /// (the container, for a contained one) or else within the enclosing Bundle.
    fn narrative_links(&mut self, obj: &'a Map<String, Value>) {
        let Some(div) = obj
            .get("text")
            .and_then(|t| t.get("div"))
            .and_then(Value::as_str)
            .filter(|d| super::narrative_links::may_link(d))
        else {
            return;
        };
        let Some(&(current, root)) = self.resources.last() else {
            return;
        };
        let scope = self.resources.get(root).map_or(current, |r| r.0);
        let bundle = self
            .resources
            .iter()
            .rev()
            .map(|r| r.0)
            .find(|r| r.get("resourceType").and_then(Value::as_str) == Some("Bundle"));
        for f in super::narrative_links::fragments(div) {
            let found = super::narrative_links::resolves(&f, scope)
                || bundle.is_some_and(|b| super::narrative_links::resolves(&f, b));
            if !found {
                self.path.push(Seg::Field("text"));
                self.path.push(Seg::Field("div"));
                self.error(
                    IssueType::Invalid,
                    format!("the narrative's hyperlink '#{f}' does not resolve to anything in the resource"),
                );
                self.path.pop();
                self.path.pop();
            }
        }
    }

    /// `Attachment.size` must be the decoded length of `Attachment.data` when both are given.
    fn attachment_size(&mut self, obj: &Map<String, Value>) {
        let (Some(data), Some(size)) = (
            obj.get("data").and_then(Value::as_str),
            obj.get("size").and_then(Value::as_u64),
        ) else {
            return;
        };
        let chars: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        let padding = chars.iter().rev().take_while(|b| **b == b'=').count();
        let decoded = (chars.len() / 4 * 3).saturating_sub(padding) as u64;
        if chars.len().is_multiple_of(4) && decoded != size {
            self.error(
                IssueType::Structure,
                format!("Attachment.size is {size} but the data decodes to {decoded} bytes"),
            );
        }
    }

    /// `Bundle.entry.fullUrl` is an absolute URL (R4: "The Absolute URL for the resource").
    fn bundle_full_urls(&mut self, obj: &'a Map<String, Value>) {
        let Some(entries) = obj.get("entry").and_then(Value::as_array) else {
            return;
        };
        for (i, e) in entries.iter().enumerate() {
            if let Some(url) = e.get("fullUrl").and_then(Value::as_str) {
                if !is_absolute(url) {
                    self.path.push(Seg::Field("entry"));
                    self.path.push(Seg::Index(i));
                    self.error(
                        IssueType::Invalid,
                        "Bundle.entry.fullUrl must be an absolute URL".into(),
                    );
                    self.path.pop();
                    self.path.pop();
                }
            }
        }
    }

    fn push_field(&mut self, n: &'a Node, ty: u8) {
        match n.types.get(usize::from(ty)) {
            Some(t) if n.choice => self.path.push(Seg::Choice(&n.name, &t.code)),
            _ => self.path.push(Seg::Field(&n.name)),
        }
    }
}
