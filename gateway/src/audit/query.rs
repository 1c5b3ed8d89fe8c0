//! Reviewers' filters: the query parameters of `/audit/decisions`, `AuditEvent` searches and `anchorgate audit export`, parsed into one store query.

use chrono::{DateTime, NaiveDate, Utc};

use crate::store::decisions::Query;

/// Records per page by default, and at most.
pub const DEFAULT_PAGE: u32 = 100;
/// The largest page a reviewer may ask for.
pub const MAX_PAGE: u32 = 1000;

/// A parameter a reviewer got wrong: its name and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{name}`: {reason}")]
pub struct BadParam {
    /// The parameter.
    pub name: String,
    /// Why it was refused.
    pub reason: String,
}

fn bad(name: &str, reason: impl Into<String>) -> BadParam {
    BadParam {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// Unix seconds of an RFC 3339 date-time or a `YYYY-MM-DD` date (its start, UTC).
pub fn instant(name: &str, v: &str) -> Result<i64, BadParam> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc).timestamp());
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
        .ok_or_else(|| bad(name, "expected an RFC 3339 date-time or YYYY-MM-DD"))
}

/// `Patient/<id>` from `Patient/<id>` or a bare id.
fn patient(v: &str) -> String {
    if v.starts_with("Patient/") {
        v.to_owned()
    } else {
        format!("Patient/{v}")
    }
}

/// Parses `/audit/decisions` (and export) parameters: patient, actor, organization, outcome, purpose,
/// break_glass, from, to, after, _count. Unknown parameters are refused: a typo must not silently
/// widen a compliance query.
pub fn decisions(pairs: &[(String, String)]) -> Result<Query, BadParam> {
    let mut q = Query {
        limit: DEFAULT_PAGE,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "patient" => q.patient = Some(patient(v)),
            "actor" => q.actor = Some(v.clone()),
            "organization" => {
                q.organization = Some(if v.starts_with("Organization/") {
                    v.clone()
                } else {
                    format!("Organization/{v}")
                })
            }
            "outcome" => match v.as_str() {
                "permit" | "deny" | "permit-with-filter" | "forbidden" => {
                    q.outcome = Some(v.clone())
                }
                _ => return Err(bad(k, "one of permit, deny, permit-with-filter, forbidden")),
            },
            "purpose" => q.purpose = Some(v.rsplit(['#', '|']).next().unwrap_or(v).to_owned()),
            "break_glass" => {
                q.break_glass = Some(match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(k, "true or false")),
                })
            }
            "from" => q.from = Some(instant(k, v)?),
            "to" => q.to = Some(instant(k, v)?),
            "after" => q.after = Some(v.parse().map_err(|_| bad(k, "a sequence number"))?),
            "_count" => q.limit = page(k, v)?,
            _ => return Err(bad(k, "unknown parameter")),
        }
    }
    Ok(q)
}

fn page(k: &str, v: &str) -> Result<u32, BadParam> {
    v.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| bad(k, format!("an integer from 1 to {MAX_PAGE}")))
}

/// Parses an `AuditEvent` search: patient, date (with ge/gt/le/lt/eq prefixes, repeatable), outcome
/// (0, 4, 8 — or 12, never produced), _count, and the gateway's own `after` paging parameter.
pub fn audit_events(pairs: &[(String, String)]) -> Result<Query, BadParam> {
    let mut q = Query {
        limit: DEFAULT_PAGE,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "patient" | "entity" => q.patient = Some(patient(v)),
            "date" => {
                let (prefix, value) = match v.get(..2) {
                    Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &v[2..]),
                    _ => ("eq", v.as_str()),
                };
                let t = instant(k, value)?;
                let day = value.len() == 10;
                match prefix {
                    "ge" => q.from = Some(t),
                    "gt" => q.from = Some(if day { t + 86_400 } else { t + 1 }),
                    "le" => q.to = Some(if day { t + 86_400 } else { t + 1 }),
                    "lt" => q.to = Some(t),
                    _ => {
                        q.from = Some(t);
                        q.to = Some(if day { t + 86_400 } else { t + 1 });
                    }
                }
            }
            "outcome" => {
                q.outcome = Some(
                    match v.as_str() {
                        "0" => "permit",
                        "4" => "permit-with-filter",
                        "8" => "deny",
                        _ => return Err(bad(k, "0, 4 or 8")),
                    }
                    .to_owned(),
                )
            }
            "after" => q.after = Some(v.parse().map_err(|_| bad(k, "a sequence number"))?),
            "_count" => q.limit = page(k, v)?,
            "_format" => {}
            _ => return Err(bad(k, "not supported for AuditEvent here")),
        }
    }
    Ok(q)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn p(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn decision_filters() {
        let q = decisions(&p(&[
            ("patient", "pat-p"),
            ("outcome", "deny"),
            ("break_glass", "true"),
            ("from", "2025-06-15"),
            ("to", "2025-06-16T00:00:00Z"),
            ("purpose", "urn:oid:2.16.840.1.113883.5.8#TREAT"),
        ]))
        .unwrap();
        assert_eq!(q.patient.as_deref(), Some("Patient/pat-p"));
        assert_eq!(q.break_glass, Some(true));
        assert_eq!(q.from, Some(1_749_945_600));
        assert_eq!(q.to, Some(1_750_032_000));
        assert_eq!(q.purpose.as_deref(), Some("TREAT"));
        assert!(decisions(&p(&[("outcome", "maybe")])).is_err());
        assert!(decisions(&p(&[("patinet", "x")])).is_err());
        assert!(decisions(&p(&[("from", "yesterday")])).is_err());
        assert!(decisions(&p(&[("_count", "0")])).is_err());
    }

    #[test]
    fn audit_event_dates() {
        let q = audit_events(&p(&[("date", "2025-06-15"), ("outcome", "8")])).unwrap();
        assert_eq!(q.from, Some(1_749_945_600));
        assert_eq!(q.to, Some(1_750_032_000));
        assert_eq!(q.outcome.as_deref(), Some("deny"));
        let q = audit_events(&p(&[("date", "ge2025-06-15"), ("date", "lt2025-06-17")])).unwrap();
        assert_eq!(q.to, Some(1_750_118_400));
        assert!(audit_events(&p(&[("code", "x")])).is_err());
    }
}
