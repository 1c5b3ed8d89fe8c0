//! Micro-benchmarks of the response filter's hot path: re-homing base URLs in a 50-entry searchset
//! Bundle, in JSON and XML, against the cost of merely parsing the same JSON with serde_json.
#![allow(clippy::unwrap_used)] // benchmark set-up on literal input

use anchorgate::fhir::Format;
use anchorgate::filter::{rewrite_body, BaseMap};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn searchset_json(n: usize) -> String {
    let entries: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"fullUrl":"http://10.1.2.3:8090/fhir/Observation/obs-{i}","resource":{{"resourceType":"Observation","id":"obs-{i}","meta":{{"versionId":"1","lastUpdated":"2024-01-01T00:00:00.000Z"}},"status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"vital-signs"}}]}}],"code":{{"coding":[{{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}}],"text":"Body Height"}},"subject":{{"reference":"Patient/p1"}},"effectiveDateTime":"2019-02-12T10:22:03-05:00","valueQuantity":{{"value":182.30,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}}},"search":{{"mode":"match"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"resourceType":"Bundle","type":"searchset","total":{n},"link":[{{"relation":"self","url":"http://10.1.2.3:8090/fhir/Observation?_count=50"}},{{"relation":"next","url":"http://10.1.2.3:8090/fhir/Observation?_count=50&_offset=50"}}],"entry":[{}]}}"#,
        entries.join(",")
    )
}

fn searchset_xml(n: usize) -> String {
    let entries: String = (0..n)
        .map(|i| format!(r#"<entry><fullUrl value="http://10.1.2.3:8090/fhir/Observation/obs-{i}"/><resource><Observation><id value="obs-{i}"/><status value="final"/><code><text value="Body Height"/></code><subject><reference value="Patient/p1"/></subject><valueQuantity><value value="182.30"/><unit value="cm"/></valueQuantity></Observation></resource><search><mode value="match"/></search></entry>"#))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Bundle xmlns="http://hl7.org/fhir"><type value="searchset"/><total value="{n}"/><link><relation value="next"/><url value="http://10.1.2.3:8090/fhir/Observation?_count=50&amp;_offset=50"/></link>{entries}</Bundle>"#
    )
}

fn bench(c: &mut Criterion) {
    let up = url::Url::parse("http://10.1.2.3:8090/fhir").unwrap();
    let map = BaseMap::new(&up, "https://gateway.example.org/fhir");
    let json = searchset_json(50);
    let xml = searchset_xml(50);
    let mut g = c.benchmark_group("rehome_searchset_50");
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("json", |b| {
        b.iter(|| rewrite_body(Format::Json, black_box(json.as_bytes()), &map))
    });
    g.bench_function("serde_json_parse_only (reference)", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(json.as_bytes())))
    });
    g.throughput(Throughput::Bytes(xml.len() as u64));
    g.bench_function("xml", |b| {
        b.iter(|| rewrite_body(Format::Xml, black_box(xml.as_bytes()), &map))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
