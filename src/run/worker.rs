//! The worker process (`run-fit __worker`, started by the supervisor): reads one `Load` request,
//! loads the model, then answers `Chat` requests until its stdin closes. If llama.cpp kills this process
//! the supervisor notices and starts a smaller one; nothing here tries to survive that.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::engine::session::{Session, StepError};
use crate::engine::{Engine, LogEcho, take_buffers_by_device, take_log_tail};
use crate::run::fault;
use crate::run::protocol::{Event, Generation, LoadSpec, Message, Request, Stage, Stats, StopReason};

/// Set by the stdin reader on `Stop` (or when stdin closes); polled by llama.cpp's abort callback and
/// the generation loop.
static STOP: AtomicBool = AtomicBool::new(false);

const TOKEN_FLUSH: Duration = Duration::from_millis(40);

/// Exit status after a `Failed` event. The supervisor reads the event; the status is for people.
pub const EXIT_FAILED: u8 = 3;

fn emit(event: &Event) {
    let Ok(line) = serde_json::to_string(event) else { return };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        // The supervisor is gone: nobody to answer.
        std::process::exit(0);
    }
}

/// Report a failed step with llama.cpp's last log lines; `waiting`: the weights stay loaded and the
/// worker reads another request.
fn fail(stage: Stage, message: String, waiting: bool) {
    emit(&Event::Failed { stage, message, log_tail: take_log_tail(40), waiting });
}

fn next_request(lines: &mut std::io::Lines<std::io::StdinLock<'static>>) -> Option<Request> {
    let line = lines.next()?.ok()?;
    serde_json::from_str(&line).ok()
}

pub fn run() -> ExitCode {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let Some(Request::Load(spec)) = next_request(&mut lines) else {
        let _ = writeln!(
            std::io::stderr(),
            "run-fit worker: expected a load request on stdin (this command is started by run-fit)"
        );
        return ExitCode::from(2);
    };
    let engine = match Engine::init_with(if spec.verbose { LogEcho::Everything } else { LogEcho::Informative }) {
        Ok(e) => e,
        Err(e) => {
            fail(Stage::Load, format!("{e:#}"), false);
            return ExitCode::from(EXIT_FAILED);
        }
    };
    // Remote devices join before the load sees the device list. A server that does not answer ends this
    // process inside llama.cpp (GGML_ABORT): the supervisor reads that as a lost server.
    if let Err(e) = engine.add_rpc_servers(&spec.rpc) {
        fail(Stage::Load, format!("{e:#}"), false);
        return ExitCode::from(EXIT_FAILED);
    }
    let Some(session) = load(spec, &mut lines) else { return ExitCode::from(EXIT_FAILED) };
    drop(lines);
    let code = serve(session);
    drop(engine);
    code
}

/// Weights first; then the context. A context that fails with an error value leaves the weights
/// loaded, and the supervisor may send a smaller `Load` with the same weights: then only the context
/// is made again. None: a failure was reported and the worker ends.
fn load(mut spec: LoadSpec, lines: &mut std::io::Lines<std::io::StdinLock<'static>>) -> Option<Session> {
    let mut on_stage = |stage: Stage| {
        emit(&Event::Stage { stage });
        fault::at(stage);
    };
    // Progress fires for every tensor; a 1 % step is enough for a bar.
    let mut last = -1.0f32;
    let mut on_progress = |fraction: f32| {
        if fraction - last >= 0.01 || fraction >= 1.0 {
            last = fraction;
            emit(&Event::Progress { fraction });
        }
    };
    let mut loaded: Option<(Session, LoadSpec)> = None;
    // What the weights took, read from llama.cpp's log before the context's lines join it.
    let mut weight_buffers = BTreeMap::new();
    let mut weight_loads = 0;
    loop {
        let mut session = match loaded.take() {
            Some((session, was)) if was.same_weights(&spec) => session,
            other => {
                drop(other); // free the old weights before loading new ones
                match Session::load_model(&spec, &STOP, &mut on_stage, &mut on_progress) {
                    Ok(s) => {
                        weight_buffers = take_buffers_by_device();
                        weight_loads += 1;
                        s
                    }
                    Err(e) => {
                        fail(e.stage, e.message, false);
                        return None;
                    }
                }
            }
        };
        match session.create_context(&spec, &mut on_stage) {
            Ok(()) => {
                let mut buffers_bytes = std::mem::take(&mut weight_buffers);
                for (device, bytes) in take_buffers_by_device() {
                    *buffers_bytes.entry(device).or_insert(0) += bytes;
                }
                emit(&Event::Ready {
                    n_ctx_tokens: session.n_ctx_tokens(),
                    chat_template: session.has_chat_template(),
                    buffers_bytes,
                    weight_loads,
                });
                return Some(session);
            }
            Err(e) => {
                fail(e.stage, e.message, true);
                let Some(Request::Load(next)) = next_request(lines) else { return None };
                loaded = Some((session, spec));
                spec = next;
            }
        }
    }
}

/// Answer requests until stdin closes. Requests arrive on a thread so that `Stop` lands while a reply
/// is being generated.
fn serve(mut session: Session) -> ExitCode {
    let (tx, rx) = mpsc::channel::<Request>();
    let reader = std::thread::Builder::new().name("requests".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Request>(&line) {
                Ok(Request::Stop) => STOP.store(true, Ordering::Relaxed),
                Ok(request) => {
                    if tx.send(request).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "run-fit worker: ignoring a malformed request: {e}");
                }
            }
        }
        // The supervisor closed our stdin (it exits or gave up on us): stop what we are doing.
        STOP.store(true, Ordering::Relaxed);
    });
    if let Err(e) = reader {
        // Short of memory for a thread, as llama.cpp's own thread failures are: the words backoff knows.
        fail(Stage::Warmup, format!("Thread creation failed for run-fit's request reader: {e}"), false);
        return ExitCode::from(EXIT_FAILED);
    }
    while let Ok(request) = rx.recv() {
        STOP.store(false, Ordering::Relaxed);
        let result = match request {
            Request::Bench { prompt_tokens, gen_tokens } => session.bench(prompt_tokens, gen_tokens),
            Request::Chat { messages, generation } => match answer(&mut session, &messages, &generation) {
                Some(result) => result,
                None => continue,
            },
            Request::Load(_) | Request::Stop => continue,
        };
        match result {
            Ok((stop, stats)) => emit(&Event::Done { stop, stats }),
            Err(e) => {
                fail(e.stage, e.message, false);
                return ExitCode::from(EXIT_FAILED);
            }
        }
    }
    ExitCode::SUCCESS
}

/// One reply, streamed as `Token` events; None when the request was refused (a `Rejected` event).
fn answer(
    session: &mut Session,
    messages: &[Message],
    generation: &Generation,
) -> Option<Result<(StopReason, Stats), StepError>> {
    fault::at(Stage::Decode);
    // Room for the reply when trimming: what -n asks for, else a quarter of the context.
    let room = generation.max_tokens.unwrap_or(session.n_ctx_tokens() / 4).min(session.n_ctx_tokens() / 2);
    let (prompt, dropped) = match session.fit_prompt(messages, room) {
        Ok(p) => p,
        Err(refused) => {
            emit(&Event::Rejected { message: refused.message, template: refused.template });
            return None;
        }
    };
    if dropped > 0 {
        emit(&Event::Trimmed { dropped });
    }
    // Tokens go out at most every TOKEN_FLUSH: each message wakes the supervisor, and on a machine
    // whose every core runs a spinning llama.cpp thread, a wake-up per token costs ~10 % of
    // generation speed on a small model. 40 ms still reads as a live stream.
    let mut pending = String::new();
    let mut last_flush: Option<Instant> = None;
    let mut on_text = |text: &str| {
        pending.push_str(text);
        if last_flush.is_none_or(|t| t.elapsed() >= TOKEN_FLUSH) {
            emit(&Event::Token { text: std::mem::take(&mut pending) });
            last_flush = Some(Instant::now());
        }
    };
    let result = session.reply(&prompt, generation, &mut on_text);
    if !pending.is_empty() {
        emit(&Event::Token { text: std::mem::take(&mut pending) });
    }
    Some(result)
}
