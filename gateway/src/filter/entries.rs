//! Entry-by-entry filtering of Bundles: withheld entries removed, `total` suppressed, paging links sealed.
//!
//! `Bundle.total` counts the matches across every page (FHIR R4 search, 3.1.1.3), and a
//! `_summary=count` or `_count=0` answer is nothing but that count. The gateway judges only the
//! entries it is sent, so a total counting anything else (later pages, withheld entries, resources a
//! page never showed) would disclose what was withheld. It goes out only when it counts exactly what
//! the client sees: see [`total_disclosable`].

use serde_json::Value;

/// What filtering a Bundle did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filtered {
    /// Entries kept.
    pub kept: usize,
    /// Entries removed.
    pub removed: usize,
    /// Whether `Bundle.total` was present and removed.
    pub total_withheld: bool,
}

/// Keeps the entries `keep` admits (it sees each entry's resource; entries without one, and search
/// `outcome` entries carrying the server's OperationOutcome, are kept), then removes `Bundle.total`
/// unless [`total_disclosable`] allows it.
pub fn retain(bundle: &mut Value, mut keep: impl FnMut(&Value) -> bool) -> Filtered {
    let mut out = Filtered::default();
    if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
        entries.retain(|e| {
            let outcome = e.pointer("/search/mode").and_then(Value::as_str) == Some("outcome");
            let ok = match e.get("resource") {
                Some(r) if !outcome => keep(r),
                _ => true,
            };
            if ok {
                out.kept += 1;
            } else {
                out.removed += 1;
            }
            ok
        });
    }
    let next = has_next(bundle.get("link"));
    let Some(obj) = bundle.as_object_mut() else {
        return out;
    };
    if let Some(total) = obj.get("total") {
        let matches = || {
            obj.get("entry").and_then(Value::as_array).map_or(0, |l| {
                l.iter().filter(|e| is_match(e.get("search"))).count()
            })
        };
        if !total_disclosable(total, next, out.removed, matches) {
            obj.remove("total");
            out.total_withheld = true;
        }
    }
    if out.removed > 0
        && obj
            .get("entry")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    {
        obj.remove("entry");
    }
    out
}

/// Whether a Bundle's `total` (as the upstream sent it) may go out: only when it cannot count
/// anything the client does not see. That is a single complete page (`next`: whether the upstream
/// linked a next page) from which nothing was removed (`removed`), and whose visible match entries
/// (`matches`, counted only when the rest holds) are exactly `total`. Anything else (`_summary=count`,
/// `_count=0`, a page of many, a total larger than the page) could count withheld resources, other
/// patients' or those outside granular scopes. Entries without a resource (a history's deletions)
/// are matches the client sees, and count.
pub fn total_disclosable(
    total: &Value,
    next: bool,
    removed: usize,
    matches: impl FnOnce() -> usize,
) -> bool {
    !next
        && removed == 0
        && total
            .as_u64()
            .is_some_and(|t| u64::try_from(matches()).is_ok_and(|m| m == t))
}

/// Whether an entry whose `search` element is `search` is a match: `search.mode` is `match` or
/// absent (history and `$everything` entries carry none). `include` and `outcome` entries are not
/// counted by `total`.
pub fn is_match(search: Option<&Value>) -> bool {
    match search.and_then(|s| s.get("mode")) {
        None => true,
        Some(mode) => mode.as_str() == Some("match"),
    }
}

/// Whether `Bundle.link` (`links`) names a next page.
pub fn has_next(links: Option<&Value>) -> bool {
    links.and_then(Value::as_array).is_some_and(|l| {
        l.iter()
            .any(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
    })
}

/// Replaces the URL of every paging link (`next`, `previous`, `prev`, `first`, `last`) with what
/// `seal` makes of it, dropping links `seal` refuses (a link that could not be sealed must not
/// leak). `self` is left alone: it repeats the client's own request.
/// Answers how many links it changed or dropped.
pub fn seal_links(bundle: &mut Value, mut seal: impl FnMut(&str) -> Option<String>) -> usize {
    let Some(links) = bundle.get_mut("link").and_then(Value::as_array_mut) else {
        return 0;
    };
    let mut changed = 0;
    links.retain_mut(|l| {
        let relation = l
            .get("relation")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if relation == "self" {
            return true;
        }
        changed += 1;
        let Some(url) = l.get("url").and_then(Value::as_str) else {
            return false;
        };
        match seal(url) {
            Some(new) => {
                l["url"] = Value::String(new);
                true
            }
            None => false,
        }
    });
    changed
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn removes_entries_and_total() {
        let mut b = json!({"resourceType": "Bundle", "type": "searchset", "total": 3, "entry": [
            {"resource": {"resourceType": "Observation", "id": "a"}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Observation", "id": "b"}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "OperationOutcome", "id": "o"}, "search": {"mode": "outcome"}}
        ]});
        let f = retain(&mut b, |r| r["id"] != "b");
        assert_eq!(
            f,
            Filtered {
                kept: 2,
                removed: 1,
                total_withheld: true,
            }
        );
        assert!(b.get("total").is_none());
        assert_eq!(b["entry"].as_array().unwrap().len(), 2);

        let mut b =
            json!({"resourceType": "Bundle", "total": 1, "entry": [{"resource": {"id": "a"}}]});
        retain(&mut b, |_| true);
        assert_eq!(b["total"], 1);
        retain(&mut b, |_| false);
        assert!(b.get("entry").is_none());
    }

    #[test]
    fn the_total_stays_only_when_it_counts_what_is_shown() {
        let m = |id: &str| json!({"resource": {"id": id}, "search": {"mode": "match"}});
        let include = json!({"resource": {"id": "p"}, "search": {"mode": "include"}});
        let next = json!([{"relation": "next", "url": "http://up/fhir?_offset=2"}]);
        let cases = [
            // `_count=0` / `_summary=count`: five matches, none shown.
            ("_count=0", json!({"total": 5}), true, false),
            (
                "complete",
                json!({"total": 2, "entry": [m("a"), m("b")]}),
                true,
                true,
            ),
            (
                "total above the matches",
                json!({"total": 3, "entry": [m("a"), m("b")]}),
                true,
                false,
            ),
            (
                "a next page",
                json!({"total": 2, "link": next, "entry": [m("a"), m("b")]}),
                true,
                false,
            ),
            (
                "includes are not matches",
                json!({"total": 2, "entry": [m("a"), include, m("b")]}),
                true,
                true,
            ),
            (
                "one withheld",
                json!({"total": 2, "entry": [m("a"), m("b")]}),
                false,
                false,
            ),
        ];
        for (what, mut b, admit, kept) in cases {
            let f = retain(&mut b, |r| admit || r["id"] != "b");
            assert_eq!(b.get("total").is_some(), kept, "{what}: {b}");
            assert_eq!(f.total_withheld, !kept, "{what}");
        }
        let mut none = json!({"entry": [m("a")]});
        assert!(
            !retain(&mut none, |_| true).total_withheld,
            "no total to withhold"
        );
        assert!(!is_match(Some(&json!({"mode": "outcome"}))) && is_match(Some(&json!({}))));
        assert!(has_next(Some(&next)) && !has_next(None));
    }

    #[test]
    fn seals_paging_links_only() {
        let mut b = json!({"link": [
            {"relation": "self", "url": "http://up/fhir/Observation?x=1"},
            {"relation": "next", "url": "http://up/fhir?_getpages=1"},
            {"relation": "last", "url": "http://elsewhere/x"}
        ]});
        seal_links(&mut b, |u| {
            u.starts_with("http://up/").then(|| "sealed".to_owned())
        });
        let links = b["link"].as_array().unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(links[0]["url"], "http://up/fhir/Observation?x=1");
        assert_eq!(links[1]["url"], "sealed");
    }
}
