//! Tests of the well-formedness gate and its bounds.
#![allow(clippy::unwrap_used)]

use super::*;

fn check_json(body: &[u8]) -> Result<(), Refused> {
    super::check_json(body, &Bounds::default())
}

fn check_xml(body: &[u8]) -> Result<(), Refused> {
    super::check_xml(body, &Bounds::default())
}

fn parse_json(body: &[u8]) -> Result<Value, Refused> {
    super::parse_json(body, &Bounds::default())
}

/// The message of a refusal that is `Malformed`.
fn malformed<T: std::fmt::Debug>(r: Result<T, Refused>) -> String {
    match r {
        Err(Refused::Malformed(m)) => m.0,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn json() {
    assert!(check_json(br#"{"resourceType":"Patient"}"#).is_ok());
    assert!(check_json(br#"{"resourceType":"Patient""#).is_err());
    assert!(check_json(b"").is_err());
    let deep = "[".repeat(200) + &"]".repeat(200);
    let err = malformed(check_json(deep.as_bytes()));
    assert!(
        err.contains("nested deeper than 127 levels at byte 127"),
        "{err}"
    );
    let at = |n: usize| check_json(("[".repeat(n) + &"]".repeat(n)).as_bytes());
    assert!(at(127).is_ok());
    assert!(malformed(at(128)).contains("nested deeper than 127 levels at byte 127"));
    let huge = "[".repeat(100_000);
    assert!(check_json(huge.as_bytes()).is_err());
    assert!(check_json(b"{\"a\":\"\xff\"}").is_err());
    let dup =
        check_json(br#"{"resourceType":"Patient","active":true,"x":{"a":1,"b":[{"c":1,"c":2}]}}"#);
    assert!(malformed(dup).contains("duplicate member name \"c\""));
    assert!(
        check_json(br#"{"a":1,"\u0061":2}"#).is_err(),
        "escaped duplicate"
    );
    assert!(check_json(br#"{"a":{"a":1},"b":{"a":2},"n":1.50e400}"#).is_ok());
    // The tree it builds is serde_json's own, numbers in their lexical form included.
    let text = br#"{"resourceType":"Observation","v":[1.50,-0,1e3,12345678901234567890123],"s":"\u00e9","o":{"$serde_json::private::Number":"x"},"n":null,"b":false}"#;
    let own: Value = serde_json::from_slice(text).unwrap_or(Value::Null);
    match parse_json(text) {
        Ok(v) => assert_eq!(v, own),
        Err(e) => assert!(own.is_null(), "{e}"),
    }
    let plain = br#"{"resourceType":"Observation","v":[1.50,-0,1e3,12345678901234567890123],"s":"\u00e9","n":null,"b":false,"o":{}}"#;
    assert_eq!(
        parse_json(plain).unwrap().to_string(),
        serde_json::from_slice::<Value>(plain).unwrap().to_string()
    );
}

#[test]
fn xml() {
    assert!(check_xml(
        br#"<?xml version="1.0"?><Patient xmlns="http://hl7.org/fhir"><id value="1"/></Patient>"#
    )
    .is_ok());
    assert!(check_xml(b"<Patient><id></Patient>").is_err());
    assert!(check_xml(b"<a/><b/>").is_err());
    assert!(check_xml(b"").is_err());
    assert!(check_xml(b"<a>").is_err());
    let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
    assert_eq!(
        malformed(check_xml(laughs)),
        "XML with a DOCTYPE is not accepted"
    );
    let deep = "<a>".repeat(200) + &"</a>".repeat(200);
    assert!(check_xml(deep.as_bytes()).is_err());
}

/// The message of a refusal that is `TooCostly`.
fn too_costly<T: std::fmt::Debug>(r: Result<T, Refused>) -> String {
    match r {
        Err(Refused::TooCostly(t)) => t.0,
        other => panic!("expected TooCostly, got {other:?}"),
    }
}

/// One element with `n` distinct attributes.
fn attributes(n: usize) -> String {
    let attrs: String = (0..n).map(|i| format!(" a{i}=\"\"")).collect();
    format!("<Patient xmlns=\"http://hl7.org/fhir\"{attrs}/>")
}

#[test]
fn xml_attributes_are_checked_in_linear_time() {
    let bounds = |max_attributes| Bounds {
        max_attributes,
        ..Bounds::default()
    };
    assert!(super::check_xml(attributes(63).as_bytes(), &bounds(64)).is_ok());
    let m = too_costly(super::check_xml(attributes(65).as_bytes(), &bounds(64)));
    assert_eq!(
        m,
        "an XML element at byte 0 has more than 64 attributes (limits.max_xml_attributes)"
    );
    // The red team's element (issue 17 §4): 200,000 attributes. Refused at the 65th by default, and
    // linear even with no limit (quick-xml's own duplicate check made it quadratic: 34 s).
    let hostile = attributes(200_000);
    assert!(too_costly(check_xml(hostile.as_bytes())).contains("more than 64 attributes"));
    let started = std::time::Instant::now();
    assert!(super::check_xml(hostile.as_bytes(), &bounds(usize::MAX)).is_ok());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Repeated names are malformed (XML 1.0 §3.1, Unique Att Spec), whatever their place.
    for doc in [
        "<a x=\"1\" x=\"2\"/>",
        "<a x=\"1\" y=\"2\" z=\"3\" y=\"4\"></a>",
        "<r><b xmlns:p=\"u\" p:q=\"1\" p:q=\"1\"/></r>",
    ] {
        let m = malformed(check_xml(doc.as_bytes()));
        assert!(m.contains("is repeated in the tag at byte"), "{doc}: {m}");
    }
    assert!(malformed(check_xml(b"<a x=\"1\" y/>")).contains("malformed XML attribute"));
    assert!(check_xml(b"<a x=\"1\" X=\"2\" p:x=\"3\" xmlns:p=\"u\"/>").is_ok());
}

#[test]
fn nodes_are_counted_as_they_are_read() {
    let few = Bounds {
        max_nodes: 10,
        ..Bounds::default()
    };
    // XML: elements, attributes and text, not the whitespace between elements.
    let xml = "<Patient xmlns=\"http://hl7.org/fhir\">\n  <id value=\"1\"/>\n  <active value=\"true\"/>\n</Patient>";
    assert!(super::check_xml(xml.as_bytes(), &few).is_ok());
    let more = "<Patient>".to_owned() + &"<a/>".repeat(10) + "</Patient>";
    assert_eq!(
        too_costly(super::check_xml(more.as_bytes(), &few)),
        "the body has more than 10 XML nodes (limits.max_nodes)"
    );
    // JSON: every value, containers included.
    assert!(super::parse_json(b"[1,2,[3,4],{\"a\":5,\"b\":[]}]", &few).is_ok());
    assert_eq!(
        too_costly(super::parse_json(b"[1,2,3,4,5,6,7,8,9,10]", &few)),
        "the body has more than 10 JSON values (limits.max_nodes)"
    );
    assert!(too_costly(super::parse_json(
        b"{\"a\":[1.5,2.5,3.5,4.5,5.5,6.5,7.5,8.5,9.5]}",
        &few
    ))
    .contains("JSON values"));
}

#[test]
fn bundle_entries_are_counted_at_the_root_only() {
    let two = Bounds {
        max_entries: 2,
        ..Bounds::default()
    };
    let json = |n: usize| {
        let entries = vec![serde_json::json!({"fullUrl": "urn:uuid:1"}); n];
        serde_json::to_vec(&serde_json::json!({"entry": entries, "resourceType": "Bundle"}))
            .unwrap()
    };
    assert!(super::parse_json(&json(2), &two).is_ok());
    assert_eq!(
        too_costly(super::parse_json(&json(3), &two)),
        "the body has more than 2 Bundle entries (limits.max_bundle_entries)"
    );
    let list = br#"{"resourceType":"List","entry":[{},{},{}]}"#;
    assert!(
        super::parse_json(list, &two).is_ok(),
        "a List's entries are not a Bundle's"
    );
    let xml = |n: usize, inner: &str| {
        format!(
            "<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"batch\"/>{}{inner}</Bundle>",
            "<entry><request><method value=\"GET\"/></request></entry>".repeat(n)
        )
    };
    assert!(super::check_xml(xml(2, "").as_bytes(), &two).is_ok());
    assert!(too_costly(super::check_xml(xml(3, "").as_bytes(), &two)).contains("Bundle entries"));
    // A Bundle inside an entry is the root Bundle's business only through its own entry.
    let nested = "<entry><resource><Bundle><entry/><entry/><entry/></Bundle></resource></entry>";
    assert!(super::check_xml(xml(1, nested).as_bytes(), &two).is_ok());
}

#[test]
fn a_hundred_patient_synthea_transaction_fits_the_default_bounds() {
    // The yardstick of benches/validate.rs: the repository's Synthea patient bundles, copied until
    // they make about 100 patients. Counted per copy, then multiplied, to keep the test quick.
    let dir = crate::test_data::path("synthea/bundles");
    let (mut entries, mut json_nodes, mut xml_nodes, mut files) = (0, 0, 0, 0);
    for file in std::fs::read_dir(&dir).unwrap() {
        let text = crate::test_data::gunzip(&file.unwrap().path());
        let unbounded = Bounds {
            max_nodes: usize::MAX,
            ..Bounds::default()
        };
        let bundle = super::parse_json(&text, &unbounded).unwrap();
        json_nodes += crate::validate::patch_budget::measure(&bundle).nodes;
        let xml = crate::fhir::parse::json_to_xml(&bundle).unwrap();
        let counts = read_xml(&xml, &unbounded).unwrap();
        assert_eq!(counts.entries, bundle["entry"].as_array().unwrap().len());
        entries += counts.entries;
        xml_nodes += counts.nodes;
        files += 1;
    }
    let copies = 100usize.div_ceil(files);
    let (entries, json_nodes, xml_nodes) =
        (entries * copies, json_nodes * copies, xml_nodes * copies);
    eprintln!("{files} bundles x {copies}: {entries} entries, {json_nodes} JSON nodes, {xml_nodes} XML nodes");
    let bounds = Bounds::default();
    assert!(
        entries > 20_000 && entries <= bounds.max_entries,
        "{entries}"
    );
    assert!(json_nodes <= bounds.max_nodes, "{json_nodes}");
    assert!(xml_nodes <= bounds.max_nodes, "{xml_nodes}");
}
