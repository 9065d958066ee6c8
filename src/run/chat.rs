//! The conversation: one answer (`-p`, piped stdin) or a chat at the terminal. Holds the transcript, so a
//! worker that dies mid-reply costs nothing but the reply: the launcher starts a smaller one and the
//! turn is asked again. If no smaller one can start, the transcript is saved and its path printed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustyline::error::ReadlineError;
use rustyline::{Cmd, ConditionalEventHandler, Event, EventContext, EventHandler, KeyEvent, Movement, RepeatCount};
use serde::Serialize;

use crate::cli::RunRequest;
use crate::error::Failure;
use crate::fit::speed::Speed;
use crate::output::printer::Printer;
use crate::run::protocol::{Message, Stats, StopReason};
use crate::run::session::{ModelSession, Streamed};
use crate::run::supervisor::Reply;

const HELP: &str = "commands:
  /stats        totals for this chat
  /reset        forget the conversation (keeps the system prompt)
  /system TEXT  set the system prompt (empty: none)
  /help         this list
  /exit         leave (also Ctrl-D, or Ctrl-C at an empty prompt)
Ctrl-C while the model answers stops the reply.";

/// What the model is shown: the system prompt and the turns still inside the context window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Conversation {
    pub system: Option<String>,
    /// Every user and assistant message, oldest first; the transcript.
    pub turns: Vec<Message>,
    /// Turns before this index were dropped to fit the context.
    pub first_kept: usize,
    #[serde(skip)]
    pub totals: Stats,
    #[serde(skip)]
    pub replies: u64,
}

impl Conversation {
    pub fn messages(&self) -> Vec<Message> {
        let system = self.system.iter().map(|s| Message::new("system", s));
        system.chain(self.turns[self.first_kept..].iter().cloned()).collect()
    }

    /// Record a reply: its text joins the transcript, dropped turns leave the window.
    fn record(&mut self, reply: &Reply) {
        self.first_kept = (self.first_kept + reply.dropped).min(self.turns.len().saturating_sub(1));
        self.turns.push(Message::new("assistant", &reply.text));
        self.totals.add(&reply.stats);
        self.replies += 1;
    }

    fn reset(&mut self) {
        self.turns.clear();
        self.first_kept = 0;
    }

    /// Write the transcript where the user can find it again, readable by the user alone (0600 in a
    /// 0700 folder); returns the path.
    fn save(&self, model: &std::path::Path) -> std::io::Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
        let absolute = |var: &str| std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute());
        let dir = match absolute("XDG_STATE_HOME").or_else(|| absolute("HOME").map(|h| h.join(".local/state"))) {
            Some(state) => state.join("run-fit"),
            // No home: a folder of this user's own in the shared temporary directory.
            None => std::env::temp_dir().join(format!("run-fit-{}", rustix::process::getuid().as_raw())),
        };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        // Another user's folder (made there first) is not a place for this conversation.
        let meta = std::fs::symlink_metadata(&dir)?;
        if !meta.is_dir() || meta.uid() != rustix::process::getuid().as_raw() || meta.mode() & 0o077 != 0 {
            return Err(std::io::Error::other(format!(
                "{} is not a private folder of this user's; refusing to write the conversation there",
                dir.display()
            )));
        }
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let path = dir.join(format!("transcript-{secs}-{}.json", std::process::id()));
        let body = serde_json::json!({ "model": model, "system": self.system, "messages": self.turns });
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        file.write_all(serde_json::to_string_pretty(&body).unwrap_or_default().as_bytes())?;
        Ok(path)
    }
}

/// Below this share of the predicted generation speed, something is wrong with the machine's memory.
const SLOW_SHARE: f64 = 0.5;

fn print_reply_end(printer: &Printer, reply: &Reply, predicted: Option<&Speed>) {
    if reply.dropped > 0 {
        printer.note(&format!(
            "the context was full: dropped the {} oldest messages (the system prompt stays)",
            reply.dropped
        ));
    }
    match reply.stop {
        StopReason::Stopped if printer.stdout_closed() => printer.note("stopped: the output was closed"),
        StopReason::Stopped => printer.note("stopped"),
        StopReason::ContextFull => {
            printer.note("the context is full: the reply was cut; older turns are dropped next time")
        }
        StopReason::EndOfGeneration | StopReason::TokenLimit => {}
    }
    printer.result(&reply.stats.line());
    if let Some(warning) = slow_warning(&reply.stats, predicted) {
        printer.warn(&warning);
    }
}

/// A reply of 32 tokens or more generated at less than half the predicted rate: the symptom of memory
/// spilling somewhere slow.
fn slow_warning(stats: &Stats, predicted: Option<&Speed>) -> Option<String> {
    let p = predicted?;
    (stats.generated_tokens >= 32 && stats.generation_tok_per_s() < SLOW_SHARE * p.generation_tok_per_s).then(|| {
        format!(
            "generation ran at {:.1} tok/s, far below the {:.0} tok/s predicted: memory may be spilling \
             (GPU memory to shared system memory, or RAM to swap), or other programs are using the machine",
            stats.generation_tok_per_s(),
            p.generation_tok_per_s
        )
    })
}

#[derive(Serialize)]
struct OnceJson<'a> {
    reply: &'a str,
    stop: StopReason,
    stats: &'a Stats,
    prompt_tok_per_s: f64,
    generation_tok_per_s: f64,
    llama_args: Vec<String>,
    backoff: &'a [String],
    /// What the plan predicted for this machine (docs/SPEED.md), when bandwidths are known.
    predicted: Option<&'a Speed>,
}

const RESTARTED: &str = "the model process died mid-reply: the answer starts again";

/// Streams a reply to stdout as it comes; false once stdout is closed (the reply is then stopped). A
/// reply that starts again after a crash says so on stderr and streams again.
fn stream_to(printer: &Printer) -> impl FnMut(Streamed) -> bool + '_ {
    move |piece| match piece {
        Streamed::Text(t) => printer.out(t).is_ok(),
        Streamed::Restarted => {
            printer.note(RESTARTED);
            printer.out("\n").is_ok()
        }
    }
}

/// Holds a reply back until it is whole, so that stdout carries only the final answer even when a
/// crash makes it start again; still stops when the reader of stdout has gone.
fn hold_in<'p>(printer: &'p Printer, text: &'p mut String) -> impl FnMut(Streamed) -> bool + 'p {
    move |piece| {
        match piece {
            Streamed::Text(t) => text.push_str(t),
            Streamed::Restarted => {
                printer.note(RESTARTED);
                text.clear();
            }
        }
        !printer.stdout_reader_gone()
    }
}

/// `-p PROMPT` or a piped prompt: answer once.
pub fn once(req: &RunRequest, prompt: String, mut session: ModelSession, printer: &Printer) -> Result<(), Failure> {
    let conv = Conversation {
        system: req.system_prompt.clone(),
        turns: vec![Message::new("user", &prompt)],
        ..Conversation::default()
    };
    // On a terminal the reply streams; into a pipe or a file it is written whole, once.
    let stream = printer.stdout_is_terminal() && !req.json;
    let mut held = String::new();
    let reply = if stream {
        session.reply(&conv.messages(), &req.generation, &mut stream_to(printer))?
    } else {
        session.reply(&conv.messages(), &req.generation, &mut hold_in(printer, &mut held))?
    };
    match &reply.rejected {
        Some(r) if r.template => {
            return Err(Failure::Engine(format!("{}; run with -v to see llama.cpp's own message", r.message)));
        }
        Some(r) => return Err(Failure::Usage(r.message.clone())),
        None => {}
    }
    let written = if req.json {
        let json = OnceJson {
            reply: &reply.text,
            stop: reply.stop,
            stats: &reply.stats,
            prompt_tok_per_s: reply.stats.prompt_tok_per_s(),
            generation_tok_per_s: reply.stats.generation_tok_per_s(),
            llama_args: session.plan().llama_args(),
            backoff: session.steps(),
            predicted: session.predicted(),
        };
        printer.out(&(serde_json::to_string(&json).map_err(anyhow::Error::from)? + "\n"))
    } else if stream {
        printer.out("\n")
    } else {
        printer.out(&(held + "\n"))
    };
    // The statistics go to stderr even when the reader of stdout left: they say how far it got.
    print_reply_end(printer, &reply, session.predicted());
    written?;
    match reply.stop {
        StopReason::Stopped if printer.stdout_closed() => Err(Failure::OutputClosed),
        StopReason::Stopped => Err(Failure::Interrupted),
        _ => Ok(()),
    }
}

/// Ctrl-C with text on the line clears the line; at an empty prompt it falls through to rustyline's
/// default, which ends the chat.
struct ClearOrExit;

impl ConditionalEventHandler for ClearOrExit {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        (!ctx.line().is_empty()).then_some(Cmd::Kill(Movement::WholeLine))
    }
}

/// The chat at the terminal.
pub fn interactive(req: &RunRequest, session: ModelSession, printer: &Printer) -> Result<(), Failure> {
    let mut conv = Conversation { system: req.system_prompt.clone(), ..Conversation::default() };
    let mut editor = rustyline::DefaultEditor::new().map_err(|e| Failure::Internal(e.into()))?;
    editor.bind_sequence(KeyEvent::ctrl('C'), EventHandler::Conditional(Box::new(ClearOrExit)));
    // On a terminal rustyline cannot drive (TERM=dumb) it reads plain lines and Ctrl-C arrives as
    // SIGINT: at the prompt that means "leave", as it does on a real terminal.
    let at_prompt = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(signal_hook::consts::SIGINT, 0, Arc::clone(&at_prompt))
        .map_err(|e| Failure::Internal(e.into()))?;
    let transcript = on_terminate_save(req);
    printer.result(&format!(
        "run-fit: ready, context {} tokens. /help for commands, Ctrl-D to leave.",
        session.n_ctx_tokens()
    ));
    let mut chat = Chat { req, session, printer, editor, at_prompt, transcript };
    let ended = chat.converse(&mut conv);
    crate::run::signals::clear_on_terminate();
    ended
}

/// A chat at the terminal: its request, model, printer, line editor, and where the conversation is
/// kept current for a terminating signal.
struct Chat<'r, 's> {
    req: &'r RunRequest,
    session: ModelSession<'s>,
    printer: &'r Printer,
    editor: rustyline::DefaultEditor,
    at_prompt: Arc<AtomicBool>,
    transcript: Arc<std::sync::Mutex<Conversation>>,
}

/// On SIGTERM or SIGHUP (`run::signals`): put the terminal back as it was before the chat (rustyline
/// may have it raw) and save the conversation as it stands. Returns where the chat keeps it current.
fn on_terminate_save(req: &RunRequest) -> Arc<std::sync::Mutex<Conversation>> {
    let transcript = Arc::new(std::sync::Mutex::new(Conversation::default()));
    let saved_terminal = rustix::termios::tcgetattr(rustix::stdio::stdin()).ok();
    let (model, shared) = (req.load.model.clone(), Arc::clone(&transcript));
    crate::run::signals::on_terminate(move || {
        if let Some(t) = &saved_terminal {
            let _ = rustix::termios::tcsetattr(rustix::stdio::stdin(), rustix::termios::OptionalActions::Now, t);
        }
        let conv = shared.lock().unwrap_or_else(|e| e.into_inner());
        if conv.turns.is_empty() {
            return None;
        }
        Some(match conv.save(&model) {
            Ok(path) => format!("the conversation is saved in {}", path.display()),
            Err(e) => format!("could not save the conversation: {e}"),
        })
    });
    transcript
}

/// The chat's loop: read a line, run a command or ask for a reply, until the user leaves.
impl Chat<'_, '_> {
    fn converse(&mut self, conv: &mut Conversation) -> Result<(), Failure> {
        let (req, printer) = (self.req, self.printer);
        loop {
            *self.transcript.lock().unwrap_or_else(|e| e.into_inner()) = conv.clone();
            self.at_prompt.store(true, Ordering::SeqCst);
            let line = self.editor.readline("> ");
            self.at_prompt.store(false, Ordering::SeqCst);
            let line = match line {
                Ok(line) => line,
                Err(ReadlineError::Interrupted | ReadlineError::Eof) => return Ok(()),
                Err(e) => return Err(Failure::Internal(e.into())),
            };
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            let _ = self.editor.add_history_entry(text);
            if let Some(command) = text.strip_prefix('/') {
                match chat_command(command, conv, &self.session, printer) {
                    Command::Leave => return Ok(()),
                    Command::Done => continue,
                }
            }
            conv.turns.push(Message::new("user", text));
            let reply = self.session.reply(&conv.messages(), &req.generation, &mut stream_to(printer));
            // The reply's line ends before anything else is said about it.
            if !matches!(&reply, Ok(r) if r.rejected.is_some()) {
                printer.out("\n")?;
            }
            match reply {
                Ok(reply) if reply.rejected.is_some() => {
                    conv.turns.pop();
                    printer.result(&format!("run-fit: {}", reply.rejected.map(|r| r.message).unwrap_or_default()));
                }
                Ok(reply) => {
                    conv.record(&reply);
                    print_reply_end(printer, &reply, self.session.predicted());
                }
                Err(failure) => {
                    match conv.save(&req.load.model) {
                        Ok(path) => {
                            printer.result(&format!("run-fit: the conversation is saved in {}", path.display()))
                        }
                        Err(e) => printer.result(&format!("run-fit: could not save the conversation: {e}")),
                    }
                    return Err(failure);
                }
            }
        }
    }
}

enum Command {
    Done,
    Leave,
}

/// `/stats`, `/reset`, `/system TEXT`, `/help`, `/exit`.
fn chat_command(command: &str, conv: &mut Conversation, session: &ModelSession, printer: &Printer) -> Command {
    let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
    match name {
        "exit" | "quit" | "bye" => return Command::Leave,
        "help" | "?" => printer.result(HELP),
        "reset" => {
            conv.reset();
            printer.note("conversation cleared");
        }
        "system" => {
            let rest = rest.trim();
            conv.system = (!rest.is_empty()).then(|| rest.to_string());
            printer.note(if rest.is_empty() { "no system prompt" } else { "system prompt set" });
        }
        "stats" => {
            printer.result(&format!(
                "{} replies · {} · {} backoff steps",
                conv.replies,
                conv.totals.line(),
                session.steps().len()
            ));
            if let Some(rss) = session.resident_bytes() {
                printer.result(&format!("model process: {} resident", crate::fit::plan::human(rss)));
            }
            // This machine only: an RPC server serves one client at a time, and the worker is it.
            match crate::machine::probe::measure_isolated(&[], None) {
                Ok(hw) => printer.result(&crate::output::report::memory_use_text(&hw)),
                Err(e) => printer.result(&format!("run-fit: could not measure memory: {e:#}")),
            }
        }
        _ => printer.result(&format!("unknown command /{name}: /help lists them")),
    }
    Command::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_far_below_the_prediction_is_flagged() {
        let predicted = Speed { generation_tok_per_s: 100.0, prompt_tok_per_s: 500.0, limited_by: "RAM".into() };
        let stats = |tokens: u64, ms: f64| Stats { generated_tokens: tokens, generation_ms: ms, ..Stats::default() };
        assert!(slow_warning(&stats(64, 640.0), Some(&predicted)).is_none(), "100 tok/s");
        let slow = slow_warning(&stats(64, 3200.0), Some(&predicted)).unwrap();
        assert!(slow.contains("20.0 tok/s, far below the 100 tok/s predicted"), "{slow}");
        assert!(slow_warning(&stats(8, 3200.0), Some(&predicted)).is_none(), "too short to judge");
        assert!(slow_warning(&stats(64, 3200.0), None).is_none(), "no prediction");
    }

    #[test]
    fn recording_a_reply_moves_the_window_past_dropped_turns() {
        let mut c = Conversation::default();
        for t in ["u1", "a1", "u2", "a2", "u3"] {
            c.turns.push(Message::new(if t.starts_with('u') { "user" } else { "assistant" }, t));
        }
        let reply = Reply {
            text: "a3".into(),
            stop: StopReason::EndOfGeneration,
            stats: Stats::default(),
            dropped: 2,
            rejected: None,
        };
        c.record(&reply);
        let seen: Vec<String> = c.messages().into_iter().map(|m| m.content).collect();
        assert_eq!(seen, ["u2", "a2", "u3", "a3"]);
        assert_eq!(c.turns.len(), 6, "the transcript keeps everything");
    }
}
