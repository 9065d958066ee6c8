//! The one printer, seen from outside: a reader that closes stdout early ends the command quietly with
//! exit 0 (and stops a reply being generated), output that cannot be written is one line and exit 1.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Wait for `child` at most `limit`: a hang fails the test instead of stalling the suite.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start run-fit with stdout piped, read `bytes` of it (none: close it at once, as `| true` does), close
/// the pipe, and wait.
fn read_then_close(args: &[&str], bytes: usize) -> (std::process::ExitStatus, String) {
    let mut child = run_fit_command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = vec![0u8; bytes];
    stdout.read_exact(&mut head).unwrap();
    drop(stdout);
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, err)
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    let smol = smollm2();
    // a reply into a pipe whose reader is gone: a long forced answer stops at once
    let args = [smol.to_str().unwrap(), "-p", "Count to a thousand.", "-n", "2000", "--ignore-eos", "-c", "4096"];
    let (status, err) = read_then_close(&args, 0);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    assert!(err.contains("stopped: the output was closed"), "{err}");
    // the statistics say how far it got: far short of the 2000 tokens asked for
    let line = err.lines().find(|l| l.starts_with("prompt ")).unwrap_or_else(|| panic!("no stats line: {err}"));
    let reply_tokens: u64 = line.split("reply ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(reply_tokens < 500, "the reply went on into the void: {line}");
    // a watch that would write forever ends at the first write that finds the pipe closed
    let (status, err) = read_then_close(&["devices", "--watch", "0.05"], 4);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    let (status, err) = read_then_close(&["devices", "--watch", "0.05"], 0);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn output_that_cannot_be_written_is_one_line_and_exit_1() {
    let smol = smollm2();
    for args in [
        vec!["plan", smol.to_str().unwrap(), "--profile", "cpu-16g"],
        vec![smol.to_str().unwrap(), "-p", "hi", "-n", "4"],
        vec!["--help"],
    ] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = run_fit_command().args(&args).stdin(Stdio::null()).stdout(full).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("run-fit: error: writing the output"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
