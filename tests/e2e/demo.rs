//! The README's first command, as pasted: `cargo run -p anchorgate -- demo` starts the test EHR and a
//! gateway, loads patients and consents, and prints a walk-through; every line it prints is run here in
//! one shell, in order, and each `# expect …` it states is checked. Then Ctrl-C (SIGINT) must stop
//! everything it started and remove its files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anchorgate_e2e::{reap_with_parent, repo_root};

/// What a `# expect` line says the next command prints last.
#[derive(Debug)]
struct Expect {
    /// An HTTP status, or `None` for "the command exits 0".
    status: Option<String>,
    /// A text the output must contain (`true`) or must not contain (`false`).
    text: Option<(bool, String)>,
}

fn parse_expect(line: &str) -> Option<Expect> {
    let rest = line.strip_prefix("# expect ")?;
    let (status, rest) = match rest.strip_prefix("exit 0") {
        Some(r) => (None, r),
        None => (Some(rest.get(..3)?.to_owned()), rest.get(3..)?),
    };
    let rest = rest.trim();
    let text = if rest.is_empty() {
        None
    } else {
        let (want, quoted) = match rest.strip_prefix('!') {
            Some(q) => (false, q),
            None => (true, rest),
        };
        Some((want, serde_json::from_str::<String>(quoted).ok()?))
    };
    Some(Expect { status, text })
}

/// The README's first command block's first line: the command that builds and runs the demo.
fn readme_first_command() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("README has a sh block");
    let line = block.lines().next().unwrap();
    let cmd = line.split(" #").next().unwrap().trim().to_owned();
    assert!(
        cmd.contains("-- demo"),
        "the README's first command should run the demo: {cmd}"
    );
    cmd
}

#[test]
fn readme_first_command_runs_the_demo_and_every_printed_line_works() {
    let cmd = readme_first_command();
    let mut child = Command::new("bash")
        .args(["-c", &format!("exec {cmd}")])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    reap_with_parent(child.id());
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let start = Instant::now();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(600).saturating_sub(start.elapsed()))
            .unwrap_or_else(|_| {
                panic!(
                    "the demo printed no ready line; it printed:\n{}",
                    printed.join("\n")
                )
            });
        let done = line.starts_with("# Ready.");
        printed.push(line);
        if done {
            break;
        }
    }
    let dir = printed
        .iter()
        .find_map(|l| l.strip_prefix("#   files     "))
        .map(|d| d.trim().to_owned())
        .expect("the demo names its files");
    assert!(std::path::Path::new(&dir).is_dir());

    let steps = run_printed(&printed);
    assert!(steps >= 12, "only {steps} steps were printed");

    // Ctrl-C: everything stops, the files go.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the demo did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the demo exited with {status}");
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} was not removed"
    );
    for var in ["GW", "EHR"] {
        let url = printed
            .iter()
            .find_map(|l| l.strip_prefix("export GW="))
            .map(|rest| {
                let mut parts = rest.split(" EHR=");
                let gw = parts.next().unwrap().to_owned();
                let ehr = parts.next().unwrap().to_owned();
                if var == "GW" {
                    format!("{gw}/healthz")
                } else {
                    format!("{ehr}/metadata")
                }
            })
            .unwrap();
        let answered = reqwest::blocking::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .is_ok();
        assert!(!answered, "{url} still answers after the demo stopped");
    }
}

/// Runs the printed lines in one shell and checks every expectation; answers the number of steps.
fn run_printed(printed: &[String]) -> usize {
    let mut script = String::from("set -u\n");
    let mut expects = Vec::new();
    let mut pending = None;
    for line in printed {
        if let Some(e) = parse_expect(line) {
            pending = Some(e);
        } else if line.starts_with('#') || line.trim().is_empty() {
        } else if let Some(e) = pending.take() {
            script.push_str(&format!(
                "{line}\necho \"@@step {} exit=$?\"\n",
                expects.len()
            ));
            expects.push((line.clone(), e));
        } else {
            // Set-up lines (exports) run as they are.
            script.push_str(line);
            script.push('\n');
        }
    }
    let out = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut segments = text.split("@@step ");
    let mut seen = segments.next().unwrap_or_default().to_owned();
    let mut failures = Vec::new();
    for (n, (cmd, e)) in expects.iter().enumerate() {
        let Some(seg) = segments.next() else {
            failures.push(format!("step {n} never ran: {cmd}"));
            break;
        };
        let (marker, after) = seg.split_once('\n').unwrap_or((seg, ""));
        let output = std::mem::replace(&mut seen, after.to_owned());
        let exit_ok = marker.ends_with("exit=0");
        let last = output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let status_ok = match &e.status {
            Some(s) => last.trim() == s,
            None => exit_ok,
        };
        let text_ok = match &e.text {
            Some((true, t)) => output.to_lowercase().contains(&t.to_lowercase()),
            Some((false, t)) => !output.contains(t.as_str()),
            None => true,
        };
        if !(status_ok && text_ok) {
            failures.push(format!(
                "step {n}: expected {e:?}\n  command: {cmd}\n  output: {}",
                output.chars().take(2000).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} printed steps failed:\n{}\nstderr:\n{}",
        failures.len(),
        expects.len(),
        failures.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    expects.len()
}

/// The checker itself fails on a wrong status, a missing text, a forbidden text and a failed command.
#[test]
fn the_checker_catches_every_kind_of_broken_expectation() {
    let ok = |lines: &[&str]| {
        let printed: Vec<String> = lines.iter().map(|s| (*s).to_owned()).collect();
        std::panic::catch_unwind(|| run_printed(&printed)).is_ok()
    };
    assert!(ok(&[
        "export X=1",
        "# expect 200 \"a\"",
        "echo a; echo $X; echo 200"
    ]));
    assert!(!ok(&["# expect 200", "echo 404"]));
    assert!(!ok(&["# expect 200 \"intact\"", "echo tampered; echo 200"]));
    assert!(!ok(&["# expect 404 !\"Secret\"", "echo Secret; echo 404"]));
    assert!(!ok(&["# expect exit 0", "false"]));
    assert!(ok(&[
        "# expect exit 0 \"\\\"ok\\\":true\"",
        "echo '{\"ok\":true}'"
    ]));
}
