//! The decision record: who asked for what, under which purpose and consent, and what was decided.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::decisions::DecisionRow;

/// One policy decision, as stored and served to compliance reviewers. Never on the ledger: only a
/// salted commitment to its canonical JSON is (LEDGER.md, entry type `decision`).
///
/// Fields are declared in the canonical order of their JSON names (RFC 8785 sorts members), so that
/// serde writes the committed form directly: see [`Self::committed_bytes`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// A break-glass override: a security alert.
    pub break_glass: bool,
    /// A fresh UUID.
    pub id: String,
    /// The FHIR interaction (`read`, `search-type`, ...).
    pub interaction: String,
    /// Time spent deciding, microseconds.
    pub latency_us: u64,
    /// The ledger leaf of this decision's entry, once anchored.
    pub leaf: Option<u64>,
    /// What the gateway did beyond permitting (entries removed, total suppressed, ...).
    pub obligations: Vec<String>,
    /// `permit`, `deny`, `permit-with-filter` or `forbidden` (outside the token's scopes).
    pub outcome: String,
    /// Patients (`Patient/<id>`) whose data the decision concerned.
    pub patients: Vec<String>,
    /// Who asked.
    pub principal: PrincipalSummary,
    /// The purpose of use the request acted under, if any.
    pub purpose: Option<String>,
    /// Why: consent id, version and provision path, or the organisation policy id, per reason.
    pub reasons: Vec<Value>,
    /// The gateway's request id (also in its logs and the response's `X-Request-Id`).
    pub request_id: String,
    /// The resource type asked for, if any.
    pub resource_type: Option<String>,
    /// The HTTP status the client got.
    pub status: u16,
    /// Consents ignored because they no longer matched the ledger: a security alert.
    pub tampered_consents: Vec<String>,
    /// When it was decided, RFC 3339 UTC.
    pub time: String,
    /// Unix seconds of `time`, for range queries.
    pub time_unix: i64,
    /// Matched resources withheld from the response.
    pub withheld: u32,
}

/// The principal as the record names it (fields in canonical order, as in [`DecisionRecord`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalSummary {
    /// `client_id`.
    pub client_id: Option<String>,
    /// Country from the partner registry.
    pub country: Option<String>,
    /// `fhirUser`, if the token had one.
    pub fhir_user: Option<String>,
    /// The token's issuer.
    pub issuer: Option<String>,
    /// `Organization/<id>`.
    pub organization: Option<String>,
    /// The token's `sub`.
    pub sub: String,
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
    ///
    /// The record's fields are declared in canonical order and serde_json escapes strings as RFC 8785
    /// does, so once every reason's members are sorted ([`Self::sort_reasons`]) serde's own output is
    /// the canonical form: one serialisation per decision instead of a serialisation and a
    /// canonicalising parse (4 % of a read's CPU). Otherwise, or with a leaf, the general path runs.
    /// Debug builds (every test) check that both paths agree.
    pub fn committed_bytes(&self) -> Vec<u8> {
        let direct = self.leaf.is_none() && self.reasons.iter().all(members_sorted);
        if direct {
            let bytes = serde_json::to_vec(self).unwrap_or_default();
            debug_assert_eq!(
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(&self.canonicalised()),
                "a decision record's fields must be declared in canonical order"
            );
            return bytes;
        }
        self.canonicalised()
    }

    /// Sorts the members of every object in the reasons, which is their canonical order; nothing
    /// reads them in any other.
    pub fn sort_reasons(&mut self) {
        self.reasons.iter_mut().for_each(Value::sort_all_objects);
    }

    /// The committed form by the general rule: serialised, then canonicalised from its text.
    fn canonicalised(&self) -> Vec<u8> {
        let text = if self.leaf.is_none() {
            serde_json::to_string(self)
        } else {
            serde_json::to_string(&DecisionRecord {
                leaf: None,
                ..self.clone()
            })
        };
        // Canonicalised from its text: building its tree first cost as much again (the bytes are the
        // same; see `fhir::canonical::text`).
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

/// Whether every object in `v` has its members in canonical order (names are ASCII here, whose
/// UTF-8 order is RFC 8785's UTF-16 order; anything else is left to the general path).
fn members_sorted(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.keys().all(|k| k.is_ascii())
                && m.keys().zip(m.keys().skip(1)).all(|(a, b)| a < b)
                && m.values().all(members_sorted)
        }
        Value::Array(items) => items.iter().all(members_sorted),
        _ => true,
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
        // Every field set, strings that need escaping, reasons out of order: the direct path (after
        // sorting) and the general one (before) give the tree's bytes.
        let mut full = DecisionRecord {
            break_glass: true,
            id: "0190-\u{1f}\"x\\".into(),
            interaction: "search-type".into(),
            latency_us: 5,
            obligations: vec!["suppress-total".into(), "ümlaut\n".into()],
            outcome: "permit-with-filter".into(),
            patients: vec!["Patient/a".into(), "Patient/b".into()],
            principal: PrincipalSummary {
                client_id: Some("c".into()),
                country: Some("DE".into()),
                fhir_user: Some("Practitioner/p".into()),
                issuer: Some("https://i".into()),
                organization: Some("Organization/o".into()),
                sub: "s\t".into(),
            },
            purpose: Some("TREAT".into()),
            reasons: vec![
                serde_json::json!({"kind": "policy", "policy": "p", "effect": "forbid", "detail": "d"}),
                serde_json::json!({"z": [{"b": 1, "a": 2.50}], "a": null}),
            ],
            request_id: "r".into(),
            resource_type: Some("Observation".into()),
            status: 200,
            tampered_consents: vec!["Consent/c".into()],
            time: "2026-11-22T00:00:00Z".into(),
            time_unix: 1_795_305_600,
            withheld: 3,
            leaf: None,
        };
        let expected = tree(&full);
        assert_eq!(full.committed_bytes(), expected, "general path");
        full.sort_reasons();
        assert!(full.reasons.iter().all(members_sorted));
        assert_eq!(full.committed_bytes(), expected, "direct path");
        assert_eq!(serde_json::to_vec(&full).unwrap(), expected);
        let before = rec.committed_bytes();
        rec.leaf = Some(42);
        assert_eq!(
            rec.committed_bytes(),
            before,
            "the leaf is not committed to"
        );
    }
}
