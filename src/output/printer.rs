//! The one printer: everything run-fit shows goes through here. stdout carries results (a plan, a reply,
//! a table); stderr carries notes, warnings, statistics, llama.cpp's echoed logs and errors, and the
//! progress bar. `-q`, `-v`, `NO_COLOR` and "is this a terminal" are decided here and nowhere else.
//!
//! A closed stdout (`run-fit … | head`) is the reader's choice: the command ends quietly with exit 0
//! ([`Failure::OutputClosed`]), and a reply being generated is stopped. Any other failed write to stdout
//! (a full disk) is one line and exit 1. A failed write to stderr has nowhere to be reported and is
//! dropped.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Failure;

/// Set once stdout is found closed: every later result write is skipped, and callers can stop work
/// whose only reader is gone.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    quiet: bool,
    verbose: bool,
    color: bool,
    stdout_terminal: bool,
    stderr_terminal: bool,
}

impl Printer {
    /// `-q` / `-v` from the command line; the terminal and `NO_COLOR` are read here.
    pub fn new(quiet: bool, verbose: bool) -> Printer {
        let stderr_terminal = std::io::stderr().is_terminal();
        // https://no-color.org: any non-empty NO_COLOR turns colour off; TERM=dumb cannot show it.
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Printer {
            quiet,
            verbose,
            color: stderr_terminal && !no_color,
            stdout_terminal: std::io::stdout().is_terminal(),
            stderr_terminal,
        }
    }

    /// The same printer with notes silenced (a bench sweep's launches, whose lines would tear the bar).
    pub fn silenced(self) -> Printer {
        Printer { quiet: true, ..self }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Whether stdout is a terminal (a screen to clear, a chat to draw).
    pub fn stdout_is_terminal(&self) -> bool {
        self.stdout_terminal
    }

    /// A result on stdout, flushed at once (replies stream token by token).
    pub fn out(&self, text: &str) -> Result<(), Failure> {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return Err(Failure::OutputClosed);
        }
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
                Err(Failure::OutputClosed)
            }
            Err(e) => Err(Failure::Internal(anyhow::Error::from(e).context("writing the output"))),
        }
    }

    /// Whether a write found stdout closed by its reader.
    pub fn stdout_closed(&self) -> bool {
        STDOUT_CLOSED.load(Ordering::Relaxed)
    }

    /// Whether stdout is a pipe whose reader has gone, found without writing to it (a reply held back
    /// until it is whole must still stop when nobody waits for it).
    pub fn stdout_reader_gone(&self) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let stdout = rustix::stdio::stdout();
        let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
        let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
        let gone = poll(&mut fds, Some(&zero)).is_ok() && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP);
        if gone {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
        gone
    }

    /// A line about what run-fit is doing ("run-fit: …"), not shown with -q.
    pub fn note(&self, message: &str) {
        if !self.quiet {
            self.err_line(&format!("run-fit: {message}"));
        }
    }

    /// A warning ("run-fit: warning: …"), not shown with -q.
    pub fn warn(&self, message: &str) {
        if !self.quiet {
            let label = self.paint("warning:", "33");
            self.err_line(&format!("run-fit: {label} {message}"));
        }
    }

    /// A result that belongs on stderr (the statistics after a reply, chat command output): shown even
    /// with -q, since they are what the user asked for.
    pub fn result(&self, text: &str) {
        self.err_line(text.strip_suffix('\n').unwrap_or(text));
    }

    /// One of llama.cpp's own log lines, echoed with -v.
    pub fn log(&self, line: &str) {
        if self.verbose {
            self.err_line(line);
        }
    }

    /// The one line an error gets, and its exit code. A closed stdout is no error: nothing is said.
    pub fn error(&self, failure: &Failure) -> std::process::ExitCode {
        if !matches!(failure, Failure::OutputClosed) {
            let message = failure.to_string().replace('\n', " ");
            let label = self.paint("error:", "31");
            self.err_line(&format!("run-fit: {label} {message}"));
        }
        std::process::ExitCode::from(failure.exit_code())
    }

    /// A progress bar on stderr with `template` (indicatif's), shown only on a terminal and not with -q
    /// or -v (llama.cpp's own lines would tear it).
    pub fn progress_bar(&self, length: u64, template: &str) -> ProgressBar {
        if self.quiet || self.verbose || !self.stderr_terminal {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        bar
    }

    fn paint(&self, text: &str, sgr: &str) -> String {
        if self.color { format!("\x1b[{sgr}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn err_line(&self, line: &str) {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{line}");
    }
}

/// Text from a model file (its name, its architecture) made safe to print: control characters, which
/// could clear the screen or forge lines, become visible escapes.
pub fn escape(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_a_model_file_are_shown_not_obeyed() {
        assert_eq!(escape("Llama 3 8B"), "Llama 3 8B");
        assert_eq!(escape("x\x1b[2Jy\nz"), "x\\u{1b}[2Jy\\nz");
        assert_eq!(escape("naïve ✓"), "naïve ✓");
    }
}
