//! Extensions met during base validation: checked against their definition when it is known (value type,
//! nested extensions, cardinality: as a profile of `Extension`), including where the definition allows
//! the extension to be used (`StructureDefinition.context`).

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::conform::Checker;
use super::definitions::extension_pack_contexts;
use super::profile::{contexts_of, Context};
use super::registry::{Lookup, Profiles};
use super::terminology::Terminology;
use crate::fhir::outcome::{Issue, IssueType, Severity};

/// Where an extension is used: the element holding it.
#[derive(Debug, Clone, Copy)]
pub struct Site<'s> {
    /// The holder's element path (`Patient`, `Patient.name`, `Patient.contact`).
    pub path: &'s str,
    /// The holder's type (`Patient`, `HumanName`, `BackboneElement`, `date`).
    pub type_name: &'s str,
    /// Whether the holder is a resource's root.
    pub resource: bool,
    /// The URL of the extension holding this one, when nested.
    pub outer: Option<&'s str>,
    /// The holder's value, when it is an object (for `where(…)` contexts).
    pub holder: Option<&'s Value>,
    /// Whether the holder lies inside an example, fixed or pattern value of an ElementDefinition, where
    /// any extension may appear (it is data about other elements).
    pub in_definition_value: bool,
}

/// Checks one extension (a JSON object with a `url`) used at `site`; issues are located at `location`.
/// An unknown one is an error when `strict` (unless [`unknown_allowed`]), else a warning.
pub fn check(
    reg: &Profiles,
    terms: &Terminology,
    ext: &Value,
    site: &Site<'_>,
    location: String,
    strict: bool,
) -> Vec<Issue> {
    let Some(url) = ext.get("url").and_then(Value::as_str) else {
        return Vec::new();
    };
    let issue = |severity, code, diagnostics: String| Issue {
        severity,
        code,
        diagnostics,
        expression: vec![location.clone()],
    };
    match reg.lookup(url) {
        Lookup::Found(p) => {
            if &*p.type_name != "Extension" {
                return vec![issue(
                    Severity::Error,
                    IssueType::Structure,
                    format!(
                        "{url} is a profile of {}, not an extension definition",
                        p.type_name
                    ),
                )];
            }
            let mut out = Vec::new();
            // Core extensions are judged by the extension pack's contexts, as the HL7 validator
            // judges them (they differ from R4's both ways); one the pack lacks is not judged.
            let core = url.starts_with("http://hl7.org/fhir/StructureDefinition/");
            let contexts = if core {
                PACK.get(url).map(Vec::as_slice)
            } else {
                Some(p.contexts.as_slice())
            };
            let anywhere = site.in_definition_value;
            if let Some(contexts) = contexts.filter(|c| !anywhere && !allowed(c, site)) {
                out.push(issue(
                    Severity::Error,
                    IssueType::Structure,
                    format!(
                        "The extension {url} is not allowed to be used at this point (allowed = {})",
                        describe(contexts)
                    ),
                ));
            }
            let mut ck = Checker::new(reg, terms, location.clone());
            ck.conforms(p, ext);
            out.append(&mut ck.issues);
            out
        }
        Lookup::Broken(why) => vec![issue(
            Severity::Warning,
            IssueType::NotSupported,
            format!("the extension {url} has not been checked: {why}"),
        )],
        Lookup::Unknown if strict && !unknown_allowed(url) => vec![issue(
            Severity::Error,
            IssueType::Structure,
            format!("The extension {url} could not be found so is not allowed here"),
        )],
        Lookup::Unknown => vec![issue(
            Severity::Warning,
            IssueType::Informational,
            format!("unknown extension {url}"),
        )],
    }
}

/// Unknown extensions the HL7 validator lets through even when it rejects unknown ones
/// (`InstanceValidator.allowUnknownExtension`, with examples allowed): example and DICOM domains and HL7
/// tooling. All of HL7's namespace is added: that validator resolves its extensions from packages not
/// shipped here (the extension pack, cross-version extensions, IGs), so one unknown here may well be
/// defined.
pub fn unknown_allowed(url: &str) -> bool {
    url.contains("example.org")
        || url.contains("acme.com")
        || url.contains("nema.org")
        || url.starts_with("http://hl7.org/fhir/")
}

/// The extension pack's contexts of the core extensions, by URL, with the HL7 validator's corrections
/// (`InstanceValidator.fixContexts`): `regex` and `structuredefinition-fhir-type` are also allowed on
/// `ElementDefinition.type` (where R4's own definitions put them), `structuredefinition-normative-version`
/// and R4's `capabilitystatement-expectation`/`-prohibited` anywhere.
static PACK: LazyLock<HashMap<String, Vec<Context>>> = LazyLock::new(|| {
    const CORE: &str = "http://hl7.org/fhir/StructureDefinition/";
    extension_pack_contexts()
        .unwrap_or_default()
        .into_iter()
        .map(|(url, record)| {
            let mut contexts = contexts_of(&record);
            match url.strip_prefix(CORE).unwrap_or_default() {
                "regex" | "structuredefinition-fhir-type" => {
                    contexts.push(Context::Element("ElementDefinition.type".into()));
                }
                "structuredefinition-normative-version"
                | "capabilitystatement-expectation"
                | "capabilitystatement-prohibited" => {
                    contexts = vec![Context::Element("Element".into())];
                }
                _ => {}
            }
            (url, contexts)
        })
        .collect()
});

/// R4's canonical resources: what a `CanonicalResource` context (an R5 type the extension pack names)
/// means in R4 (the HL7 validator's `VersionUtilities.getCanonicalResourceNames`).
const CANONICAL_RESOURCES: &[&str] = &[
    "ActivityDefinition",
    "CapabilityStatement",
    "ChargeItemDefinition",
    "CodeSystem",
    "CompartmentDefinition",
    "ConceptMap",
    "EffectEvidenceSynthesis",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "GraphDefinition",
    "ImplementationGuide",
    "Library",
    "Measure",
    "MessageDefinition",
    "NamingSystem",
    "OperationDefinition",
    "PlanDefinition",
    "Questionnaire",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "RiskEvidenceSynthesis",
    "SearchParameter",
    "StructureDefinition",
    "StructureMap",
    "TerminologyCapabilities",
    "TestScript",
    "ValueSet",
];

/// Whether one of the contexts allows `site` (no contexts: anywhere).
fn allowed(contexts: &[Context], site: &Site<'_>) -> bool {
    contexts.is_empty()
        || contexts.iter().any(|c| match c {
            Context::FhirPath => true,
            Context::Where { path, field, value } => {
                (&**path == site.path || inherited_path(path, site.path))
                    && site
                        .holder
                        .and_then(|h| h.get(&**field))
                        .and_then(Value::as_str)
                        == Some(&**value)
            }
            Context::Extension(u) => site.outer == Some(&**u),
            Context::Element(e) => {
                let e = &**e;
                matches!(e, "Element" | "Any")
                    || e == site.type_name
                    || (site.resource
                        && matches!(e, "CanonicalResource" | "MetadataResource")
                        && CANONICAL_RESOURCES.contains(&site.type_name))
                    || e == site.path
                    || inherited_path(e, site.path)
                    || (site.resource && matches!(e, "Resource" | "DomainResource"))
                    || (e == "Extension" && site.outer.is_some())
            }
        })
}

/// `DomainResource.text` names `Patient.text`: a context on an element every resource inherits.
fn inherited_path(e: &str, path: &str) -> bool {
    let (Some((eh, et)), Some((_, pt))) = (e.split_once('.'), path.split_once('.')) else {
        return false;
    };
    matches!(eh, "Resource" | "DomainResource") && et == pt
}

fn describe(contexts: &[Context]) -> String {
    contexts
        .iter()
        .map(|c| match c {
            Context::Element(e) => format!("e:{e}"),
            Context::Extension(u) => format!("x:{u}"),
            Context::FhirPath | Context::Where { .. } => "fhirpath".to_owned(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::unknown_allowed;

    /// HL7 validator cases `pat-dob-ext` (rejected) and the example-domain cases (allowed).
    #[test]
    fn unknown_extensions_allowed_where_the_hl7_validator_allows_them() {
        assert!(!unknown_allowed(
            "http://validitron.unimelb.edu.au/fhir/StructureDefinition/age"
        ));
        assert!(!unknown_allowed("http://something"));
        assert!(unknown_allowed(
            "http://example.org/fhir/StructureDefinition/x"
        ));
        assert!(unknown_allowed(
            "http://hl7.org/fhir/StructureDefinition/obligation"
        ));
        assert!(unknown_allowed(
            "http://hl7.org/fhir/5.0/StructureDefinition/extension-Patient.x"
        ));
    }
}
