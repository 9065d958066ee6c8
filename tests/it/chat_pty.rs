//! The interactive chat, driven through a pseudo-terminal as a person would: two turns, `/stats`, Ctrl-C
//! during a long reply (which must stop the reply, not run-fit), `/exit`.

use crate::common::*;
use rexpect::session::PtySession;

/// Type a line as a person does, one key at a time. (A burst of keys without bracketed-paste markers
/// can stall rustyline after the first character; real pastes come bracketed.)
/// A whole line in one write, as a paste without bracketed-paste markers, `tmux send-keys` or an
/// expect script sends it (rustyline 17 with its signal-hook feature stalled after the first character).
fn type_line(p: &mut PtySession, text: &str) {
    p.send(&format!("{text}\r")).unwrap();
    p.flush().unwrap();
}

#[test]
fn chat_two_turns_stats_ctrl_c_and_exit() {
    let mut cmd = run_fit_command();
    cmd.args([smollm2().to_str().unwrap(), "--temp", "0", "-c", "2048"]).env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).expect("spawn in a pty");

    p.exp_string("ready, context 2048 tokens").unwrap();
    p.exp_string("> ").unwrap();
    type_line(&mut p, "What is the capital of France?");
    // (rexpect reads bytes as Latin-1, so the expectations stay ASCII)
    let (first, _) = p.exp_regex(r"context \d+/2048 tokens").unwrap();
    assert!(first.contains("Paris"), "{first}");
    p.exp_string("> ").unwrap();

    // the second turn sees the first: the context grows
    type_line(&mut p, "Say it again in one word.");
    p.exp_regex(r"context \d+/2048 tokens").unwrap();
    p.exp_string("> ").unwrap();

    type_line(&mut p, "/stats");
    p.exp_string("2 replies").unwrap();
    // memory in use now: the model process and the machine
    p.exp_regex(r"model process: \d+ MiB resident").unwrap();
    p.exp_string("| RAM").unwrap();
    p.exp_string("> ").unwrap();

    // A long reply, stopped part-way: run-fit says so and returns to the prompt.
    type_line(&mut p, "Write a very long story about a dragon and a knight, with many chapters.");
    p.exp_string("chapters.").unwrap(); // the echo
    p.exp_regex(r"[A-Za-z,.' ]{80}").unwrap(); // some of the reply
    p.send_control('c').unwrap();
    let stopped = p.exp_string("run-fit: stopped").unwrap();
    assert!(!stopped.trim().is_empty());
    // the part of the reply already generated stays in the context
    let (_, used) = p.exp_regex(r"context \d+/").unwrap();
    let used: u64 = used.trim_start_matches("context ").trim_end_matches('/').parse().unwrap();
    assert!(used > 60, "context after the stop: {used}");
    p.exp_string("> ").unwrap();

    // still alive and answering after the stop
    type_line(&mut p, "/stats");
    p.exp_string("3 replies").unwrap();
    p.exp_string("> ").unwrap();

    type_line(&mut p, "/system Answer in one word.");
    p.exp_string("system prompt set").unwrap();
    type_line(&mut p, "/reset");
    p.exp_string("conversation cleared").unwrap();
    type_line(&mut p, "/help");
    p.exp_string("/system TEXT").unwrap();
    type_line(&mut p, "/nonsense");
    p.exp_string("unknown command /nonsense").unwrap();
    // after /reset the context holds only the new turn (system prompt + question)
    type_line(&mut p, "What is the capital of France?");
    let (_, used) = p.exp_regex(r"context \d+/").unwrap();
    let used: u64 = used.trim_start_matches("context ").trim_end_matches('/').parse().unwrap();
    assert!(used < 60, "context after /reset: {used}");
    p.exp_string("> ").unwrap();

    type_line(&mut p, "/exit");
    p.exp_eof().unwrap();
    let status = format!("{:?}", p.process().wait().unwrap());
    assert!(status.contains("Exited") && status.ends_with(", 0)"), "{status}");
}

#[test]
fn ctrl_c_at_an_empty_prompt_and_ctrl_d_exit_cleanly() {
    // xterm: rustyline reads keys itself; dumb: plain lines, and Ctrl-C arrives as a signal.
    for (term, key) in [("xterm", 'c'), ("xterm", 'd'), ("dumb", 'c'), ("dumb", 'd')] {
        let mut cmd = run_fit_command();
        cmd.args([smollm2().to_str().unwrap(), "-c", "1024", "-q"]).env("TERM", term);
        let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
        p.exp_string("> ").unwrap();
        p.send_control(key).unwrap();
        p.exp_eof().unwrap();
        let status = format!("{:?}", p.process().wait().unwrap());
        assert!(status.ends_with(", 0)"), "{term} Ctrl-{key}: {status}");
    }
}

#[test]
fn a_full_context_drops_the_oldest_turns_and_says_so() {
    let mut cmd = run_fit_command();
    cmd.args([smollm2().to_str().unwrap(), "--temp", "0", "-c", "512", "-n", "120", "--ignore-eos"])
        .args(["-sys", "You are a storyteller."])
        .env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    p.exp_string("> ").unwrap();
    let mut dropped_at = None;
    for turn in 1..=6 {
        type_line(&mut p, &format!("Tell me story number {turn}."));
        let (before, _) = p.exp_regex(r"context \d+/512 tokens").unwrap();
        if before.contains("dropped the 2 oldest messages") {
            dropped_at.get_or_insert(turn);
        }
        p.exp_string("> ").unwrap();
    }
    // 120 forced tokens a turn: the fourth prompt no longer leaves room for a reply
    assert!(matches!(dropped_at, Some(3..=5)), "dropped at turn {dropped_at:?}");
    type_line(&mut p, "/exit");
    p.exp_eof().unwrap();
}

#[test]
fn a_chat_that_cannot_go_on_is_saved_and_the_path_printed() {
    // Every worker is killed when it starts answering, and -c is pinned: nothing smaller to try.
    let state = tempfile::tempdir().unwrap();
    let mut cmd = run_fit_command();
    cmd.args([smollm2().to_str().unwrap(), "-c", "2048"])
        .env("TERM", "xterm")
        .env("XDG_STATE_HOME", state.path())
        .env("RUN_FIT_FAULT", "sigkill@decode");
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    p.exp_string("> ").unwrap();
    type_line(&mut p, "Remember the word pineapple.");
    let (_, path) = p.exp_regex(r"saved in \S+\.json").unwrap();
    let path = path.trim_start_matches("saved in ").to_string();
    p.exp_string("killed by SIGKILL").unwrap();
    p.exp_string("nothing smaller is left").unwrap();
    p.exp_eof().unwrap();
    let status = format!("{:?}", p.process().wait().unwrap());
    assert!(status.ends_with(", 5)"), "{status}");
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(path.starts_with(state.path().to_str().unwrap()), "{path}");
    assert_eq!(saved["messages"][0]["content"], "Remember the word pineapple.");
}

#[test]
fn sigterm_at_the_prompt_saves_the_chat_and_restores_the_terminal() {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = run_fit_command();
    cmd.args([smollm2().to_str().unwrap(), "--temp", "0", "-c", "1024", "-n", "8"])
        .env("TERM", "xterm")
        .env("XDG_STATE_HOME", state.path());
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    p.exp_string("> ").unwrap();
    type_line(&mut p, "Hello there");
    p.exp_regex(r"context \d+/1024 tokens").unwrap();
    p.exp_string("> ").unwrap();
    // at the prompt rustyline holds the terminal raw (no echo, no line editing by the kernel)
    let pid = p.process().child_pid.as_raw().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    p.exp_string("run-fit: terminated by SIGTERM; the conversation is saved in").unwrap();
    let status = format!("{:?}", p.process().wait().unwrap());
    assert!(status.ends_with(", 143)"), "{status}");
    let pty = p.process().get_file_handle().unwrap();
    let modes = rustix::termios::tcgetattr(&pty).unwrap().local_modes;
    use rustix::termios::LocalModes;
    // (rexpect starts the pty without echo; raw mode also drops canonical input and signal keys)
    assert!(modes.contains(LocalModes::ICANON | LocalModes::ISIG), "the terminal was left raw: {modes:?}");
    // the transcript is there, the user's alone
    let dir = state.path().join("run-fit");
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    assert!(std::fs::read_to_string(&file).unwrap().contains("Hello there"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
}
