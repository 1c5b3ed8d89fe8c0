//! Borrowed, shallow parsing of FHIR JSON: an object's members as raw text, parsed only where asked.
//!
//! Filtering a search answer used to parse the whole Bundle into a tree and print it back: for a
//! 50-entry page that was over half of the gateway's CPU, nearly all of it building maps nobody
//! read. Here the Bundle and each entry are split into members without allocating for their values
//! (serde_json still checks every byte is well-formed JSON; each byte is scanned once), only the
//! members a decision reads are parsed, and the answer is written back from the original text.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::filter::entries;

/// A JSON object's members in document order, each value still raw text borrowed from the input.
#[derive(Debug)]
pub struct RawObject<'a> {
    /// Name and raw value of each member. Names with escapes fail to borrow, and the whole parse
    /// fails: callers fall back to a full parse (FHIR element names are plain ASCII).
    pub members: Vec<(&'a str, &'a RawValue)>,
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        members(d, "a JSON object").map(|members| RawObject { members })
    }
}

impl<'a> RawObject<'a> {
    /// Splits `text` (one JSON object) into members.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The raw value of the last member called `name` (the last, as a full parse would keep).
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }

    /// The member `name` when it is a string without escapes.
    pub fn str(&self, name: &str) -> Option<&'a str> {
        self.get(name)
            .and_then(|v| serde_json::from_str::<&'a str>(v.get()).ok())
    }

    /// An object holding only the members `keep` admits, each parsed in full.
    pub fn partial(&self, keep: impl Fn(&str) -> bool) -> Result<Value, serde_json::Error> {
        let mut out = Map::new();
        for (k, v) in &self.members {
            if keep(k) {
                out.insert((*k).to_owned(), serde_json::from_str(v.get())?);
            }
        }
        Ok(Value::Object(out))
    }

    /// Every member parsed: the object a full parse of the same text gives.
    pub fn full(&self) -> Result<Value, serde_json::Error> {
        self.partial(|_| true)
    }
}

/// A Bundle split in one pass over its text: members raw, except `entry`, split entry by entry, and
/// each entry's `resource`, split into members. Every byte is scanned once.
#[derive(Debug)]
pub struct SplitBundle<'a> {
    members: Vec<(&'a str, BundleMember<'a>)>,
    /// The length of the text it was split from: what writing it back needs, give or take.
    len: usize,
}

#[derive(Debug)]
enum BundleMember<'a> {
    Raw(&'a RawValue),
    Entries(Vec<SplitEntry<'a>>),
}

/// One `Bundle.entry`, split.
#[derive(Debug)]
pub struct SplitEntry<'a> {
    members: Vec<(&'a str, EntryMember<'a>)>,
}

#[derive(Debug)]
enum EntryMember<'a> {
    Raw(&'a RawValue),
    Resource(RawObject<'a>),
}

/// A member value as one of these objects keeps it, read according to the member's name.
trait Member<'de>: Sized {
    fn read<A: MapAccess<'de>>(name: &str, map: &mut A) -> Result<Self, A::Error>;
}

impl<'de> Member<'de> for &'de RawValue {
    fn read<A: MapAccess<'de>>(_: &str, map: &mut A) -> Result<Self, A::Error> {
        map.next_value()
    }
}

impl<'de> Member<'de> for EntryMember<'de> {
    fn read<A: MapAccess<'de>>(name: &str, map: &mut A) -> Result<Self, A::Error> {
        match name {
            "resource" => map.next_value().map(EntryMember::Resource),
            _ => map.next_value().map(EntryMember::Raw),
        }
    }
}

impl<'de> Member<'de> for BundleMember<'de> {
    fn read<A: MapAccess<'de>>(name: &str, map: &mut A) -> Result<Self, A::Error> {
        match name {
            "entry" => map.next_value().map(BundleMember::Entries),
            _ => map.next_value().map(BundleMember::Raw),
        }
    }
}

/// Reads one JSON object (`what`, for errors) as its members in document order.
fn members<'de, D: Deserializer<'de>, M: Member<'de>>(
    d: D,
    what: &'static str,
) -> Result<Vec<(&'de str, M)>, D::Error> {
    struct Members<M>(&'static str, std::marker::PhantomData<M>);
    impl<'de, M: Member<'de>> Visitor<'de> for Members<M> {
        type Value = Vec<(&'de str, M)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
            while let Some(k) = map.next_key::<&'de str>()? {
                let v = M::read(k, &mut map)?;
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_map(Members(what, std::marker::PhantomData))
}

impl<'de> Deserialize<'de> for SplitEntry<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        members(d, "a Bundle entry").map(|members| SplitEntry { members })
    }
}

impl<'de> Deserialize<'de> for SplitBundle<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        members(d, "a Bundle").map(|members| SplitBundle { members, len: 0 })
    }
}

/// Whether member `i` of `members` is the last of its name: only that one counts (as in a full
/// parse), and only that one is ever written, so an earlier copy cannot slip out unjudged.
fn is_last<T>(members: &[(&str, T)], i: usize) -> bool {
    let name = members[i].0;
    !members[i + 1..].iter().any(|(k, _)| *k == name)
}

fn write_members<T>(
    out: &mut Vec<u8>,
    members: &[(&str, T)],
    mut value: impl FnMut(&mut Vec<u8>, &str, &T) -> bool,
) {
    out.push(b'{');
    let mut first = true;
    for (i, (name, v)) in members.iter().enumerate() {
        if !is_last(members, i) {
            continue;
        }
        let mark = out.len();
        if !first {
            out.push(b',');
        }
        write_name(out, name);
        if value(out, name, v) {
            first = false;
        } else {
            out.truncate(mark);
        }
    }
    out.push(b'}');
}

impl<'a> SplitBundle<'a> {
    /// Splits `text`, or `None` when it is not a Bundle this can split (callers parse it whole).
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut b: Self = serde_json::from_str(text).ok()?;
        b.len = text.len();
        let rtype = b.members.iter().rev().find_map(|(k, v)| match v {
            BundleMember::Raw(r) if *k == "resourceType" => {
                serde_json::from_str::<&str>(r.get()).ok()
            }
            _ => None,
        });
        (rtype == Some("Bundle")).then_some(b)
    }

    /// The entries (of the last `entry` member).
    pub fn entries(&self) -> &[SplitEntry<'a>] {
        self.members
            .iter()
            .rev()
            .find_map(|(_, v)| match v {
                BundleMember::Entries(e) => Some(e.as_slice()),
                BundleMember::Raw(_) => None,
            })
            .unwrap_or_default()
    }

    /// `Bundle.link`, raw.
    pub fn link(&self) -> Option<&'a RawValue> {
        self.raw("link")
    }

    /// The last member called `name` other than `entry`, raw.
    fn raw(&self, name: &str) -> Option<&'a RawValue> {
        self.members.iter().rev().find_map(|(k, v)| match v {
            BundleMember::Raw(r) if *k == name => Some(*r),
            _ => None,
        })
    }

    /// Whether the Bundle has a `total`.
    pub fn has_total(&self) -> bool {
        self.raw("total").is_some()
    }

    /// Whether `Bundle.total` is present and goes out when the entries `keep` admits (by position)
    /// are kept: the same rule, on the same values, as the tree's `filter::entries::retain` (`next`:
    /// whether `Bundle.link` names a next page). `total` and each entry's `search` are parsed only
    /// when the cheaper conditions hold: a single complete page with nothing withheld.
    pub fn keeps_total(&self, keep: &[bool], next: bool) -> bool {
        let Some(total) = self.raw("total") else {
            return false;
        };
        let removed = keep.iter().filter(|k| !**k).count();
        if next || removed > 0 {
            return false;
        }
        let Ok(total) = serde_json::from_str::<Value>(total.get()) else {
            return false;
        };
        let matches = || self.entries().iter().filter(|e| e.is_match()).count();
        entries::total_disclosable(&total, next, removed, matches)
    }

    /// The Bundle written back from its own text: the entries `keep` admits (by position), `total`
    /// only when `keep_total` (see [`SplitBundle::keeps_total`]), `entry` gone when any was withheld
    /// and none is left, `link` replaced by `links` when given.
    pub fn write_filtered(&self, keep: &[bool], keep_total: bool, links: Option<&[u8]>) -> Vec<u8> {
        let removed = keep.iter().any(|k| !*k);
        let mut out = Vec::with_capacity(self.len + links.map_or(0, <[u8]>::len));
        write_members(&mut out, &self.members, |out, name, v| match (name, v) {
            ("total", _) if !keep_total => false,
            (_, BundleMember::Entries(entries)) => {
                let kept = entries.iter().zip(keep).filter(|(_, k)| **k);
                let mut any = false;
                out.push(b'[');
                for (e, _) in kept {
                    if any {
                        out.push(b',');
                    }
                    any = true;
                    e.write(out);
                }
                out.push(b']');
                any || !removed
            }
            ("link", BundleMember::Raw(_)) if links.is_some() => {
                out.extend_from_slice(links.unwrap_or_default());
                true
            }
            (_, BundleMember::Raw(r)) => {
                out.extend_from_slice(r.get().as_bytes());
                true
            }
        });
        out
    }
}

impl<'a> SplitEntry<'a> {
    /// The entry's resource, split into members.
    pub fn resource(&self) -> Option<&RawObject<'a>> {
        self.members.iter().rev().find_map(|(_, v)| match v {
            EntryMember::Resource(r) => Some(r),
            EntryMember::Raw(_) => None,
        })
    }

    /// Whether it is a `search.mode = outcome` entry (the server's OperationOutcome about the search).
    pub fn is_outcome(&self) -> bool {
        let search = self.members.iter().rev().find(|(k, _)| *k == "search");
        match search {
            // Without the literal token there is no plain `"mode": "outcome"` (an escaped spelling
            // is not read as one below either): most entries are settled without a parse.
            Some((_, EntryMember::Raw(r))) if !r.get().contains("\"outcome\"") => false,
            Some((_, EntryMember::Raw(r))) => RawObject::parse(r.get())
                .ok()
                .is_some_and(|s| s.str("mode") == Some("outcome")),
            _ => false,
        }
    }

    /// Whether it is a match entry (see `filter::entries::is_match`). Its `search` is parsed as
    /// the tree path parses it, so that escaped or repeated members read the same on both paths.
    pub fn is_match(&self) -> bool {
        match self.members.iter().rev().find(|(k, _)| *k == "search") {
            Some((_, EntryMember::Raw(r))) => {
                serde_json::from_str::<Value>(r.get()).is_ok_and(|s| entries::is_match(Some(&s)))
            }
            _ => true,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        write_members(out, &self.members, |out, _, v| {
            match v {
                EntryMember::Raw(r) => out.extend_from_slice(r.get().as_bytes()),
                EntryMember::Resource(r) => write_members(out, &r.members, |out, _, v| {
                    out.extend_from_slice(v.get().as_bytes());
                    true
                }),
            }
            true
        });
    }
}

/// Writes `"name":` (escaped as JSON requires) to `out`.
pub fn write_name(out: &mut Vec<u8>, name: &str) {
    // Element names are plain ASCII: copied as they are, without the serializer's per-byte escaping.
    if name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
    } else {
        // A &str always serialises.
        let _ = serde_json::to_writer(&mut *out, name);
    }
    out.push(b':');
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_in_order_and_partial_values() {
        let text = r#"{"resourceType":"Observation","id":"o1","text":{"div":"<div>big</div>"},
            "subject":{"reference":"Patient/p"},"code":{"text":"x"}}"#;
        let o = RawObject::parse(text).unwrap();
        let names: Vec<&str> = o.members.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["resourceType", "id", "text", "subject", "code"]);
        assert_eq!(o.str("id"), Some("o1"));
        assert_eq!(o.str("subject"), None);
        let p = o.partial(|k| k != "text").unwrap();
        assert_eq!(
            p,
            json!({"resourceType": "Observation", "id": "o1",
                "subject": {"reference": "Patient/p"}, "code": {"text": "x"}})
        );
        assert_eq!(
            o.full().unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn malformed_or_escaped_input_is_refused() {
        assert!(RawObject::parse(r#"{"a":1,"b":}"#).is_err());
        assert!(RawObject::parse(r#"[1]"#).is_err());
        assert!(RawObject::parse(r#"{"\u0061":1}"#).is_err());
        // Skipping a member does not recurse (no stack to exhaust); parsing it does, within
        // serde_json's nesting limit.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let o = RawObject::parse(&deep).unwrap();
        assert!(o.full().is_err(), "nesting stays bounded when parsed");
    }

    #[test]
    fn duplicate_members_resolve_as_a_full_parse_does() {
        let o = RawObject::parse(r#"{"id":"a","id":"b"}"#).unwrap();
        assert_eq!(o.str("id"), Some("b"));
        assert_eq!(o.full().unwrap(), json!({"id": "b"}));
    }

    /// The split path's answer, parsed, for the entries `keep` admits: `total` decided as
    /// `judge_json` decides it, from the upstream's links.
    fn written(text: &str, keep: &[bool], links: Option<&Value>) -> Value {
        let split = SplitBundle::parse(text).unwrap();
        let upstream_links = split.link().map(|l| serde_json::from_str(l.get()).unwrap());
        let keep_total = split.keeps_total(keep, entries::has_next(upstream_links.as_ref()));
        let links = links.map(|l| serde_json::to_vec(l).unwrap());
        serde_json::from_slice(&split.write_filtered(keep, keep_total, links.as_deref())).unwrap()
    }

    /// The tree path's answer for the same decisions (`keep` is by position; `retain` asks only
    /// about the entries it judges, as `judge_bundle` gives it their verdicts).
    fn retained(text: &str, keep: &[bool]) -> Value {
        let mut doc: Value = serde_json::from_str(text).unwrap();
        let judged: Vec<bool> = doc["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(keep)
            .filter(|(e, _)| e.get("resource").is_some() && e["search"]["mode"] != "outcome")
            .map(|(_, k)| *k)
            .collect();
        let mut it = judged.into_iter();
        entries::retain(&mut doc, |_| it.next().unwrap());
        doc
    }

    const PAGE: &str = r#"{"resourceType":"Bundle","type":"searchset","total":3,
        "link":[{"relation":"self","url":"http://up/fhir/Observation"},
                {"relation":"next","url":"http://up/fhir/Observation?page=2"}],
        "entry":[
          {"fullUrl":"http://up/fhir/Observation/a","resource":{"resourceType":"Observation","id":"a","text":{"div":"<div>A</div>"}},"search":{"mode":"match"}},
          {"fullUrl":"http://up/fhir/Observation/b","resource":{"resourceType":"Observation","id":"b"},"search":{"mode":"match"}},
          {"resource":{"resourceType":"OperationOutcome","id":"o"},"search":{"mode":"outcome"}}]}"#;

    #[test]
    fn a_split_bundle_writes_what_the_tree_path_does() {
        let split = SplitBundle::parse(PAGE).unwrap();
        assert_eq!(split.entries().len(), 3);
        assert!(split.entries()[2].is_outcome() && !split.entries()[0].is_outcome());
        assert_eq!(split.entries()[1].resource().unwrap().str("id"), Some("b"));
        for keep in [
            [true, true, true],
            [true, false, true],
            [false, false, true],
        ] {
            assert_eq!(
                written(PAGE, &keep, None),
                retained(PAGE, &keep),
                "{keep:?}"
            );
        }
        // Everything withheld: `entry` and `total` go, as in the tree.
        let one = r#"{"resourceType":"Bundle","total":1,"entry":[{"resource":{"resourceType":"Observation","id":"a"}}]}"#;
        assert_eq!(written(one, &[false], None), retained(one, &[false]));
        assert_eq!(
            written(one, &[false], None),
            json!({"resourceType": "Bundle"})
        );
        assert_eq!(written(one, &[true], None), retained(one, &[true]));
        // Sealed links replace the upstream's.
        let sealed = json!([{"relation": "next", "url": "http://gw/fhir?_cursor=x"}]);
        assert_eq!(
            written(PAGE, &[true, true, true], Some(&sealed))["link"],
            sealed
        );
    }

    /// Issue 17: `total` goes out only from a single complete page on which nothing was withheld and
    /// which shows exactly `total` matches; the same on both paths.
    #[test]
    fn the_total_goes_out_only_when_it_counts_what_is_shown() {
        let obs = |id: &str, mode: &str| {
            format!(
                r#"{{"resource":{{"resourceType":"Observation","id":"{id}"}},"search":{{"mode":"{mode}"}}}}"#
            )
        };
        let bundle = |total: &str, next: bool, entries: &[String]| {
            let next = if next {
                r#",{"relation":"next","url":"http://up/fhir/Observation?_offset=2"}"#
            } else {
                ""
            };
            format!(
                r#"{{"resourceType":"Bundle","type":"searchset"{total},"link":[{{"relation":"self","url":"http://up/fhir/Observation"}}{next}],"entry":[{}]}}"#,
                entries.join(",")
            )
        };
        let (a, b) = (obs("a", "match"), obs("b", "match"));
        let (inc, outcome) = (obs("p", "include"), obs("o", "outcome"));
        let history = r#"{"resourceType":"Bundle","type":"history","total":2,"entry":[
            {"resource":{"resourceType":"Observation","id":"a"},"request":{"method":"PUT","url":"Observation/a"}},
            {"fullUrl":"http://up/fhir/Observation/a","request":{"method":"DELETE","url":"Observation/a"}}]}"#;
        let cases: Vec<(&str, String, Vec<bool>, bool)> = vec![
            // `_count=0` and `_summary=count`: a total and no entries.
            ("_count=0", r#"{"resourceType":"Bundle","type":"searchset","total":5}"#.into(), vec![], false),
            ("nothing matched", r#"{"resourceType":"Bundle","total":0}"#.into(), vec![], true),
            ("complete, all admitted", bundle(r#","total":2"#, false, &[a.clone(), b.clone()]), vec![true, true], true),
            ("one withheld", bundle(r#","total":2"#, false, &[a.clone(), b.clone()]), vec![true, false], false),
            ("total above the matches", bundle(r#","total":3"#, false, &[a.clone(), b.clone()]), vec![true, true], false),
            ("a next page", bundle(r#","total":2"#, true, &[a.clone(), b.clone()]), vec![true, true], false),
            ("includes are not matches", bundle(r#","total":3"#, false, &[a.clone(), b.clone(), inc.clone()]), vec![true; 3], false),
            ("includes beside", bundle(r#","total":2"#, false, &[a.clone(), inc.clone(), b.clone(), outcome.clone()]), vec![true; 4], true),
            ("an include withheld", bundle(r#","total":2"#, false, &[a.clone(), b.clone(), inc.clone()]), vec![true, true, false], false),
            ("no mode is a match", bundle(r#","total":1"#, false, &[r#"{"resource":{"resourceType":"Observation","id":"a"}}"#.into()]), vec![true], true),
            ("escaped mode", bundle(r#","total":1"#, false, &[r#"{"resource":{"resourceType":"Observation","id":"a"},"search":{"mode":"m\u0061tch"}}"#.into()]), vec![true], true),
            ("repeated mode", bundle(r#","total":1"#, false, &[r#"{"resource":{"resourceType":"Observation","id":"a"},"search":{"mode":"match","mode":"include"}}"#.into()]), vec![true], false),
            ("a total that is not a count", bundle(r#","total":"2""#, false, &[a.clone(), b.clone()]), vec![true, true], false),
            ("history with a deletion", history.into(), vec![true, true], true),
        ];
        for (what, text, keep, kept) in cases {
            let (split, tree) = (written(&text, &keep, None), retained(&text, &keep));
            assert_eq!(split, tree, "{what}: the two paths differ");
            assert_eq!(split.get("total").is_some(), kept, "{what}: {split}");
        }
        let no_total = bundle("", false, &[a]);
        assert!(!SplitBundle::parse(&no_total).unwrap().has_total());
        assert_eq!(
            written(&no_total, &[true], None),
            retained(&no_total, &[true])
        );
    }

    #[test]
    fn a_repeated_member_is_written_once_as_its_last_copy() {
        // A hostile upstream repeats `entry`, `resource` or `id`: an earlier copy must not slip out
        // unjudged, at any level the gateway writes.
        let text = r#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"secret1"}}],
            "entry":[{"resource":{"resourceType":"Observation","id":"secret2"},"resource":{"resourceType":"Observation","id":"a"}},
                     {"resource":{"resourceType":"Observation","id":"secret3","id":"b"}}]}"#;
        let split = SplitBundle::parse(text).unwrap();
        assert_eq!(
            split.entries().len(),
            2,
            "the last `entry` is the one judged"
        );
        assert_eq!(split.entries()[0].resource().unwrap().str("id"), Some("a"));
        assert_eq!(split.entries()[1].resource().unwrap().str("id"), Some("b"));
        let s = String::from_utf8(split.write_filtered(&[true, true], false, None)).unwrap();
        assert!(!s.contains("secret"), "{s}");
        assert_eq!(s.matches("\"entry\"").count(), 1, "{s}");
    }

    #[test]
    fn answers_that_cannot_be_split_are_left_to_a_full_parse() {
        for text in [
            r#"{"resourceType":"Observation","id":"a"}"#,
            r#"{"resourceType":"Bundle","entry":{"not":"an array"}}"#,
            r#"{"resourceType":"Bundle","entry":[{"resource":[1]}]}"#,
            r#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient"}}"#,
            r#"{"resourceType":"Bundle","entry":[{"resource":{"\u0069d":"x"}}]}"#,
        ] {
            assert!(SplitBundle::parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn names_are_escaped_when_written() {
        let mut out = Vec::new();
        write_name(&mut out, "a\"b");
        assert_eq!(out, br#""a\"b":"#);
    }
}
