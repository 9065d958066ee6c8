//! The conversation: one answer (`-p`, piped stdin) or a chat at the terminal. Holds the transcript, so a
//! worker that dies mid-reply costs nothing but the reply: the launcher starts a smaller one and the
//! turn is asked again. If no smaller one can start, the transcript is saved and its path printed.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustyline::error::ReadlineError;
use rustyline::{Cmd, ConditionalEventHandler, Event, EventContext, EventHandler, KeyEvent, Movement, RepeatCount};
use serde::Serialize;

use crate::cli::RunRequest;
use crate::error::Failure;
use crate::launch::{Launcher, Running, Ui};
use crate::protocol::{Message, Stats, StopReason};
use crate::speed::Speed;
use crate::supervisor::Reply;

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

    /// Write the transcript where the user can find it again; returns the path.
    fn save(&self, model: &std::path::Path) -> std::io::Result<PathBuf> {
        let dir = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir)
            .join("run-fit");
        std::fs::create_dir_all(&dir)?;
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let path = dir.join(format!("transcript-{secs}-{}.json", std::process::id()));
        let body = serde_json::json!({ "model": model, "system": self.system, "messages": self.turns });
        std::fs::write(&path, serde_json::to_string_pretty(&body).unwrap_or_default())?;
        Ok(path)
    }
}

/// Ask the running worker for a reply to the conversation; if the worker dies, back off and ask a new
/// one. `on_text` streams the reply (a restarted reply streams again from its start).
fn answer(
    launcher: &mut Launcher,
    running: &mut Running,
    conv: &Conversation,
    req: &RunRequest,
    interrupt: &AtomicBool,
    on_text: &mut dyn FnMut(&str),
) -> Result<Reply, Failure> {
    loop {
        let reply =
            running.worker.reply(&conv.messages(), req.max_tokens, &req.sampling, req.ignore_eos, interrupt, on_text);
        match reply {
            Ok(reply) => return Ok(reply),
            Err(death) => {
                launcher.shrink(&running.plan, &death)?;
                *running = launcher.start()?;
                on_text("\n[run-fit: restarting the reply]\n");
            }
        }
    }
}

/// Below this share of the predicted generation speed, something is wrong with the machine's memory.
const SLOW_SHARE: f64 = 0.5;

fn print_reply_end(ui: &Ui, reply: &Reply, predicted: Option<&Speed>) {
    if reply.dropped > 0 {
        ui.note(&format!(
            "the context was full: dropped the {} oldest messages (the system prompt stays)",
            reply.dropped
        ));
    }
    match reply.stop {
        StopReason::Stopped => ui.note("stopped"),
        StopReason::ContextFull => ui.note("the context is full: the reply was cut; older turns are dropped next time"),
        StopReason::EndOfGeneration | StopReason::TokenLimit => {}
    }
    // The numbers are a result, shown even with -q.
    eprintln!("{}", reply.stats.line());
    if let Some(warning) = slow_warning(&reply.stats, predicted) {
        ui.note(&warning);
    }
}

/// A reply of 32 tokens or more generated at less than half the predicted rate: the symptom of memory
/// spilling somewhere slow.
fn slow_warning(stats: &Stats, predicted: Option<&Speed>) -> Option<String> {
    let p = predicted?;
    (stats.generated_tokens >= 32 && stats.generation_tok_per_s() < SLOW_SHARE * p.generation_tok_per_s).then(|| {
        format!(
            "warning: generation ran at {:.1} tok/s, far below the {:.0} tok/s predicted: memory may be spilling \
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

/// Start the worker and the conversation (its system prompt from -sys).
fn begin(req: &RunRequest, launcher: &mut Launcher) -> Result<(Running, Conversation), Failure> {
    let running = launcher.start()?;
    Ok((running, Conversation { system: req.system_prompt.clone(), ..Conversation::default() }))
}

/// `-p PROMPT` or a piped prompt: answer once.
pub fn once(
    req: &RunRequest,
    prompt: String,
    mut launcher: Launcher,
    ui: &Ui,
    interrupt: Arc<AtomicBool>,
) -> Result<(), Failure> {
    let (mut running, mut conv) = begin(req, &mut launcher)?;
    conv.turns.push(Message::new("user", &prompt));
    let mut stdout = std::io::stdout();
    let mut on_text = |t: &str| {
        if !req.json {
            let _ = stdout.write_all(t.as_bytes());
            let _ = stdout.flush();
        }
    };
    let reply = answer(&mut launcher, &mut running, &conv, req, &interrupt, &mut on_text)?;
    if let Some(message) = &reply.rejected {
        return Err(Failure::Usage(message.clone()));
    }
    if req.json {
        let json = OnceJson {
            reply: &reply.text,
            stop: reply.stop,
            stats: &reply.stats,
            prompt_tok_per_s: reply.stats.prompt_tok_per_s(),
            generation_tok_per_s: reply.stats.generation_tok_per_s(),
            llama_args: running.plan.llama_args(),
            backoff: &launcher.steps,
            predicted: running.predicted.as_ref(),
        };
        println!("{}", serde_json::to_string(&json).expect("serializes"));
    } else {
        println!();
    }
    print_reply_end(ui, &reply, running.predicted.as_ref());
    if reply.stop == StopReason::Stopped { Err(Failure::Interrupted) } else { Ok(()) }
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
pub fn interactive(
    req: &RunRequest,
    mut launcher: Launcher,
    ui: &Ui,
    interrupt: Arc<AtomicBool>,
) -> Result<(), Failure> {
    let (mut running, mut conv) = begin(req, &mut launcher)?;
    let mut editor = rustyline::DefaultEditor::new().map_err(|e| Failure::Internal(e.into()))?;
    editor.bind_sequence(KeyEvent::ctrl('C'), EventHandler::Conditional(Box::new(ClearOrExit)));
    // On a terminal rustyline cannot drive (TERM=dumb) it reads plain lines and Ctrl-C arrives as
    // SIGINT: at the prompt that means "leave", as it does on a real terminal.
    let at_prompt = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(signal_hook::consts::SIGINT, 0, Arc::clone(&at_prompt))
        .map_err(|e| Failure::Internal(e.into()))?;
    eprintln!("run-fit: ready, context {} tokens. /help for commands, Ctrl-D to leave.", running.n_ctx_tokens);
    loop {
        at_prompt.store(true, Ordering::SeqCst);
        let line = editor.readline("> ");
        at_prompt.store(false, Ordering::SeqCst);
        let line = match line {
            Ok(line) => line,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
            Err(e) => return Err(Failure::Internal(e.into())),
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(text);
        if let Some(command) = text.strip_prefix('/') {
            let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
            match name {
                "exit" | "quit" | "bye" => break,
                "help" | "?" => eprintln!("{HELP}"),
                "reset" => {
                    conv.reset();
                    ui.note("conversation cleared");
                }
                "system" => {
                    let rest = rest.trim();
                    conv.system = (!rest.is_empty()).then(|| rest.to_string());
                    ui.note(if rest.is_empty() { "no system prompt" } else { "system prompt set" });
                }
                "stats" => {
                    eprintln!(
                        "{} replies · {} · {} backoff steps",
                        conv.replies,
                        conv.totals.line(),
                        launcher.steps.len()
                    );
                    if let Some(rss) = running.worker.resident_bytes() {
                        eprintln!("model process: {} resident", crate::plan::human(rss));
                    }
                    match crate::probe::measure_isolated() {
                        Ok(hw) => eprint!("{}", crate::report::memory_use_text(&hw)),
                        Err(e) => eprintln!("run-fit: could not measure memory: {e:#}"),
                    }
                }
                _ => eprintln!("unknown command /{name}: /help lists them"),
            }
            continue;
        }
        conv.turns.push(Message::new("user", text));
        let mut stdout = std::io::stdout();
        let mut on_text = |t: &str| {
            let _ = stdout.write_all(t.as_bytes());
            let _ = stdout.flush();
        };
        match answer(&mut launcher, &mut running, &conv, req, &interrupt, &mut on_text) {
            Ok(reply) if reply.rejected.is_some() => {
                conv.turns.pop();
                eprintln!("run-fit: {}", reply.rejected.unwrap_or_default());
            }
            Ok(reply) => {
                println!();
                conv.record(&reply);
                print_reply_end(ui, &reply, running.predicted.as_ref());
            }
            Err(failure) => {
                println!();
                match conv.save(&req.model) {
                    Ok(path) => eprintln!("run-fit: the conversation is saved in {}", path.display()),
                    Err(e) => eprintln!("run-fit: could not save the conversation: {e}"),
                }
                return Err(failure);
            }
        }
    }
    Ok(())
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
