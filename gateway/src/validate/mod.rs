//! Base FHIR R4 validation driven by the StructureDefinitions: structure, cardinality, types, primitive
//! formats, required bindings, fixed/pattern values and `maxLength`.
//!
//! The definitions are embedded in the binary ([`definitions`]) and compiled once into per-type element
//! trees ([`model`]); a validation is one walk over the resource's JSON ([`walk`]) that allocates only
//! when it finds an issue. Issues carry HL7-style FHIRPath locations
//! (`Bundle.entry[0].resource/*Patient/p1*/.name[0].given[1]`).
//!
//! ```
//! use anchorgate::validate::{is_valid, Validator};
//! let patient = serde_json::json!({"resourceType": "Patient", "gender": "female"});
//! assert!(is_valid(&Validator::r4().validate(&patient)));
//! ```
//!
//! Profiles ([`profile`], [`conform`], [`slicing`]): every known profile in `meta.profile` and those
//! asked for in [`ValidateOptions`] are checked too, and extensions against their definitions and
//! contexts ([`extension`]). The embedded R4 core and IPS profiles are known; more can be loaded at run
//! time ([`definitions::Definitions::load_path`]) into an overlay over the shared base
//! ([`Validator::with_definitions`]), which compiles only the new profiles.
//!
//! ```
//! use anchorgate::validate::{is_valid, ValidateOptions, Validator};
//! let patient = serde_json::json!({"resourceType": "Patient"});
//! let ips = ValidateOptions::with_profile("http://hl7.org/fhir/uv/ips/StructureDefinition/Patient-uv-ips");
//! assert!(!is_valid(&Validator::r4().validate_with(&patient, &ips))); // IPS requires a name, …
//! ```
//!
//! FHIRPath invariants (`constraint`) are checked per element ([`invariant`]): natively for a few,
//! by the `rh-fhirpath` engine for the rest, best-practice ones only with
//! [`ValidateOptions::best_practice`]. Bundles are checked as a whole ([`bundle`]); HL7's R4 JSON Schema
//! is an optional second opinion ([`schema`]).
//!
//! Optional, as the HL7 validator's defaults but off on the write path: unknown extensions as errors
//! ([`ValidateOptions::strict_extensions`]) and Coding display checks ([`displays`]).
//!
//! Not checked: references are not resolved outside Bundles (so `resolve()` discriminators and target
//! profiles beyond the type are not), and bindings weaker than `required` are not enforced.

pub mod bundle;
pub mod conform;
pub mod definitions;
pub mod displays;
pub mod enforce;
pub mod extension;
pub mod invariant;
pub mod limits;
pub mod model;
pub mod narrative_control;
pub mod narrative_links;
pub mod patch;
pub mod patch_budget;
pub mod path;
pub mod primitive;
pub mod profile;
pub mod profile_constraints;
pub mod registry;
pub mod schema;
pub mod slicing;
pub mod snapshot;
pub mod structure_definition;
pub mod terminology;
pub mod value_absence;
pub mod values;
pub mod valueset;
pub mod walk;
pub mod xhtml;

use std::sync::{Arc, LazyLock};

use serde_json::Value;

use crate::fhir::outcome::{Issue, IssueType, OperationOutcome, Severity};
use definitions::Definitions;
use model::Model;
use registry::{Lookup, Profiles};
use terminology::Terminology;

/// Compiled definitions, ready to validate against. `Send + Sync`; build once, share.
#[derive(Debug)]
pub struct Validator {
    pub(crate) model: Arc<Model>,
    terms: Arc<Terminology>,
    /// Compiled profiles and extension definitions (an overlay's own, over the base's).
    profiles: Arc<Profiles>,
    /// Why the definitions could not be loaded, if they could not: then every validation says so.
    broken: Option<String>,
}

/// What to validate a resource against besides the base specification and its `meta.profile`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ValidateOptions {
    /// Canonical URLs (`|version` ignored) of profiles the resource must conform to. An unknown one is
    /// an error issue: the caller asked for it ([`Validator::knows_profile`] tells beforehand).
    pub profiles: Vec<String>,
    /// Also run the R4 JSON Schema ([`schema`]) as a second opinion when the walk finds no error.
    /// About 1.5× the cost of the walk (see `docs/performance.md`), so off on the write path unless
    /// configured; `$validate` and the CLI turn it on.
    pub json_schema: bool,
    /// Also check best-practice (`severity: warning`) invariants such as `dom-6` ("a resource should
    /// have narrative"). They only ever add warnings, so the write path leaves them off.
    pub best_practice: bool,
    /// Reject extensions with no known definition, as the HL7 validator does by default
    /// (`anyExtensionsAllowed` off): except in example domains (`example.org`, `acme.com`), `nema.org`,
    /// HL7 tooling URLs, and HL7's own namespace, whose extensions mostly live in an extension pack this
    /// validator does not ship. Off by default: real feeds (Synthea, US Core) carry extensions of their
    /// own, which the write path lets through with a warning.
    pub strict_extensions: bool,
    /// Check each Coding's display against its code system (R4's), as the HL7 validator does ("Wrong
    /// Display Name" errors), accepting too what a checked profile's bound value set offers. Off by
    /// default: a wrong display does not change what the data means.
    pub check_displays: bool,
}

impl ValidateOptions {
    /// These options, with best-practice invariants on or off.
    pub fn best_practice(mut self, on: bool) -> Self {
        self.best_practice = on;
        self
    }

    /// These options, with unknown extensions rejected (see [`Self::strict_extensions`]) or allowed.
    pub fn strict_extensions(mut self, on: bool) -> Self {
        self.strict_extensions = on;
        self
    }

    /// These options, with Coding displays checked (see [`Self::check_displays`]) or not.
    pub fn check_displays(mut self, on: bool) -> Self {
        self.check_displays = on;
        self
    }

    /// These options, with the JSON Schema second opinion on or off.
    pub fn json_schema(mut self, on: bool) -> Self {
        self.json_schema = on;
        self
    }

    /// Options asking for one profile.
    pub fn with_profile(url: impl Into<String>) -> Self {
        Self {
            profiles: vec![url.into()],
            ..Self::default()
        }
    }

    /// Options asking for these profiles.
    pub fn with_profiles<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        Self {
            profiles: urls.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

static R4: LazyLock<Validator> = LazyLock::new(|| match Definitions::r4() {
    Ok(mut defs) => match Definitions::ips() {
        Ok(ips) => {
            defs.merge(ips);
            Validator::from_definitions(&defs)
        }
        Err(e) => Validator {
            broken: Some(e.to_string()),
            ..Validator::from_definitions(&defs)
        },
    },
    Err(e) => Validator {
        broken: Some(e.to_string()),
        ..Validator::from_definitions(&Definitions::default())
    },
});

impl Validator {
    /// The base R4 validator over the embedded definitions (R4 core, its profiles and extensions, IPS
    /// 2.0.0), compiled on first use.
    pub fn r4() -> &'static Validator {
        &R4
    }

    /// Compiles a validator from loaded definitions (base types and profiles alike).
    pub fn from_definitions(defs: &Definitions) -> Self {
        let model = Model::compile(defs);
        let terms = Terminology::compile(defs, &model);
        let profiles = Profiles::compile(defs, None);
        Self {
            model: Arc::new(model),
            terms: Arc::new(terms),
            profiles: Arc::new(profiles),
            broken: None,
        }
    }

    /// The compiled element trees (for tools that need the shape of the data, e.g. patching).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// This validator plus `extra` profiles, extension definitions, ValueSets and CodeSystems, compiled
    /// on top of it (base types are shared, not compiled again; StructureDefinitions without a snapshot
    /// get one generated from their base). Cheap enough to build per request or per test case.
    pub fn with_definitions(&self, extra: &Definitions) -> Validator {
        Validator {
            model: Arc::clone(&self.model),
            terms: Arc::clone(&self.terms),
            profiles: Arc::new(Profiles::compile(extra, Some(Arc::clone(&self.profiles)))),
            broken: self.broken.clone(),
        }
    }

    /// Whether a profile with this canonical URL is known and usable.
    pub fn knows_profile(&self, url: &str) -> bool {
        matches!(self.profiles.lookup(url), Lookup::Found(_))
    }

    /// The resource or data type a known, usable profile constrains.
    pub fn profile_type(&self, url: &str) -> Option<String> {
        match self.profiles.lookup(url) {
            Lookup::Found(p) => Some(p.type_name.to_string()),
            _ => None,
        }
    }

    /// Why a known profile cannot be used (no snapshot, and none could be generated), if so.
    pub fn profile_problem(&self, url: &str) -> Option<String> {
        match self.profiles.lookup(url) {
            Lookup::Broken(why) => Some(why.to_owned()),
            _ => None,
        }
    }

    /// Validates one resource (FHIR JSON form) against the base specification and the known profiles
    /// in its (and its nested resources') `meta.profile`, returning every error and warning found.
    pub fn validate(&self, resource: &Value) -> OperationOutcome {
        self.validate_with(resource, &ValidateOptions::default())
    }

    /// [`Self::validate`], and against the profiles in `options` too.
    pub fn validate_with(&self, resource: &Value, options: &ValidateOptions) -> OperationOutcome {
        if let Some(why) = &self.broken {
            return OperationOutcome::single(Issue {
                severity: Severity::Fatal,
                code: IssueType::Exception,
                diagnostics: format!("the validator's definitions cannot be loaded: {why}"),
                expression: Vec::new(),
            });
        }
        let mut walker = walk::Walker::new(&self.model, &self.terms).with_profiles(&self.profiles);
        walker.best_practice = options.best_practice;
        walker.strict_extensions = options.strict_extensions;
        walker.check_displays = options.check_displays;
        walker.resource(resource, true);
        let mut issues = walker.issues;
        let claimed = resource.pointer("/meta/profile").and_then(Value::as_array);
        let checked: Vec<&str> = options
            .profiles
            .iter()
            .map(String::as_str)
            .chain(claimed.into_iter().flatten().filter_map(Value::as_str))
            .collect();
        issues.extend(
            walker
                .display_findings
                .iter()
                .filter(|f| {
                    !checked
                        .iter()
                        .any(|u| displays::offered_by(&self.profiles, u, f))
                })
                .map(displays::Finding::issue),
        );
        let root = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        issues.extend(self.profile_issues(resource, &options.profiles, root));
        match root {
            "Bundle" => issues.extend(bundle::check(resource, root)),
            "StructureDefinition" => issues.extend(structure_definition::check(
                &self.profiles,
                &self.model,
                resource,
            )),
            _ => {}
        }
        let mut outcome = OperationOutcome { issues };
        if options.json_schema && is_valid(&outcome) {
            // Only where the walk found nothing: a schema error then is a disagreement worth seeing,
            // not a second report of something already refused.
            outcome.issues.extend(schema::check(resource));
        }
        outcome
    }

    /// The issues of `resource` (located at `location`) against the profiles `urls` only, without the
    /// base checks; an unknown profile is an error.
    pub fn profile_issues(&self, resource: &Value, urls: &[String], location: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        for url in urls {
            check_profile(
                &self.profiles,
                &self.terms,
                resource,
                url,
                location,
                true,
                &mut issues,
            );
        }
        issues
    }
}

/// Checks `resource` against the profile `url`. One that cannot be checked is an error when it was
/// `requested` (the caller asked for it), and a warning when the resource only names it in
/// `meta.profile`, as the HL7 validator gives.
fn check_profile(
    reg: &Profiles,
    terms: &Terminology,
    resource: &Value,
    url: &str,
    location: &str,
    requested: bool,
    issues: &mut Vec<Issue>,
) {
    let (severity, code, why) = match reg.lookup(url) {
        Lookup::Found(p) => {
            let mut ck = conform::Checker::new(reg, terms, location.to_owned());
            profile_root(&mut ck, p, resource);
            issues.append(&mut ck.issues);
            return;
        }
        Lookup::Broken(why) if requested => (
            Severity::Error,
            IssueType::NotSupported,
            format!("profile {url} cannot be used: {why}"),
        ),
        Lookup::Broken(why) => (
            Severity::Warning,
            IssueType::NotSupported,
            format!("Profile reference '{url}' has not been checked: {why}"),
        ),
        Lookup::Unknown if requested => (
            Severity::Error,
            IssueType::NotFound,
            format!("profile {url} is unknown"),
        ),
        Lookup::Unknown => (
            Severity::Warning,
            IssueType::NotSupported,
            format!("Profile reference '{url}' has not been checked because it is unknown"),
        ),
    };
    issues.push(Issue {
        severity,
        code,
        diagnostics: why,
        expression: vec![location.to_owned()],
    });
}

/// Checks a resource against a profile: first that the profile is for its type.
fn profile_root<'a>(ck: &mut conform::Checker<'a>, p: &'a profile::Profile, resource: &'a Value) {
    let rt = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if *p.type_name != *rt {
        ck.report(
            Severity::Error,
            IssueType::Structure,
            format!("the profile {} is for {}, not {rt}", p.url, p.type_name),
        );
        return;
    }
    ck.conforms(p, resource);
}

/// Checks a resource against the known profiles its `meta.profile` names; unknown ones are a warning, as
/// the HL7 validator gives.
fn meta_profiles(
    reg: &Profiles,
    terms: &Terminology,
    resource: &Value,
    location: String,
    issues: &mut Vec<Issue>,
) {
    let Some(urls) = resource.pointer("/meta/profile").and_then(Value::as_array) else {
        return;
    };
    for url in urls.iter().filter_map(Value::as_str) {
        check_profile(reg, terms, resource, url, &location, false, issues);
    }
}

/// Whether an outcome has no `error` or `fatal` issue.
pub fn is_valid(outcome: &OperationOutcome) -> bool {
    !outcome
        .issues
        .iter()
        .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
}

#[cfg(test)]
mod tests;
