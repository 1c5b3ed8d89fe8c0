//! Runs the REST pass-through conformance suite (`conformance/`) against the real upstream, directly
//! and through the gateway, and fails unless every check is identical.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;

use anchorgate_conformance::rest::{run, RestOptions};
use anchorgate_e2e::{repo_root, superuser_token, Gateway, Upstream};

#[test]
fn every_interaction_is_identical_through_the_gateway() {
    let up = Upstream::start();
    let gw = Gateway::start(&up.base);
    let synthea = repo_root().join("../shared/data/synthea/bundles");
    let synthea_dir: Option<PathBuf> = if synthea.is_dir() {
        Some(synthea)
    } else {
        eprintln!("SKIP Synthea load: {} not found", synthea.display());
        None
    };
    let report = run(&RestOptions {
        upstream_base: up.base.clone(),
        gateway_base: gw.base.clone(),
        synthea_dir,
        bearer_token: Some(superuser_token().to_owned()),
    })
    .unwrap();
    let md = report.to_markdown();
    let out = repo_root().join("target/conformance");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("rest-report.md"), &md).unwrap();
    println!("{md}");
    assert!(report.total() >= 35, "only {} checks", report.total());
    assert!(report.all_passed(), "{md}");
}
