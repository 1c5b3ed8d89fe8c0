//! Rules about a Bundle as a whole that no single element's definition states: entry identity
//! (`fullUrl` against the resource's id), resolving references between entries by the R4 rules
//! (§bundle.html#references), the resolved resource's type, and (in documents) that every entry is
//! reachable from the Composition.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use crate::fhir::outcome::{Issue, IssueType};

/// Issues of `bundle` (the outermost resource, or one located at `at`) as a whole.
pub fn check(bundle: &Value, at: &str) -> Vec<Issue> {
    let Some(entries) = bundle.get("entry").and_then(Value::as_array) else {
        return Vec::new();
    };
    let kind = bundle
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut issues = Vec::new();
    let mut by_url: HashMap<&str, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let here = format!("{at}.entry[{i}]");
        let full_url = e.get("fullUrl").and_then(Value::as_str);
        let resource = e.get("resource");
        if let Some(u) = full_url {
            by_url.entry(u).or_insert(i);
        }
        let Some(resource) = resource else { continue };
        // Requests may create resources with no identity yet; responses and search outcomes may carry
        // resources that have none (R4 §bundle.html#fullUrl).
        let exempt = matches!(
            kind,
            "transaction" | "batch" | "transaction-response" | "batch-response"
        ) || e.pointer("/search/mode").and_then(Value::as_str) == Some("outcome");
        match full_url {
            None if !exempt => issues.push(
                Issue::error(
                    IssueType::Invalid,
                    "except in transactions and batches, each entry with a resource must have a \
                     fullUrl, the identity of the resource in the entry",
                )
                .at(here.clone()),
            ),
            Some(u) => {
                if let Some((ty, id)) = restful_tail(u) {
                    let rt = resource.get("resourceType").and_then(Value::as_str);
                    match resource.get("id").and_then(Value::as_str) {
                        None if kind != "transaction" && kind != "batch" && rt == Some(ty) => {
                            issues.push(
                                Issue::error(
                                    IssueType::Invalid,
                                    "the fullUrl looks like a RESTful server URL, but the resource \
                                     has no id",
                                )
                                .at(here.clone()),
                            )
                        }
                        Some(rid) if rt == Some(ty) && rid != id => issues.push(
                            Issue::error(
                                IssueType::Invalid,
                                "the resource's id does not match the id in the entry's fullUrl",
                            )
                            .at(here.clone()),
                        ),
                        _ => {}
                    }
                }
            }
            None => {}
        }
    }
    // References between entries.
    let mut links: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    for (i, e) in entries.iter().enumerate() {
        let (Some(resource), full_url) =
            (e.get("resource"), e.get("fullUrl").and_then(Value::as_str))
        else {
            continue;
        };
        let mut refs = Vec::new();
        collect_references(resource, &mut String::new(), &mut refs);
        for (path, reference) in refs {
            let Some(target) = resolve(reference, full_url, &by_url) else {
                continue;
            };
            links[i].push(target);
            let want = literal_type(reference);
            let got = entries[target]
                .pointer("/resource/resourceType")
                .and_then(Value::as_str);
            if let (Some(want), Some(got)) = (want, got) {
                if want != got {
                    issues.push(
                        Issue::error(
                            IssueType::Invalid,
                            format!("the reference names a {want}, but the entry it resolves to is a {got}"),
                        )
                        .at(format!("{at}.entry[{i}].resource{path}")),
                    );
                }
            }
        }
    }
    if kind == "document" && !entries.is_empty() {
        reachability(entries, &links, at, &mut issues);
    }
    issues
}

/// In a document every entry must be reachable from the Composition (entry 0) by following references
/// forward or backward.
fn reachability(entries: &[Value], links: &[Vec<usize>], at: &str, issues: &mut Vec<Issue>) {
    let mut undirected: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    for (from, tos) in links.iter().enumerate() {
        for &to in tos {
            undirected[from].push(to);
            undirected[to].push(from);
        }
    }
    let mut seen = vec![false; entries.len()];
    let mut queue = VecDeque::from([0usize]);
    seen[0] = true;
    while let Some(n) = queue.pop_front() {
        for &m in &undirected[n] {
            if !seen[m] {
                seen[m] = true;
                queue.push_back(m);
            }
        }
    }
    for (i, reached) in seen.iter().enumerate() {
        if !reached && entries[i].get("resource").is_some() {
            issues.push(
                Issue::error(
                    IssueType::Invalid,
                    "this entry is not reachable by following references (forward or backward) from \
                     the document's Composition",
                )
                .at(format!("{at}.entry[{i}]")),
            );
        }
    }
}

/// The entry a reference resolves to inside the Bundle, by the R4 rules: an absolute reference matches
/// a `fullUrl` (ignoring `/_history/n`); a relative `Type/id` is made absolute against the base of the
/// containing entry's RESTful `fullUrl`. References to contained resources (`#x`) stay local.
fn resolve(
    reference: &str,
    full_url: Option<&str>,
    by_url: &HashMap<&str, usize>,
) -> Option<usize> {
    if reference.starts_with('#') {
        return None;
    }
    let plain = strip_history(reference);
    if plain.contains(':') {
        return by_url.get(plain).copied();
    }
    let full_url = full_url?;
    if full_url.starts_with("urn:") {
        // A `urn:uuid:`/`urn:oid:` entry has no RESTful base; the HL7 validator then takes the URN's
        // prefix as the base and the reference's id as the rest (`Practitioner/5d95…` →
        // `urn:uuid:5d95…`), and holds the entry found to the type the reference names.
        let (_, id) = plain.split_once('/')?;
        let (prefix, _) = full_url.rsplit_once(':')?;
        return by_url.get(format!("{prefix}:{id}").as_str()).copied();
    }
    let (ty, id) = restful_tail(full_url)?;
    let base = full_url.strip_suffix(&format!("{ty}/{id}"))?;
    by_url.get(format!("{base}{plain}").as_str()).copied()
}

fn strip_history(reference: &str) -> &str {
    reference
        .split_once("/_history/")
        .map_or(reference, |(r, _)| r)
}

/// `Type` and `id` of a RESTful URL's last two segments (`…/Patient/123`).
fn restful_tail(url: &str) -> Option<(&str, &str)> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return None;
    }
    let url = strip_history(url);
    let (rest, id) = url.rsplit_once('/')?;
    let (_, ty) = rest.rsplit_once('/')?;
    let valid =
        crate::fhir::route::resource_type(ty).is_some() && crate::fhir::route::is_valid_id(id);
    valid.then_some((ty, id))
}

/// The resource type a literal reference names (`Patient/1`, `http://x/fhir/Patient/1`), if any.
fn literal_type(reference: &str) -> Option<&str> {
    let plain = strip_history(reference);
    if plain.starts_with("urn:") {
        return None;
    }
    let mut segs = plain.rsplit('/');
    let _id = segs.next()?;
    let ty = segs.next()?;
    crate::fhir::route::resource_type(ty)
}

/// Every `Reference.reference` in `v` with its FHIRPath below the resource (`.author[1]`), not
/// descending into nested resources (contained ones are local; they have their own references).
fn collect_references<'v>(v: &'v Value, path: &mut String, out: &mut Vec<(String, &'v str)>) {
    match v {
        Value::Object(obj) => {
            if let Some(r) = obj.get("reference").and_then(Value::as_str) {
                if obj.keys().all(|k| {
                    matches!(
                        k.as_str(),
                        "id" | "extension"
                            | "reference"
                            | "_reference"
                            | "type"
                            | "identifier"
                            | "display"
                    )
                }) {
                    out.push((path.clone(), r));
                    return;
                }
            }
            for (k, x) in obj {
                if k == "contained" || k == "resource" && x.get("resourceType").is_some() {
                    continue;
                }
                let len = path.len();
                path.push('.');
                path.push_str(k);
                collect_references(x, path, out);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                collect_references(x, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn exprs(issues: &[Issue]) -> Vec<&str> {
        issues.iter().map(|i| i.expression[0].as_str()).collect()
    }

    #[test]
    fn document_entries_must_be_identified_typed_and_reachable() {
        let doc = json!({"resourceType": "Bundle", "type": "document", "entry": [
            {"fullUrl": "http://x.org/fhir/Composition/c1",
             "resource": {"resourceType": "Composition", "id": "c1",
                          "subject": {"reference": "Patient/p1"},
                          "author": [{"reference": "Practitioner/o1"}]}},
            {"fullUrl": "http://x.org/fhir/Patient/p1", "resource": {"resourceType": "Patient", "id": "p1"}},
            {"fullUrl": "http://x.org/fhir/Practitioner/o1", "resource": {"resourceType": "Organization", "id": "o1"}},
            {"fullUrl": "urn:uuid:9c1d3a4e-0000-4000-8000-000000000001",
             "resource": {"resourceType": "Observation"}},
            {"resource": {"resourceType": "Patient"}},
            {"fullUrl": "http://x.org/fhir/Patient/p2", "resource": {"resourceType": "Patient"}}
        ]});
        let issues = check(&doc, "Bundle");
        assert_eq!(
            exprs(&issues),
            [
                "Bundle.entry[4]",
                "Bundle.entry[5]",
                "Bundle.entry[0].resource.author[0]",
                "Bundle.entry[3]",
                "Bundle.entry[4]",
                "Bundle.entry[5]"
            ],
            "{issues:?}"
        );
    }

    #[test]
    fn transactions_and_collections_keep_their_freedoms() {
        let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:9c1d3a4e-0000-4000-8000-000000000002",
             "resource": {"resourceType": "Observation", "subject": {"reference": "urn:uuid:9c1d3a4e-0000-4000-8000-000000000003"}},
             "request": {"method": "POST", "url": "Observation"}}]});
        assert!(check(&tx, "Bundle").is_empty());
        // Unreachable entries are fine outside documents; versioned references resolve.
        let coll = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "http://x.org/fhir/Patient/p1", "resource": {"resourceType": "Patient", "id": "p1"}},
            {"fullUrl": "http://x.org/fhir/Observation/o1", "resource": {"resourceType": "Observation", "id": "o1",
              "subject": {"reference": "Patient/p1/_history/2"}}}]});
        assert!(check(&coll, "Bundle").is_empty());
    }

    /// HL7 validator case `bad-bundle-reference-type-4`: under a `urn:uuid:` fullUrl, `Type/id`
    /// resolves to the entry `urn:uuid:id`, which must then be of that type.
    #[test]
    fn relative_references_under_urn_full_urls_resolve_by_id_and_keep_their_type() {
        let bundle = |ty: &str| {
            json!({"resourceType": "Bundle", "type": "collection", "entry": [
                {"fullUrl": "urn:uuid:54fc3e09-e279-4b74-a8ff-2649ec968642",
                 "resource": {"resourceType": "Patient", "generalPractitioner": [
                     {"reference": "Practitioner/5d9588d8-3cd6-4b32-8fb7-ad13694e069d"}]}},
                {"fullUrl": "urn:uuid:5d9588d8-3cd6-4b32-8fb7-ad13694e069d",
                 "resource": {"resourceType": ty}}]})
        };
        let bad = check(&bundle("Organization"), "Bundle");
        assert_eq!(
            exprs(&bad),
            ["Bundle.entry[0].resource.generalPractitioner[0]"],
            "{bad:?}"
        );
        assert!(check(&bundle("Practitioner"), "Bundle").is_empty());
    }
}
