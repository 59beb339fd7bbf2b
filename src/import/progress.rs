//! Progress of one import step: a bar on a terminal (indicatif), plain lines otherwise (a log
//! file or CI keeps one line every few seconds, not a redraw per row).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub enum Progress {
    Bar(ProgressBar),
    Lines {
        label: &'static str,
        total: u64,
        done: u64,
        last: Instant,
    },
    Silent,
}

/// How steps show their progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else plain lines.
    Auto,
    /// Nothing (library callers, tests).
    Off,
}

impl Progress {
    pub fn start(mode: ProgressMode, label: &'static str, total: u64) -> Progress {
        match mode {
            ProgressMode::Off => Progress::Silent,
            ProgressMode::Auto if std::io::stderr().is_terminal() => {
                let bar = ProgressBar::new(total);
                // The template is a constant known to parse; the default style is the fallback.
                let style = ProgressStyle::with_template("{prefix:>9} [{bar:40}] {human_pos}/{human_len} eta {eta}")
                    .map(|s| s.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                bar.set_prefix(label);
                Progress::Bar(bar)
            }
            ProgressMode::Auto => {
                eprintln!("{label}: {total} rows to read");
                Progress::Lines {
                    label,
                    total,
                    done: 0,
                    last: Instant::now(),
                }
            }
        }
    }

    pub fn advance(&mut self, rows: u64) {
        match self {
            Progress::Bar(bar) => bar.inc(rows),
            Progress::Lines {
                label,
                total,
                done,
                last,
            } => {
                *done += rows;
                if last.elapsed() >= PLAIN_EVERY {
                    eprintln!("{label}: {done}/{total}");
                    *last = Instant::now();
                }
            }
            Progress::Silent => {}
        }
    }

    pub fn finish(self) {
        match self {
            Progress::Bar(bar) => {
                let done = bar.position();
                bar.finish_and_clear();
                eprintln!("{:>9}: {done} read", bar.prefix());
            }
            Progress::Lines { label, done, .. } => eprintln!("{label}: {done} read, done"),
            Progress::Silent => {}
        }
    }
}
