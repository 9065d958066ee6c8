//! `run-fit rpc-server`: serve this machine's devices with llama.cpp's own RPC server. The server runs
//! in a child process (`run-fit __rpc-serve`) that this one stops on Ctrl-C, SIGTERM or SIGHUP and
//! starts again if llama.cpp ends it while serving (its server asserts on some client errors).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::RpcServerRequest;
use crate::engine::rpc::{PROTOCOL, ServedDevice};
use crate::error::Failure;
use crate::fit::plan::human;
use crate::output::printer::Printer;

/// A server that served at least this long before it died is started again; one that dies sooner is
/// an error (it would only die again).
const SERVED_LONG_ENOUGH: Duration = Duration::from_secs(3);
/// How long the child may take to list its devices and listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

enum Line {
    Out(String),
    Err(String),
}

pub(super) fn run_rpc_server(req: &RpcServerRequest, printer: &Printer) -> Result<(), Failure> {
    let mut req = req.clone();
    if req.cache {
        req.cache_dir = Some(cache_dir()?);
    }
    // A port in use is found here, in one line, rather than by llama.cpp after the device list.
    std::net::TcpListener::bind(&req.endpoint).map_err(|e| {
        Failure::Rpc(format!("cannot listen on {} ({e}); give another --port, or stop what uses it", req.endpoint))
    })?;
    if req.remote {
        printer.warn(&format!(
            "{} is reachable from other machines: llama.cpp's RPC server has no authentication and no encryption; anyone who reaches the port can use these devices — serve only a network you trust",
            req.endpoint
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Failure::Internal(anyhow::Error::from(e).context("installing the signal handlers")))?;
    }
    let mut first = true;
    loop {
        let started = Instant::now();
        let ended = serve_once(&req, printer, &stop, first)?;
        first = false;
        match ended {
            None => {
                printer.note("rpc-server stopped");
                return Ok(());
            }
            Some(why) if started.elapsed() >= SERVED_LONG_ENOUGH => {
                printer.warn(&format!("llama.cpp's RPC server ended ({why}); starting it again"));
            }
            Some(why) => return Err(Failure::Engine(format!("llama.cpp's RPC server ended at once: {why}"))),
        }
    }
}

/// One server process, until a signal (None) or its end (why).
fn serve_once(
    req: &RpcServerRequest,
    printer: &Printer,
    stop: &AtomicBool,
    announce: bool,
) -> Result<Option<String>, Failure> {
    let spec = serde_json::to_string(req).context("writing the server's request")?;
    let exe = std::env::current_exe().context("finding run-fit's own executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("__rpc-serve").arg(spec).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A process group of its own: Ctrl-C at the terminal reaches this process, which ends the server.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if printer.verbose() {
        cmd.arg("--verbose");
    }
    let mut child = cmd.spawn().context("starting the RPC server process")?;
    let (tx, rx) = mpsc::channel();
    forward(child.stdout.take(), tx.clone(), Line::Out)?;
    forward(child.stderr.take(), tx, Line::Err)?;
    let mut tail: Vec<String> = Vec::new();
    let mut ready = false;
    let begun = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            end(&mut child);
            return Ok(None);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Line::Out(l)) if !ready && l.starts_with('[') => {
                let devices: Vec<ServedDevice> = serde_json::from_str(&l).context("reading the served devices")?;
                wait_listening(&req.endpoint, &mut child)?;
                ready = true;
                if announce {
                    printer.out(&banner(req, &devices))?;
                }
            }
            Ok(Line::Out(l) | Line::Err(l)) => {
                printer.log(&l);
                tail.push(l);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) if stop.load(Ordering::SeqCst) => {
                end(&mut child);
                return Ok(None);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().context("waiting for the RPC server process")?;
                // The child's own one-line error (a device that does not exist) is the user's.
                if let Some(e) = tail.iter().find_map(|l| l.strip_prefix("run-fit: error: ")).filter(|_| !ready) {
                    return Err(Failure::Usage(e.to_string()));
                }
                let last = tail.iter().rev().find(|l| !l.trim().is_empty()).cloned().unwrap_or_default();
                return Ok(Some(format!(
                    "{status}{}",
                    if last.is_empty() { String::new() } else { format!(": {last}") }
                )));
            }
        }
        if !ready && begun.elapsed() > START_TIMEOUT {
            end(&mut child);
            return Err(Failure::Engine(format!(
                "llama.cpp's RPC server did not start within {} s",
                START_TIMEOUT.as_secs()
            )));
        }
    }
}

fn forward<R: Read + Send + 'static>(
    pipe: Option<R>,
    tx: mpsc::Sender<Line>,
    wrap: fn(String) -> Line,
) -> Result<(), Failure> {
    let Some(pipe) = pipe else { return Ok(()) };
    std::thread::Builder::new()
        .name("rpc-server output".into())
        .spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(wrap(line)).is_err() {
                    return;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| Failure::Internal(anyhow::Error::from(e).context("starting a thread to read the server")))
}

/// llama.cpp binds after it printed its devices; the endpoint is announced once it accepts. The probe
/// connection closes at once (the server reads end-of-file and waits for the next client).
fn wait_listening(endpoint: &str, child: &mut Child) -> Result<(), Failure> {
    let deadline = Instant::now() + START_TIMEOUT;
    while std::net::TcpStream::connect(endpoint).is_err() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            return Err(Failure::Rpc(format!("llama.cpp's RPC server did not start listening on {endpoint}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn banner(req: &RpcServerRequest, devices: &[ServedDevice]) -> String {
    let mut text = format!("serving on {} (llama.cpp RPC protocol {PROTOCOL})\n", req.endpoint);
    for d in devices {
        text += &format!(
            "  {:<8} {:<40} {} free of {}\n",
            d.name,
            d.description,
            human(d.free_bytes),
            human(d.total_bytes)
        );
    }
    if devices.iter().any(|d| d.free_bytes == d.total_bytes) {
        text += "  (a CPU device reports all its RAM as free; clients plan with half unless given --vram-budget)\n";
    }
    if let Some(dir) = &req.cache_dir {
        text += &format!("  tensor cache: {}\n", dir.display());
    }
    text += &format!("clients: run-fit MODEL --rpc {}   (Ctrl-C stops the server)\n", req.endpoint);
    text
}

/// llama.cpp's rpc-server cache folder: $LLAMA_CACHE/rpc, else ~/.cache/llama.cpp/rpc.
fn cache_dir() -> Result<PathBuf, Failure> {
    let base = match (std::env::var_os("LLAMA_CACHE"), std::env::var_os("HOME")) {
        (Some(c), _) if !c.is_empty() => PathBuf::from(c),
        (_, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".cache").join("llama.cpp"),
        _ => {
            return Err(Failure::Usage(
                "--cache: neither LLAMA_CACHE nor HOME is set; set LLAMA_CACHE to a folder".into(),
            ));
        }
    };
    let dir = base.join("rpc");
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::Usage(format!("--cache: cannot create {} ({e}); set LLAMA_CACHE to a writable folder", dir.display()))
    })?;
    Ok(dir)
}

/// The server process (`run-fit __rpc-serve JSON`): llama.cpp's server on the request's devices. It
/// says which devices it serves as one JSON line on stdout, then llama.cpp listens until it is killed.
pub(super) fn serve_child(spec: &str, verbose: bool) -> Result<(), Failure> {
    let req: RpcServerRequest =
        serde_json::from_str(spec).map_err(|e| Failure::Usage(format!("__rpc-serve is started by run-fit ({e})")))?;
    // Ends with its parent, even one killed by SIGKILL: a server nobody can stop must not stay behind.
    let parent = rustix::process::getppid();
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid() != parent {
        return Ok(());
    }
    let engine = crate::engine::Engine::init(verbose)?;
    let threads = req.threads.unwrap_or_else(crate::machine::probe::physical_cores);
    let mut announce = |devices: &[ServedDevice]| {
        if let Ok(line) = serde_json::to_string(devices) {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|_| out.flush());
        }
    };
    engine
        .serve_rpc(&req.endpoint, req.cache_dir.as_deref(), threads, &req.devices, &mut announce)
        .map_err(|e| Failure::Engine(format!("{e:#}")))
}
