//! Benchmarks of R4 validation: the Synthea corpus resource by resource, base only and against the
//! matching IPS profiles, one Observation that needs no data files, and a transaction Bundle of about
//! 100 patients.
//!
//! The Synthea data is the repository's subset (`tests/data/synthea/`, see its README.md).
//! `ANCHORGATE_BENCH_NDJSON` and `ANCHORGATE_BENCH_BUNDLES` name other folders of such files, gzipped or
//! not, such as the full sets `../shared/data/synthea/ndjson-10-patients` and `…/bundles`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark set-up on known input

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};

use anchorgate::fhir::Severity;
use anchorgate::validate::{is_valid, schema, ValidateOptions, Validator};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::read::GzDecoder;
use serde_json::Value;

// The binary's allocator (gateway/src/bin/anchorgate/main.rs), so the figures are the gateway's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `$var`, or `tests/data/synthea/<sub>` in the repository.
fn data_dir(var: &str, sub: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/data/synthea")
                .join(sub)
        },
        PathBuf::from,
    )
}

/// The non-empty files of `dir` named `*<ext>` or `*<ext>.gz`, by name, as text (gunzipped).
fn texts(dir: &Path, ext: &str) -> Vec<(String, String)> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the repository's copy is tests/data/synthea/; see its README.md)",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(ext) || name.ends_with(&format!("{ext}.gz"))
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let raw = std::fs::read(p).unwrap();
            let text = if p.extension().is_some_and(|e| e == "gz") {
                let mut s = String::new();
                GzDecoder::new(raw.as_slice())
                    .read_to_string(&mut s)
                    .unwrap();
                s
            } else {
                String::from_utf8(raw).unwrap()
            };
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, text)
        })
        .filter(|(_, text)| !text.trim().is_empty())
        .collect()
}

/// Every resource of the Synthea NDJSON export (the export log left out).
fn synthea() -> Vec<Value> {
    let dir = data_dir("ANCHORGATE_BENCH_NDJSON", "ndjson");
    let out: Vec<Value> = texts(&dir, ".ndjson")
        .iter()
        .filter(|(name, _)| !name.starts_with("log.ndjson"))
        .flat_map(|(_, text)| text.lines().filter(|l| !l.is_empty()))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(!out.is_empty(), "no Synthea resources in {}", dir.display());
    out
}

/// One transaction Bundle of about 100 patients: the Synthea patient bundles' entries, copied as often
/// as it takes with fresh `urn:uuid`s (the issue's "HAPI takes 7-20 s for a 100-patient bundle"
/// yardstick).
fn hundred_patient_bundle() -> Option<(Value, usize)> {
    let dir = data_dir("ANCHORGATE_BENCH_BUNDLES", "bundles");
    let texts: Vec<String> = texts(&dir, ".json").into_iter().map(|(_, t)| t).collect();
    let copies = u32::try_from(100usize.div_ceil(texts.len().max(1))).ok()?;
    // Each copy gets its own uuids (the first group replaced by a hash of copy and uuid); entries the
    // patient bundles share (Organizations, Practitioners) appear once per copy, as in one transaction.
    let uuid = regex::Regex::new("urn:uuid:([0-9a-f]{8})(-[0-9a-f-]{27})").ok()?;
    let (mut entries, mut patients) = (Vec::new(), 0);
    for copy in 0..copies {
        let mut seen = std::collections::HashSet::new();
        for text in &texts {
            let renamed = uuid.replace_all(text, |c: &regex::Captures<'_>| {
                let first = u32::from_str_radix(&c[1], 16).unwrap_or(0);
                let mixed = first.rotate_left(7) ^ copy.wrapping_mul(0x9E37_79B9);
                format!("urn:uuid:{mixed:08x}{}", &c[2])
            });
            let b: Value = serde_json::from_str(&renamed).ok()?;
            for e in b["entry"].as_array()? {
                if seen.insert(e["fullUrl"].as_str().unwrap_or_default().to_owned()) {
                    entries.push(e.clone());
                }
            }
            patients += 1;
        }
    }
    let bundle =
        serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    Some((bundle, patients))
}

fn bench(c: &mut Criterion) {
    let v = Validator::r4();
    let obs: Value = serde_json::from_str(r#"{"resourceType":"Observation","id":"obs-1","meta":{"versionId":"1","lastUpdated":"2024-01-01T00:00:00.000Z"},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}],"text":"Body Height"},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2019-02-12T10:22:03-05:00","valueQuantity":{"value":182.30,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}"#).unwrap();
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("observation", |b| b.iter(|| v.validate(black_box(&obs))));
    g.bench_function("observation_json_schema", |b| {
        b.iter(|| schema::check(black_box(&obs)))
    });
    let corpus = synthea();
    if let Some(patient) = corpus.iter().find(|r| r["resourceType"] == "Patient") {
        // What a create through the gateway validates (tests/load: the Synthea Patient, 3.6 KB).
        let text = serde_json::to_vec(patient).unwrap();
        // The create path's passes over the same bytes, one by one (ARCHITECTURE.md, "The floor").
        g.bench_function("synthea_patient_parse_value", |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(&text)).unwrap())
        });
        g.bench_function("synthea_patient_parse_checked", |b| {
            b.iter(|| {
                anchorgate::fhir::wellformed::parse_json(black_box(&text), &Default::default())
                    .unwrap()
            })
        });
        g.bench_function("synthea_patient_syntax_pass", |b| {
            b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&text)).unwrap())
        });
        let as_str = std::str::from_utf8(&text).unwrap();
        g.bench_function("synthea_patient_canonical", |b| {
            b.iter(|| {
                anchorgate::fhir::canonical::text::canonical_from_text(black_box(as_str), &|_| None)
                    .unwrap()
            })
        });
        let tree: Value = serde_json::from_slice(&text).unwrap();
        g.bench_function("synthea_patient_validate", |b| {
            b.iter(|| black_box(v.validate(black_box(&tree))))
        });
        g.bench_function("synthea_patient_parse_and_validate", |b| {
            b.iter(|| {
                let v2: Value = serde_json::from_slice(black_box(&text)).unwrap();
                black_box(v.validate(&v2))
            })
        });
    }
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
        g.bench_function("synthea_corpus_json_schema", |b| {
            b.iter(|| {
                for r in &corpus {
                    black_box(schema::check(black_box(r)));
                }
            })
        });
    }
    if !corpus.is_empty() {
        // Each resource against the IPS profile for its type (types IPS has no profile for: base only).
        let with_ips: Vec<(&Value, ValidateOptions)> = corpus
            .iter()
            .map(|r| {
                let ty = r["resourceType"].as_str().unwrap_or_default();
                let url = format!("http://hl7.org/fhir/uv/ips/StructureDefinition/{ty}-uv-ips");
                let opts = if v.knows_profile(&url) {
                    ValidateOptions::with_profile(url)
                } else {
                    ValidateOptions::default()
                };
                (r, opts)
            })
            .collect();
        g.bench_function("synthea_corpus_ips", |b| {
            b.iter(|| {
                for (r, o) in &with_ips {
                    black_box(v.validate_with(black_box(r), o));
                }
            })
        });
        let best_practice = ValidateOptions::default().best_practice(true);
        g.bench_function("synthea_corpus_best_practice", |b| {
            b.iter(|| {
                for r in &corpus {
                    black_box(v.validate_with(black_box(r), &best_practice));
                }
            })
        });
    }
    g.finish();
    if let Some((bundle, patients)) = hundred_patient_bundle() {
        let n = bundle["entry"].as_array().map_or(0, Vec::len);
        let outcome = v.validate(&bundle);
        assert!(
            is_valid(&outcome),
            "the benchmark bundle must be valid: {:?}",
            outcome
                .issues
                .iter()
                .find(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
        );
        let mut g = c.benchmark_group("validate_bundle");
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(10);
        g.bench_function(
            format!("transaction_{patients}_patients_{n}_entries"),
            |b| b.iter(|| black_box(v.validate(black_box(&bundle)))),
        );
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
