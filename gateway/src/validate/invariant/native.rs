//! Invariants checked in Rust instead of by the engine: ones on every resource or every Reference, and
//! ones whose FHIRPath reads the whole resource (`%resource.descendants()`), which the engine would
//! copy per item. Each is tested to agree with the engine (`tests.rs`), except where noted.

use serde_json::Value;

use super::Scope;

/// A natively checked invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// `dom-3`: every contained resource is referenced from elsewhere in the resource, or refers to
    /// its container (`#`).
    Dom3,
    /// `ref-1`: a local reference (`#id`) names a contained resource of the root resource.
    Ref1,
    /// `obs-7`: a component code must not repeat the Observation's code when there is a value.
    Obs7,
    /// `que-7`: `operator = 'exists' implies (answer is Boolean)`. The engine answers `is Boolean`
    /// false for a FHIR `boolean`, which rejected the R4 example Questionnaire-bb.
    Que7,
    /// `bdl-7`: `fullUrl & resource.meta.versionId` is unique among entries (except in histories).
    /// The engine's `isDistinct()` compares every pair: 8.7 s for a 100-patient transaction.
    Bdl7,
    /// The Bundle invariants that read every entry (`bdl-2`, `bdl-3`, `bdl-4`, `bdl-5`, `bdl-11`,
    /// `bdl-12`): the engine converts the whole entry list per invariant, 5.7 s for a 100-patient
    /// transaction; these are single loops.
    Bundle(BundleRule),
}

/// Which Bundle-wide invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleRule {
    /// `entry.search.empty() or (type = 'searchset')`.
    SearchOnlyInSearchset,
    /// `entry.all(request.exists() = (type in batch | transaction | history))`.
    RequestIffBatchOrTransaction,
    /// `entry.all(response.exists() = (type in batch-response | transaction-response | history))`.
    ResponseIffResponses,
    /// On an entry: `resource.exists() or request.exists() or response.exists()`.
    EntryHasContent,
    /// `type = 'document' implies entry.first().resource.is(Composition)`.
    DocumentStartsWithComposition,
    /// `type = 'message' implies entry.first().resource.is(MessageHeader)`.
    MessageStartsWithHeader,
}

impl Native {
    /// The native check for an invariant key, if there is one.
    pub fn for_key(key: &str) -> Option<Self> {
        match key {
            "dom-3" => Some(Self::Dom3),
            "ref-1" => Some(Self::Ref1),
            "obs-7" => Some(Self::Obs7),
            "que-7" => Some(Self::Que7),
            "bdl-7" => Some(Self::Bdl7),
            "bdl-2" => Some(Self::Bundle(BundleRule::SearchOnlyInSearchset)),
            "bdl-3" => Some(Self::Bundle(BundleRule::RequestIffBatchOrTransaction)),
            "bdl-4" => Some(Self::Bundle(BundleRule::ResponseIffResponses)),
            "bdl-5" => Some(Self::Bundle(BundleRule::EntryHasContent)),
            "bdl-11" => Some(Self::Bundle(BundleRule::DocumentStartsWithComposition)),
            "bdl-12" => Some(Self::Bundle(BundleRule::MessageStartsWithHeader)),
            _ => None,
        }
    }

    /// Whether the invariant holds on `focus`.
    pub fn holds(self, focus: &Value, scope: Scope<'_>) -> bool {
        match self {
            Self::Dom3 => dom3(focus),
            Self::Ref1 => ref1(focus, scope.root),
            Self::Obs7 => obs7(focus, scope.resource),
            Self::Bdl7 => bdl7(focus),
            Self::Bundle(rule) => bundle_rule(rule, focus),
            Self::Que7 => {
                // No answer at all is an empty `is`, which passes (and min = 1 reports it).
                let answered = focus
                    .as_object()
                    .is_some_and(|o| o.keys().any(|k| k.starts_with("answer")));
                focus.get("operator").and_then(Value::as_str) != Some("exists")
                    || !answered
                    || focus.get("answerBoolean").is_some_and(Value::is_boolean)
            }
        }
    }
}

/// The Bundle-wide invariants, each one loop over the entries (or a look at the first).
fn bundle_rule(rule: BundleRule, focus: &Value) -> bool {
    let has = |v: &Value, k: &str| v.get(k).is_some_and(|x| !x.is_null());
    if rule == BundleRule::EntryHasContent {
        return has(focus, "resource") || has(focus, "request") || has(focus, "response");
    }
    let kind = focus
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let entries = focus
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let first_is = |ty: &str| {
        entries
            .first()
            .and_then(|e| e.pointer("/resource/resourceType"))
            .and_then(Value::as_str)
            .is_none_or(|t| t == ty)
    };
    match rule {
        BundleRule::SearchOnlyInSearchset => {
            kind == "searchset" || entries.iter().all(|e| !has(e, "search"))
        }
        BundleRule::RequestIffBatchOrTransaction => {
            let want = matches!(kind, "batch" | "transaction" | "history");
            entries.iter().all(|e| has(e, "request") == want)
        }
        BundleRule::ResponseIffResponses => {
            let want = matches!(kind, "batch-response" | "transaction-response" | "history");
            entries.iter().all(|e| has(e, "response") == want)
        }
        BundleRule::DocumentStartsWithComposition => kind != "document" || first_is("Composition"),
        BundleRule::MessageStartsWithHeader => kind != "message" || first_is("MessageHeader"),
        BundleRule::EntryHasContent => true,
    }
}

/// `bdl-7`, in one pass with a set. `&` concatenates, an absent versionId giving the empty string.
fn bdl7(bundle: &Value) -> bool {
    if bundle.get("type").and_then(Value::as_str) == Some("history") {
        return true;
    }
    let mut seen = std::collections::HashSet::new();
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let url = e.get("fullUrl").and_then(Value::as_str)?;
            let version = e
                .pointer("/resource/meta/versionId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Some(format!("{url}{version}"))
        })
        .all(|key| seen.insert(key))
}

/// `dom-3`. R4 looks for `'#' + id` among the resource's `reference`, `canonical`, `uri` and `url`
/// values; without types at hand this accepts `#id` in any string, and, as the HL7 validator does, a
/// narrative link to it (`src="#id"`, `href="#id"`). Both can only accept more than R4's expression.
fn dom3(resource: &Value) -> bool {
    let Some(contained) = resource.get("contained").and_then(Value::as_array) else {
        return true;
    };
    let mut locals: Vec<&str> = Vec::new();
    collect_local_refs(resource, &mut locals);
    contained.iter().all(|c| {
        let Some(id) = c.get("id").and_then(Value::as_str) else {
            // No id: R4's `'#' + id` is empty, so the rule cannot fail on it.
            return true;
        };
        locals.iter().any(|r| {
            r.strip_prefix('#') == Some(id)
                || (r.contains('<')
                    && (r.contains(&format!("\"#{id}\"")) || r.contains(&format!("'#{id}'"))))
        }) || refers_to_container(c)
    })
}

/// Every string starting with `#`, or holding XHTML that may link to one, anywhere in `v`.
fn collect_local_refs<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) if s.starts_with('#') || (s.starts_with('<') && s.contains("#")) => {
            out.push(s)
        }
        Value::Array(items) => items.iter().for_each(|i| collect_local_refs(i, out)),
        Value::Object(obj) => obj.values().for_each(|i| collect_local_refs(i, out)),
        _ => {}
    }
}

/// Whether a contained resource holds a reference to its container: a string `#` anywhere in it.
fn refers_to_container(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "#",
        Value::Array(items) => items.iter().any(refers_to_container),
        Value::Object(obj) => obj.values().any(refers_to_container),
        _ => false,
    }
}

/// `ref-1`. `#` alone refers to the container: accepted, as the HL7 validator and the engine do.
fn ref1(reference: &Value, root: &Value) -> bool {
    let Some(r) = reference.get("reference").and_then(Value::as_str) else {
        return true;
    };
    let Some(id) = r.strip_prefix('#') else {
        return true;
    };
    id.is_empty()
        || root
            .get("contained")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c.get("id").and_then(Value::as_str) == Some(id))
}

/// `obs-7`: `value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()`.
fn obs7(observation: &Value, resource: &Value) -> bool {
    let Some(obj) = observation.as_object() else {
        return true;
    };
    let has_value = obj.keys().any(|k| {
        k.strip_prefix("value")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_uppercase))
    });
    if !has_value {
        return true;
    }
    let own = codings(resource);
    if own.is_empty() {
        return true;
    }
    !obj.get("component")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| codings(c).iter().any(|x| own.contains(x)))
}

/// `code.coding` of a resource or component.
fn codings(v: &Value) -> &[Value] {
    v.pointer("/code/coding")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}
