//! Progress of the long one-shot commands on stderr: a bar on a terminal, and otherwise one log line
//! every few seconds (a bar's redraws would fill a log file).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anchorgate::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a progress line is logged when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Shows the progress of one operation; [`Reporter::finish`] when it is over.
#[derive(Debug)]
pub(crate) struct Reporter {
    what: &'static str,
    bar: Option<ProgressBar>,
    done: AtomicU64,
    total: AtomicU64,
    last_line: Mutex<Instant>,
}

impl Reporter {
    /// A reporter for `what` (e.g. "consents"), drawn as a bar only when stderr is a terminal.
    pub(crate) fn new(what: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(counting_style());
            bar.set_message(what);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            what,
            bar,
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
        }
    }

    /// Clears the bar (the command's own summary follows).
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Reporter {
    fn total(&self, items: u64) {
        self.total.store(items, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(items);
            bar.set_style(bar_style());
        }
    }

    fn advance(&self, items: u64) {
        let done = self.done.fetch_add(items, Ordering::Relaxed) + items;
        if let Some(bar) = &self.bar {
            bar.inc(items);
            return;
        }
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        if last.elapsed() >= LINE_EVERY {
            *last = Instant::now();
            match self.total.load(Ordering::Relaxed) {
                0 => tracing::info!(done, "{}: {done} so far", self.what),
                total => tracing::info!(done, total, "{}: {done} of {total}", self.what),
            }
        }
    }
}

/// Before the total is known: a spinner and a count.
fn counting_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg}: {human_pos} ({per_sec})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Once it is known: a bar.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{wide_bar}] {human_pos}/{human_len} ({eta} left)")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}
