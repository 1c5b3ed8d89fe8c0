//! The test data committed in `tests/data/` (its README.md says what and from where): paths, and
//! readers for its gzip files and tar.gz archives. A test whose data is missing fails, saying how to
//! get it back; none passes without it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

/// `tests/data/<rel>`; panics, saying how to get it, when it is not there.
pub fn path(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(rel);
    assert!(
        p.exists(),
        "{} is missing. The test data is committed in tests/data/ (tests/data/README.md): restore it \
         with `git checkout -- tests/data`, or remake it from ../shared/data with \
         `python3 tests/data/make-subset.py`",
        p.display()
    );
    p
}

/// A gzip file's contents.
pub fn gunzip(path: &Path) -> Vec<u8> {
    let gz = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    GzDecoder::new(gz.as_slice())
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    out
}

/// Every regular file of a tar.gz's bytes: its member name and contents, in archive order.
pub fn untar_gz(gz: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(GzDecoder::new(gz));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        out.push((name, body));
    }
    out
}

/// The Synthea NDJSON subset (`synthea/ndjson/*.ndjson.gz`, the export's `log.ndjson` included):
/// each file's name without `.gz` and its text, by name.
pub fn synthea_ndjson() -> Vec<(String, String)> {
    let dir = path("synthea/ndjson");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".ndjson.gz"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .ndjson.gz in {}", dir.display());
    files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            let text = String::from_utf8(gunzip(f)).unwrap();
            (name.trim_end_matches(".gz").to_owned(), text)
        })
        .collect()
}

/// The HL7 validator cases (`fhir-validator-cases.tar.gz`): every file by its path in the case folder
/// (`cases.json`, `files/…`).
pub fn validator_cases() -> BTreeMap<String, Vec<u8>> {
    let archive = path("fhir-validator-cases.tar.gz");
    let gz = std::fs::read(&archive).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    untar_gz(&gz)
        .into_iter()
        .map(|(name, body)| {
            let rel = name
                .strip_prefix("fhir-validator-cases/")
                .unwrap_or(&name)
                .to_owned();
            (rel, body)
        })
        .collect()
}
