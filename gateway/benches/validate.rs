//! Benchmarks of base R4 validation: the Synthea corpus (`../shared/data/synthea/ndjson-10-patients`,
//! when present) resource by resource, and one Observation that needs no data files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark set-up on known input

use std::hint::black_box;
use std::path::Path;

use anchorgate::validate::{Options, Validator};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;

fn synthea() -> Vec<Value> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/synthea/ndjson-10-patients");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "no Synthea corpus at {}: corpus benchmark skipped",
            dir.display()
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "ndjson") && !p.ends_with("log.ndjson") {
            for line in std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
            {
                out.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let v = Validator::r4();
    let obs: Value = serde_json::from_str(r#"{"resourceType":"Observation","id":"obs-1","meta":{"versionId":"1","lastUpdated":"2024-01-01T00:00:00.000Z"},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}],"text":"Body Height"},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2019-02-12T10:22:03-05:00","valueQuantity":{"value":182.30,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}"#).unwrap();
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("observation", |b| b.iter(|| v.validate(black_box(&obs))));
    let corpus = synthea();
    if !corpus.is_empty() {
        g.throughput(Throughput::Elements(corpus.len() as u64));
        g.sample_size(10);
        g.bench_function("synthea_corpus", |b| {
            b.iter(|| {
                for r in &corpus {
                    black_box(v.validate(black_box(r)));
                }
            })
        });
        let best_practice = Options {
            best_practice: true,
        };
        g.bench_function("synthea_corpus_best_practice", |b| {
            b.iter(|| {
                for r in &corpus {
                    black_box(v.validate_with(black_box(r), best_practice));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
