//! The facts a decision reads: of the request (who, why, what kind of action, when) and of one resource
//! (type, id, labels, codes, clinically relevant date, references).
//!
//! [`ResourceFacts`] borrows the resource and computes its codes, date and references only when a
//! provision asks for them, so filtering a search whose consents test only labels costs no tree walk.

use std::cell::OnceCell;

use serde_json::Value;

use super::time::Interval;
use crate::fhir::reference::local_reference;

/// v3-Confidentiality, the code system of the `R` (restricted) label cross-border rules read.
pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const CONFIDENTIALITY_OID: &str = "urn:oid:2.16.840.1.113883.5.25";

/// What a request does with the data it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// read, vread, search, history, `$everything`: matches consent actions `access`, `use`, `disclose`.
    Read,
    /// create, update, patch, delete: matches consent action `correct`.
    Write,
}

/// Everything about the request a decision reads, all references in `Type/id` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// A stable id of the principal for organisation policies: its `fhirUser` when it has one,
    /// otherwise something like `client/<client_id>`.
    pub principal: String,
    /// The principal's `fhirUser` (e.g. `Practitioner/prac-a`), when the token names one.
    pub fhir_user: Option<String>,
    /// The principal's organisation (e.g. `Organization/org-h1`).
    pub organization: Option<String>,
    /// The Groups the principal (its `fhirUser`) is a member of (e.g. `Group/grp-btg`).
    pub groups: Vec<String>,
    /// The purpose of use the request acts under: a v3-ActReason code such as `TREAT`; `None` when the
    /// request names none.
    pub purpose: Option<String>,
    /// Read-like or write.
    pub action: ActionKind,
    /// Now, in Unix seconds: consent and provision periods are judged against it.
    pub now: i64,
    /// The principal's country (ISO 3166 alpha-2) from the partner registry; `None` when unknown, which
    /// organisation policies treat as not the home country.
    pub country: Option<String>,
}

/// A coding as `(system, code)`, borrowed from a resource.
pub type CodingRef<'a> = (Option<&'a str>, &'a str);

/// The facts of one resource, borrowed from its JSON.
#[derive(Debug)]
pub struct ResourceFacts<'a> {
    resource: &'a Value,
    resource_type: &'a str,
    id: Option<&'a str>,
    codes: OnceCell<Vec<CodingRef<'a>>>,
    date: OnceCell<Option<Interval>>,
    references: OnceCell<Vec<&'a str>>,
    authors: OnceCell<Vec<&'a str>>,
}

/// A resource without a `resourceType` cannot be judged (and is denied by callers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the resource has no resourceType")]
pub struct NoResourceType;

/// The elements whose codings a provision's `code` is matched against: the ones that say what a
/// resource is (its code, category, type or class). `reasonCode` and `value[x]` are left out: a consent
/// that permits one code should not permit whatever was ordered *because of* it.
const CODE_ELEMENTS: &[&str] = &[
    "code",
    "category",
    "type",
    "class",
    "vaccineCode",
    "medicationCodeableConcept",
];

/// Elements naming who authored a resource, for `data.meaning = authoredby`.
const AUTHOR_ELEMENTS: &[&str] = &[
    "author",
    "performer",
    "recorder",
    "asserter",
    "requester",
    "sender",
    "enterer",
    "informationSource",
];

/// Whether a decision on a `resource_type` resource can read a top-level element (by name): its type,
/// id and labels, what it is, who authored it and when it happened. References anywhere in it are
/// read only for `data` provisions ([`super::RequestEvaluation::reads_all_references`]).
pub fn element_reader(resource_type: &str) -> impl Fn(&str) -> bool {
    let dates = date_elements(resource_type);
    move |name| {
        matches!(name, "resourceType" | "id" | "meta")
            || CODE_ELEMENTS.contains(&name)
            || AUTHOR_ELEMENTS.contains(&name)
            || dates.iter().any(|e| {
                let head = e.split('.').next().unwrap_or_default();
                match head.strip_suffix("[x]") {
                    // A choice element: `effective[x]` is `effectiveDateTime`, `effectivePeriod`, ...
                    Some(stem) => name
                        .strip_prefix(stem)
                        .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_uppercase())),
                    None => head == name,
                }
            })
    }
}

/// The clinically relevant date of a resource for `dataPeriod`, by type: the first element present
/// that holds a date, dateTime, instant or Period. `x` suffixes are choice elements (`effective[x]`:
/// `effectiveDateTime`, `effectivePeriod`, `effectiveInstant`); dotted names are nested. Types not
/// listed use the fallback list. Patient, Practitioner and other undated types have none, so a
/// `dataPeriod` condition is unknown for them (see `engine`).
fn date_elements(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Observation" | "DiagnosticReport" => &["effective[x]", "issued"],
        "Condition" | "AllergyIntolerance" => &["onset[x]", "recordedDate"],
        "Encounter" | "EpisodeOfCare" | "CareTeam" | "Coverage" | "Flag" | "MeasureReport"
        | "ResearchSubject" => &["period"],
        "Account" => &["servicePeriod"],
        "Procedure" => &["performed[x]"],
        "MedicationRequest" | "RequestGroup" => &["authoredOn"],
        "ServiceRequest" | "DeviceRequest" | "CommunicationRequest" | "SupplyRequest" => {
            &["occurrence[x]", "authoredOn"]
        }
        "MedicationStatement" => &["effective[x]", "dateAsserted"],
        "MedicationAdministration" | "ClinicalImpression" => &["effective[x]", "date"],
        "MedicationDispense" => &["whenHandedOver", "whenPrepared"],
        "Immunization" => &["occurrence[x]", "recorded"],
        "ImmunizationEvaluation"
        | "ImmunizationRecommendation"
        | "Composition"
        | "List"
        | "FamilyMemberHistory"
        | "Invoice" => &["date"],
        "CarePlan" => &["period", "created"],
        "Goal" => &["start[x]", "statusDate"],
        "DocumentReference" => &["context.period", "date"],
        "DocumentManifest"
        | "Basic"
        | "CoverageEligibilityRequest"
        | "EnrollmentRequest"
        | "ClaimResponse" => &["created"],
        "Claim" | "ExplanationOfBenefit" => &["billablePeriod", "created"],
        "ImagingStudy" => &["started"],
        "Specimen" => &["collection.collected[x]", "receivedTime"],
        "QuestionnaireResponse" => &["authored"],
        "Communication" => &["sent", "received"],
        "Appointment" => &["start"],
        "RiskAssessment" | "ChargeItem" | "SupplyDelivery" => &["occurrence[x]"],
        "DetectedIssue" => &["identified[x]"],
        "AdverseEvent" => &["date", "recordedDate"],
        "Media" => &["created[x]", "issued"],
        "Provenance" => &["occurred[x]", "recorded"],
        "AuditEvent" => &["recorded"],
        "Consent" => &["dateTime"],
        "DeviceUseStatement" => &["timing[x]", "recordedOn"],
        "NutritionOrder" => &["dateTime"],
        "VisionPrescription" => &["dateWritten"],
        "Task" => &["executionPeriod", "authoredOn"],
        "Patient" | "RelatedPerson" | "Person" | "Practitioner" | "PractitionerRole"
        | "Organization" | "Group" | "BodyStructure" | "Location" | "Device" | "Medication"
        | "Substance" | "MolecularSequence" | "Schedule" | "Slot" => &[],
        _ => &[
            "effective[x]",
            "occurrence[x]",
            "period",
            "date",
            "issued",
            "recorded",
            "created",
            "authoredOn",
        ],
    }
}

/// The choice-type suffixes of `x` elements that carry a time.
const TIME_SUFFIXES: &[&str] = &["DateTime", "Period", "Instant", "Date"];

impl<'a> ResourceFacts<'a> {
    /// Facts of `resource`, which must have a `resourceType`.
    pub fn new(resource: &'a Value) -> Result<Self, NoResourceType> {
        let resource_type = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or(NoResourceType)?;
        Ok(Self {
            resource,
            resource_type,
            id: resource.get("id").and_then(Value::as_str),
            codes: OnceCell::new(),
            date: OnceCell::new(),
            references: OnceCell::new(),
            authors: OnceCell::new(),
        })
    }

    /// The resource type.
    pub fn resource_type(&self) -> &'a str {
        self.resource_type
    }

    /// The logical id, when the resource has one.
    pub fn id(&self) -> Option<&'a str> {
        self.id
    }

    /// Whether this resource is `Type/id`.
    pub fn is(&self, local: &str) -> bool {
        match (self.id, local.split_once('/')) {
            (Some(id), Some((t, i))) => t == self.resource_type && i == id,
            _ => false,
        }
    }

    /// `meta.security`, as codings.
    pub fn security(&self) -> impl Iterator<Item = CodingRef<'a>> + 'a {
        self.meta_array("security").filter_map(coding)
    }

    /// `meta.profile`, without `|version`.
    pub fn profiles(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.meta_array("profile")
            .filter_map(Value::as_str)
            .map(|p| p.split_once('|').map_or(p, |(u, _)| u))
    }

    /// The v3-Confidentiality codes of `meta.security` (`N`, `R`, ...).
    pub fn confidentiality(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.security()
            .filter(|(s, _)| matches!(*s, Some(CONFIDENTIALITY | CONFIDENTIALITY_OID)))
            .map(|(_, c)| c)
    }

    fn meta_array(&self, key: &str) -> impl Iterator<Item = &'a Value> + 'a {
        self.resource
            .get("meta")
            .and_then(|m| m.get(key))
            .and_then(Value::as_array)
            .map(|a| a.iter())
            .into_iter()
            .flatten()
    }

    /// The codings of the elements that say what the resource is (see `CODE_ELEMENTS`).
    pub fn codes(&self) -> &[CodingRef<'a>] {
        self.codes.get_or_init(|| {
            let mut out = Vec::new();
            for name in CODE_ELEMENTS {
                if let Some(v) = self.resource.get(*name) {
                    codings_of(v, &mut out);
                }
            }
            out
        })
    }

    /// The clinically relevant date (see `date_elements`), `None` when the resource has none.
    pub fn date(&self) -> Option<Interval> {
        *self.date.get_or_init(|| {
            date_elements(self.resource_type)
                .iter()
                .find_map(|e| date_of(self.resource, e))
        })
    }

    /// Every literal reference in the resource, as `Type/id`.
    pub fn references(&self) -> &[&'a str] {
        self.references.get_or_init(|| {
            let mut out = Vec::new();
            references_in(self.resource, &mut out);
            out
        })
    }

    /// References in the author-like elements (see `AUTHOR_ELEMENTS`), as `Type/id`.
    pub fn authors(&self) -> &[&'a str] {
        self.authors.get_or_init(|| {
            let mut out = Vec::new();
            for name in AUTHOR_ELEMENTS {
                if let Some(v) = self.resource.get(*name) {
                    references_in(v, &mut out);
                }
            }
            out
        })
    }
}

fn coding(v: &Value) -> Option<CodingRef<'_>> {
    let code = v.get("code")?.as_str()?;
    Some((v.get("system").and_then(Value::as_str), code))
}

/// Codings of a CodeableConcept, a Coding, or an array of either.
fn codings_of<'a>(v: &'a Value, out: &mut Vec<CodingRef<'a>>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| codings_of(i, out)),
        Value::Object(obj) => {
            if let Some(Value::Array(cs)) = obj.get("coding") {
                out.extend(cs.iter().filter_map(coding));
            } else if let Some(c) = coding(v) {
                out.push(c);
            }
        }
        _ => {}
    }
}

fn date_of(resource: &Value, element: &str) -> Option<Interval> {
    let (parent, name) = match element.rsplit_once('.') {
        Some((path, name)) => (
            path.split('.').try_fold(resource, |v, seg| v.get(seg))?,
            name,
        ),
        None => (resource, element),
    };
    let obj = parent.as_object()?;
    match name.strip_suffix("[x]") {
        Some(base) => TIME_SUFFIXES.iter().find_map(|suffix| {
            let v = obj.get(&format!("{base}{suffix}"))?;
            time_value(v)
        }),
        None => time_value(obj.get(name)?),
    }
}

fn time_value(v: &Value) -> Option<Interval> {
    match v {
        Value::String(s) => Interval::parse(s),
        Value::Object(_) => Interval::from_period(v),
        _ => None,
    }
}

fn references_in<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| references_in(i, out)),
        Value::Object(obj) => {
            for (k, child) in obj {
                match child {
                    Value::String(s) if k == "reference" => {
                        if let Some(r) = local_reference(s) {
                            out.push(r);
                        }
                    }
                    Value::Array(_) | Value::Object(_) => references_in(child, out),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_codes_and_profiles() {
        let r = json!({"resourceType": "Observation", "id": "o1",
            "meta": {"security": [{"system": CONFIDENTIALITY, "code": "R"}, {"system": "x", "code": "HIV"}],
                     "profile": ["http://p/StructureDefinition/a|1.0"]},
            "category": [{"coding": [{"system": "cat", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}], "text": "Glucose"},
            "valueCodeableConcept": {"coding": [{"system": "s", "code": "v"}]}});
        let f = ResourceFacts::new(&r).unwrap();
        assert!(f.is("Observation/o1"));
        assert!(!f.is("Condition/o1"));
        assert_eq!(f.confidentiality().collect::<Vec<_>>(), vec!["R"]);
        assert_eq!(
            f.profiles().collect::<Vec<_>>(),
            vec!["http://p/StructureDefinition/a"]
        );
        assert_eq!(
            f.codes(),
            &[
                (Some("http://loinc.org"), "2339-0"),
                (Some("cat"), "laboratory")
            ]
        );
        let enc = json!({"resourceType": "Encounter", "class": {"system": "v3", "code": "AMB"}});
        assert_eq!(
            ResourceFacts::new(&enc).unwrap().codes(),
            &[(Some("v3"), "AMB")]
        );
        assert_eq!(
            ResourceFacts::new(&json!({"id": "x"})).unwrap_err(),
            NoResourceType
        );
    }

    #[test]
    fn dates_by_type() {
        let d = |v: Value| ResourceFacts::new(&v).unwrap().date();
        let day = Interval::parse("2022-05-01").unwrap();
        assert_eq!(
            d(json!({"resourceType": "Observation", "effectiveDateTime": "2022-05-01"})),
            Some(day)
        );
        assert_eq!(
            d(json!({"resourceType": "Observation", "issued": "2022-05-01T00:00:00Z"})),
            Interval::parse("2022-05-01T00:00:00Z")
        );
        assert_eq!(
            d(
                json!({"resourceType": "Encounter", "period": {"start": "2022-05-01", "end": "2022-05-01"}})
            ),
            Some(day)
        );
        assert_eq!(
            d(
                json!({"resourceType": "Condition", "onsetAge": {"value": 3}, "recordedDate": "2022-05-01"})
            ),
            Some(day)
        );
        assert_eq!(
            d(
                json!({"resourceType": "DocumentReference", "context": {"period": {"start": "2022-05-01", "end": "2022-05-01"}}})
            ),
            Some(day)
        );
        assert_eq!(
            d(json!({"resourceType": "Patient", "birthDate": "1970-01-01"})),
            None
        );
        assert_eq!(
            d(json!({"resourceType": "NewThing", "date": "2022-05-01"})),
            Some(day)
        );
    }

    #[test]
    fn references_and_authors() {
        let r = json!({"resourceType": "Condition", "id": "c",
            "subject": {"reference": "Patient/p"}, "encounter": {"reference": "https://h/fhir/Encounter/e/_history/2"},
            "asserter": {"reference": "Practitioner/a"}, "contained": [{"resourceType": "X", "id": "#y"}],
            "evidence": [{"detail": [{"reference": "#y"}, {"reference": "Observation/o"}]}]});
        let f = ResourceFacts::new(&r).unwrap();
        assert_eq!(
            f.references(),
            &[
                "Patient/p",
                "Encounter/e",
                "Practitioner/a",
                "Observation/o"
            ]
        );
        assert_eq!(f.authors(), &["Practitioner/a"]);
    }
}
