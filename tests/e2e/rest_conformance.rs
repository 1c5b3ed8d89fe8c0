//! Runs the REST pass-through conformance suite (`conformance/`) against the real upstream, directly
//! and through the gateway, and fails unless every check is identical.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use anchorgate_conformance::rest::{run, RestOptions};
use anchorgate_e2e::{repo_root, superuser_token, Gateway, Upstream};

#[test]
fn every_interaction_is_identical_through_the_gateway() {
    // The repository's Synthea bundles (tests/data/README.md), checked before anything starts.
    let synthea = repo_root().join("tests/data/synthea/bundles");
    assert!(
        synthea.is_dir(),
        "{} is missing. The test data is committed in tests/data/: restore it with `git checkout -- \
         tests/data`, or remake it from ../shared/data with `python3 tests/data/make-subset.py`",
        synthea.display()
    );
    let up = Upstream::start();
    let gw = Gateway::start(&up.base);
    let report = run(&RestOptions {
        upstream_base: up.base.clone(),
        gateway_base: gw.base.clone(),
        synthea_dir: Some(synthea),
        bearer_token: Some(superuser_token().to_owned()),
    })
    .unwrap();
    let md = report.to_markdown();
    let out = repo_root().join("target/conformance");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("rest-report.md"), &md).unwrap();
    println!("{md}");
    assert!(report.total() >= 35, "only {} checks", report.total());
    let sy = report.synthea.as_ref().expect("the Synthea section ran");
    assert!(
        sy.files > 0 && sy.bundles_loaded == sy.files,
        "every committed bundle loads\n{md}"
    );
    assert!(report.all_passed(), "{md}");
}
