//! Tests of the canonical form: JCS vectors, the exclusion rule, and JSON/XML giving the same bytes.

use serde_json::json;

use super::*;
use crate::fhir::format::Format;
use crate::fhir::parse::{json_to_xml, parse};

fn canon(v: &Value) -> String {
    String::from_utf8(canonical_bytes(v)).unwrap()
}

#[test]
fn rfc8785_key_order_and_string_escapes() {
    // RFC 8785 §3.2.3 sorts by UTF-16 code units: U+20AC (€, one unit 0x20AC) before U+1F600 (😀, the
    // surrogate pair 0xD83D 0xDE00), and both after ASCII.
    let v: Value =
        serde_json::from_str(r#"{"\u20ac":1,"\ud83d\ude00":2,"\r":3,"1":4,"b":5,"a":6}"#).unwrap();
    assert_eq!(
        canon(&v),
        "{\"\\r\":3,\"1\":4,\"a\":6,\"b\":5,\"€\":1,\"😀\":2}"
    );
    let s = json!("quote\" back\\ tab\t nl\n ctl\u{1} del\u{7f} é");
    assert_eq!(
        canon(&s),
        "\"quote\\\" back\\\\ tab\\t nl\\n ctl\\u0001 del\u{7f} é\""
    );
}

#[test]
fn server_assigned_meta_is_left_out_and_empty_meta_dropped() {
    let a = json!({"resourceType": "Patient", "id": "1", "meta": {"versionId": "3", "lastUpdated": "2024-01-01T00:00:00Z"}, "active": true});
    let b = json!({"active": true, "id": "1", "resourceType": "Patient"});
    assert_eq!(canon(&a), canon(&b));
    assert_eq!(
        canon(&b),
        r#"{"active":true,"id":"1","resourceType":"Patient"}"#
    );
    let with_profile =
        json!({"resourceType": "Patient", "meta": {"versionId": "9", "profile": ["http://x/p"]}});
    assert_eq!(
        canon(&with_profile),
        r#"{"meta":{"profile":["http://x/p"]},"resourceType":"Patient"}"#
    );
    // Contained resources keep theirs: only the root's version fields are server-assigned.
    let contained = json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "meta": {"versionId": "1"}}]});
    assert!(canon(&contained).contains(r#""versionId":"1""#));
    assert_ne!(canonical_hash(&a), canonical_hash(&with_profile));
}

#[test]
fn decimals_keep_precision() {
    let a: Value =
        serde_json::from_str(r#"{"resourceType":"Observation","valueQuantity":{"value":1.50}}"#)
            .unwrap();
    let b: Value =
        serde_json::from_str(r#"{"resourceType":"Observation","valueQuantity":{"value":1.5}}"#)
            .unwrap();
    assert!(canon(&a).contains("\"value\":1.50"));
    assert_ne!(canonical_hash(&a), canonical_hash(&b));
}

/// A resource with the constructs where JSON and XML differ most: primitive extensions, repeating
/// primitives with gaps, decimals, booleans, contained resources, narrative and choice types.
const XML: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<Observation xmlns="http://hl7.org/fhir">
  <id value="obs-1"/>
  <meta><versionId value="7"/><lastUpdated value="2024-05-01T10:00:00Z"/><profile value="http://example.org/p"/></meta>
  <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Weight <b>72.50</b> kg</p></div></text>
  <contained><Patient><id value="p"/><name><given value="A"/><given value="B"/></name></Patient></contained>
  <status value="final"/>
  <code><coding><system value="http://loinc.org"/><code value="29463-7"/></coding></code>
  <subject><reference value="#p"/></subject>
  <effectiveDateTime value="2024-05-01"><extension url="http://example.org/ext"><valueBoolean value="true"/></extension></effectiveDateTime>
  <valueQuantity><value value="72.50"/><unit value="kg"/></valueQuantity>
</Observation>"##;

#[test]
fn json_and_xml_forms_have_one_canonical_form() {
    let from_xml = parse(Format::Xml, XML.as_bytes()).unwrap();
    let json_text = r##"{
      "resourceType": "Observation", "id": "obs-1",
      "meta": {"profile": ["http://example.org/p"], "lastUpdated": "2024-05-01T10:00:00Z", "versionId": "7"},
      "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Weight <b>72.50</b> kg</p></div>"},
      "contained": [{"resourceType": "Patient", "id": "p", "name": [{"given": ["A", "B"]}]}],
      "status": "final",
      "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
      "subject": {"reference": "#p"},
      "effectiveDateTime": "2024-05-01",
      "_effectiveDateTime": {"extension": [{"url": "http://example.org/ext", "valueBoolean": true}]},
      "valueQuantity": {"value": 72.50, "unit": "kg"}
    }"##;
    let from_json = parse(Format::Json, json_text.as_bytes()).unwrap();
    assert_eq!(canon(&from_xml), canon(&from_json));
    // And through a JSON → XML → JSON round trip.
    let round = parse(Format::Xml, &json_to_xml(&from_json).unwrap()).unwrap();
    assert_eq!(canonical_hash(&round), canonical_hash(&from_json));
}

#[test]
fn synthea_resources_survive_the_xml_round_trip() {
    let mut checked = 0;
    for (name, text) in crate::test_data::synthea_ndjson() {
        if name.starts_with("log") {
            continue;
        }
        for line in text.lines().take(20) {
            let v = parse(Format::Json, line.as_bytes()).unwrap();
            let xml = json_to_xml(&v).unwrap();
            let back = parse(Format::Xml, &xml).unwrap();
            assert_eq!(canon(&back), canon(&v), "{name}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} resources checked");
}
