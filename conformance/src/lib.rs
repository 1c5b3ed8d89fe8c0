//! Anchorgate conformance runners and the helpers they share (HTTP client, nonces, FHIR instants).

pub mod rest;
pub mod validator_cases;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The blocking HTTP client every runner uses: 30 s timeout, HTTP/1.1, no redirects, no proxy,
/// no compression, so that what is recorded is exactly what the server sent.
pub fn http_client() -> anyhow::Result<reqwest::blocking::Client> {
    http_client_with(None)
}

/// [`http_client`], sending `Authorization: Bearer <bearer>` with every request when given.
pub fn http_client_with(bearer: Option<&str>) -> anyhow::Result<reqwest::blocking::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = bearer {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))?,
        );
    }
    Ok(reqwest::blocking::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(8)
        .build()?)
}

/// A per-run unique token: lowercase letters and digits, starting with `ag` (never a hex string,
/// so it cannot be confused with part of a server UUID).
pub fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // FNV-1a over the time, process id and counter.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in nanos
        .to_le_bytes()
        .iter()
        .chain(std::process::id().to_le_bytes().iter())
        .chain(n.to_le_bytes().iter())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("ag{:012x}", h & 0xffff_ffff_ffff)
}

/// A FHIR `instant` (`YYYY-MM-DDThh:mm:ss.sssZ`, UTC) for a point in time.
pub fn fhir_instant(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_formatting() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_246_253_085);
        assert_eq!(fhir_instant(t), "2026-11-21T07:30:53.085Z");
        assert_eq!(fhir_instant(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(fhir_instant(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn nonces_are_distinct_and_not_hex() {
        let a = nonce();
        let b = nonce();
        assert_ne!(a, b);
        assert!(a.starts_with("ag") && a.len() == 14);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
