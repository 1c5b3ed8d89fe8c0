//! Checks on a StructureDefinition instance that only the other definitions can decide, as the HL7
//! validator's StructureDefinition validator makes them: its snapshot can be generated from its
//! differential, each type profile is a profile of the type it is given for, and the profiles whose
//! obligations it inherits are obligation profiles on the same base.

use serde_json::Value;

use super::definitions::strip_version;
use super::model::Model;
use super::registry::Profiles;
use crate::fhir::outcome::{Issue, IssueType, Severity};

/// A StructureDefinition extension naming a profile whose obligations this one takes on.
const INHERIT_OBLIGATIONS: &str = "http://hl7.org/fhir/StructureDefinition/inherit-obligations";
/// The flag marking a profile that only adds obligations.
const OBLIGATION_PROFILE: &str = "http://hl7.org/fhir/StructureDefinition/obligation-profile";

/// The issues of StructureDefinition `sd` (the outermost resource) against the known definitions.
pub fn check(reg: &Profiles, model: &Model, sd: &Value) -> Vec<Issue> {
    let mut issues = Vec::new();
    let constraint = sd.get("derivation").and_then(Value::as_str) == Some("constraint");
    // Only a known base other than itself can show the differential at fault: an unknown (or
    // circular) base leaves the snapshot to whoever knows it, as the HL7 validator does.
    let url = sd.get("url").and_then(Value::as_str).map(strip_version);
    let base = sd
        .get("baseDefinition")
        .and_then(Value::as_str)
        .map(strip_version)
        .filter(|b| Some(*b) != url && reg.source(b).is_some());
    if constraint && base.is_some() && sd.get("snapshot").is_none() {
        if let Err(why) = reg.snapshot_for(sd) {
            issues.push(
                Issue::error(
                    IssueType::Exception,
                    format!("Error generating the snapshot: {why}"),
                )
                .at("StructureDefinition"),
            );
        }
    }
    type_profiles(reg, model, sd, &mut issues);
    inherited_obligations(reg, sd, &mut issues);
    issues
}

/// A type's profile must constrain that type: `Count` (a specialization of Quantity with its own type)
/// is no profile of `Quantity`.
fn type_profiles(reg: &Profiles, model: &Model, sd: &Value, issues: &mut Vec<Issue>) {
    for part in ["differential", "snapshot"] {
        let elements = sd
            .pointer(&format!("/{part}/element"))
            .and_then(Value::as_array);
        for (i, e) in elements.into_iter().flatten().enumerate() {
            let types = e.get("type").and_then(Value::as_array);
            for (j, t) in types.into_iter().flatten().enumerate() {
                let Some(code) = t.get("code").and_then(Value::as_str) else {
                    continue;
                };
                if matches!(
                    code,
                    "Resource" | "DomainResource" | "Element" | "BackboneElement"
                ) {
                    continue;
                }
                let profiles = t.get("profile").and_then(Value::as_array);
                for (k, url) in profiles.into_iter().flatten().enumerate() {
                    let Some(url) = url.as_str() else { continue };
                    let Some(of) = type_of(reg, model, url) else {
                        continue;
                    };
                    if of != code {
                        let path = e.get("path").and_then(Value::as_str).unwrap_or_default();
                        issues.push(
                            Issue::error(
                                IssueType::Exception,
                                format!(
                                    "Profile {url} is for type {of}, but the {path} element has type {code}"
                                ),
                            )
                            .at(format!(
                                "StructureDefinition.{part}.element[{i}].type[{j}].profile[{k}]"
                            )),
                        );
                    }
                }
            }
        }
    }
}

/// The type a known StructureDefinition defines or constrains.
fn type_of<'m>(reg: &'m Profiles, model: &'m Model, url: &str) -> Option<&'m str> {
    let url = strip_version(url);
    if let Some(p) = reg.get(url) {
        return Some(&p.type_name);
    }
    model.by_url.get(url).map(|&id| &*model.def(id).type_name)
}

/// Each profile named by `inherit-obligations` must be an obligation profile on this one's base.
fn inherited_obligations(reg: &Profiles, sd: &Value, issues: &mut Vec<Issue>) {
    let base = sd.get("baseDefinition").and_then(Value::as_str);
    let exts = sd.get("extension").and_then(Value::as_array);
    for (i, x) in exts.into_iter().flatten().enumerate() {
        if x.get("url").and_then(Value::as_str) != Some(INHERIT_OBLIGATIONS) {
            continue;
        }
        let Some(url) = x.get("valueCanonical").and_then(Value::as_str) else {
            continue;
        };
        let at = format!("StructureDefinition.extension[{i}]");
        let Some(target) = reg.source(strip_version(url)) else {
            issues.push(Issue {
                severity: Severity::Warning,
                code: IssueType::NotFound,
                diagnostics: format!(
                    "the profile {url} whose obligations are inherited is unknown"
                ),
                expression: vec![at],
            });
            continue;
        };
        let flagged = target
            .get("extension")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|e| {
                e.get("url").and_then(Value::as_str) == Some(OBLIGATION_PROFILE)
                    && e.get("valueBoolean").and_then(Value::as_bool) == Some(true)
            });
        if !flagged {
            issues.push(
                Issue::error(
                    IssueType::Invalid,
                    format!("The profile '{url}' is not marked as an obligation profile"),
                )
                .at(at.clone()),
            );
        }
        let target_base = target.get("baseDefinition").and_then(Value::as_str);
        if let (Some(b), Some(tb)) = (base, target_base) {
            if strip_version(b) != strip_version(tb) {
                issues.push(
                    Issue::error(
                        IssueType::Invalid,
                        format!(
                            "The profile '{url}' has a different base '{tb}' from that expected '{b}'"
                        ),
                    )
                    .at(at),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::validate::definitions::Definitions;
    use crate::validate::{is_valid, Validator};

    fn profile(diff: serde_json::Value) -> serde_json::Value {
        json!({"resourceType": "StructureDefinition", "url": "http://example.org/sd/obs",
            "name": "Obs", "status": "draft", "kind": "resource", "abstract": false,
            "type": "Observation", "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
            "differential": {"element": diff}})
    }

    /// HL7 validator case `obs-mz`: a renamed choice must name one of the choice's types.
    #[test]
    fn snapshots_must_generate() {
        let v = Validator::r4();
        let bad =
            profile(json!([{"id": "Observation.valueQuantity", "path": "Observation.valueBla"}]));
        assert!(!is_valid(&v.validate(&bad)));
        let good = profile(json!([{"id": "Observation.valueQuantity",
            "path": "Observation.valueQuantity", "type": [{"code": "Quantity"}]}]));
        assert!(is_valid(&v.validate(&good)), "{:?}", v.validate(&good));
        // A base that cannot be found (here: itself) leaves the snapshot alone.
        let mut circle =
            profile(json!([{"id": "Observation.valueQuantity", "path": "Observation.valueBla"}]));
        circle["baseDefinition"] = json!("http://example.org/sd/obs");
        assert!(is_valid(&v.validate(&circle)), "{:?}", v.validate(&circle));
    }

    /// HL7 validator case `observation-bad-profile`: `Count` has its own type, so it is no profile of
    /// Quantity; `SimpleQuantity` is.
    #[test]
    fn type_profiles_must_constrain_their_type() {
        let v = Validator::r4();
        let with = |p: &str| {
            profile(
                json!([{"id": "Observation.valueQuantity", "path": "Observation.valueQuantity",
                "type": [{"code": "Quantity", "profile": [p]}]}]),
            )
        };
        assert!(!is_valid(&v.validate(&with(
            "http://hl7.org/fhir/StructureDefinition/Count"
        ))));
        assert!(is_valid(&v.validate(&with(
            "http://hl7.org/fhir/StructureDefinition/SimpleQuantity"
        ))));
    }

    /// HL7 validator case `profile-patient-op3`: inherited obligations come from obligation profiles
    /// on the same base.
    #[test]
    fn inherited_obligations_need_obligation_profiles_on_the_same_base() {
        let flag = json!([{"url": super::OBLIGATION_PROFILE, "valueBoolean": true}]);
        let sd = |url: &str, base: &str, ext: serde_json::Value| {
            json!({"resourceType": "StructureDefinition", "url": url, "name": "P", "status": "draft",
                "kind": "resource", "abstract": false, "type": "Patient", "derivation": "constraint",
                "baseDefinition": base, "extension": ext,
                "differential": {"element": [{"id": "Patient.active", "path": "Patient.active"}]}})
        };
        let patient = "http://hl7.org/fhir/StructureDefinition/Patient";
        let mut defs = Definitions::default();
        defs.add(sd("http://example.org/sd/ok", patient, flag.clone()));
        defs.add(sd("http://example.org/sd/unflagged", patient, json!([])));
        defs.add(sd(
            "http://example.org/sd/other-base",
            "http://example.org/sd/ok",
            flag,
        ));
        let v = Validator::r4().with_definitions(&defs);
        let inheriting = |target: &str| {
            sd(
                "http://example.org/sd/child",
                patient,
                json!([{"url": super::INHERIT_OBLIGATIONS, "valueCanonical": target}]),
            )
        };
        let ok = v.validate(&inheriting("http://example.org/sd/ok"));
        assert!(is_valid(&ok), "{ok:?}");
        assert!(!is_valid(
            &v.validate(&inheriting("http://example.org/sd/unflagged"))
        ));
        assert!(!is_valid(
            &v.validate(&inheriting("http://example.org/sd/other-base"))
        ));
    }
}
