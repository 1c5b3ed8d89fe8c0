//! Profile validation: embedded IPS profiles, loaded differential-only profiles (snapshot generation,
//! slicing), extension definitions and contexts, and `meta.profile` handling.

use serde_json::{json, Value};

use crate::validate::definitions::Definitions;
use crate::validate::{is_valid, ValidateOptions, Validator};

const IPS_PATIENT: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Patient-uv-ips";

fn overlay(resources: Vec<Value>) -> Validator {
    let mut defs = Definitions::default();
    for r in resources {
        defs.add(r);
    }
    Validator::r4().with_definitions(&defs)
}

fn errors(v: &Validator, r: &Value, profiles: &[&str]) -> Vec<String> {
    let o = ValidateOptions::with_profiles(profiles.iter().copied());
    let out = v.validate_with(r, &o);
    assert_eq!(
        is_valid(&out),
        out.issues.iter().all(|i| !matches!(
            i.severity,
            crate::fhir::Severity::Error | crate::fhir::Severity::Fatal
        ))
    );
    out.issues
        .into_iter()
        .filter(|i| matches!(i.severity, crate::fhir::Severity::Error))
        .map(|i| format!("{} {}", i.expression.join(","), i.diagnostics))
        .collect()
}

#[test]
fn ips_patient_profile() {
    let v = Validator::r4();
    assert!(v.knows_profile(IPS_PATIENT));
    let bare = json!({"resourceType": "Patient"});
    let errs = errors(v, &bare, &[IPS_PATIENT]);
    assert!(errs.iter().any(|e| e.contains("Patient.name")), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("Patient.birthDate")),
        "{errs:?}"
    );
    let good =
        json!({"resourceType": "Patient", "name": [{"family": "Ng"}], "birthDate": "1970-01-01"});
    assert_eq!(errors(v, &good, &[IPS_PATIENT]), Vec::<String>::new());
    // Through meta.profile too.
    let meta = json!({"resourceType": "Patient", "meta": {"profile": [IPS_PATIENT]}});
    assert!(!is_valid(&v.validate(&meta)));
}

#[test]
fn unknown_profiles() {
    let v = Validator::r4();
    let r = json!({"resourceType": "Patient", "meta": {"profile": ["http://example.org/nope"]}});
    let out = v.validate(&r);
    assert!(is_valid(&out));
    assert!(out.issues[0]
        .diagnostics
        .contains("has not been checked because it is unknown"));
    assert!(!errors(
        v,
        &json!({"resourceType": "Patient"}),
        &["http://example.org/nope"]
    )
    .is_empty());
    let wrong_type = errors(
        v,
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
        &[IPS_PATIENT],
    );
    assert!(!wrong_type.is_empty());
}

fn sliced_profile() -> Value {
    json!({"resourceType": "StructureDefinition", "url": "http://example.org/sd/p", "type": "Patient",
    "kind": "resource", "abstract": false, "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
    "differential": {"element": [
        {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1,
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "closed"}},
        {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1, "max": "1"},
        {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "fixedUri": "urn:mrn"},
        {"id": "Patient.identifier:mrn.value", "path": "Patient.identifier.value", "min": 1},
        {"id": "Patient.gender", "path": "Patient.gender", "max": "0"}
    ]}})
}

#[test]
fn differential_profile_with_slicing() {
    let v = overlay(vec![sliced_profile()]);
    let p = ["http://example.org/sd/p"];
    let good =
        json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "1"}]});
    assert_eq!(errors(&v, &good, &p), Vec::<String>::new());
    let none = json!({"resourceType": "Patient"});
    assert!(!errors(&v, &none, &p).is_empty());
    let other = json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "1"}, {"system": "urn:x", "value": "2"}]});
    let errs = errors(&v, &other, &p);
    assert!(errs.iter().any(|e| e.contains("closed")), "{errs:?}");
    let two = json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "1"}, {"system": "urn:mrn", "value": "2"}]});
    assert!(errors(&v, &two, &p)
        .iter()
        .any(|e| e.contains("max allowed = 1")));
    let no_value = json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn"}]});
    assert!(errors(&v, &no_value, &p)
        .iter()
        .any(|e| e.contains("Patient.identifier.value")));
    let gender = json!({"resourceType": "Patient", "gender": "male", "identifier": [{"system": "urn:mrn", "value": "1"}]});
    assert!(errors(&v, &gender, &p)
        .iter()
        .any(|e| e.contains("max allowed = 0")));
    // The overlay does not leak into the base validator.
    assert!(!Validator::r4().knows_profile(p[0]));
}

#[test]
fn extension_definition_and_context() {
    let ext = json!({"resourceType": "StructureDefinition", "url": "http://example.org/ext/flag",
    "type": "Extension", "kind": "complex-type", "abstract": false, "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
    "context": [{"type": "element", "expression": "Patient"}],
    "differential": {"element": [
        {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": "http://example.org/ext/flag"},
        {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "type": [{"code": "boolean"}]}
    ]}});
    let v = overlay(vec![ext]);
    let ok = json!({"resourceType": "Patient", "extension": [{"url": "http://example.org/ext/flag", "valueBoolean": true}]});
    assert_eq!(errors(&v, &ok, &[]), Vec::<String>::new());
    let wrong_type = json!({"resourceType": "Patient", "extension": [{"url": "http://example.org/ext/flag", "valueString": "x"}]});
    assert!(!errors(&v, &wrong_type, &[]).is_empty());
    let wrong_place = json!({"resourceType": "Patient", "name": [{"family": "x", "extension": [{"url": "http://example.org/ext/flag", "valueBoolean": true}]}]});
    let errs = errors(&v, &wrong_place, &[]);
    assert!(
        errs.iter().any(|e| e.contains("not allowed to be used")),
        "{errs:?}"
    );
    // Unknown extensions are accepted with a warning.
    let unknown = json!({"resourceType": "Patient", "extension": [{"url": "http://example.org/other", "valueBoolean": true}]});
    assert!(is_valid(&Validator::r4().validate(&unknown)));
}

#[test]
fn configured_profiles_per_type() {
    use crate::validate::enforce::ValidationConfig;
    let mut cfg = ValidationConfig::default();
    cfg.profiles
        .insert("Patient".into(), vec![IPS_PATIENT.to_owned()]);
    assert!(cfg.build_validator().is_ok());
    cfg.profiles
        .insert("Observation".into(), vec![IPS_PATIENT.to_owned()]);
    assert!(cfg.build_validator().is_err());
    cfg.profiles.insert(
        "Observation".into(),
        vec!["http://example.org/nope".to_owned()],
    );
    assert!(cfg.build_validator().is_err());
}

/// HL7 validator cases `parameters-profiled-resource-invalid` and `no/Person-test-bad`: a resource or a
/// data type value that a profile requires to meet an unknown profile is an error.
#[test]
fn unknown_profiles_required_of_values_are_errors() {
    let params_profile = json!({"resourceType": "StructureDefinition",
    "url": "http://example.org/sd/params", "type": "Parameters", "kind": "resource",
    "abstract": false, "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Parameters",
    "differential": {"element": [
        {"id": "Parameters.parameter.resource", "path": "Parameters.parameter.resource",
         "type": [{"code": "Resource", "profile": ["http://example.org/sd/unknown-patient"]}]},
        {"id": "Parameters.parameter.valueAddress", "path": "Parameters.parameter.valueAddress",
         "type": [{"code": "Address", "profile": ["http://example.org/sd/unknown-address"]}]}
    ]}});
    let v = overlay(vec![params_profile]);
    let with_resource = json!({"resourceType": "Parameters", "parameter": [
        {"name": "one", "resource": {"resourceType": "Patient"}}]});
    let errs = errors(&v, &with_resource, &["http://example.org/sd/params"]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("unknown-patient"), "{errs:?}");
    let with_address = json!({"resourceType": "Parameters", "parameter": [
        {"name": "one", "valueAddress": {"city": "Gent"}}]});
    let errs = errors(&v, &with_address, &["http://example.org/sd/params"]);
    assert!(
        errs.len() == 1 && errs[0].contains("unknown-address"),
        "{errs:?}"
    );
}

/// HL7 validator cases `patient-value-alternative-good/-bad` and `patient-value-present-good`: an
/// element without a value needs one of its `valueAlternatives` extensions, or fails `mustHaveValue`.
#[test]
fn value_alternatives_and_must_have_value() {
    let profile = |url: &str, ext: Value| {
        json!({"resourceType": "StructureDefinition", "url": url, "type": "Patient",
            "kind": "resource", "abstract": false, "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
            "differential": {"element": [{"path": "Patient.active", "min": 1, "extension": [ext]}]}})
    };
    let alt = "http://example.org/sd/alt";
    let must = "http://example.org/sd/must";
    let v = overlay(vec![
        profile(
            alt,
            json!({"url": crate::validate::value_absence::VALUE_ALTERNATIVES,
                   "valueCanonical": "http://hl7.org/fhir/StructureDefinition/data-absent-reason"}),
        ),
        profile(
            must,
            json!({"url": crate::validate::value_absence::MUST_HAVE_VALUE, "valueBoolean": true}),
        ),
    ]);
    let absent = |url: &str, code: &str| json!({"resourceType": "Patient", "_active": {"extension": [{"url": url, "valueCode": code}]}});
    let dar = absent(
        "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
        "unknown",
    );
    let null_flavor = absent(
        "http://hl7.org/fhir/StructureDefinition/iso21090-nullFlavor",
        "MSK",
    );
    assert_eq!(errors(&v, &dar, &[alt]), Vec::<String>::new());
    assert_eq!(errors(&v, &null_flavor, &[alt]).len(), 1);
    assert_eq!(errors(&v, &dar, &[must]).len(), 1);
    let valued = json!({"resourceType": "Patient", "active": true});
    assert_eq!(errors(&v, &valued, &[alt, must]), Vec::<String>::new());
}

/// HL7 validator case `member-of-CC-bad`: a profile's own constraints are checked, `memberOf()` against
/// the terminology (here a value set loaded with the profile).
#[test]
fn profile_constraints_and_member_of() {
    let vs = json!({"resourceType": "ValueSet", "url": "http://example.org/vs/low", "status": "draft",
        "compose": {"include": [{"system": "http://hl7.org/fhir/allergy-intolerance-criticality",
            "concept": [{"code": "low"}]}]}});
    let sd = json!({"resourceType": "StructureDefinition", "url": "http://example.org/sd/basic",
    "type": "Basic", "kind": "resource", "abstract": false, "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Basic",
    "differential": {"element": [
        {"path": "Basic.code", "constraint": [{"key": "bc-1", "severity": "error",
            "human": "must be in a value set",
            "expression": "memberOf('http://example.org/vs/low')"}]},
        {"path": "Basic.subject", "min": 1, "constraint": [{"key": "bc-2", "severity": "error",
            "human": "a literal reference", "expression": "reference.exists()"}]}
    ]}});
    let v = overlay(vec![vs, sd]);
    let basic = |code: &str, subject: Value| {
        json!({"resourceType": "Basic", "subject": subject, "code": {"coding": [
            {"system": "http://hl7.org/fhir/allergy-intolerance-criticality", "code": code}]}})
    };
    let url = ["http://example.org/sd/basic"];
    let good = basic("low", json!({"reference": "Patient/1"}));
    assert_eq!(errors(&v, &good, &url), Vec::<String>::new());
    let high = errors(&v, &basic("high", json!({"reference": "Patient/1"})), &url);
    assert!(high.len() == 1 && high[0].contains("bc-1"), "{high:?}");
    let display_only = errors(&v, &basic("low", json!({"display": "someone"})), &url);
    assert!(
        display_only.len() == 1 && display_only[0].contains("bc-2"),
        "{display_only:?}"
    );
}

/// HL7 validator case `maiden-name-extension`: core extensions are used where the extension pack allows
/// them (`humanname-mothers-family` on `HumanName.family`, not on the HumanName), `CanonicalResource`
/// meaning R4's canonical resources.
#[test]
fn core_extensions_follow_the_extension_pack_contexts() {
    let v = Validator::r4();
    let ext = json!([{"url": "http://hl7.org/fhir/StructureDefinition/humanname-mothers-family",
        "valueString": "Mothers family"}]);
    let on_name = json!({"resourceType": "Patient",
        "name": [{"family": "Family", "extension": ext.clone()}]});
    let on_family = json!({"resourceType": "Patient",
        "name": [{"family": "Family", "_family": {"extension": ext}}]});
    assert!(!is_valid(&v.validate(&on_name)));
    assert!(
        is_valid(&v.validate(&on_family)),
        "{:?}",
        v.validate(&on_family)
    );
    let vs = json!({"resourceType": "ValueSet", "url": "http://example.org/vs", "status": "draft",
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status",
            "valueCode": "normative"}]});
    assert!(is_valid(&v.validate(&vs)), "{:?}", v.validate(&vs));
}

/// HL7 validator case `patient-translated-codes`: a display the code system does not give is an error
/// (when displays are checked), unless the value set a checked profile binds the element to offers it.
#[test]
fn coding_displays_follow_the_code_system_or_the_profile_binding() {
    let patient = |display: &str| {
        json!({"resourceType": "Patient", "contact": [{"name": {"text": "Someone"}, "relationship": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C",
                         "display": display}]}]}]})
    };
    let checked = ValidateOptions::default().check_displays(true);
    let v = Validator::r4();
    assert!(!is_valid(
        &v.validate_with(&patient("alt-display"), &checked)
    ));
    assert!(is_valid(&v.validate(&patient("alt-display"))));
    let right = v.validate_with(&patient("emergency contact"), &checked);
    assert!(is_valid(&right), "{right:?}");
    let sd = json!({"resourceType": "StructureDefinition", "url": "http://example.org/sd/translated",
        "type": "Patient", "kind": "resource", "abstract": false, "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "contained": [{"resourceType": "ValueSet", "id": "rel", "status": "draft",
            "expansion": {"timestamp": "2019-05-23T10:18:03Z", "contains": [
                {"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C",
                 "display": "alt-display"}]}}],
        "differential": {"element": [{"path": "Patient.contact.relationship",
            "binding": {"strength": "required", "valueSet": "#rel"}}]}});
    let v = overlay(vec![sd]);
    let with_profile =
        ValidateOptions::with_profile("http://example.org/sd/translated").check_displays(true);
    let out = v.validate_with(&patient("alt-display"), &with_profile);
    assert!(is_valid(&out), "{out:?}");
}
