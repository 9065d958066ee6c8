//! Measures the real machine into `hardware` types: GPUs through llama.cpp's device list (after the
//! backend started, so its own context is already counted as used), RAM through sysinfo with the
//! container's cgroup limit applied — llama.cpp's CPU device reports physical RAM as free.

use anyhow::{Context, Result};
use sysinfo::{MemoryRefreshKind, RefreshKind, System};

use crate::engine::Engine;
use crate::hardware::{Hardware, Host};

/// Measure this machine. `engine` is None in a CPU-only build (see [`crate::engine::CAN_OFFLOAD`]).
pub fn measure(engine: Option<&Engine>) -> Result<Hardware> {
    let devices = engine.map(Engine::devices).unwrap_or_default();
    Ok(Hardware { source: "this machine".into(), devices, host: measure_host()? })
}

pub fn measure_host() -> Result<Host> {
    let sys = System::new_with_specifics(RefreshKind::nothing().with_memory(MemoryRefreshKind::everything()))
        .context("reading the machine's memory")?;
    let mut total_bytes = sys.total_memory();
    let mut available_bytes = sys.available_memory();
    let mut swap_free_bytes = sys.free_swap();
    if let Some(cg) = sys.cgroup_limits() {
        // A container limit below physical RAM is the real ceiling: the OOM killer enforces it.
        total_bytes = total_bytes.min(cg.total_memory);
        available_bytes = available_bytes.min(cg.free_memory);
        swap_free_bytes = swap_free_bytes.min(cg.free_swap);
    }
    let threads = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    Ok(Host { total_bytes, available_bytes, swap_free_bytes, threads, bandwidth_gb_per_s: None, unified_memory: false })
}

/// Measure this machine without starting llama.cpp in this process: a GPU backend keeps its context
/// (hundreds of MiB of VRAM per GPU) until the process exits, and the supervisor lives as long as the
/// chat. A CPU-only build has nothing to start, so it measures in place.
pub fn measure_isolated() -> Result<Hardware> {
    if !crate::engine::CAN_OFFLOAD {
        return measure(None);
    }
    let exe = std::env::current_exe().context("finding run-fit's own executable")?;
    let out = std::process::Command::new(exe)
        .args(["devices", "--json"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running `run-fit devices --json`")?;
    anyhow::ensure!(out.status.success(), "`run-fit devices --json` failed ({})", out.status);
    serde_json::from_slice(&out.stdout).context("reading `run-fit devices --json`")
}

/// llama.cpp's default thread count: physical cores (hyper-threads slow generation down).
pub fn physical_cores() -> u32 {
    System::physical_core_count()
        .ok()
        .map(|n| n as u32)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1))
        .max(1)
}
