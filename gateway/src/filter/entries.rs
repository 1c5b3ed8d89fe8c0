//! Entry-by-entry filtering of Bundles: withheld entries removed, `total` suppressed, paging links sealed.

use serde_json::Value;

/// What filtering a Bundle did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filtered {
    /// Entries kept.
    pub kept: usize,
    /// Entries removed.
    pub removed: usize,
}

/// Keeps the entries `keep` admits (it sees each entry's resource; entries without one, and search
/// `outcome` entries carrying the server's OperationOutcome, are kept). When anything was removed,
/// `Bundle.total` goes too: a count of matches would reveal how many were withheld.
pub fn retain(bundle: &mut Value, mut keep: impl FnMut(&Value) -> bool) -> Filtered {
    let mut out = Filtered::default();
    let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) else {
        return out;
    };
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
    if out.removed > 0 {
        if let Some(obj) = bundle.as_object_mut() {
            obj.remove("total");
            if obj
                .get("entry")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                obj.remove("entry");
            }
        }
    }
    out
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
                removed: 1
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
