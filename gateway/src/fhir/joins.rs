//! Search parameters that join across resources (`_has`, chains, `_filter`): they can reveal data a filter later removes.
//!
//! `Patient?_has:Observation:subject:code=X` answers with Patients whose (possibly withheld)
//! Observations have code X: entry-by-entry filtering cannot hide that, because what leaks is the
//! membership of the *visible* resources. Chained parameters (`subject.name=...`,
//! `subject:Patient.birthdate=...`) and `_filter` do the same the other way round. The gateway refuses
//! them unless policy explicitly allows joins.

use percent_encoding::percent_decode_str;

/// The parameter names in `query` that join across resources, decoded, in order of appearance.
pub fn joins(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let raw = pair.split('=').next().unwrap_or_default();
            let name = percent_decode_str(&raw.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            is_join(&name).then_some(name)
        })
        .collect()
}

fn is_join(name: &str) -> bool {
    if name.starts_with("_has:") || name == "_has" || name == "_filter" {
        return true;
    }
    // Result parameters and modifiers never chain; a '.' in the parameter part does
    // (`subject.name`, `subject:Patient.name`, `general-practitioner.name`).
    !name.starts_with('_') && name.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_joins() {
        assert_eq!(joins("subject=Patient/p&code=1"), Vec::<String>::new());
        assert_eq!(
            joins("_has:Observation:subject:code=1&name=x"),
            vec!["_has:Observation:subject:code"]
        );
        assert_eq!(joins("subject.name=peter"), vec!["subject.name"]);
        assert_eq!(
            joins("subject%3APatient.birthdate=2000"),
            vec!["subject:Patient.birthdate"]
        );
        assert_eq!(joins("_filter=name%20eq%20x"), vec!["_filter"]);
        assert_eq!(
            joins("_include=Observation:subject&_count=5"),
            Vec::<String>::new()
        );
        assert_eq!(joins("value-quantity=5.4"), Vec::<String>::new());
        assert_eq!(joins(""), Vec::<String>::new());
    }
}
