//! Consents in force: indexing every anchored Consent version, and loading a patient's consents only
//! after each one is checked against its ledger commitment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ledger::entry::EntryType;
use crate::ledger::{Commitment, Ledger};
use crate::policy::consent::ConsentModel;
use crate::store::consents::{self, ConsentRow};
use crate::store::{Store, StoreError};

/// One consent version that may be used for decisions: its store row matched the ledger.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The Consent's id.
    pub id: String,
    /// Its version id.
    pub version: Option<String>,
    /// Its consent-version ledger leaf.
    pub leaf: u64,
    /// The Consent as anchored.
    pub resource: Value,
}

/// A patient's consents as loaded for decisions.
#[derive(Debug, Default)]
pub struct PatientConsents {
    /// Consents whose commitment matched the ledger.
    pub verified: Vec<Verified>,
    /// Consent ids found in the store that did NOT match the ledger: ignored, and an alert.
    pub tampered: Vec<String>,
    /// The verified consents compiled for the decision engine (those that can be enforced: a
    /// patient-privacy Consent the engine understands).
    pub models: Vec<Arc<ConsentModel>>,
}

/// How long a patient's verified consents are reused before being read and checked again. Writes
/// through the gateway invalidate at once; the lifetime bounds how long a change made behind the
/// gateway's back (to the store file) can go unnoticed.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Patients kept in the cache; beyond this it is cleared (cheap to refill, bounded memory).
const CACHE_MAX: usize = 100_000;

/// The consent index and its verified cache.
#[derive(Debug)]
pub struct Consents {
    store: Store,
    ledger: Option<Arc<Ledger>>,
    cache: Mutex<HashMap<String, (Instant, Arc<PatientConsents>)>>,
}

/// Why a consent could not be indexed or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// The anchored bytes are not a usable Consent.
    #[error("{0}")]
    Unusable(String),
}

impl Consents {
    /// The index over `store`, checked against `ledger` (without a ledger nothing is in force).
    pub fn new(store: Store, ledger: Option<Arc<Ledger>>) -> Self {
        Self {
            store,
            ledger,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Indexes one anchored consent version (`payload` is exactly what was committed to; `version` is
    /// the `meta.versionId` it was anchored under, which the canonical payload leaves out).
    pub async fn index(
        &self,
        payload: Vec<u8>,
        version: Option<String>,
        leaf: u64,
    ) -> Result<String, ConsentError> {
        let v: Value = serde_json::from_slice(&payload)
            .map_err(|e| ConsentError::Unusable(format!("anchored consent is not JSON: {e}")))?;
        let id = str_at(&v, "/id").ok_or(ConsentError::Unusable("a Consent without id".into()))?;
        let patient = patient_of(&v).ok_or(ConsentError::Unusable(
            "a Consent without Consent.patient".into(),
        ))?;
        let row = ConsentRow {
            id,
            patient: patient.clone(),
            version,
            status: str_at(&v, "/status").unwrap_or_default(),
            leaf,
            body: payload,
            recorded: super::enforce::now_unix() as i64,
        };
        self.store.run(move |c| consents::upsert(c, &row)).await?;
        self.invalidate(&patient);
        Ok(patient)
    }

    /// Un-indexes a consent deleted through the gateway (its tombstone is at `leaf`).
    pub async fn remove(&self, id: &str, leaf: u64) -> Result<(), ConsentError> {
        let id = id.to_owned();
        if let Some(p) = self
            .store
            .run(move |c| consents::remove(c, &id, leaf))
            .await?
        {
            self.invalidate(&p);
        }
        Ok(())
    }

    /// Forgets a patient's cached consents, so the very next request reads them again.
    pub fn invalidate(&self, patient: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(patient);
        }
    }

    /// A patient's (`Patient/<id>`) consents, each checked against the ledger.
    pub async fn for_patient(&self, patient: &str) -> Result<Arc<PatientConsents>, ConsentError> {
        if let Ok(c) = self.cache.lock() {
            if let Some((at, v)) = c.get(patient) {
                if at.elapsed() < CACHE_TTL {
                    return Ok(v.clone());
                }
            }
        }
        let p = patient.to_owned();
        let rows = self
            .store
            .run(move |c| consents::for_patient(c, &p))
            .await?;
        let mut out = PatientConsents::default();
        for row in rows {
            let verdict = match &self.ledger {
                Some(l) => {
                    l.holds(
                        row.leaf,
                        EntryType::ConsentVersion,
                        "Consent",
                        &row.id,
                        row.body.clone(),
                    )
                    .await?
                }
                // Without a ledger nothing can be checked, so nothing is in force (deny when unsure).
                None => Commitment::Unanchored,
            };
            let parsed = serde_json::from_slice::<Value>(&row.body).ok();
            match (verdict, parsed) {
                (Commitment::Matches, Some(resource))
                    if patient_of(&resource).as_deref() == Some(patient) =>
                {
                    match ConsentModel::compile(&resource) {
                        Ok(mut m) => {
                            // The stored body is the canonical form, which leaves out
                            // `meta.versionId`: the version decisions name is the one indexed.
                            m.version = row.version.as_deref().map(Arc::from);
                            out.models.push(Arc::new(m))
                        }
                        Err(e) => {
                            tracing::warn!(consent = %row.id, error = %e, "consent not enforceable; ignored")
                        }
                    }
                    out.verified.push(Verified {
                        id: row.id,
                        version: row.version,
                        leaf: row.leaf,
                        resource,
                    })
                }
                // Erased consents are gone by the patient's own request: not an attack.
                (Commitment::Erased, _) => {}
                _ => {
                    tracing::error!(
                        consent = %row.id,
                        leaf = row.leaf,
                        "SECURITY: an indexed consent does not match its ledger commitment; it is ignored"
                    );
                    out.tampered.push(row.id);
                }
            }
        }
        let out = Arc::new(out);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(patient.to_owned(), (Instant::now(), out.clone()));
        }
        Ok(out)
    }
}

/// What `anchorgate consent import` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    /// Consent resources the upstream returned.
    pub seen: u64,
    /// Versions anchored and indexed (already-anchored versions keep their leaf).
    pub indexed: u64,
    /// Consents that cannot be enforced (not patient-privacy, no patient), with why.
    pub skipped: Vec<String>,
}

/// Pages through every Consent in the upstream, anchors each current version as a consent-version
/// entry (an already anchored, unchanged version keeps its leaf) and indexes it. `progress` hears of
/// each Consent, and of the total when the upstream's first page gives `Bundle.total`.
pub async fn import(
    gw: &super::state::Gateway,
    ledger: &Arc<Ledger>,
    progress: &dyn crate::progress::Progress,
) -> Result<ImportReport, crate::error::GatewayError> {
    use crate::error::GatewayError;
    let mut report = ImportReport::default();
    let mut next = Some(("Consent".to_owned(), Some("_count=100".to_owned())));
    let mut pages = 0u32;
    while let Some((rest, query)) = next.take() {
        pages += 1;
        if pages > 100_000 {
            return Err(GatewayError::UpstreamBadResponse(
                "consent import: the upstream's paging does not end".into(),
            ));
        }
        let page =
            super::readback::get(gw, None, &rest, query.as_deref(), "consent import").await?;
        if page.status != http::StatusCode::OK {
            return Err(GatewayError::UpstreamBadResponse(format!(
                "consent import: searching Consent gave {}",
                page.status
            )));
        }
        let Some(bundle) = page.value else { break };
        if let Some(total) = bundle
            .get("total")
            .and_then(Value::as_u64)
            .filter(|_| pages == 1)
        {
            progress.total(total);
        }
        for e in super::readback::matches(&bundle) {
            let Some(c) = e
                .get("resource")
                .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Consent"))
            else {
                continue;
            };
            report.seen += 1;
            progress.advance(1);
            let id = str_at(c, "/id").unwrap_or_default();
            if patient_of(c).is_none() {
                report
                    .skipped
                    .push(format!("Consent/{id}: no Consent.patient"));
                continue;
            }
            let payload = super::anchor::anchored_bytes(c, gw.upstream.base());
            let version = str_at(c, "/meta/versionId");
            let leaf = ledger
                .anchor(
                    EntryType::ConsentVersion,
                    &payload,
                    Some(("Consent", &id, version.as_deref())),
                )
                .await?;
            gw.consents
                .index(payload, version, leaf)
                .await
                .map_err(|e| GatewayError::Internal(format!("consent import: {e}")))?;
            report.indexed += 1;
        }
        next = bundle
            .get("link")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
            .and_then(|l| l.get("url").and_then(Value::as_str))
            .and_then(|u| gw.upstream.relative(u));
    }
    Ok(report)
}

/// `Consent.patient` as `Patient/<id>`, from a relative or absolute reference.
pub fn patient_of(consent: &Value) -> Option<String> {
    let r = consent.pointer("/patient/reference")?.as_str()?;
    let tail = r.split('/').collect::<Vec<_>>();
    match tail.as_slice() {
        [.., "Patient", id] if !id.is_empty() => Some(format!("Patient/{id}")),
        _ => None,
    }
}

fn str_at(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn patient_references() {
        let c = |r: &str| serde_json::json!({"patient": {"reference": r}});
        assert_eq!(patient_of(&c("Patient/p1")).as_deref(), Some("Patient/p1"));
        assert_eq!(
            patient_of(&c("http://x/fhir/Patient/p1")).as_deref(),
            Some("Patient/p1")
        );
        assert_eq!(patient_of(&c("Group/g")), None);
        assert_eq!(patient_of(&c("Patient/")), None);
    }
}
