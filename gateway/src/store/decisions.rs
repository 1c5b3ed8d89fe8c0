//! Decision records: written in batches, queried by compliance reviewers.

use rusqlite::{params_from_iter, Connection, ToSql};

use super::StoreError;

/// The indexed columns of one decision record; `record` is the full JSON record.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    /// The decision id (also in the record).
    pub id: String,
    /// Unix seconds.
    pub time: i64,
    /// The principal: `fhirUser`, else `sub`.
    pub principal: String,
    /// `Organization/<id>` of the principal, when known.
    pub organization: Option<String>,
    /// The effective purpose of use code.
    pub purpose: Option<String>,
    /// `permit`, `deny`, `permit-with-filter` or `forbidden`.
    pub outcome: String,
    /// A break-glass override (a security alert).
    pub break_glass: bool,
    /// The FHIR interaction.
    pub interaction: String,
    /// The resource type asked for.
    pub rtype: Option<String>,
    /// Patients (`Patient/<id>`) whose data the decision concerned.
    pub patients: Vec<String>,
    /// The ledger leaf of its decision entry.
    pub leaf: Option<u64>,
    /// The whole record, JSON.
    pub record: String,
}

/// The record as served: the stored JSON with `leaf` from its column. The recorder stores the committed
/// form, whose `leaf` is null (the commitment cannot hold its own leaf index).
const RECORD: &str = "json_set(d.record, '$.leaf', d.leaf)";

/// Inserts a batch of decisions in one transaction.
pub fn insert(conn: &mut Connection, rows: &[DecisionRow]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut ins = tx.prepare_cached(
            "INSERT OR IGNORE INTO decisions (id, time, principal, organization, purpose, outcome,
                 break_glass, interaction, rtype, leaf, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut pat =
            tx.prepare_cached("INSERT INTO decision_patients (seq, patient) VALUES (?1, ?2)")?;
        for r in rows {
            let n = ins.execute(rusqlite::params![
                r.id,
                r.time,
                r.principal,
                r.organization,
                r.purpose,
                r.outcome,
                r.break_glass,
                r.interaction,
                r.rtype,
                r.leaf.map(|l| l as i64),
                r.record
            ])?;
            if n == 1 {
                let seq = tx.last_insert_rowid();
                for p in &r.patients {
                    pat.execute(rusqlite::params![seq, p])?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// What a reviewer filters by; every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// `Patient/<id>`.
    pub patient: Option<String>,
    /// The principal (`fhirUser` or `sub`).
    pub actor: Option<String>,
    /// `Organization/<id>`.
    pub organization: Option<String>,
    /// Outcome code.
    pub outcome: Option<String>,
    /// Purpose of use code.
    pub purpose: Option<String>,
    /// Only break-glass decisions (true) or only others (false).
    pub break_glass: Option<bool>,
    /// From this unix time, inclusive.
    pub from: Option<i64>,
    /// Before this unix time, exclusive.
    pub to: Option<i64>,
    /// Only records after this sequence number (the paging cursor).
    pub after: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// One page of records, oldest first: (sequence number, record JSON).
pub fn query(conn: &Connection, q: &Query) -> Result<Vec<(i64, String)>, StoreError> {
    let mut sql = format!("SELECT d.seq, {RECORD} FROM decisions d WHERE 1 = 1");
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, v: Box<dyn ToSql>| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(p) = &q.patient {
        bind(
            &mut sql,
            " AND d.seq IN (SELECT seq FROM decision_patients WHERE patient = ?)",
            Box::new(p.clone()),
        );
    }
    if let Some(v) = &q.actor {
        bind(&mut sql, " AND d.principal = ?", Box::new(v.clone()));
    }
    if let Some(v) = &q.organization {
        bind(&mut sql, " AND d.organization = ?", Box::new(v.clone()));
    }
    if let Some(v) = &q.outcome {
        bind(&mut sql, " AND d.outcome = ?", Box::new(v.clone()));
    }
    if let Some(v) = &q.purpose {
        bind(&mut sql, " AND d.purpose = ?", Box::new(v.clone()));
    }
    if let Some(v) = q.break_glass {
        bind(&mut sql, " AND d.break_glass = ?", Box::new(v));
    }
    if let Some(v) = q.from {
        bind(&mut sql, " AND d.time >= ?", Box::new(v));
    }
    if let Some(v) = q.to {
        bind(&mut sql, " AND d.time < ?", Box::new(v));
    }
    if let Some(v) = q.after {
        bind(&mut sql, " AND d.seq > ?", Box::new(v));
    }
    bind(&mut sql, " ORDER BY d.seq LIMIT ?", Box::new(q.limit));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter().map(|a| a.as_ref())), |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One record by its decision id.
pub fn get(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {RECORD} FROM decisions d WHERE id = ?1"))?;
    let mut rows = stmt.query([id])?;
    Ok(match rows.next()? {
        Some(r) => Some(r.get(0)?),
        None => None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn row(id: &str, time: i64, outcome: &str, patients: &[&str]) -> DecisionRow {
        DecisionRow {
            id: id.into(),
            time,
            principal: "Practitioner/a".into(),
            organization: Some("Organization/h1".into()),
            purpose: Some("TREAT".into()),
            outcome: outcome.into(),
            break_glass: outcome == "permit" && time == 30,
            interaction: "read".into(),
            rtype: Some("Observation".into()),
            patients: patients.iter().map(|p| p.to_string()).collect(),
            leaf: Some(time as u64),
            record: format!("{{\"id\":\"{id}\"}}"),
        }
    }

    #[test]
    fn filters_and_pages() {
        let dir = std::env::temp_dir().join(format!("anchorgate-dec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("s.sqlite")).unwrap();
        store
            .run_blocking(|c| {
                insert(
                    c,
                    &[
                        row("d1", 10, "permit", &["Patient/p"]),
                        row("d2", 20, "deny", &["Patient/p", "Patient/q"]),
                        row("d3", 30, "permit", &["Patient/q"]),
                    ],
                )?;
                insert(c, &[row("d1", 10, "permit", &["Patient/p"])])?; // replay: ignored
                let all = query(
                    c,
                    &Query {
                        limit: 10,
                        ..Default::default()
                    },
                )?;
                assert_eq!(all.len(), 3);
                let q = query(
                    c,
                    &Query {
                        patient: Some("Patient/q".into()),
                        limit: 10,
                        ..Default::default()
                    },
                )?;
                assert_eq!(q.len(), 2);
                let deny = query(
                    c,
                    &Query {
                        outcome: Some("deny".into()),
                        limit: 10,
                        ..Default::default()
                    },
                )?;
                assert_eq!(deny.len(), 1);
                let bg = query(
                    c,
                    &Query {
                        break_glass: Some(true),
                        limit: 10,
                        ..Default::default()
                    },
                )?;
                assert_eq!(bg.len(), 1);
                let window = query(
                    c,
                    &Query {
                        from: Some(15),
                        to: Some(30),
                        limit: 10,
                        ..Default::default()
                    },
                )?;
                assert_eq!(window.len(), 1);
                let page1 = query(
                    c,
                    &Query {
                        limit: 2,
                        ..Default::default()
                    },
                )?;
                let page2 = query(
                    c,
                    &Query {
                        after: Some(page1[1].0),
                        limit: 2,
                        ..Default::default()
                    },
                )?;
                assert_eq!(page2.len(), 1);
                // The record comes back with its leaf from the column.
                assert_eq!(
                    get(c, "d2")?.as_deref(),
                    Some("{\"id\":\"d2\",\"leaf\":20}")
                );
                Ok(())
            })
            .unwrap();
        std::fs::remove_dir_all(dir).ok();
    }
}
