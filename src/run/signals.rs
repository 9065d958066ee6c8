//! The supervisor's signals, on one thread: Ctrl-C (SIGINT) becomes a flag the waits look at (it stops
//! a reply instead of killing run-fit); SIGTERM and SIGHUP end run-fit like a fatal error — workers
//! killed, the conversation saved and the terminal restored by whoever registered for it, one line,
//! exit 128 + the signal (143, 129); Ctrl-Z (SIGTSTP) and `fg` (SIGCONT) stop and continue the worker
//! too, which runs in a process group of its own that the terminal does not reach.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use signal_hook::consts::{SIGCONT, SIGHUP, SIGINT, SIGTERM, SIGTSTP};

use crate::error::Failure;
use crate::output::printer::Printer;
use crate::run::supervisor;

type Hook = Box<dyn Fn() -> Option<String> + Send>;

/// What to do before run-fit exits on SIGTERM or SIGHUP (save the conversation, restore the terminal);
/// it returns a line for the user.
static ON_TERMINATE: Mutex<Option<Hook>> = Mutex::new(None);

/// Run `hook` if run-fit is terminated by a signal, until `clear_on_terminate`.
pub fn on_terminate(hook: impl Fn() -> Option<String> + Send + 'static) {
    *ON_TERMINATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
}

pub fn clear_on_terminate() {
    *ON_TERMINATE.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Start the signal thread; returns the Ctrl-C flag.
pub fn install(printer: Printer) -> Result<Arc<AtomicBool>, Failure> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGTSTP, SIGCONT])
        .map_err(|e| Failure::Internal(anyhow::Error::from(e).context("installing the signal handlers")))?;
    let flag = Arc::clone(&interrupt);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGINT => {
                        flag.store(true, Ordering::SeqCst);
                        supervisor::wake_all();
                    }
                    SIGTERM | SIGHUP => terminate(signal, printer),
                    SIGTSTP => {
                        supervisor::signal_workers(rustix::process::Signal::STOP);
                        // Then stop as the default action would have.
                        let _ = signal_hook::low_level::emulate_default_handler(SIGTSTP);
                    }
                    SIGCONT => supervisor::signal_workers(rustix::process::Signal::CONT),
                    _ => {}
                }
            }
        })
        .map_err(|e| Failure::Internal(anyhow::Error::from(e).context("starting the signal thread")))?;
    Ok(interrupt)
}

fn terminate(signal: i32, printer: Printer) -> ! {
    supervisor::signal_workers(rustix::process::Signal::KILL);
    let said = ON_TERMINATE.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|hook| hook());
    let name = if signal == SIGTERM { "SIGTERM" } else { "SIGHUP" };
    let what = said.map_or(String::new(), |s| format!("; {s}"));
    printer.result(&format!("run-fit: terminated by {name}{what}"));
    std::process::exit(128 + signal)
}
