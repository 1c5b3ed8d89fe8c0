//! Every command block of the README runs, as pasted.
//!
//! The first block is the two commands a newcomer types: its first line (`anchorgate demo`) is run by
//! `tests/e2e/demo.rs` with every line the demo prints; its second is the test suite itself, which CI
//! runs through `.ci/run` (checked here to be exactly that command). Every other `sh` block runs here in
//! a fresh directory, with the debug `anchorgate` first on `PATH` (as the README tells its reader to
//! set it) and `set -e`, so any failing command fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use anchorgate_e2e::{gateway_bin, repo_root, work_dir};

/// The README's `sh` blocks, in order.
fn blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    readme
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_first_block_is_the_demo_and_the_ci_command() {
    let blocks = blocks();
    let first: Vec<&str> = blocks[0].lines().collect();
    assert_eq!(
        first.len(),
        2,
        "the README opens with two commands: {first:?}"
    );
    assert!(first[0].contains("anchorgate -- demo"), "{}", first[0]);
    let test_cmd = first[1].split(" #").next().unwrap().trim();
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == format!("exec {test_cmd}")),
        ".ci/run must run exactly the README's test command {test_cmd:?}:\n{ci}"
    );
}

#[test]
fn every_other_block_runs_as_pasted() {
    let bin_dir = gateway_bin().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let blocks = blocks();
    assert!(
        blocks.len() > 1,
        "the README has no blocks beyond the first"
    );
    let mut failures = Vec::new();
    for (n, block) in blocks.iter().enumerate().skip(1) {
        let dir = work_dir(&format!("readme-{n}"));
        let out = Command::new("bash")
            .args(["-c", &format!("set -e\n{block}")])
            .current_dir(&dir)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            failures.push(format!(
                "block {n} failed ({}):\n{block}\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
