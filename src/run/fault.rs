//! Fault injection for tests, compiled only with the `fault-injection` feature (the test suite turns it
//! on; what users build has none of it).
//!
//! A test hook: `RUN_FIT_FAULT=sigkill@STAGE` makes the worker kill itself with SIGKILL when it
//! reaches STAGE (load, context, warmup, decode), standing in for the kernel's OOM killer, which cannot
//! be provoked safely on a shared machine. Every other failure path is tested with real allocations.
//! With `RUN_FIT_FAULT_ONCE=FILE` it fires only while FILE does not exist (and creates it), so the
//! next, smaller worker lives.

use std::io::Write;

use crate::run::protocol::Stage;

/// The line a simulated OOM kill leaves on the worker's stderr.
pub const OOM_KILL_MARKER: &str = "run-fit fault injection: SIGKILL, as the kernel's OOM killer sends it";

const FAULT_ENV: &str = "RUN_FIT_FAULT";
const FAULT_ONCE_ENV: &str = "RUN_FIT_FAULT_ONCE";

pub fn at(stage: Stage) {
    let Ok(fault) = std::env::var(FAULT_ENV) else { return };
    let wanted = serde_json::to_string(&stage).unwrap_or_default();
    if fault.strip_prefix("sigkill@").is_none_or(|s| format!("\"{s}\"") != wanted) {
        return;
    }
    if let Some(once) = std::env::var_os(FAULT_ONCE_ENV)
        && std::fs::OpenOptions::new().write(true).create_new(true).open(&once).is_err()
    {
        return;
    }
    // Said first, so the supervisor counts this death as the OOM killer's (the kernel's own count of
    // OOM kills does not move for it).
    let _ = writeln!(std::io::stderr(), "{OOM_KILL_MARKER}");
    let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
}
