//! The consent index: patient → the latest anchored version of each of their Consent resources.

use rusqlite::{params, Connection};

use super::StoreError;

/// One indexed consent version, as anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    /// The Consent's logical id.
    pub id: String,
    /// `Patient/<id>`.
    pub patient: String,
    /// `meta.versionId` as the upstream assigned it.
    pub version: Option<String>,
    /// `Consent.status` of this version.
    pub status: String,
    /// The ledger leaf of this version's consent-version entry.
    pub leaf: u64,
    /// Exactly the bytes committed to (CANONICAL.md, with step 0), so the commitment can be
    /// recomputed before every use.
    pub body: Vec<u8>,
    /// When it was indexed (unix seconds).
    pub recorded: i64,
}

/// Indexes a version unless a later-anchored version of the same consent is already indexed (two
/// updates racing through two connections must not leave the older one in force).
pub fn upsert(conn: &Connection, row: &ConsentRow) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO consents (id, patient, version, status, leaf, body, recorded)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET patient = excluded.patient, version = excluded.version,
             status = excluded.status, leaf = excluded.leaf, body = excluded.body,
             recorded = excluded.recorded
         WHERE excluded.leaf >= consents.leaf",
    )?
    .execute(params![
        row.id,
        row.patient,
        row.version,
        row.status,
        row.leaf as i64,
        row.body,
        row.recorded
    ])?;
    Ok(())
}

/// Removes a consent deleted through the gateway; answers the patient it belonged to.
pub fn remove(conn: &Connection, id: &str, leaf: u64) -> Result<Option<String>, StoreError> {
    let patient: Option<String> = conn
        .prepare_cached("DELETE FROM consents WHERE id = ?1 AND leaf <= ?2 RETURNING patient")?
        .query_row(params![id, leaf as i64], |r| r.get(0))
        .ok();
    Ok(patient)
}

/// Every indexed consent of one patient (`Patient/<id>`), oldest first.
pub fn for_patient(conn: &Connection, patient: &str) -> Result<Vec<ConsentRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, patient, version, status, leaf, body, recorded FROM consents
         WHERE patient = ?1 ORDER BY leaf",
    )?;
    let rows = stmt.query_map([patient], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The patient an indexed consent belongs to.
pub fn patient_of(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT patient FROM consents WHERE id = ?1")?;
    let mut rows = stmt.query([id])?;
    Ok(match rows.next()? {
        Some(r) => Some(r.get(0)?),
        None => None,
    })
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConsentRow> {
    Ok(ConsentRow {
        id: r.get(0)?,
        patient: r.get(1)?,
        version: r.get(2)?,
        status: r.get(3)?,
        leaf: r.get::<_, i64>(4)? as u64,
        body: r.get(5)?,
        recorded: r.get(6)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn row(id: &str, leaf: u64, status: &str) -> ConsentRow {
        ConsentRow {
            id: id.into(),
            patient: "Patient/p".into(),
            version: Some(leaf.to_string()),
            status: status.into(),
            leaf,
            body: b"{}".to_vec(),
            recorded: 0,
        }
    }

    #[test]
    fn later_versions_win_and_deletes_remove() {
        let dir = tempdir();
        let store = Store::open(&dir.join("s.sqlite")).unwrap();
        store
            .run_blocking(|c| {
                upsert(c, &row("c1", 5, "active"))?;
                upsert(c, &row("c1", 3, "inactive"))?; // older: ignored
                upsert(c, &row("c2", 7, "active"))?;
                let got = for_patient(c, "Patient/p")?;
                assert_eq!(got.len(), 2);
                assert_eq!(got[0].status, "active");
                assert_eq!(got[0].leaf, 5);
                upsert(c, &row("c1", 9, "inactive"))?;
                assert_eq!(for_patient(c, "Patient/p")?[1].status, "inactive");
                assert_eq!(remove(c, "c2", 8)?, Some("Patient/p".into()));
                assert_eq!(for_patient(c, "Patient/p")?.len(), 1);
                assert_eq!(patient_of(c, "c1")?, Some("Patient/p".into()));
                Ok(())
            })
            .unwrap();
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "anchorgate-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
