//! Checking an instance against a compiled profile: cardinality the profile tightens, types it
//! restricts, fixed and pattern values, required bindings, value limits, type and target profiles,
//! and (through [`super::slicing`]) slices. Structure the base specification defines is the base walk's
//! job and is not checked again here.

use serde_json::{Map, Value};

use super::model::{Strength, UNBOUNDED};
use super::path::{Path, Seg};
use super::profile::{ElemId, ElemType, Profile};
use super::registry::{Lookup, Profiles};
use super::terminology::{Membership, Terminology};
use super::values::{contains, equal};
use crate::fhir::outcome::{Issue, IssueType, Severity};

/// How deep profiles may nest in one another (type profiles of type profiles…) before the check stops.
const MAX_DEPTH: u32 = 12;

/// One value of an element in the instance.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// The value.
    pub value: &'a Value,
    /// Its type in the profile, when known.
    pub ty: Option<&'a ElemType>,
    /// Its index in a JSON array.
    pub index: Option<usize>,
}

/// One check of an instance against one or more profiles.
#[derive(Debug)]
pub struct Checker<'a> {
    /// Where profiles and their value sets are found.
    pub reg: &'a Profiles,
    terms: &'a Terminology,
    /// The location of the checked value, rendered.
    prefix: String,
    path: Path<'a>,
    depth: u32,
    /// The innermost resource being checked (`%resource` for profile constraints), once known.
    resource: Option<&'a Value>,
    /// The outermost one (`%rootResource`).
    root: Option<&'a Value>,
    /// Issues found.
    pub issues: Vec<Issue>,
}

impl<'a> Checker<'a> {
    /// A checker whose issues are located under `prefix` (`Patient`, `Bundle.entry[0].resource`).
    pub fn new(reg: &'a Profiles, terms: &'a Terminology, prefix: String) -> Self {
        Self {
            reg,
            terms,
            prefix,
            path: Path::default(),
            depth: 0,
            resource: None,
            root: None,
            issues: Vec::new(),
        }
    }

    /// The innermost resource being checked, once known.
    pub fn resource(&self) -> Option<&'a Value> {
        self.resource
    }

    /// The outermost resource being checked, once known.
    pub fn root_resource(&self) -> Option<&'a Value> {
        self.root
    }

    /// Whether an error has been found.
    pub fn failed(&self) -> bool {
        self.issues
            .iter()
            .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
    }

    /// The current location.
    pub fn location(&self) -> String {
        let rest = self.path.render();
        format!("{}{rest}", self.prefix)
    }

    /// Reports an issue at the current location.
    pub fn report(&mut self, severity: Severity, code: IssueType, diagnostics: String) {
        let expression = vec![self.location()];
        self.issues.push(Issue {
            severity,
            code,
            diagnostics,
            expression,
        });
    }

    /// Checks `v` against profile `p` from its root.
    pub fn conforms(&mut self, p: &'a Profile, v: &'a Value) {
        self.value(p, 0, v, None);
    }

    /// A checker for a nested profile, located at the current location.
    pub fn nested(&self) -> Checker<'a> {
        Checker {
            reg: self.reg,
            terms: self.terms,
            prefix: self.location(),
            path: Path::default(),
            depth: self.depth + 1,
            resource: self.resource,
            root: self.root,
            issues: Vec::new(),
        }
    }

    /// Whether `v` conforms to profile `url` (unknown profiles do not).
    pub fn passes(&self, url: &str, v: &'a Value) -> bool {
        let Some(p) = self.reg.get(url) else {
            return false;
        };
        if self.depth >= MAX_DEPTH {
            return true;
        }
        let mut sub = self.nested();
        sub.conforms(p, v);
        !sub.failed()
    }

    /// One value of element `e`.
    pub fn value(&mut self, p: &'a Profile, e: ElemId, v: &'a Value, ty: Option<&'a ElemType>) {
        let outer = self.resource;
        if v.get("resourceType").is_some() {
            self.resource = Some(v);
            self.root = self.root.or(Some(v));
        }
        self.element(p, e, v, ty);
        self.resource = outer;
    }

    /// [`Self::value`] within the current resource.
    fn element(&mut self, p: &'a Profile, e: ElemId, v: &'a Value, ty: Option<&'a ElemType>) {
        let el = p.elem(e);
        let single = match el.types.as_slice() {
            [t] => Some(t),
            _ => None,
        };
        let ty = ty.or(single);
        if let Some(f) = &el.fixed {
            if !equal(v, f) {
                self.err(
                    IssueType::Value,
                    format!(
                        "{}: the value must be the fixed value (from {})",
                        el.path, p.url
                    ),
                );
            }
        }
        if let Some(pat) = &el.pattern {
            if !contains(v, pat) {
                self.err(
                    IssueType::Value,
                    format!(
                        "{}: the value does not match the pattern (from {})",
                        el.path, p.url
                    ),
                );
            }
        }
        if let Some(b) = el
            .binding
            .as_ref()
            .filter(|b| b.strength == Strength::Required)
        {
            if self.membership(&b.value_set, v) == Membership::NotIn {
                self.err(
                    IssueType::CodeInvalid,
                    format!(
                        "{}: the code is not in the required value set {} (from {})",
                        el.path, b.value_set, p.url
                    ),
                );
            }
        }
        if let (Some(max), Some(s)) = (el.max_length, v.as_str()) {
            if s.chars().count() > max {
                self.err(
                    IssueType::Invalid,
                    format!("{}: longer than maxLength {max} (from {})", el.path, p.url),
                );
            }
        }
        super::limits::check(self, el, v, &p.url);
        if !el.constraints.is_empty() {
            super::profile_constraints::check(self, p, &el.constraints, v);
        }
        if let Some(t) = ty {
            self.type_profiles(t, v);
            if &*t.code == "Reference" && !t.target_profiles.is_empty() {
                self.target(t, v);
            }
        }
        if let Some(obj) = v.as_object() {
            if !p.children_of(e).is_empty() {
                self.object(p, e, obj);
            }
        }
    }

    /// The children of element `e` in object `obj`.
    fn object(&mut self, p: &'a Profile, e: ElemId, obj: &'a Map<String, Value>) {
        if self.depth >= MAX_DEPTH {
            return;
        }
        for &c in p.children_of(e) {
            let el = p.elem(c);
            let items = self.items(p, c, obj);
            let n = u32::try_from(items.len()).unwrap_or(u32::MAX)
                + u32::from(items.is_empty() && obj.contains_key(&format!("_{}", el.name)));
            if n < el.min && el.min > el.base_min {
                self.err(
                    IssueType::Required,
                    format!(
                        "{}: minimum required = {}, but only found {n} (from {})",
                        el.path, el.min, p.url
                    ),
                );
            }
            if el.max != UNBOUNDED && n > el.max && el.max < el.base_max {
                self.push_item(p, c, None, None);
                self.err(
                    IssueType::Structure,
                    format!(
                        "{}: max allowed = {}, but found {n} (from {})",
                        el.path, el.max, p.url
                    ),
                );
                self.path.pop();
            }
            super::value_absence::check(self, p, c, obj);
            if items.is_empty() {
                continue;
            }
            if !el.slices.is_empty() {
                super::slicing::check(self, p, c, &items);
            }
            if let (true, [item]) = (el.narrative_sources, items.as_slice()) {
                let missing = super::narrative_control::unsourced(item.value);
                if !missing.is_empty() {
                    self.push_item(p, c, item.ty, item.index);
                    self.err(
                        IssueType::Invariant,
                        format!(
                            "the narrative's top-level nodes must have a class saying their source                              (boilerplate, generated or original); these do not: {} (from {})",
                            missing.join(", "),
                            p.url
                        ),
                    );
                    self.pop_item(item.index);
                }
            }
            if let (Some(rule), [item]) = (&el.narrative_languages, items.as_slice()) {
                if let Some(why) = super::narrative_control::check(rule, item.value, obj) {
                    self.push_item(p, c, item.ty, item.index);
                    self.err(IssueType::Invariant, format!("{why} (from {})", p.url));
                    self.pop_item(item.index);
                }
            }
            for item in &items {
                self.push_item(p, c, item.ty, item.index);
                self.value(p, c, item.value, item.ty);
                self.pop_item(item.index);
            }
        }
    }

    /// Enters the location of an item of `c`.
    pub fn push_item(
        &mut self,
        p: &'a Profile,
        c: ElemId,
        ty: Option<&'a ElemType>,
        index: Option<usize>,
    ) {
        let el = p.elem(c);
        match ty {
            Some(t) if el.choice => self.path.push(Seg::Choice(&el.name, &t.code)),
            _ => self.path.push(Seg::Field(&el.name)),
        }
        if let Some(i) = index {
            self.path.push(Seg::Index(i));
        }
    }

    /// Leaves the location entered by [`Self::push_item`].
    pub fn pop_item(&mut self, index: Option<usize>) {
        if index.is_some() {
            self.path.pop();
        }
        self.path.pop();
    }

    /// The values of element `c` in `obj`, with their types; a choice type the profile does not allow
    /// is reported.
    fn items(&mut self, p: &'a Profile, c: ElemId, obj: &'a Map<String, Value>) -> Vec<Item<'a>> {
        let el = p.elem(c);
        let mut out = Vec::new();
        if el.choice {
            for (k, v) in obj {
                let Some(suffix) = k.strip_prefix(&*el.name) else {
                    continue;
                };
                if !suffix.starts_with(|ch: char| ch.is_ascii_uppercase()) {
                    continue;
                }
                match el.type_for_suffix(suffix) {
                    Some(t) => push_values(&mut out, v, Some(t)),
                    None => {
                        self.path.push(Seg::Field(k));
                        self.err(
                            IssueType::Structure,
                            format!(
                                "{}: the type {suffix} is not allowed by the profile {}",
                                el.path, p.url
                            ),
                        );
                        self.path.pop();
                    }
                }
            }
        } else if let Some(v) = obj.get(&*el.name) {
            push_values(&mut out, v, None);
        }
        out
    }

    fn err(&mut self, code: IssueType, diagnostics: String) {
        self.report(Severity::Error, code, diagnostics);
    }

    /// The value must conform to one of the type's profiles.
    fn type_profiles(&mut self, t: &'a ElemType, v: &'a Value) {
        if t.profiles.is_empty() || self.depth >= MAX_DEPTH {
            return;
        }
        let mut attempts: Vec<Vec<Issue>> = Vec::new();
        for url in &t.profiles {
            match self.reg.lookup(url) {
                Lookup::Found(prof) => {
                    let mut sub = self.nested();
                    sub.conforms(prof, v);
                    if !sub.failed() {
                        self.issues.extend(sub.issues);
                        return;
                    }
                    attempts.push(sub.issues);
                }
                Lookup::Broken(why) => {
                    let why = why.to_owned();
                    self.report(
                        Severity::Warning,
                        IssueType::NotSupported,
                        format!("profile {url} has not been checked: {why}"),
                    );
                    return;
                }
                Lookup::Unknown if core_type(url).is_some() => {
                    // A base type as a profile: the value must be of that type.
                    let want = core_type(url).unwrap_or_default();
                    match v.get("resourceType").and_then(Value::as_str) {
                        Some(rt) if rt != want => attempts.push(vec![Issue {
                            severity: Severity::Error,
                            code: IssueType::Structure,
                            diagnostics: format!("The type '{rt}' is not valid - must be {want}"),
                            expression: vec![self.location()],
                        }]),
                        _ => return,
                    }
                }
                // A value (data type or resource) that must meet an unknown profile cannot be vouched
                // for: the HL7 validator says so as an error (`VALIDATION_VAL_UNKNOWN_PROFILE`;
                // `BUNDLE_BUNDLE_ENTRY_NOPROFILE_*` for Bundle entries, Parameters and contained
                // resources), unlike an unknown profile an instance merely claims in `meta.profile`.
                Lookup::Unknown => {
                    self.err(
                        IssueType::Structure,
                        format!("the profile {url} that this element requires is unknown"),
                    );
                }
            }
        }
        if let [one] = attempts.as_mut_slice() {
            self.issues.append(one);
        } else if let Some(first) = attempts.first_mut() {
            let names: Vec<&str> = t.profiles.iter().map(|u| &**u).collect();
            let msg = format!(
                "unable to find a match for the specified profile among choices: {}",
                names.join(", ")
            );
            self.err(IssueType::Structure, msg);
            self.issues.append(first);
        }
    }

    /// A literal reference's resource type must be one the target profiles allow.
    fn target(&mut self, t: &'a ElemType, v: &'a Value) {
        let Some(reference) = v.get("reference").and_then(Value::as_str) else {
            return;
        };
        if reference.starts_with('#') || reference.starts_with("urn:") {
            return;
        }
        let head = reference
            .split_once("/_history/")
            .map_or(reference, |(h, _)| h);
        let mut segs = head.split('/').rev();
        let (Some(_id), Some(ty)) = (segs.next(), segs.next()) else {
            return;
        };
        let mut allowed = Vec::new();
        for url in &t.target_profiles {
            let name = match self.reg.get(url) {
                Some(p) => &*p.type_name,
                None => match url.strip_prefix("http://hl7.org/fhir/StructureDefinition/") {
                    Some(n) => n,
                    // An unknown target profile: its type cannot be told.
                    None => return,
                },
            };
            if matches!(name, "Resource" | "DomainResource") || name == ty {
                return;
            }
            allowed.push(name);
        }
        let msg = format!(
            "the type '{ty}' implied by the reference is not a valid target for this element (must be one of {})",
            allowed.join(", ")
        );
        self.path.push(Seg::Field("reference"));
        self.err(IssueType::Structure, msg);
        self.path.pop();
    }

    /// Whether the code(s) in `v` are in value set `vs`.
    pub fn membership(&self, vs: &str, v: &Value) -> Membership {
        let one = |system: Option<&str>, code: &str| match self.reg.member(vs, system, code) {
            Membership::Unknown => self.terms.member(vs, system, code),
            m => m,
        };
        let coding = |c: &Value| match c.get("code").and_then(Value::as_str) {
            Some(code) => one(c.get("system").and_then(Value::as_str), code),
            None => Membership::Unknown,
        };
        match v {
            Value::String(code) => one(None, code),
            Value::Object(o) if o.contains_key("coding") => {
                let verdicts: Vec<Membership> = o
                    .get("coding")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(coding)
                    .collect();
                if verdicts.iter().any(|m| *m != Membership::NotIn) || verdicts.is_empty() {
                    Membership::Unknown
                } else {
                    Membership::NotIn
                }
            }
            Value::Object(_) => coding(v),
            _ => Membership::Unknown,
        }
    }
}

/// `Patient` for `http://hl7.org/fhir/StructureDefinition/Patient`.
fn core_type(url: &str) -> Option<&str> {
    url.strip_prefix("http://hl7.org/fhir/StructureDefinition/")
        .filter(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))
}

fn push_values<'a>(out: &mut Vec<Item<'a>>, v: &'a Value, ty: Option<&'a ElemType>) {
    match v {
        Value::Array(a) => out.extend(a.iter().enumerate().filter(|(_, x)| !x.is_null()).map(
            |(i, value)| Item {
                value,
                ty,
                index: Some(i),
            },
        )),
        Value::Null => {}
        _ => out.push(Item {
            value: v,
            ty,
            index: None,
        }),
    }
}
