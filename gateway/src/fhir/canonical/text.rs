//! The canonical form of a resource computed straight from its JSON text, in one pass, without
//! building its tree.
//!
//! Anchoring a write used to parse the upstream's answer into a `serde_json::Value`, clone it to make
//! its URLs relative, and then serialise the clone canonically: about 45 µs of the ~345 µs a create
//! costs the gateway. Here serde_json's parser drives a visitor that writes each value's canonical
//! bytes as it is read; only an object's members are buffered, to be sorted. The bytes are exactly
//! those of [`super::canonical_bytes`] after relativising (tests compare the two on every Synthea
//! resource type and on hostile inputs).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{write_string, EXCLUDED_META};
use crate::fhir::SERDE_NUMBER_TOKEN as NUMBER_TOKEN;

/// What anchoring needs from a resource's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// The canonical bytes (CANONICAL.md, steps 0 to 4).
    pub bytes: Vec<u8>,
    /// The root's `resourceType`, when a string.
    pub resource_type: Option<String>,
    /// The root's `id`, when a string.
    pub id: Option<String>,
    /// The root's `meta.versionId`, when a string.
    pub version: Option<String>,
}

/// The canonical form of the JSON value `text`; every string value that `relative` rewrites (CANONICAL.md,
/// step 0) is replaced by what it answers. Fails when `text` is not one well-formed JSON value.
pub fn canonical_from_text(
    text: &str,
    relative: &dyn Fn(&str) -> Option<String>,
) -> Result<Canonical, serde_json::Error> {
    let mut ctx = Ctx {
        out: Vec::with_capacity(text.len()),
        relative,
        resource_type: None,
        id: None,
        version: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    Seed {
        ctx: &mut ctx,
        level: Level::Root,
        capture: Capture::Nothing,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(Canonical {
        bytes: ctx.out,
        resource_type: ctx.resource_type,
        id: ctx.id,
        version: ctx.version,
    })
}

struct Ctx<'r> {
    out: Vec<u8>,
    relative: &'r dyn Fn(&str) -> Option<String>,
    resource_type: Option<String>,
    id: Option<String>,
    version: Option<String>,
}

/// Where a value sits: the rules differ at the root and in the root's `meta` (CANONICAL.md, step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    RootMeta,
    Inner,
}

/// A root string anchoring reports besides the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    Nothing,
    ResourceType,
    Id,
}

struct Seed<'c, 'r> {
    ctx: &'c mut Ctx<'r>,
    level: Level,
    capture: Capture,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        let lit: &[u8] = if v { b"true" } else { b"false" };
        self.ctx.out.extend_from_slice(lit);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.ctx.out.extend_from_slice(b"null");
        Ok(())
    }

    // Without `arbitrary_precision` numbers would arrive here; written as `Value` would print them.
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.ctx.out.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.ctx.out.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let n = serde_json::Number::from_f64(v)
            .ok_or_else(|| E::custom("a number that is not finite"))?;
        self.ctx.out.extend_from_slice(n.to_string().as_bytes());
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        match self.capture {
            Capture::Nothing => {}
            Capture::ResourceType => self.ctx.resource_type = Some(v.to_owned()),
            Capture::Id => self.ctx.id = Some(v.to_owned()),
        }
        match (self.ctx.relative)(v) {
            Some(rel) => write_string(&rel, &mut self.ctx.out),
            None => write_string(v, &mut self.ctx.out),
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.ctx.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.ctx.out.len();
            if !first {
                self.ctx.out.push(b',');
            }
            let seed = Seed {
                ctx: &mut *self.ctx,
                level: Level::Inner,
                capture: Capture::Nothing,
            };
            if seq.next_element_seed(seed)?.is_none() {
                self.ctx.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.ctx.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        let start = ctx.out.len();
        // Each member's value is written in place as it is read; its name and byte range are kept,
        // and the members are put in order once the object ends.
        let mut members: Vec<(Cow<'de, str>, Range<usize>)> = Vec::new();
        let mut first = true;
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            if std::mem::take(&mut first) && name == NUMBER_TOKEN {
                // A number, kept in its lexical form (CANONICAL.md, step 4). serde_json's own tree
                // reads a first member of this name the same way, and refuses what is not a number.
                let lexical: String = map.next_value()?;
                lexical
                    .parse::<serde_json::Number>()
                    .map_err(|_| de::Error::custom("invalid number"))?;
                ctx.out.extend_from_slice(lexical.as_bytes());
                return Ok(());
            }
            let (level, capture) = match (self.level, name.as_ref()) {
                (Level::Root, "meta") => (Level::RootMeta, Capture::Nothing),
                (Level::Root, "resourceType") => (Level::Inner, Capture::ResourceType),
                (Level::Root, "id") => (Level::Inner, Capture::Id),
                _ => (Level::Inner, Capture::Nothing),
            };
            if self.level == Level::RootMeta && EXCLUDED_META.contains(&name.as_ref()) {
                if name == "versionId" {
                    ctx.version = map.next_value::<StrOrAny>()?.0;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
                continue;
            }
            if level == Level::RootMeta {
                // Of repeated `meta` members the last is the one kept, with its own version.
                ctx.version = None;
            }
            let at = ctx.out.len();
            map.next_value_seed(Seed {
                ctx: &mut *ctx,
                level,
                capture,
            })?;
            // A root `meta` left empty by step 2 is removed.
            if level == Level::RootMeta && &ctx.out[at..] == b"{}" {
                ctx.out.truncate(at);
                members.retain(|(n, _)| n != "meta");
                continue;
            }
            members.push((name, at..ctx.out.len()));
        }
        // Of repeated names the last is kept, as a parse into a tree would keep it.
        members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        let values = ctx.out.split_off(start);
        ctx.out.push(b'{');
        let mut written = 0;
        for (i, (name, range)) in members.iter().enumerate() {
            if members.get(i + 1).is_some_and(|next| next.0 == *name) {
                continue;
            }
            if written > 0 {
                ctx.out.push(b',');
            }
            written += 1;
            write_string(name, &mut ctx.out);
            ctx.out.push(b':');
            ctx.out
                .extend_from_slice(&values[range.start - start..range.end - start]);
        }
        ctx.out.push(b'}');
        Ok(())
    }
}

/// Any value, and its text when it is a string (`meta.versionId`, which is read but not written).
struct StrOrAny(Option<String>);

impl<'de> de::Deserialize<'de> for StrOrAny {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOrAny;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<StrOrAny, E> {
                Ok(StrOrAny(Some(v.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<StrOrAny, E> {
                Ok(StrOrAny(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<StrOrAny, E> {
                Ok(StrOrAny(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<StrOrAny, E> {
                Ok(StrOrAny(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<StrOrAny, E> {
                Ok(StrOrAny(None))
            }
            fn visit_unit<E>(self) -> Result<StrOrAny, E> {
                Ok(StrOrAny(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<StrOrAny, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| StrOrAny(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StrOrAny, A::Error> {
                IgnoredAny.visit_map(map).map(|_| StrOrAny(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A member name, borrowed from the text when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::fhir::canonical::{canonical_bytes, relativise};

    /// The tree path: parse, relativise, canonicalise.
    fn by_tree(text: &str, relative: &dyn Fn(&str) -> Option<String>) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(text).unwrap();
        relativise(&mut v, relative);
        canonical_bytes(&v)
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    fn same(text: &str) -> Canonical {
        let c = canonical_from_text(text, &none).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&c.bytes),
            String::from_utf8_lossy(&by_tree(text, &none)),
            "{text}"
        );
        c
    }

    #[test]
    fn writes_what_the_tree_path_writes() {
        let c = same(
            r#"{"resourceType":"Observation","id":"o1","meta":{"versionId":"3","lastUpdated":"2024-01-01T00:00:00Z","profile":["http://x/p"]},
               "valueQuantity":{"value":1.50,"unit":"mg"},"component":[{"valueInteger":-0},{"valueDecimal":1e3}],
               "note":[{"text":"quote\" back\\ tab\t ctl\u0001 \u20ac \ud83d\ude00"}],"\u20ac":1,"\ud83d\ude00":2,"a":null,"b":[true,false,[]],"c":{}}"#,
        );
        assert_eq!(c.resource_type.as_deref(), Some("Observation"));
        assert_eq!(c.id.as_deref(), Some("o1"));
        assert_eq!(c.version.as_deref(), Some("3"));
        // Step 2 at the root only: a contained resource keeps its meta; an emptied root meta goes.
        let c = same(
            r#"{"resourceType":"Patient","meta":{"versionId":"9","_lastUpdated":{"id":"x"}},
               "contained":[{"resourceType":"Group","meta":{"versionId":"1"}}]}"#,
        );
        assert_eq!(c.version.as_deref(), Some("9"));
        assert!(!String::from_utf8_lossy(&c.bytes).contains(r#""meta":{}"#));
        same(r#"{"resourceType":"Patient","meta":{}}"#);
        same(r#"{"resourceType":"Patient","meta":"not an object"}"#);
        same(r#"[1,{"b":1,"a":2}]"#);
        same(r#""just a string""#);
    }

    #[test]
    fn repeated_members_keep_the_last_copy_as_a_tree_does() {
        let c = same(
            r#"{"resourceType":"Patient","id":"a","active":true,"id":"b","meta":{"versionId":"1"},"meta":{"source":"s"},"x":{"k":1,"k":2}}"#,
        );
        assert_eq!(c.id.as_deref(), Some("b"));
        assert_eq!(c.version, None, "the last meta has no versionId");
        same(r#"{"meta":{"source":"s"},"meta":{"versionId":"1"}}"#);
        // Only a first member of serde_json's number name is a number, as in its own tree; after a
        // member dropped by step 2 it is an ordinary name.
        same(
            r#"{"resourceType":"Patient","meta":{"versionId":"1","$serde_json::private::Number":"5"}}"#,
        );
        same(r#"{"meta":{"versionId":"1"},"$serde_json::private::Number":"5"}"#);
    }

    #[test]
    fn urls_under_the_base_are_made_relative() {
        let rel = |s: &str| s.strip_prefix("http://ehr:8090/fhir/").map(str::to_owned);
        let text = r#"{"resourceType":"Observation","subject":{"reference":"http://ehr:8090/fhir/Patient/1"},"id":"http://ehr:8090/fhir/x"}"#;
        let c = canonical_from_text(text, &rel).unwrap();
        assert_eq!(c.bytes, by_tree(text, &rel));
        assert!(String::from_utf8_lossy(&c.bytes).contains(r#""reference":"Patient/1""#));
        // What anchoring reports is the resource's own id, not the rewritten one.
        assert_eq!(c.id.as_deref(), Some("http://ehr:8090/fhir/x"));
    }

    #[test]
    fn every_synthea_resource_gives_the_tree_paths_bytes() {
        let mut checked = 0;
        for (_, text) in crate::test_data::synthea_ndjson() {
            for line in text.lines().take(40) {
                same(line);
                checked += 1;
            }
        }
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in [r#"{"a":1"#, r#"{"a":1} x"#, "", r#"{"a":tru}"#, "[1,]"] {
            assert!(canonical_from_text(bad, &none).is_err(), "{bad}");
        }
    }
}
