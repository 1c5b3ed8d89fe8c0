//! FHIR `date`, `dateTime`, `instant` and `Period` values as closed intervals of Unix seconds.
//!
//! A partial date stands for every second it covers: `2022` is all of 2022, `2022-05-01` all of that day.
//! Values without a time zone (dates, and the rare zoneless dateTime) are read as UTC: FHIR leaves their
//! zone unknown, and a consent's `dataPeriod` boundary is a day, not an hour. Hand-written because no
//! date crate parses FHIR's partial precisions (`YYYY`, `YYYY-MM`) into ranges; it is a few lines of
//! civil-calendar arithmetic.

use serde_json::Value;

/// A closed interval `[start, end]` in Unix seconds; an open end is `i64::MIN` or `i64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// First second covered.
    pub start: i64,
    /// Last second covered.
    pub end: i64,
}

/// How a resource's date relates to a provision's `dataPeriod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Entirely inside.
    Inside,
    /// Entirely outside.
    Outside,
    /// Partly inside, or the resource has no usable date.
    Unknown,
}

impl Interval {
    /// Everything: a `Period` with neither bound.
    pub const ALL: Interval = Interval {
        start: i64::MIN,
        end: i64::MAX,
    };

    /// Whether `t` lies inside.
    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t <= self.end
    }

    /// How `inner` lies relative to `self`.
    pub fn overlap(&self, inner: &Interval) -> Overlap {
        if inner.start >= self.start && inner.end <= self.end {
            Overlap::Inside
        } else if inner.end < self.start || inner.start > self.end {
            Overlap::Outside
        } else {
            Overlap::Unknown
        }
    }

    /// A FHIR `date`, `dateTime` or `instant` string.
    pub fn parse(s: &str) -> Option<Interval> {
        parse_time(s)
    }

    /// A FHIR `Period` object; `None` when a bound is present but not a date, or start > end.
    pub fn from_period(v: &Value) -> Option<Interval> {
        let obj = v.as_object()?;
        let start = match obj.get("start") {
            Some(s) => parse_time(s.as_str()?)?.start,
            None => i64::MIN,
        };
        let end = match obj.get("end") {
            Some(s) => parse_time(s.as_str()?)?.end,
            None => i64::MAX,
        };
        (start <= end).then_some(Interval { start, end })
    }
}

const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_time(s: &str) -> Option<Interval> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let year_s = parts.next()?;
    if year_s.len() != 4 {
        return None;
    }
    let y = digits(year_s)?;
    let month = parts.next();
    let day = parts.next();
    let Some(month) = month else {
        return time.is_none().then(|| Interval {
            start: days_from_civil(y, 1, 1) * DAY,
            end: days_from_civil(y + 1, 1, 1) * DAY - 1,
        });
    };
    let m = digits(month).filter(|m| month.len() == 2 && (1..=12).contains(m))?;
    let Some(day) = day else {
        let first = days_from_civil(y, m, 1);
        return time.is_none().then(|| Interval {
            start: first * DAY,
            end: (first + days_in_month(y, m)) * DAY - 1,
        });
    };
    let d = digits(day).filter(|d| day.len() == 2 && (1..=days_in_month(y, m)).contains(d))?;
    let day_start = days_from_civil(y, m, d) * DAY;
    match time {
        None => Some(Interval {
            start: day_start,
            end: day_start + DAY - 1,
        }),
        Some(t) => {
            let secs = day_start + parse_clock(t)?;
            Some(Interval {
                start: secs,
                end: secs,
            })
        }
    }
}

/// `hh:mm:ss[.fff][Z|±hh:mm]` as seconds after midnight UTC (fractions dropped).
fn parse_clock(t: &str) -> Option<i64> {
    let (clock, offset) = if let Some(c) = t.strip_suffix('Z') {
        (c, 0)
    } else if let Some(i) = t.rfind(['+', '-']) {
        let (c, o) = t.split_at(i);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let (oh, om) = o[1..].split_once(':')?;
        let (oh, om) = (digits(oh)?, digits(om)?);
        if oh > 14 || om > 59 {
            return None;
        }
        (c, sign * (oh * 3600 + om * 60))
    } else {
        (t, 0)
    };
    let clock = clock.split_once('.').map_or(
        clock,
        |(c, frac)| {
            if digits(frac).is_some() {
                c
            } else {
                ""
            }
        },
    );
    let mut it = clock.split(':');
    let h = digits(it.next()?)?;
    let m = digits(it.next()?)?;
    let s = it.next().map_or(Some(0), digits)?;
    if it.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(h * 3600 + m * 60 + s - offset)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn precisions_cover_their_span() {
        let y = Interval::parse("2022").unwrap();
        assert_eq!(y.start, 1_640_995_200);
        assert_eq!(y.end, 1_672_531_199);
        let m = Interval::parse("2024-02").unwrap();
        assert_eq!(m.end - m.start + 1, 29 * DAY);
        let d = Interval::parse("2025-06-15").unwrap();
        assert_eq!(d.start, 1_749_945_600);
        assert_eq!(d.end, d.start + DAY - 1);
        let t = Interval::parse("2025-06-15T12:00:00Z").unwrap();
        assert_eq!(t.start, 1_749_988_800);
        let z = Interval::parse("2025-06-15T14:00:00.123+02:00").unwrap();
        assert_eq!(z.start, t.start);
        assert_eq!(Interval::parse("1969-12-31").unwrap().start, -DAY);
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for bad in [
            "",
            "22",
            "2022-13",
            "2022-02-30",
            "2022-1-01",
            "2022-01-01T25:00:00Z",
            "x",
        ] {
            assert!(Interval::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn periods_and_overlap() {
        let p =
            Interval::from_period(&serde_json::json!({"start": "2022-01-01", "end": "2022-12-31"}))
                .unwrap();
        assert_eq!(
            p.overlap(&Interval::parse("2022-05-01").unwrap()),
            Overlap::Inside
        );
        assert_eq!(
            p.overlap(&Interval::parse("2021-03-01").unwrap()),
            Overlap::Outside
        );
        assert_eq!(
            p.overlap(&Interval::parse("2023").unwrap()),
            Overlap::Outside
        );
        let open = Interval::from_period(&serde_json::json!({"start": "2022-06"})).unwrap();
        assert_eq!(
            open.overlap(&Interval::parse("2022").unwrap()),
            Overlap::Unknown
        );
        assert!(
            Interval::from_period(&serde_json::json!({"start": "2023", "end": "2022"})).is_none()
        );
        assert!(Interval::from_period(&serde_json::json!({"start": 5})).is_none());
        assert_eq!(
            Interval::from_period(&serde_json::json!({})).unwrap(),
            Interval::ALL
        );
    }
}
