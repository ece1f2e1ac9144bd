//! A failed service container's last words: when it exits during the
//! health wait or never passes its health check, its last lines of output
//! go into the deployment's log before the result, so the reason it gave
//! (a panic, a missing file, a bad flag) is where the user looks.
//!
//! The lines come from Docker (the container's log, `tail`), stdout and
//! stderr each on its own stream, after one `system` line naming the
//! container. They are bounded — [`LAST_LINES`] lines, [`MAX_BYTES`] in
//! all, [`MAX_LINE`] each — and so is the time spent reading them
//! ([`FETCH_TIMEOUT`]): a stuck engine delays the result by that much at
//! most. A failed read is one `system` line; the deployment still fails
//! with its own reason.

use std::time::Duration;

use bollard::container::LogOutput;
use futures::StreamExt;
use sdp_bus::LogStream;

use crate::docker::DockerClient;
use crate::events::{EventSink, OutputLine};

/// The most lines shown (Docker's `tail`).
pub const LAST_LINES: usize = 50;
/// The most bytes of output shown, all lines together: the oldest lines
/// go first.
pub const MAX_BYTES: usize = 8 * 1024;
/// A longer line is cut here, marked ` […]`.
pub const MAX_LINE: usize = 1024;
/// The longest the agent waits for Docker's answer.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Appends the last output of `container` (named `name` in the log) to the
/// deployment's log, and returns the lines' text for the result's
/// `log_tail` (shown beside the error on the deployment page).
pub async fn tell(
    docker: &DockerClient,
    container: &str,
    name: &str,
    sink: &mut EventSink,
) -> Vec<String> {
    let (lines, failure) = fetch(docker, container, FETCH_TIMEOUT).await;
    let tail: Vec<String> = lines.iter().map(|(_, text)| text.clone()).collect();
    let mut out = Vec::with_capacity(lines.len() + 2);
    if lines.is_empty() && failure.is_none() {
        out.push(OutputLine::now(
            LogStream::System,
            format!("container {name} printed nothing"),
        ));
    }
    if !lines.is_empty() {
        out.push(OutputLine::now(
            LogStream::System,
            format!("last output of container {name}:"),
        ));
        out.extend(
            lines
                .into_iter()
                .map(|(stream, text)| OutputLine::now(stream, text)),
        );
    }
    if let Some(failure) = failure {
        tracing::warn!(%name, error = %failure, "cannot read a failed container's output");
        out.push(OutputLine::now(
            LogStream::System,
            format!("cannot read the last output of container {name}: {failure}"),
        ));
    }
    sink.log_lines(out).await;
    tail
}

/// The container's last lines, bounded, and why reading stopped early, if
/// it did (the lines read until then are kept).
async fn fetch(
    docker: &DockerClient,
    container: &str,
    timeout: Duration,
) -> (Vec<(LogStream, String)>, Option<String>) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut output = docker.last_output(container, LAST_LINES);
    let mut lines = Lines::default();
    let failure = loop {
        match tokio::time::timeout_at(deadline, output.next()).await {
            Err(_) => break Some(format!("Docker did not answer within {timeout:?}")),
            Ok(None) => break None,
            Ok(Some(Err(err))) => break Some(err.to_string()),
            Ok(Some(Ok(frame))) => lines.push(frame),
        }
    };
    (lines.finish(), failure)
}

/// Docker's frames cut into lines, one partial line per stream (a frame
/// may end mid-line), each line kept to [`MAX_LINE`] while it is read.
#[derive(Default)]
struct Lines {
    done: Vec<(LogStream, String)>,
    stdout: Partial,
    stderr: Partial,
}

#[derive(Default)]
struct Partial {
    bytes: Vec<u8>,
    cut: bool,
}

impl Partial {
    fn push(&mut self, bytes: &[u8]) {
        // A few bytes past the bound, so the cut falls on a char boundary.
        let room = (MAX_LINE + 4).saturating_sub(self.bytes.len());
        if bytes.len() > room {
            self.cut = true;
        }
        self.bytes
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn take(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let mut line = text.to_owned();
        if self.cut || line.len() > MAX_LINE {
            let mut end = line.len().min(MAX_LINE);
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str(" […]");
        }
        self.bytes.clear();
        self.cut = false;
        line
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && !self.cut
    }
}

impl Lines {
    fn push(&mut self, frame: LogOutput) {
        let (stream, bytes) = match frame {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (LogStream::Stdout, message)
            }
            LogOutput::StdErr { message } => (LogStream::Stderr, message),
            LogOutput::StdIn { .. } => return,
        };
        let partial = match stream {
            LogStream::Stderr => &mut self.stderr,
            _ => &mut self.stdout,
        };
        let mut pieces = bytes.split(|b| *b == b'\n').peekable();
        while let Some(piece) = pieces.next() {
            partial.push(piece);
            if pieces.peek().is_some() {
                self.done.push((stream, partial.take()));
            }
        }
    }

    /// Every line (an unfinished last line too), the newest [`LAST_LINES`]
    /// within [`MAX_BYTES`].
    fn finish(mut self) -> Vec<(LogStream, String)> {
        for (stream, partial) in [
            (LogStream::Stdout, &mut self.stdout),
            (LogStream::Stderr, &mut self.stderr),
        ] {
            if !partial.is_empty() {
                self.done.push((stream, partial.take()));
            }
        }
        let mut lines = self.done;
        let mut keep = 0;
        let mut bytes = 0;
        for (_, text) in lines.iter().rev().take(LAST_LINES) {
            if bytes + text.len() > MAX_BYTES {
                break;
            }
            bytes += text.len();
            keep += 1;
        }
        lines.drain(..lines.len() - keep);
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(text: &str) -> LogOutput {
        LogOutput::StdOut {
            message: text.as_bytes().to_vec().into(),
        }
    }

    fn err(text: &str) -> LogOutput {
        LogOutput::StdErr {
            message: text.as_bytes().to_vec().into(),
        }
    }

    fn lines(frames: Vec<LogOutput>) -> Vec<(LogStream, String)> {
        let mut lines = Lines::default();
        for frame in frames {
            lines.push(frame);
        }
        lines.finish()
    }

    #[test]
    fn streams_stay_apart_in_the_order_written() {
        let got = lines(vec![
            out("listening\n"),
            err("panic: boom\r\n"),
            out("half "),
            err("goroutine 1\n"),
            out("a line\nno newline"),
        ]);
        assert_eq!(
            got,
            [
                (LogStream::Stdout, "listening".to_owned()),
                (LogStream::Stderr, "panic: boom".to_owned()),
                (LogStream::Stderr, "goroutine 1".to_owned()),
                (LogStream::Stdout, "half a line".to_owned()),
                (LogStream::Stdout, "no newline".to_owned()),
            ]
        );
    }

    #[test]
    fn a_long_line_is_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_LINE);
        let got = lines(vec![err(&long), err(&long), err("\nnext\n")]);
        assert_eq!(got.len(), 2);
        let (stream, text) = &got[0];
        assert_eq!(*stream, LogStream::Stderr);
        assert!(text.ends_with(" […]"), "{text}");
        assert!(text.len() <= MAX_LINE + " […]".len(), "{}", text.len());
        assert_eq!(got[1].1, "next");
    }

    #[test]
    fn only_the_newest_lines_within_the_bounds_are_kept() {
        let many: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let got = lines(vec![out(&many)]);
        assert_eq!(got.len(), LAST_LINES);
        assert_eq!(got.last().map(|l| l.1.as_str()), Some("line 199"));

        let wide = format!("{}\n", "x".repeat(1000)).repeat(20);
        let got = lines(vec![out(&wide)]);
        let total: usize = got.iter().map(|l| l.1.len()).sum();
        assert!(total <= MAX_BYTES, "{total}");
        assert_eq!(got.len(), MAX_BYTES / 1000);
    }

    #[test]
    fn nothing_printed_is_no_lines() {
        assert!(lines(vec![]).is_empty());
    }
}
