//! FHIR REST routes: turning a path under the FHIR base into an interaction (R4 §3.1.0), or refusing it.

use http::Method;

/// The FHIR RESTful interaction a request performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    /// `GET [base]/metadata`.
    Capabilities,
    /// `GET [base]/[type]/[id]`.
    Read,
    /// `GET [base]/[type]/[id]/_history/[vid]`.
    Vread,
    /// `PUT [base]/[type]/[id]`.
    Update,
    /// `PUT [base]/[type]?[search]`.
    ConditionalUpdate,
    /// `PATCH [base]/[type]/[id]`.
    Patch,
    /// `PATCH [base]/[type]?[search]`.
    ConditionalPatch,
    /// `DELETE [base]/[type]/[id]`.
    Delete,
    /// `DELETE [base]/[type]?[search]`.
    ConditionalDelete,
    /// `POST [base]/[type]`.
    Create,
    /// `GET [base]/[type]?…` or `POST [base]/[type]/_search`.
    SearchType,
    /// `GET [base]?…` or `POST [base]/_search`.
    SearchSystem,
    /// `GET [base]/[type]/[id]/[compartment-type]?…`.
    SearchCompartment,
    /// `GET [base]/[type]/[id]/_history`.
    HistoryInstance,
    /// `GET [base]/[type]/_history`.
    HistoryType,
    /// `GET [base]/_history`.
    HistorySystem,
    /// `POST [base]` with a batch or transaction Bundle.
    BatchOrTransaction,
    /// `[base]/$op`, `[base]/[type]/$op`, `[base]/[type]/[id]/$op` or on a version.
    Operation,
    /// A configured non-FHIR path the upstream hands out (e.g. a bulk-data status URL).
    Passthrough,
}

impl Interaction {
    /// A stable lowercase name, used as a metric label and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Interaction::Capabilities => "capabilities",
            Interaction::Read => "read",
            Interaction::Vread => "vread",
            Interaction::Update => "update",
            Interaction::ConditionalUpdate => "conditional-update",
            Interaction::Patch => "patch",
            Interaction::ConditionalPatch => "conditional-patch",
            Interaction::Delete => "delete",
            Interaction::ConditionalDelete => "conditional-delete",
            Interaction::Create => "create",
            Interaction::SearchType => "search-type",
            Interaction::SearchSystem => "search-system",
            Interaction::SearchCompartment => "search-compartment",
            Interaction::HistoryInstance => "history-instance",
            Interaction::HistoryType => "history-type",
            Interaction::HistorySystem => "history-system",
            Interaction::BatchOrTransaction => "batch-transaction",
            Interaction::Operation => "operation",
            Interaction::Passthrough => "passthrough",
        }
    }

    /// Whether the interaction carries a resource (or patch, or Bundle) body that the gateway must inspect.
    pub fn has_resource_body(self) -> bool {
        matches!(
            self,
            Interaction::Create
                | Interaction::Update
                | Interaction::ConditionalUpdate
                | Interaction::Patch
                | Interaction::ConditionalPatch
                | Interaction::BatchOrTransaction
        )
    }
}

/// A parsed route under the FHIR base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// What the request does.
    pub interaction: Interaction,
    /// The resource type in the path, if any.
    pub resource_type: Option<&'static str>,
    /// The logical id in the path, if any.
    pub id: Option<String>,
    /// The version id in the path, if any.
    pub version: Option<String>,
    /// The operation name without `$`, if any.
    pub operation: Option<String>,
}

/// Why a path or method is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// No FHIR interaction has this shape.
    #[error("no FHIR interaction matches this path")]
    UnknownRoute,
    /// The path names a type that is not an R4 resource type.
    #[error("'{0}' is not a FHIR R4 resource type")]
    UnknownType(String),
    /// The id or version id breaks R4's id rule.
    #[error("'{0}' is not a valid FHIR id ([A-Za-z0-9\\-\\.]{{1,64}})")]
    BadId(String),
    /// The path is known but not with this method.
    #[error("method {method} is not allowed here; allowed: {allowed}")]
    MethodNotAllowed {
        /// The request's method.
        method: Method,
        /// The methods this path accepts, comma-separated.
        allowed: &'static str,
    },
}

/// Every R4 (4.0.1) resource type, sorted for binary search.
pub const RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// The interned R4 resource type named `name`, if it is one.
pub fn resource_type(name: &str) -> Option<&'static str> {
    RESOURCE_TYPES
        .binary_search(&name)
        .ok()
        .map(|i| RESOURCE_TYPES[i])
}

/// R4 `id`: `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn check_id(s: &str) -> Result<String, RouteError> {
    if is_valid_id(s) {
        Ok(s.to_owned())
    } else {
        Err(RouteError::BadId(truncate(s, 80)))
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn type_of(segment: &str) -> Result<&'static str, RouteError> {
    resource_type(segment).ok_or_else(|| {
        if segment.starts_with(|c: char| c.is_ascii_uppercase()) {
            RouteError::UnknownType(truncate(segment, 80))
        } else {
            RouteError::UnknownRoute
        }
    })
}

fn op_name(segment: &str) -> Option<String> {
    segment
        .strip_prefix('$')
        .filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
}

const GET_POST: &str = "GET, HEAD, POST";
const READ_ONLY: &str = "GET, HEAD";

fn allow(method: &Method, allowed: &'static str, ok: &[Method]) -> Result<(), RouteError> {
    if ok.contains(method) || (method == Method::HEAD && ok.contains(&Method::GET)) {
        Ok(())
    } else {
        Err(RouteError::MethodNotAllowed {
            method: method.clone(),
            allowed,
        })
    }
}

impl Route {
    /// The route of a configured pass-through path; only reads and deletes are allowed there.
    pub fn passthrough(method: &Method, rest: &str) -> Result<Route, RouteError> {
        // No dot segments, encoded or not: the upstream would resolve them into some other route and
        // step around every check the gateway makes on FHIR routes.
        let lower = rest.to_ascii_lowercase();
        if rest.split('/').any(|seg| seg == "." || seg == "..")
            || lower.contains("%2e")
            || lower.contains("%2f")
            || lower.contains('\\')
        {
            return Err(RouteError::UnknownRoute);
        }
        allow(method, "GET, HEAD, DELETE", &[Method::GET, Method::DELETE])?;
        Ok(Route::new(Interaction::Passthrough, None))
    }

    fn new(interaction: Interaction, resource_type: Option<&'static str>) -> Self {
        Self {
            interaction,
            resource_type,
            id: None,
            version: None,
            operation: None,
        }
    }

    /// Parses `rest`, the path after the FHIR base (no leading slash, no query).
    pub fn parse(method: &Method, rest: &str, has_query: bool) -> Result<Route, RouteError> {
        use Interaction as I;
        let rest = rest.trim_end_matches('/');
        let segs: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let get = || allow(method, READ_ONLY, &[Method::GET]);
        let get_post = || allow(method, GET_POST, &[Method::GET, Method::POST]);
        let op = |s: &str| op_name(s).ok_or(RouteError::UnknownRoute);
        match segs.as_slice() {
            [] => match *method {
                Method::GET | Method::HEAD => Ok(Route::new(I::SearchSystem, None)),
                Method::POST => Ok(Route::new(I::BatchOrTransaction, None)),
                _ => Err(RouteError::MethodNotAllowed {
                    method: method.clone(),
                    allowed: GET_POST,
                }),
            },
            ["metadata"] => get().map(|_| Route::new(I::Capabilities, None)),
            ["_history"] => get().map(|_| Route::new(I::HistorySystem, None)),
            ["_search"] => {
                allow(method, "POST", &[Method::POST]).map(|_| Route::new(I::SearchSystem, None))
            }
            [s] if s.starts_with('$') => {
                get_post()?;
                Ok(Route {
                    operation: Some(op(s)?),
                    ..Route::new(I::Operation, None)
                })
            }
            [t] => {
                let t = type_of(t)?;
                let i = match (method.clone(), has_query) {
                    (Method::GET | Method::HEAD, _) => I::SearchType,
                    (Method::POST, _) => I::Create,
                    (Method::PUT, true) => I::ConditionalUpdate,
                    (Method::PATCH, true) => I::ConditionalPatch,
                    (Method::DELETE, true) => I::ConditionalDelete,
                    (m, _) => {
                        return Err(RouteError::MethodNotAllowed {
                            method: m,
                            allowed: "GET, HEAD, POST (PUT, PATCH, DELETE with search parameters)",
                        })
                    }
                };
                Ok(Route::new(i, Some(t)))
            }
            [t, "_search"] => {
                let t = type_of(t)?;
                get_post()?;
                Ok(Route::new(I::SearchType, Some(t)))
            }
            [t, "_history"] => {
                let t = type_of(t)?;
                get()?;
                Ok(Route::new(I::HistoryType, Some(t)))
            }
            [t, s] if s.starts_with('$') => {
                let t = type_of(t)?;
                get_post()?;
                Ok(Route {
                    operation: Some(op(s)?),
                    ..Route::new(I::Operation, Some(t))
                })
            }
            [t, id] => {
                let t = type_of(t)?;
                let id = check_id(id)?;
                let i = match *method {
                    Method::GET | Method::HEAD => I::Read,
                    Method::PUT => I::Update,
                    Method::PATCH => I::Patch,
                    Method::DELETE => I::Delete,
                    _ => {
                        return Err(RouteError::MethodNotAllowed {
                            method: method.clone(),
                            allowed: "GET, HEAD, PUT, PATCH, DELETE",
                        })
                    }
                };
                Ok(Route {
                    id: Some(id),
                    ..Route::new(i, Some(t))
                })
            }
            [t, id, "_history"] => {
                let t = type_of(t)?;
                let id = check_id(id)?;
                get()?;
                Ok(Route {
                    id: Some(id),
                    ..Route::new(I::HistoryInstance, Some(t))
                })
            }
            [t, id, s] if s.starts_with('$') => {
                let t = type_of(t)?;
                let id = check_id(id)?;
                get_post()?;
                Ok(Route {
                    id: Some(id),
                    operation: Some(op(s)?),
                    ..Route::new(I::Operation, Some(t))
                })
            }
            [t, id, c] => {
                let t = type_of(t)?;
                let id = check_id(id)?;
                if *c != "*" {
                    type_of(c)?;
                }
                get()?;
                Ok(Route {
                    id: Some(id),
                    ..Route::new(I::SearchCompartment, Some(t))
                })
            }
            [t, id, "_history", vid] => {
                let t = type_of(t)?;
                let (id, vid) = (check_id(id)?, check_id(vid)?);
                get()?;
                Ok(Route {
                    id: Some(id),
                    version: Some(vid),
                    ..Route::new(I::Vread, Some(t))
                })
            }
            [t, id, "_history", vid, s] if s.starts_with('$') => {
                let t = type_of(t)?;
                let (id, vid) = (check_id(id)?, check_id(vid)?);
                get_post()?;
                Ok(Route {
                    id: Some(id),
                    version: Some(vid),
                    operation: Some(op(s)?),
                    ..Route::new(I::Operation, Some(t))
                })
            }
            _ => Err(RouteError::UnknownRoute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Interaction as I;

    fn i(m: Method, p: &str, q: bool) -> Interaction {
        Route::parse(&m, p, q).unwrap().interaction
    }

    #[test]
    fn types_are_sorted() {
        assert!(RESOURCE_TYPES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(RESOURCE_TYPES.len(), 146);
    }

    #[test]
    fn interactions() {
        assert_eq!(i(Method::GET, "metadata", false), I::Capabilities);
        assert_eq!(i(Method::GET, "Patient/1", false), I::Read);
        assert_eq!(i(Method::GET, "Patient/1/_history/2", false), I::Vread);
        assert_eq!(i(Method::PUT, "Patient/1", false), I::Update);
        assert_eq!(i(Method::PUT, "Patient", true), I::ConditionalUpdate);
        assert_eq!(i(Method::PATCH, "Patient/1", false), I::Patch);
        assert_eq!(i(Method::DELETE, "Patient", true), I::ConditionalDelete);
        assert_eq!(i(Method::POST, "Patient", false), I::Create);
        assert_eq!(i(Method::POST, "Patient/_search", false), I::SearchType);
        assert_eq!(i(Method::GET, "", true), I::SearchSystem);
        assert_eq!(i(Method::POST, "", false), I::BatchOrTransaction);
        assert_eq!(i(Method::GET, "_history", false), I::HistorySystem);
        assert_eq!(i(Method::GET, "Patient/_history", false), I::HistoryType);
        assert_eq!(
            i(Method::GET, "Patient/1/_history", false),
            I::HistoryInstance
        );
        assert_eq!(
            i(Method::GET, "Patient/1/Observation", false),
            I::SearchCompartment
        );
        assert_eq!(i(Method::GET, "Patient/1/$everything", false), I::Operation);
        assert_eq!(i(Method::POST, "$convert", false), I::Operation);
        assert_eq!(
            i(Method::POST, "Patient/1/_history/2/$meta", false),
            I::Operation
        );
        assert_eq!(i(Method::GET, "Patient/", true), I::SearchType);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            Route::parse(&Method::GET, "Foo/1", false),
            Err(RouteError::UnknownType("Foo".into()))
        );
        assert_eq!(
            Route::parse(&Method::GET, "foo", false),
            Err(RouteError::UnknownRoute)
        );
        assert!(matches!(
            Route::parse(&Method::GET, "Patient/a_b", false),
            Err(RouteError::BadId(_))
        ));
        assert!(matches!(
            Route::parse(&Method::DELETE, "metadata", false),
            Err(RouteError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            Route::parse(&Method::PUT, "Patient", false),
            Err(RouteError::MethodNotAllowed { .. })
        ));
        assert_eq!(
            Route::parse(&Method::GET, "a/b/c/d/e/f", false),
            Err(RouteError::UnknownRoute)
        );
        assert_eq!(
            Route::parse(&Method::GET, "$", false),
            Err(RouteError::UnknownRoute)
        );
    }
}
