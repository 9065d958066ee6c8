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
