//! The live view of a followed deployment on stderr: one line per phase
//! (a spinner with the elapsed time on a terminal, plain lines when
//! piped), the build log as it streams, and the outcome. `sdp logs -f`
//! uses the same view with the log on stdout.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sdp_bus::{EventBody, Status};

use crate::follow::Update;
use crate::output::Paint;

/// Where log lines go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    Stderr,
    Stdout,
}

pub struct Progress {
    label: String,
    paint: Paint,
    log_to: LogTo,
    /// Set on a terminal: the spinner of the current phase.
    bar: Option<ProgressBar>,
    phase: Option<(Status, Instant)>,
}

impl Progress {
    /// `live` draws spinners (stderr is a terminal); otherwise plain lines.
    pub fn new(label: &str, live: bool, paint: Paint, log_to: LogTo) -> Progress {
        let bar = live.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let template = if paint.color {
                "{spinner:.cyan} {msg} {elapsed:.dim}"
            } else {
                "{spinner} {msg} {elapsed}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(format!("{label} connecting"));
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress {
            label: label.to_owned(),
            paint,
            log_to,
            bar,
            phase: None,
        }
    }

    /// A line for the human, above the spinner.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn log(&self, line: &str) {
        match (self.log_to, &self.bar) {
            (LogTo::Stderr, Some(bar)) => bar.println(line),
            (LogTo::Stderr, None) => eprintln!("{line}"),
            (LogTo::Stdout, Some(bar)) => bar.suspend(|| print_stdout(line)),
            (LogTo::Stdout, None) => print_stdout(line),
        }
    }

    /// Closes the current phase's line with its duration.
    fn end_phase(&mut self) {
        if let Some((status, since)) = self.phase.take() {
            let line = format!(
                "{} {} {:<9} {}",
                self.paint.green("✓"),
                self.label,
                status.as_str(),
                self.paint
                    .dim(&format!("{:.1}s", since.elapsed().as_secs_f64()))
            );
            if self.bar.is_some() {
                self.note(&line);
            }
        }
    }

    fn start_phase(&mut self, status: Status) {
        self.end_phase();
        self.phase = Some((status, Instant::now()));
        match &self.bar {
            Some(bar) => {
                bar.reset_elapsed();
                bar.set_message(format!("{} {}", self.label, status.as_str()));
            }
            None => eprintln!("{} {}", self.label, status.as_str()),
        }
    }

    /// Shows one update of the follower.
    pub fn update(&mut self, update: Update<'_>) {
        match update {
            Update::Event(event) => match &event.body {
                EventBody::Phase { phase, .. } => self.start_phase(*phase),
                EventBody::Log { .. } | EventBody::Logs { .. } => {
                    for (_, line) in event.body.log_lines() {
                        self.log(line);
                    }
                }
                // A failed container's last output (`log_tail`) is in the
                // log already: not printed twice.
                EventBody::Result {
                    status, url, error, ..
                } => {
                    self.finish(*status, url.as_deref(), error.as_deref());
                }
            },
            Update::Dropped { reason } => self.note(&self.paint.yellow(&format!(
                "! {}: stream dropped ({reason}); reconnecting",
                self.label
            ))),
            Update::Resumed { after } => self.note(&self.paint.yellow(&format!(
                "! {}: reconnected, resuming after event {after}",
                self.label
            ))),
        }
    }

    /// The outcome line, replacing the spinner.
    pub fn finish(&mut self, status: Status, url: Option<&str>, error: Option<&str>) {
        self.end_phase();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let line = match status {
            Status::Running => format!(
                "{} {} running{}",
                self.paint.green("✓"),
                self.label,
                url.map(|u| format!(" at {u}")).unwrap_or_default()
            ),
            Status::Cancelled => format!("{} {} cancelled", self.paint.yellow("✗"), self.label),
            other => format!(
                "{} {} {}{}",
                self.paint.red("✗"),
                self.label,
                other.as_str(),
                error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        };
        eprintln!("{line}");
    }

    /// Stops the spinner with a message (timeout, error).
    pub fn abandon(&mut self, line: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("{line}");
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn print_stdout(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}
