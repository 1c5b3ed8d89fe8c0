//! The suite's result: per-check outcomes, the Synthea section, and the Markdown rendering.

use std::fmt::Write as _;
use std::time::Duration;

/// The result of one check (run against the upstream and through the gateway).
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// Check name.
    pub name: String,
    /// `JSON`, `XML` or `JSON+XML`.
    pub format: &'static str,
    /// Number of recorded steps (upstream side).
    pub steps: usize,
    /// Whether the normalised transcripts are equal.
    pub identical: bool,
    /// The first difference, when not identical.
    pub difference: Option<String>,
    /// Where the gateway side showed the upstream base, if it did.
    pub leak: Option<String>,
    /// Why the check could not run to the end (on either side).
    pub error: Option<String>,
    /// Wall time of both runs.
    pub elapsed: Duration,
}

impl CheckOutcome {
    /// Identical, no leak, no error.
    pub fn passed(&self) -> bool {
        self.identical && self.leak.is_none() && self.error.is_none()
    }
}

/// The Synthea part: bundles loaded through the gateway and resources read back both ways.
#[derive(Debug, Clone, Default)]
pub struct SyntheaReport {
    /// The directory the bundles came from.
    pub dir: String,
    /// Files found in it.
    pub files: usize,
    /// Bundles the gateway loaded (200 transaction-response).
    pub bundles_loaded: usize,
    /// Files not loaded because they are not usable Bundles: `(file, reason)`.
    pub skipped: Vec<(String, String)>,
    /// Bundles whose load through the gateway failed: `(file, reason)`.
    pub failed_loads: Vec<(String, String)>,
    /// Resources created by the loaded bundles (`entry.response.location`s).
    pub locations: usize,
    /// Resources read back directly and through the gateway and compared.
    pub resources_read_back: usize,
    /// How the read-back set was chosen (all, or a sample).
    pub selection: String,
    /// Number of read-backs that differed, failed or leaked.
    pub mismatch_count: usize,
    /// The first few mismatches, described.
    pub mismatches: Vec<String>,
    /// Gateway responses that showed the upstream base (counted in `mismatch_count` too).
    pub leaks: usize,
    /// Time loading bundles.
    pub load_time: Duration,
    /// Time reading back.
    pub read_time: Duration,
}

impl SyntheaReport {
    /// Something loaded, nothing failed, nothing differed.
    pub fn ok(&self) -> bool {
        self.bundles_loaded > 0 && self.failed_loads.is_empty() && self.mismatch_count == 0
    }
}

/// The suite's report.
#[derive(Debug, Clone)]
pub struct Report {
    /// The upstream base tested.
    pub upstream_base: String,
    /// The gateway base tested.
    pub gateway_base: String,
    /// One outcome per check, in run order.
    pub checks: Vec<CheckOutcome>,
    /// The Synthea section, when a directory was given.
    pub synthea: Option<SyntheaReport>,
    /// Total wall time.
    pub elapsed: Duration,
}

impl Report {
    /// Checks that passed (identical, no leak, no error).
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed()).count()
    }

    /// Checks run.
    pub fn total(&self) -> usize {
        self.checks.len()
    }

    /// Every check passed and the Synthea section (if run) is clean.
    pub fn all_passed(&self) -> bool {
        self.passed() == self.total() && self.synthea.as_ref().is_none_or(SyntheaReport::ok)
    }

    /// The closing summary lines.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "REST conformance: {}/{} checks identical\n",
            self.passed(),
            self.total()
        );
        match &self.synthea {
            Some(sy) => {
                let _ = write!(
                    s,
                    "Synthea: {} bundles, {} resources read back, {} mismatches",
                    sy.bundles_loaded, sy.resources_read_back, sy.mismatch_count
                );
                if !sy.failed_loads.is_empty() {
                    let _ = write!(s, ", {} failed loads", sy.failed_loads.len());
                }
                s.push('\n');
            }
            None => s.push_str("Synthea: not run (no bundle directory given)\n"),
        }
        s
    }

    /// The report as Markdown, ending with the summary lines.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# REST pass-through conformance\n");
        let _ = writeln!(s, "- upstream: `{}`", self.upstream_base);
        let _ = writeln!(s, "- gateway: `{}`", self.gateway_base);
        let _ = writeln!(s, "- duration: {:.1} s\n", self.elapsed.as_secs_f64());
        let _ = writeln!(s, "Each check runs against the upstream directly and through the gateway; the transcripts (status, ETag, Location, Content-Location, Content-Type, Last-Modified presence, body) must be identical after normalising the base URL, server ids, the run nonce, instants and the gateway's CapabilityStatement marking. No gateway response may contain the upstream base.\n");
        let _ = writeln!(
            s,
            "| # | check | format | steps | result | upstream base leaked |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for (i, c) in self.checks.iter().enumerate() {
            let result = if c.error.is_some() {
                "ERROR"
            } else if c.identical {
                "identical"
            } else {
                "DIFFERENT"
            };
            let leak = if c.leak.is_some() { "**LEAK**" } else { "no" };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                i + 1,
                c.name,
                c.format,
                c.steps,
                result,
                leak
            );
        }
        let failed: Vec<&CheckOutcome> = self.checks.iter().filter(|c| !c.passed()).collect();
        if !failed.is_empty() {
            let _ = writeln!(s, "\n## Failures\n");
            for c in failed {
                let _ = writeln!(s, "### {}\n", c.name);
                for text in [&c.error, &c.difference, &c.leak].into_iter().flatten() {
                    let _ = writeln!(s, "```\n{}\n```\n", text.replace("```", "'''"));
                }
            }
        }
        if let Some(sy) = &self.synthea {
            self.synthea_markdown(&mut s, sy);
        }
        let _ = write!(s, "\n{}", self.summary());
        s
    }

    fn synthea_markdown(&self, s: &mut String, sy: &SyntheaReport) {
        let _ = writeln!(s, "\n## Synthea\n");
        let _ = writeln!(s, "- directory: `{}` ({} files)", sy.dir, sy.files);
        let _ = writeln!(
            s,
            "- bundles loaded through the gateway: {} ({:.1} s)",
            sy.bundles_loaded,
            sy.load_time.as_secs_f64()
        );
        for (f, why) in &sy.skipped {
            let _ = writeln!(s, "- skipped `{f}`: {why}");
        }
        for (f, why) in &sy.failed_loads {
            let _ = writeln!(s, "- **load failed** `{f}`: {why}");
        }
        let _ = writeln!(
            s,
            "- resources created: {}; read back directly and through the gateway: {} ({}; {:.1} s)",
            sy.locations,
            sy.resources_read_back,
            sy.selection,
            sy.read_time.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "- mismatches: {} (of which upstream-base leaks: {})",
            sy.mismatch_count, sy.leaks
        );
        for m in &sy.mismatches {
            let _ = writeln!(s, "  - {}", m.replace('\n', " "));
        }
    }
}
