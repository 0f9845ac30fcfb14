//! Logging set-up, in one place: `tracing` to stderr (stdout carries only the
//! `listening on` line that scripts and tests read), filtered by `RUST_LOG`; and the
//! progress line that long commands (`generate --kafka`, `replay`) show on stderr.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

/// How often the progress line is redrawn on a terminal, and written to a log.
const PROGRESS_TTY: Duration = Duration::from_millis(250);
const PROGRESS_LOG: Duration = Duration::from_secs(5);

/// A progress line on stderr: redrawn in place on a terminal, a line every few seconds
/// otherwise (logs, CI). The caller says what the line holds.
pub struct ProgressLine {
    tty: bool,
    last: Instant,
    shown: bool,
}

impl Default for ProgressLine {
    fn default() -> Self {
        ProgressLine {
            tty: std::io::stderr().is_terminal(),
            last: Instant::now(),
            shown: false,
        }
    }
}

impl ProgressLine {
    /// Whether the next line is due.
    pub fn due(&self) -> bool {
        self.since_last() >= if self.tty { PROGRESS_TTY } else { PROGRESS_LOG }
    }

    /// Time since the last line (or since the start).
    pub fn since_last(&self) -> Duration {
        self.last.elapsed()
    }

    pub fn show(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        self.last = Instant::now();
        self.shown = true;
    }

    /// Ends a line redrawn in place, so what follows starts on its own line.
    pub fn finish(&self) {
        if self.tty && self.shown {
            eprintln!();
        }
    }
}

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
