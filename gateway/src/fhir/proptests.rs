//! Property tests of the readers and the canonicaliser: no input makes them panic or hang, and the
//! canonical form does not depend on key order, on the wire format, or on a round trip through itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::canonical::canonical_bytes;
use super::format::Format;
use super::parse::{json_to_xml, parse};
use crate::validate::Validator;

/// Text as clients send it: any Unicode scalar except the controls FHIR strings may not hold.
fn fhir_text() -> impl Strategy<Value = String> {
    "[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]{1,24}".prop_filter("FHIR strings are trimmed", |s| {
        s.trim() == s && !s.is_empty()
    })
}

/// A decimal in FHIR lexical form, precision and all (`1.50` is not `1.5`).
fn decimal() -> impl Strategy<Value = Value> {
    (-1_000_000i64..1_000_000, 0u32..4).prop_map(|(n, scale)| {
        let digits = format!("{:0width$}", n.unsigned_abs(), width = scale as usize + 1);
        let (int, frac) = digits.split_at(digits.len() - scale as usize);
        let sign = if n < 0 { "-" } else { "" };
        let text = if scale == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        };
        serde_json::from_str(&text).unwrap()
    })
}

/// Generated Observations exercising strings, decimals, repeats, primitive extensions and contained.
fn observation() -> impl Strategy<Value = Value> {
    (
        fhir_text(),
        prop::collection::vec(fhir_text(), 0..3),
        decimal(),
        prop::option::of(fhir_text()),
        any::<bool>(),
    )
        .prop_map(|(text, notes, value, unit, contained)| {
            let mut o = json!({
                "resourceType": "Observation",
                "id": "p1",
                "meta": {"versionId": "3", "lastUpdated": "2024-01-01T00:00:00Z"},
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": text},
                "valueQuantity": {"value": value},
            });
            if let Some(u) = unit {
                o["valueQuantity"]["unit"] = json!(u);
                o["_status"] = json!({"extension": [{"url": "http://example.org/x", "valueString": u}]});
            }
            if !notes.is_empty() {
                o["note"] = Value::Array(notes.into_iter().map(|t| json!({"text": t})).collect());
            }
            if contained {
                o["contained"] = json!([{"resourceType": "Patient", "id": "c1", "active": true}]);
                o["subject"] = json!({"reference": "#c1"});
            }
            o
        })
}

/// The same JSON with every object's keys in reverse order.
fn reorder(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m.iter().rev() {
                out.insert(k.clone(), reorder(x));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(reorder).collect()),
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn readers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(Format::Json, &bytes);
        let _ = parse(Format::Xml, &bytes);
    }

    #[test]
    fn readers_never_panic_on_near_fhir_text(
        body in "(\\{|\\[|\"resourceType\"|:|,|\"Patient\"|\"name\"|\\}|\\]|null|1e999|-0|\"\\\\u00\"|<Patient xmlns=\"http://hl7.org/fhir\">|</Patient>|<name>|</name>|<given value=\"x\"/>|&amp;|&#0;|<!DOCTYPE|<!ENTITY){0,40}"
    ) {
        for format in [Format::Json, Format::Xml] {
            if let Ok(v) = parse(format, body.as_bytes()) {
                // Whatever parses must also validate without panicking.
                let _ = Validator::r4().validate(&v);
            }
        }
    }

    #[test]
    fn canonical_form_ignores_key_order_and_server_fields(obs in observation()) {
        let mut bumped = reorder(&obs);
        bumped["meta"]["versionId"] = json!("4");
        bumped["meta"]["lastUpdated"] = json!("2025-06-30T12:00:00+02:00");
        prop_assert_eq!(canonical_bytes(&obs), canonical_bytes(&bumped));
    }

    #[test]
    fn canonical_form_from_text_is_the_trees(obs in observation(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_string_pretty(&reorder(&obs)) } else { serde_json::to_string(&obs) }.unwrap();
        let from_text = super::canonical::text::canonical_from_text(&text, &|_| None).unwrap();
        prop_assert_eq!(from_text.bytes, canonical_bytes(&obs));
        prop_assert_eq!(from_text.version.as_deref(), obs.pointer("/meta/versionId").and_then(Value::as_str));
    }

    #[test]
    fn canonical_from_text_never_panics(
        body in r#"(\{|\[|"meta"|"versionId"|"\$serde_json::private::Number"|:|,|"x"|\}|\]|null|1e999|-0|1\.50|"1x"|"\\u00"){0,40}"#
    ) {
        let text = super::canonical::text::canonical_from_text(&body, &|_| None);
        if let (Ok(c), Ok(v)) = (text, serde_json::from_str::<Value>(&body)) {
            prop_assert_eq!(c.bytes, canonical_bytes(&v));
        }
    }

    #[test]
    fn canonical_form_is_a_fixed_point(obs in observation()) {
        let once = canonical_bytes(&obs);
        let again = canonical_bytes(&parse(Format::Json, &once).unwrap());
        prop_assert_eq!(once, again);
    }

    #[test]
    fn json_and_xml_give_the_same_canonical_bytes(obs in observation()) {
        let xml = json_to_xml(&obs).unwrap();
        let back = parse(Format::Xml, &xml).unwrap();
        prop_assert_eq!(
            String::from_utf8(canonical_bytes(&obs)).unwrap(),
            String::from_utf8(canonical_bytes(&back)).unwrap()
        );
    }

    #[test]
    fn generated_observations_are_valid(obs in observation()) {
        let out = Validator::r4().validate(&obs);
        prop_assert!(crate::validate::is_valid(&out), "{:?}", out.issues);
    }
}
