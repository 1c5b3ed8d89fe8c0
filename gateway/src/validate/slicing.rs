//! Slicing: which slice each repeat of a sliced element belongs to (discriminators `value`, `pattern`,
//! `type`, `profile`, `exists`), then the slicing rules (`closed`, `openAtEnd`, `ordered`), each slice's
//! cardinality, and each repeat checked against its slice.
//!
//! A discriminator that cannot be evaluated here (`resolve()`: following references) makes the whole
//! slicing undecidable; it is then left unchecked rather than guessed, so it never rejects a valid
//! instance.

use serde_json::Value;

use super::conform::{Checker, Item};
use super::model::{upper_first, UNBOUNDED};
use super::profile::{DiscriminatorKind, ElemId, Profile, Rules};
use super::terminology::Membership;
use super::values::{contains, equal};
use crate::fhir::outcome::{IssueType, Severity};

/// Whether a repeat matches a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Yes,
    No,
    Undecidable,
}

/// Assigns the repeats `items` of sliced element `sliced` to slices and checks the slicing.
pub fn check<'a>(ck: &mut Checker<'a>, p: &'a Profile, sliced: ElemId, items: &[Item<'a>]) {
    let el = p.elem(sliced);
    let slices = &el.slices;
    let mut assigned: Vec<Option<usize>> = Vec::with_capacity(items.len());
    for item in items {
        let mut found = None;
        for (si, &s) in slices.iter().enumerate() {
            match matches(ck, p, sliced, s, item) {
                Verdict::Yes => {
                    found = Some(si);
                    break;
                }
                Verdict::No => {}
                Verdict::Undecidable => return,
            }
        }
        assigned.push(found);
    }
    let rules = el.slicing.as_ref().map_or(Rules::Open, |s| s.rules);
    let ordered = el.slicing.as_ref().is_some_and(|s| s.ordered);
    let mut last_slice = 0;
    let mut seen_unmatched = false;
    for (item, slot) in items.iter().zip(&assigned) {
        ck.push_item(p, sliced, item.ty, item.index);
        match slot {
            None => {
                if rules == Rules::Closed {
                    ck.report(
                        Severity::Error,
                        IssueType::Structure,
                        format!(
                            "{}: this element does not match any known slice and the slicing is closed (from {})",
                            el.path, p.url
                        ),
                    );
                }
                seen_unmatched = true;
            }
            Some(si) => {
                if ordered && *si < last_slice {
                    ck.report(
                        Severity::Error,
                        IssueType::Structure,
                        format!("{}: the slices are out of order (from {})", el.path, p.url),
                    );
                }
                if rules == Rules::OpenAtEnd && seen_unmatched {
                    ck.report(
                        Severity::Error,
                        IssueType::Structure,
                        format!(
                            "{}: elements outside the slices must come after them (from {})",
                            el.path, p.url
                        ),
                    );
                }
                last_slice = *si;
                let s = slices[*si];
                ck.value(p, s, item.value, item.ty);
            }
        }
        ck.pop_item(item.index);
    }
    for (si, &s) in slices.iter().enumerate() {
        let sel = p.elem(s);
        let n = u32::try_from(assigned.iter().filter(|a| **a == Some(si)).count()).unwrap_or(0);
        let name = sel.slice_name.as_deref().unwrap_or_default();
        if n < sel.min {
            ck.report(
                Severity::Error,
                IssueType::Structure,
                format!(
                    "Slice '{}:{name}': a matching slice is required, but not found (from {})",
                    el.path, p.url
                ),
            );
        }
        if sel.max != UNBOUNDED && n > sel.max {
            ck.report(
                Severity::Error,
                IssueType::Structure,
                format!(
                    "{}:{name}: max allowed = {}, but found {n} (from {})",
                    el.path, sel.max, p.url
                ),
            );
        }
    }
}

fn matches<'a>(
    ck: &Checker<'a>,
    p: &'a Profile,
    sliced: ElemId,
    slice: ElemId,
    item: &Item<'a>,
) -> Verdict {
    let discriminators = match &p.elem(sliced).slicing {
        Some(s) if !s.discriminators.is_empty() => s.discriminators.as_slice(),
        // Extensions are sliced by URL even where the slicing is not spelled out.
        _ if &*p.elem(sliced).name == "extension"
            || &*p.elem(sliced).name == "modifierExtension" =>
        {
            return by_url(p, slice, item.value)
        }
        _ => return Verdict::Undecidable,
    };
    for d in discriminators {
        if d.path.contains("resolve()") {
            return Verdict::Undecidable;
        }
        let segs = segments(&d.path);
        let values = eval(item, &segs);
        let target = target(ck, p, slice, &segs);
        let v = match d.kind {
            DiscriminatorKind::Value | DiscriminatorKind::Pattern => {
                if d.path.trim() == "url" {
                    by_url(p, slice, item.value)
                } else {
                    match target {
                        Some((tp, te)) => value_match(ck, tp, te, &values),
                        None => Verdict::Undecidable,
                    }
                }
            }
            DiscriminatorKind::Type => match target {
                Some((tp, te)) => {
                    let el = tp.elem(te);
                    let ok = values.iter().any(|(v, ty)| {
                        let actual = ty.map(str::to_owned).or_else(|| {
                            v.get("resourceType")
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                        });
                        match actual {
                            Some(a) => el
                                .types
                                .iter()
                                .any(|t| *t.code == *a || upper_first(&t.code) == a),
                            None => el.types.len() <= 1,
                        }
                    });
                    if ok {
                        Verdict::Yes
                    } else {
                        Verdict::No
                    }
                }
                None => Verdict::Undecidable,
            },
            DiscriminatorKind::Profile => match target {
                Some((tp, te)) => {
                    let urls: Vec<&str> = tp
                        .elem(te)
                        .types
                        .iter()
                        .flat_map(|t| t.profiles.iter())
                        .map(|u| &**u)
                        .collect();
                    if urls.is_empty() {
                        Verdict::Undecidable
                    } else if values
                        .iter()
                        .any(|(v, _)| urls.iter().all(|u| ck.passes(u, v)))
                    {
                        Verdict::Yes
                    } else {
                        Verdict::No
                    }
                }
                None => Verdict::Undecidable,
            },
            DiscriminatorKind::Exists => match target {
                Some((tp, te)) => {
                    let el = tp.elem(te);
                    let present = !values.is_empty();
                    if (el.min > 0 && !present) || (el.max == 0 && present) {
                        Verdict::No
                    } else {
                        Verdict::Yes
                    }
                }
                None => Verdict::Undecidable,
            },
        };
        if v != Verdict::Yes {
            return v;
        }
    }
    Verdict::Yes
}

/// An extension slice matches on `url`: its fixed `url` child, else its type profile's URL.
fn by_url(p: &Profile, slice: ElemId, v: &Value) -> Verdict {
    let url = v.get("url").and_then(Value::as_str);
    let expected = p
        .child(slice, "url")
        .and_then(|u| p.elem(u).fixed.as_ref())
        .and_then(Value::as_str)
        .or_else(|| {
            p.elem(slice)
                .types
                .iter()
                .flat_map(|t| t.profiles.iter())
                .map(|u| &**u)
                .next()
        });
    match expected {
        Some(e) if url == Some(e) => Verdict::Yes,
        Some(_) => Verdict::No,
        None => Verdict::Undecidable,
    }
}

fn value_match<'a>(
    ck: &Checker<'a>,
    p: &'a Profile,
    e: ElemId,
    values: &[(&'a Value, Option<&'a str>)],
) -> Verdict {
    let el = p.elem(e);
    if let Some(f) = &el.fixed {
        return yes(values.iter().any(|(v, _)| equal(v, f)));
    }
    if let Some(pat) = &el.pattern {
        return yes(values.iter().any(|(v, _)| contains(v, pat)));
    }
    if let Some(b) = &el.binding {
        let vs = &b.value_set;
        return yes(values.iter().any(|(v, _)| {
            let code = v.as_str().or_else(|| v.get("code").and_then(Value::as_str));
            code.is_some_and(|c| {
                let system = v.get("system").and_then(Value::as_str);
                ck.reg.member(vs, system, c) == Membership::In
            })
        }));
    }
    // The slice does not constrain this discriminator: it does not tell the slices apart.
    Verdict::Yes
}

fn yes(b: bool) -> Verdict {
    if b {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

/// A discriminator path split into steps, keeping `extension('…')` arguments whole.
fn segments(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in path.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '.' if depth == 0 => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&path[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "$this")
        .collect()
}

/// The values at `segs` from the repeat, with their types where a choice name tells them.
fn eval<'a>(item: &Item<'a>, segs: &[&str]) -> Vec<(&'a Value, Option<&'a str>)> {
    let mut cur: Vec<(&'a Value, Option<&'a str>)> = vec![(item.value, item.ty.map(|t| &*t.code))];
    for seg in segs {
        let mut next = Vec::new();
        if let Some(t) = seg
            .strip_prefix("ofType(")
            .and_then(|s| s.strip_suffix(')'))
        {
            cur.retain(|(_, ty)| ty.is_none_or(|x| x == t));
            continue;
        }
        if let Some(url) = seg
            .strip_prefix("extension(")
            .and_then(|s| s.strip_suffix(')'))
        {
            let url = url.trim_matches(|c| c == '\'' || c == '"');
            for (v, _) in &cur {
                for x in v
                    .get("extension")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if x.get("url").and_then(Value::as_str) == Some(url) {
                        next.push((x, None));
                    }
                }
            }
            cur = next;
            continue;
        }
        for (v, _) in &cur {
            let Some(obj) = v.as_object() else { continue };
            if let Some(x) = obj.get(*seg) {
                flatten_into(&mut next, x, None);
                continue;
            }
            for (k, x) in obj {
                if let Some(suffix) = k.strip_prefix(*seg) {
                    if suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
                        flatten_into(&mut next, x, Some(suffix));
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn flatten_into<'a>(
    out: &mut Vec<(&'a Value, Option<&'a str>)>,
    v: &'a Value,
    ty: Option<&'a str>,
) {
    match v {
        Value::Array(a) => out.extend(a.iter().map(|x| (x, ty))),
        Value::Null => {}
        _ => out.push((v, ty)),
    }
}

/// The element at `segs` inside the slice, following the slice's type profile where the slice itself
/// does not go that deep.
fn target<'a>(
    ck: &Checker<'a>,
    p: &'a Profile,
    slice: ElemId,
    segs: &[&str],
) -> Option<(&'a Profile, ElemId)> {
    let (prof, mut e) = (p, slice);
    for (i, seg) in segs.iter().enumerate() {
        if seg.starts_with("ofType(") {
            continue;
        }
        let name = seg.split('(').next().unwrap_or(seg);
        match prof.child(e, name) {
            Some(c) => e = c,
            None => {
                // Into the type profile of the current element.
                let url = prof
                    .elem(e)
                    .types
                    .iter()
                    .flat_map(|t| t.profiles.iter())
                    .next()?;
                let tp = ck.reg.get(url)?;
                return target(ck, tp, 0, &segs[i..]);
            }
        }
    }
    // The slice may say no more than its type profile: look there for a fixed value or pattern.
    let el = prof.elem(e);
    if el.fixed.is_none() && el.pattern.is_none() && el.binding.is_none() && el.slice_name.is_some()
    {
        if let Some(url) = el.types.iter().flat_map(|t| t.profiles.iter()).next() {
            if let Some(tp) = ck.reg.get(url) {
                if segs.is_empty() {
                    let root = tp.elem(0);
                    if root.fixed.is_some() || root.pattern.is_some() {
                        return Some((tp, 0));
                    }
                }
            }
        }
    }
    Some((prof, e))
}
