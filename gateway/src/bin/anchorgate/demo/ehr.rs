//! The demo's upstream: the test EHR (`sekmet-fhir` from PyPI), started and stopped through the same
//! script the tests use, embedded so that the demo works from any directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `tests/upstream/sekmet.sh`: installs the EHR into a cached virtualenv on first use
/// (`$ANCHORGATE_CACHE`, default `~/.cache/anchorgate`), then starts it on a port with its state in a
/// directory of ours.
const SCRIPT: &str = include_str!("../../../../../tests/upstream/sekmet.sh");
/// The pinned dependency set the script installs with.
const CONSTRAINTS: &str = include_str!("../../../../../tests/upstream/sekmet-constraints.txt");

/// A running test EHR; [`TestEhr::stop`] ends it.
#[derive(Debug)]
pub(crate) struct TestEhr {
    script: PathBuf,
    work: PathBuf,
    /// Its FHIR base, e.g. `http://127.0.0.1:8090/fhir`.
    pub(crate) base: String,
}

impl TestEhr {
    /// Writes the script under `dir` and starts the EHR on `port`; the script prints its own progress
    /// (including a first-run install) on stderr.
    pub(crate) fn start(dir: &Path, port: u16) -> Result<Self, String> {
        let scripts = dir.join("ehr-script");
        std::fs::create_dir_all(&scripts).map_err(|e| format!("{}: {e}", scripts.display()))?;
        let script = scripts.join("sekmet.sh");
        for (path, text) in [
            (&script, SCRIPT),
            (&scripts.join("sekmet-constraints.txt"), CONSTRAINTS),
        ] {
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let work = dir.join("ehr");
        let ehr = Self {
            base: format!("http://127.0.0.1:{port}/fhir"),
            script,
            work,
        };
        let status = Command::new("bash")
            .arg(&ehr.script)
            .arg("start")
            .arg(port.to_string())
            .arg(&ehr.work)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        if !status.success() {
            return Err(format!(
                "the test EHR did not start (its log: {})",
                ehr.work.join("sekmet.log").display()
            ));
        }
        Ok(ehr)
    }

    /// Stops the EHR (the script sends SIGTERM, then SIGKILL after 10 s).
    pub(crate) fn stop(&self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(&self.work)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
