//! `anchorgate audit export`: decision records as NDJSON or CSV, page by page from the store.

use std::io::Write;

use super::record::DecisionRecord;
use crate::store::decisions::{self, Query};
use crate::store::Store;

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON decision record per line.
    Ndjson,
    /// One row per decision, with a header; list columns joined with `;`, reasons as JSON.
    Csv,
}

const CSV_HEADER: [&str; 17] = [
    "id",
    "time",
    "actor",
    "organization",
    "country",
    "client_id",
    "purpose",
    "patients",
    "interaction",
    "resource_type",
    "outcome",
    "status",
    "break_glass",
    "reasons",
    "obligations",
    "latency_us",
    "leaf",
];

/// Writes every record matching `q` to `out`, telling `progress` page by page; answers how many.
pub fn export(
    store: &Store,
    mut q: Query,
    format: Format,
    out: impl Write,
    progress: &dyn crate::progress::Progress,
) -> Result<u64, String> {
    let mut sink = match format {
        Format::Ndjson => Sink::Ndjson(out),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_HEADER).map_err(|e| e.to_string())?;
            Sink::Csv(Box::new(w))
        }
    };
    let mut n = 0u64;
    q.limit = super::query::MAX_PAGE;
    loop {
        let page = store
            .run_blocking(|c| decisions::query(c, &q))
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last().map(|(seq, _)| *seq) else {
            break;
        };
        let records = page.len() as u64;
        for (_, json) in page {
            n += 1;
            match &mut sink {
                Sink::Ndjson(w) => {
                    w.write_all(json.as_bytes())
                        .and_then(|_| w.write_all(b"\n"))
                        .map_err(|e| e.to_string())?;
                }
                Sink::Csv(csv) => {
                    let r: DecisionRecord =
                        serde_json::from_str(&json).map_err(|e| format!("a stored record: {e}"))?;
                    csv.write_record(row(&r)).map_err(|e| e.to_string())?;
                }
            }
        }
        progress.advance(records);
        q.after = Some(last);
    }
    match &mut sink {
        Sink::Ndjson(w) => w.flush(),
        Sink::Csv(w) => w.flush(),
    }
    .map_err(|e| e.to_string())?;
    Ok(n)
}

enum Sink<W: Write> {
    Ndjson(W),
    Csv(Box<csv::Writer<W>>),
}

fn row(r: &DecisionRecord) -> [String; 17] {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    [
        r.id.clone(),
        r.time.clone(),
        r.actor().to_owned(),
        opt(&r.principal.organization),
        opt(&r.principal.country),
        opt(&r.principal.client_id),
        opt(&r.purpose),
        r.patients.join(";"),
        r.interaction.clone(),
        opt(&r.resource_type),
        r.outcome.clone(),
        r.status.to_string(),
        r.break_glass.to_string(),
        serde_json::to_string(&r.reasons).unwrap_or_default(),
        r.obligations.join(";"),
        r.latency_us.to_string(),
        r.leaf.map(|l| l.to_string()).unwrap_or_default(),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn exports_both_formats() {
        let dir = std::env::temp_dir().join(format!("anchorgate-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("s.sqlite")).unwrap();
        let recs: Vec<_> = (0..3)
            .map(|i| DecisionRecord {
                id: format!("d{i}"),
                time_unix: i,
                outcome: "deny".into(),
                patients: vec!["Patient/a".into(), "Patient/b".into()],
                reasons: vec![serde_json::json!({"policy": "forbid-purpose, \"x\""})],
                ..Default::default()
            })
            .collect();
        let rows: Vec<_> = recs.iter().map(DecisionRecord::row).collect();
        store.run_blocking(|c| decisions::insert(c, &rows)).unwrap();
        let mut nd = Vec::new();
        // The progress hook hears of every record exported.
        let heard = std::sync::atomic::AtomicU64::new(0);
        let count = |n: u64| {
            heard.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        assert_eq!(
            export(&store, Query::default(), Format::Ndjson, &mut nd, &count).unwrap(),
            3
        );
        assert_eq!(heard.load(std::sync::atomic::Ordering::Relaxed), 3);
        let lines: Vec<DecisionRecord> = String::from_utf8(nd)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, recs);
        let mut c = Vec::new();
        let silent = crate::progress::Silent;
        export(&store, Query::default(), Format::Csv, &mut c, &silent).unwrap();
        let mut rd = csv::Reader::from_reader(c.as_slice());
        let parsed: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
        assert_eq!(parsed.len(), 3);
        assert_eq!(&parsed[0][7], "Patient/a;Patient/b");
        assert_eq!(&parsed[0][13], r#"[{"policy":"forbid-purpose, \"x\""}]"#);
        std::fs::remove_dir_all(dir).ok();
    }
}
