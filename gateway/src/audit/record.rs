//! The decision record: who asked for what, under which purpose and consent, and what was decided.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::decisions::DecisionRow;

/// One policy decision, as stored and served to compliance reviewers. Never on the ledger: only a
/// salted commitment to its canonical JSON is (LEDGER.md, entry type `decision`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// A fresh UUID.
    pub id: String,
    /// When it was decided, RFC 3339 UTC.
    pub time: String,
    /// Unix seconds of `time`, for range queries.
    pub time_unix: i64,
    /// The gateway's request id (also in its logs and the response's `X-Request-Id`).
    pub request_id: String,
    /// Who asked.
    pub principal: PrincipalSummary,
    /// The purpose of use the request acted under, if any.
    pub purpose: Option<String>,
    /// Patients (`Patient/<id>`) whose data the decision concerned.
    pub patients: Vec<String>,
    /// The FHIR interaction (`read`, `search-type`, ...).
    pub interaction: String,
    /// The resource type asked for, if any.
    pub resource_type: Option<String>,
    /// `permit`, `deny`, `permit-with-filter` or `forbidden` (outside the token's scopes).
    pub outcome: String,
    /// The HTTP status the client got.
    pub status: u16,
    /// Why: consent id, version and provision path, or the organisation policy id, per reason.
    pub reasons: Vec<Value>,
    /// What the gateway did beyond permitting (entries removed, total suppressed, ...).
    pub obligations: Vec<String>,
    /// Matched resources withheld from the response.
    pub withheld: u32,
    /// A break-glass override: a security alert.
    pub break_glass: bool,
    /// Consents ignored because they no longer matched the ledger: a security alert.
    pub tampered_consents: Vec<String>,
    /// Time spent deciding, microseconds.
    pub latency_us: u64,
    /// The ledger leaf of this decision's entry, once anchored.
    pub leaf: Option<u64>,
}

/// The principal as the record names it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalSummary {
    /// The token's `sub`.
    pub sub: String,
    /// `fhirUser`, if the token had one.
    pub fhir_user: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `Organization/<id>`.
    pub organization: Option<String>,
    /// Country from the partner registry.
    pub country: Option<String>,
    /// The token's issuer.
    pub issuer: Option<String>,
}

impl DecisionRecord {
    /// The principal as queries name it: `fhirUser`, else `sub`.
    pub fn actor(&self) -> &str {
        self.principal
            .fhir_user
            .as_deref()
            .unwrap_or(&self.principal.sub)
    }

    /// The bytes committed to on the ledger: the record without its leaf (which the commitment
    /// cannot contain), in the canonical form.
    pub fn committed_bytes(&self) -> Vec<u8> {
        let text = if self.leaf.is_none() {
            serde_json::to_string(self)
        } else {
            serde_json::to_string(&DecisionRecord {
                leaf: None,
                ..self.clone()
            })
        };
        // Canonicalised from its text: a record is written once per request, and building its tree
        // first cost as much again (the bytes are the same; see `fhir::canonical::text`).
        text.ok()
            .and_then(|t| crate::fhir::canonical::text::canonical_from_text(&t, &|_| None).ok())
            .map(|c| c.bytes)
            .unwrap_or_default()
    }

    /// The store row, holding the record as `committed` (its [`Self::committed_bytes`], already made
    /// to anchor it: the store reads the leaf back from its own column) or, without them, as JSON.
    pub fn row_with(&self, committed: Option<Vec<u8>>) -> DecisionRow {
        let record = committed
            .filter(|b| !b.is_empty())
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| serde_json::to_string(self).unwrap_or_default());
        DecisionRow {
            id: self.id.clone(),
            time: self.time_unix,
            principal: self.actor().to_owned(),
            organization: self.principal.organization.clone(),
            purpose: self.purpose.clone(),
            outcome: self.outcome.clone(),
            break_glass: self.break_glass,
            interaction: self.interaction.clone(),
            rtype: self.resource_type.clone(),
            patients: self.patients.clone(),
            leaf: self.leaf,
            record,
        }
    }

    /// The store row, with the record as JSON.
    pub fn row(&self) -> DecisionRow {
        self.row_with(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn committed_bytes_are_the_canonical_form_of_the_record_without_its_leaf() {
        let mut rec = DecisionRecord {
            id: "0190-x".into(),
            outcome: "permit".into(),
            reasons: vec![
                serde_json::json!({"kind": "consent", "consent": "c1", "path": "provision.provision[0]", "meta": {"versionId": "1"}}),
            ],
            patients: vec!["Patient/p".into()],
            latency_us: 17,
            ..DecisionRecord::default()
        };
        let tree = |r: &DecisionRecord| {
            let mut v = serde_json::to_value(r).unwrap();
            v["leaf"] = Value::Null;
            crate::fhir::canonical::canonical_bytes(&v)
        };
        assert_eq!(rec.committed_bytes(), tree(&rec));
        let before = rec.committed_bytes();
        rec.leaf = Some(42);
        assert_eq!(
            rec.committed_bytes(),
            before,
            "the leaf is not committed to"
        );
    }
}
