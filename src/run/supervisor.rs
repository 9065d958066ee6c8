//! The supervisor's handle on one worker process: start it, wait until it is ready, ask it for replies,
//! and when it dies, gather the evidence (stage, exit status, stderr tail) for `backoff`.
//!
//! The worker runs in its own process group, so the terminal's Ctrl-C reaches only the supervisor, which
//! turns it into a `Stop` request. When the supervisor goes away the worker's stdin closes and it exits.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::fit::backoff::{Death, Exit};
use crate::machine::probe;
use crate::output::printer::Printer;
use crate::run::protocol::{Event, Generation, LoadSpec, Message, Request, Stage, Stats, StopReason};

/// Lines of the worker's stderr kept for classifying a death.
const TAIL_LINES: usize = 200;
/// What a wait receives: the worker's next event, or a nudge to look at the Ctrl-C flag. Waits block
/// instead of polling: on a machine whose every core runs a spinning llama.cpp thread, each needless
/// wake-up of the supervisor stalls the worker (a 50 ms poll cost ~8 % of prompt speed here).
enum Incoming {
    Event(Event),
    Wake,
    /// The worker's stdout closed: it is exiting.
    Closed,
}

/// Senders of the live workers' queues, for `wake_all`.
static WAKERS: Mutex<Vec<Sender<Incoming>>> = Mutex::new(Vec::new());

/// Make every wait look at its interrupt flag now (the Ctrl-C handler calls this after setting it).
pub fn wake_all() {
    let mut wakers = WAKERS.lock().unwrap_or_else(|e| e.into_inner());
    wakers.retain(|w| w.send(Incoming::Wake).is_ok());
}

/// The live workers' process ids (each leads its own process group), for job control and termination.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Send `signal` to every live worker's process group: Ctrl-Z (SIGSTOP) and `fg` (SIGCONT) reach the
/// worker too, which the terminal cannot do (it runs in a process group of its own), and SIGKILL ends
/// them before run-fit exits on SIGTERM or SIGHUP.
pub fn signal_workers(signal: rustix::process::Signal) {
    for &pid in LIVE.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process_group(pid, signal);
        }
    }
}

/// After a Stop, how long a reply may take to end before its worker is taken for hung and killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Incoming>,
    tail: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: Option<JoinHandle<()>>,
    stage: Stage,
    /// The kernel's count of out-of-memory kills when the worker started.
    oom_kills_at_start: Option<u64>,
}

/// What Ctrl-C means to a wait: while loading, the user wants out; while answering, stop the answer
/// (the Ctrl-C is used up: the chat goes on); while measuring, stop the measurement and leave the flag
/// set, so the sweep ends too.
#[derive(Clone, Copy, PartialEq)]
enum OnInterrupt {
    Kill,
    Stop,
    StopAll,
}

/// Why a wait ended without the answer.
#[derive(Debug)]
pub enum Interrupted {
    /// The worker is gone; the evidence.
    Died(Death),
    /// Ctrl-C while loading: the worker was stopped, the user wants out.
    ByUser,
}

/// A worker that is ready: the context llama.cpp made, whether the file has its own chat template,
/// and what llama.cpp allocated per device ("host" for RAM).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub n_ctx_tokens: u32,
    pub chat_template: bool,
    pub buffers_bytes: std::collections::BTreeMap<String, u64>,
    /// How often the worker read the weights.
    pub weight_loads: u32,
}

/// Why the worker refused a prompt; `template`: its chat template failed, not the user's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub message: String,
    pub template: bool,
}

/// A finished reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub stop: StopReason,
    pub stats: Stats,
    /// Messages after the system prompt the worker dropped to fit the context.
    pub dropped: usize,
    /// A request the worker refused without dying (e.g. one message longer than the context).
    pub rejected: Option<Rejection>,
}

impl Worker {
    /// Start `run-fit __worker` and send it the load request.
    pub fn spawn(spec: &LoadSpec, printer: Printer) -> Result<Worker> {
        let exe = std::env::current_exe().context("finding run-fit's own executable")?;
        let oom_kills_at_start = probe::oom_kills();
        let mut child = Command::new(exe)
            .arg("__worker")
            // llama.cpp's abort handler would otherwise start gdb to print a backtrace.
            .env("GGML_NO_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("starting the worker process")?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            anyhow::bail!("the worker process has no pipes");
        };
        let (tx, events) = channel();
        WAKERS.lock().unwrap_or_else(|e| e.into_inner()).push(tx.clone());
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(child.id());
        let events_reader = std::thread::Builder::new().name("worker-events".into()).spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Event>(&line) {
                    Ok(e) => {
                        if tx.send(Incoming::Event(e)).is_err() {
                            break;
                        }
                    }
                    // Something in llama.cpp printed to stdout; it is not ours to show.
                    Err(_) => continue,
                }
            }
            let _ = tx.send(Incoming::Closed);
        });
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail_writer = Arc::clone(&tail);
        let stderr_reader = std::thread::Builder::new().name("worker-log".into()).spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                printer.log(&line);
                let mut t = tail_writer.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        // Threads cannot start when memory is short: then the worker must not outlive this call.
        let stderr_reader = match (events_reader, stderr_reader) {
            (Ok(_), Ok(reader)) => reader,
            (Err(e), _) | (_, Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(anyhow::Error::from(e).context("starting the threads that read the worker"));
            }
        };
        let mut worker = Worker {
            child,
            stdin: None,
            events,
            tail,
            stderr_reader: Some(stderr_reader),
            stage: Stage::Load,
            oom_kills_at_start,
        };
        worker.stdin = worker.child.stdin.take();
        worker.send(&Request::Load(spec.clone()));
        Ok(worker)
    }

    /// Wait for the next event or wake-up.
    fn next(&mut self) -> Incoming {
        self.events.recv().unwrap_or(Incoming::Closed)
    }

    /// The next event, or a wake-up after `limit`.
    fn next_within(&mut self, limit: Duration) -> Incoming {
        match self.events.recv_timeout(limit) {
            Ok(incoming) => incoming,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Incoming::Wake,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Incoming::Closed,
        }
    }

    /// Send a request; a dead worker shows up on the next wait, so a failed write is not an error here.
    fn send(&mut self, request: &Request) {
        if let Some(stdin) = &mut self.stdin {
            let line = serde_json::to_string(request).expect("requests serialize");
            if writeln!(stdin, "{line}").and_then(|_| stdin.flush()).is_err() {
                self.stdin = None;
            }
        }
    }

    /// The one wait: events go to `handle` until it returns a result; a `Failed` event or a closed
    /// stdout ends the wait with the worker's death. Ctrl-C (`interrupt`) is `on_interrupt`'s to answer.
    fn wait<T>(
        &mut self,
        interrupt: &AtomicBool,
        on_interrupt: OnInterrupt,
        mut handle: impl FnMut(&mut Worker, Event) -> Option<T>,
    ) -> Result<T, Interrupted> {
        let mut stop_sent: Option<std::time::Instant> = None;
        loop {
            let interrupted = match on_interrupt {
                OnInterrupt::StopAll => interrupt.load(Ordering::Relaxed) && stop_sent.is_none(),
                OnInterrupt::Kill | OnInterrupt::Stop => interrupt.swap(false, Ordering::Relaxed),
            };
            if interrupted {
                match (on_interrupt, stop_sent) {
                    // Loading, or a second Ctrl-C while a stop is pending: the user wants out now.
                    (OnInterrupt::Kill, _) | (_, Some(_)) => {
                        self.kill();
                        return Err(Interrupted::ByUser);
                    }
                    _ => {
                        stop_sent = Some(std::time::Instant::now());
                        self.send(&Request::Stop);
                    }
                }
            }
            // A worker that does not end its reply in time after a stop is stopped or hung.
            if stop_sent.is_some_and(|t| t.elapsed() > STOP_GRACE) {
                self.kill();
                return Err(Interrupted::ByUser);
            }
            let next = match stop_sent {
                Some(t) => self.next_within(STOP_GRACE.saturating_sub(t.elapsed())),
                None => self.next(),
            };
            match next {
                Incoming::Event(Event::Failed { stage, message, log_tail, waiting: true }) => {
                    self.stage = stage;
                    return Err(Interrupted::Died(Death {
                        stage,
                        message: Some(message),
                        exit: Exit::Waiting,
                        log_tail,
                        oom_killer: None,
                    }));
                }
                Incoming::Event(Event::Failed { stage, message, log_tail, waiting: false }) => {
                    self.stage = stage;
                    return Err(Interrupted::Died(self.death(Some(message), log_tail)));
                }
                Incoming::Event(Event::Stage { stage }) => self.stage = stage,
                Incoming::Event(event) => {
                    if let Some(done) = handle(self, event) {
                        return Ok(done);
                    }
                }
                Incoming::Wake => continue,
                Incoming::Closed => return Err(Interrupted::Died(self.death(None, vec![]))),
            }
        }
    }

    /// Wait for `Ready`; `on_progress` sees the load fraction. Ctrl-C stops the load.
    pub fn wait_ready(
        &mut self,
        interrupt: &AtomicBool,
        on_progress: &mut dyn FnMut(f32),
    ) -> Result<Loaded, Interrupted> {
        self.wait(interrupt, OnInterrupt::Kill, |_, event| match event {
            Event::Progress { fraction } => {
                on_progress(fraction);
                None
            }
            Event::Ready { n_ctx_tokens, chat_template, buffers_bytes, weight_loads } => {
                Some(Loaded { n_ctx_tokens, chat_template, buffers_bytes, weight_loads })
            }
            _ => None,
        })
    }

    /// Ask for a reply to the last message of `messages`; `on_text` sees it as it streams and returns
    /// false when nobody reads it any more. Ctrl-C (`interrupt`) or a false from `on_text` stops the
    /// reply, which still comes back, marked `Stopped`.
    pub fn reply(
        &mut self,
        messages: &[Message],
        generation: &Generation,
        interrupt: &AtomicBool,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Reply, Interrupted> {
        self.stage = Stage::Decode;
        self.send(&Request::Chat { messages: messages.to_vec(), generation: generation.clone() });
        let (mut text, mut dropped, mut stopping) = (String::new(), 0, false);
        let done = self.wait(interrupt, OnInterrupt::Stop, |worker, event| match event {
            Event::Token { text: t } => {
                if !on_text(&t) && !stopping {
                    stopping = true;
                    worker.send(&Request::Stop);
                }
                text.push_str(&t);
                None
            }
            Event::Trimmed { dropped: d } => {
                dropped = d;
                None
            }
            Event::Done { stop, stats } => Some((stop, stats, None)),
            Event::Rejected { message, template } => {
                Some((StopReason::Stopped, Stats::default(), Some(Rejection { message, template })))
            }
            _ => None,
        });
        let (stop, stats, rejected) = done?;
        Ok(Reply { text, stop, stats, dropped, rejected })
    }

    /// One llama-bench style measurement (`Request::Bench`); Ctrl-C stops it.
    pub fn bench(&mut self, prompt_tokens: u32, gen_tokens: u32, interrupt: &AtomicBool) -> Result<Stats, Interrupted> {
        self.stage = Stage::Decode;
        self.send(&Request::Bench { prompt_tokens, gen_tokens });
        self.wait(interrupt, OnInterrupt::StopAll, |_, event| match event {
            Event::Done { stats, .. } => Some(stats),
            _ => None,
        })
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.forget();
    }

    /// The worker is gone: no more signals for it.
    fn forget(&self) {
        let id = self.child.id();
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).retain(|&p| p != id);
    }

    /// The worker's resident memory in bytes (Linux /proc), if it can be read.
    pub fn resident_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: u64 =
            status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Load again with a smaller context, after a `Failed` that left the worker waiting with the same
    /// weights (`LoadSpec::same_weights`).
    pub fn reload(&mut self, spec: &LoadSpec) {
        self.stage = Stage::Context;
        self.send(&Request::Load(spec.clone()));
    }

    /// The worker is ending (it said why, or its stdout closed): collect its exit and last words.
    fn death(&mut self, message: Option<String>, mut reported_tail: Vec<String>) -> Death {
        self.stdin = None;
        // A worker that reported a failure exits at once; one that closed stdout is exiting. Give either a
        // moment, then make sure.
        // Polled finely: the next attempt waits on this, and backoff time is part of time-to-chat.
        let mut status = None;
        for _ in 0..2000 {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = match status {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                self.child.wait().unwrap_or_else(|_| std::process::ExitStatus::from_raw(9))
            }
        };
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let exit = match (status.code(), status.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::Code(-1),
        };
        // What llama.cpp logged (as reported), then whatever reached stderr: abort messages, libgomp.
        reported_tail.extend(self.tail.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned());
        let oom_killer = match exit {
            Exit::Signal(9) => self.oom_killer(&reported_tail),
            _ => None,
        };
        self.forget();
        Death { stage: self.stage, message, exit, log_tail: reported_tail, oom_killer }
    }
}

impl Worker {
    /// Whether the kernel killed the worker for memory: its count of OOM kills moved since the start.
    fn oom_killer(&self, tail: &[String]) -> Option<bool> {
        #[cfg(feature = "fault-injection")]
        if tail.iter().any(|l| l.contains(crate::run::fault::OOM_KILL_MARKER)) {
            return Some(true);
        }
        let _ = tail;
        Some(probe::oom_kills()? > self.oom_kills_at_start?)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin asks the worker to finish; a worker stuck in llama.cpp is killed.
        self.stdin = None;
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.forget();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }
}
