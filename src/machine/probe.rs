//! Measures the real machine into `hardware` types: GPUs through llama.cpp's device list (after the
//! backend started, so its own context is already counted as used), RAM through sysinfo with the
//! container's cgroup limit applied — llama.cpp's CPU device reports physical RAM as free.

use anyhow::{Context, Result};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::engine::Engine;
use crate::error::Failure;
use crate::fit::hardware::{Backend, Hardware, Host, Link};
use crate::machine::rpc as machine_rpc;

/// Measure this machine. `engine` is None in a CPU-only build (see [`crate::engine::CAN_OFFLOAD`]).
pub fn measure(engine: Option<&Engine>) -> Result<Hardware> {
    let devices = engine.map(Engine::devices).unwrap_or_default();
    // Without an engine this is the static CPU-only build: its backends are compiled in.
    let backends = engine
        .map(Engine::backends)
        .unwrap_or_else(|| ["CPU", "RPC"].iter().map(|n| Backend::compiled_in(n, usize::from(*n == "CPU"))).collect());
    let gpus = crate::machine::gpus::visible();
    let unused = crate::machine::gpus::unused_warning(&gpus, &backends);
    let mut warnings: Vec<String> =
        unused.or_else(|| crate::machine::gpus::deviceless_warning(&backends)).into_iter().collect();
    // nvidia-smi takes a tenth of a second or more: asked only when a CUDA module says what it was built for.
    let cuda_built_for = backends.iter().any(|b| b.name == "CUDA" && b.loaded && b.built_for.is_some());
    if cuda_built_for && gpus.iter().any(|g| g.vendor == "NVIDIA") {
        let caps = crate::machine::gpus::nvidia_compute_caps();
        warnings.extend(crate::machine::gpus::cuda_arch_warning(&backends, &caps));
    }
    Ok(Hardware { source: "this machine".into(), devices, host: measure_host()?, warnings, backends })
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
    Ok(Host {
        total_bytes,
        available_bytes,
        swap_free_bytes,
        threads,
        bandwidth_gb_per_s: None,
        unified_memory: false,
        cpu_repack: cpu_repacks(),
        matmul_tflops: None,
        cpu: cpu_name(),
    })
}

/// The CPU's name as the system reports it ("" when it reports none).
fn cpu_name() -> String {
    let Ok(sys) = System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing())) else {
        return String::new();
    };
    sys.cpus().first().map(|c| c.brand().trim().to_string()).unwrap_or_default()
}

/// Whether llama.cpp's CPU backend here repacks weights by the x86 AVX2 rule the memory model knows.
fn cpu_repacks() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Measure this machine, and the devices of the RPC servers `rpc`, without starting llama.cpp in this
/// process: a GPU backend keeps its context (hundreds of MiB of VRAM per GPU) until the process exits,
/// the supervisor lives as long as the chat, and llama.cpp's RPC client ends the process that talks to
/// a missing server. A CPU-only build with no servers has nothing to start, so it measures in place.
pub fn measure_isolated(rpc: &[String], link: Option<Link>) -> Result<Hardware, Failure> {
    measure_isolated_with(rpc, link, false)
}

/// As [`measure_isolated`]; `fresh`: measure each server's link again instead of taking the one the
/// calibration cache holds (measuring sends 8 MiB to each server).
pub fn measure_isolated_with(rpc: &[String], link: Option<Link>, fresh: bool) -> Result<Hardware, Failure> {
    if !crate::engine::CAN_OFFLOAD && rpc.is_empty() {
        return Ok(measure(None)?);
    }
    machine_rpc::check_reachable(rpc)?;
    let (mut cache, _) = crate::machine::cache::load();
    let known: std::collections::BTreeMap<String, Link> =
        cache.rpc_links.iter().filter(|(e, _)| rpc.contains(e)).map(|(e, l)| (e.clone(), *l)).collect();
    let mut args = vec!["devices".to_string(), "--json".into()];
    if crate::engine::CAN_OFFLOAD {
        args.push("--measure-local".into());
        // Measured before, or failed before: either way not measured again unless --fresh.
        let tried = cache.device_rates.keys().chain(cache.unmeasurable.iter());
        let known: Vec<&str> = if fresh { vec![] } else { tried.filter_map(|k| k.strip_prefix(LOCAL_KEY)).collect() };
        if !known.is_empty() {
            args.extend(["--known-devices".into(), known.join(";")]);
        }
    }
    if !rpc.is_empty() {
        args.extend(["--rpc".into(), rpc.join(","), "--probe-child".into()]);
        // A link given is not measured (that sends 8 MiB to each server), nor one measured before.
        if let Some(l) = link {
            args.extend(["--rpc-link".into(), format!("{}MB/s/{}s", l.bytes_per_s / 1e6, l.round_trip_s)]);
        } else if !fresh && !known.is_empty() {
            args.extend(["--known-links".into(), known.keys().cloned().collect::<Vec<_>>().join(",")]);
        }
    }
    let stdout = machine_rpc::run_child(&args, rpc, "`run-fit devices --json`")?;
    let mut hw: Hardware = serde_json::from_slice(&stdout).context("reading `run-fit devices --json`")?;
    hw.source = "this machine".into();
    crate::fit::hardware::distrust_cpu_servers(&mut hw);
    let mut measured = false;
    let mut on_server: std::collections::BTreeMap<String, usize> = Default::default();
    for d in hw.devices.iter_mut() {
        let key = match &d.endpoint {
            Some(endpoint) => {
                let index = on_server.entry(endpoint.clone()).or_insert(0);
                *index += 1;
                format!("{endpoint}#{}", *index - 1)
            }
            None => format!("{LOCAL_KEY}{}", local_key(d)),
        };
        // A reading taken while the machine was busy must not replace a better one (unless --fresh).
        let old = cache.device_rates.get(&key).copied();
        let best = |f: fn(&crate::fit::hardware::Rates) -> f64| {
            crate::fit::calibration::keep_best(old.as_ref().map(f), d.measured.as_ref().map(f), fresh)
        };
        let kept =
            best(|r| r.bandwidth_gb_per_s).zip(best(|r| r.matmul_tflops)).map(|(bandwidth_gb_per_s, matmul_tflops)| {
                crate::fit::hardware::Rates { bandwidth_gb_per_s, matmul_tflops }
            });
        if let Some(rates) = kept.filter(|&r| Some(r) != old) {
            measured = true;
            cache.device_rates.insert(key.clone(), rates);
        }
        d.measured = kept;
        if d.endpoint.is_none() && crate::engine::CAN_OFFLOAD {
            // A local GPU the child tried and could not measure: remembered, so plans stop retrying.
            measured |= if kept.is_some() { cache.unmeasurable.remove(&key) } else { cache.unmeasurable.insert(key) };
        }
        let Some(endpoint) = &d.endpoint else { continue };
        match (link, d.link) {
            (Some(given), _) => d.link = Some(given),
            (None, Some(new)) => {
                measured |= cache.rpc_links.insert(endpoint.clone(), new) != Some(new);
            }
            (None, None) => d.link = known.get(endpoint).copied(),
        }
    }
    if measured {
        cache.version = crate::fit::calibration::VERSION;
        // A cache that cannot be written only means measuring again next time.
        let _ = crate::machine::cache::save(&cache);
    }
    Ok(hw)
}

/// This machine's GPUs' own rates, for a process that measured its devices itself (`plan`,
/// `devices`): the cached ones, or — for a GPU not measured before, or with `fresh` — measured once
/// through ggml in a child (a GPU backend keeps its context, VRAM included, until its process ends).
/// A GPU that cannot be measured stays unmeasured: the catalogue speaks for it.
pub fn fill_local_rates(hw: &mut Hardware, fresh: bool) {
    let (cache, _) = crate::machine::cache::load();
    let key = |d: &crate::fit::hardware::Device| format!("{LOCAL_KEY}{}", local_key(d));
    let cached = |d: &crate::fit::hardware::Device| cache.device_rates.get(&key(d)).copied();
    let local = |d: &&mut crate::fit::hardware::Device| d.endpoint.is_none();
    let untried = |d: &crate::fit::hardware::Device| cached(d).is_none() && !cache.unmeasurable.contains(&key(d));
    let unmeasured = fresh || hw.devices.iter().any(|d| d.endpoint.is_none() && untried(d));
    if unmeasured && let Ok(there) = measure_isolated_with(&[], None, fresh) {
        for d in hw.devices.iter_mut().filter(local) {
            let same = there.devices.iter().find(|m| m.endpoint.is_none() && local_key(m) == local_key(d));
            d.measured = same.and_then(|m| m.measured);
        }
        return;
    }
    for d in hw.devices.iter_mut().filter(local) {
        d.measured = cached(d);
    }
}

/// The calibration cache's keys for this machine's own devices start so; remote ones are `host:port#i`.
const LOCAL_KEY: &str = "local:";

/// A local device as the cache knows it: its name and what it is ("CUDA0:NVIDIA GeForce RTX 3060"),
/// so a card swapped in under the same name is measured anew.
pub fn local_key(d: &crate::fit::hardware::Device) -> String {
    format!("{}:{}", d.name, d.description)
}

/// llama.cpp's default thread count: physical cores (hyper-threads slow generation down).
pub fn physical_cores() -> u32 {
    System::physical_core_count()
        .ok()
        .map(|n| n as u32)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1))
        .max(1)
}

/// Host memory read bandwidth in GB/s: every thread sums its share of a 256 MiB buffer (after a first
/// pass that maps the pages), best of three. ~0.1 s, so callers cache it (`calibration`). None when the
/// buffer cannot be allocated.
pub fn host_bandwidth_gb_per_s(threads: u32) -> Option<f64> {
    const BYTES: usize = 256 << 20;
    // Fallible: on a machine short of memory (or under a limit) there is simply no measurement.
    let mut buf: Vec<u64> = Vec::new();
    buf.try_reserve_exact(BYTES / 8).ok()?;
    buf.resize(BYTES / 8, 1);
    let chunk = buf.len().div_ceil(threads.max(1) as usize);
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = std::time::Instant::now();
        // Threads that cannot start (memory short, a limit) mean no measurement, not a panic.
        let total: Option<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|c| {
                    std::thread::Builder::new().spawn_scoped(s, move || c.iter().fold(0u64, |a, &x| a.wrapping_add(x)))
                })
                .collect::<Result<_, _>>()
                .ok()?;
            Some(handles.into_iter().map(|h| h.join().unwrap_or(0)).sum())
        });
        let total = total?;
        std::hint::black_box(total);
        best = best.max(BYTES as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    Some(best)
}

/// This machine's own rates, and how busy other programs kept it while they were measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostReading {
    pub bandwidth_gb_per_s: Option<f64>,
    pub matmul_tflops: Option<f64>,
    /// Other programs' share of all CPU time during the readings; None where /proc cannot say.
    pub others_busy_share: Option<f64>,
}

/// Measure the host's memory bandwidth (here) and its CPU's matrix rate (through ggml's CPU backend, in
/// a child: this process never starts llama.cpp before it must), each the best of a few short runs,
/// and how much of the machine other programs took meanwhile. About a second.
pub fn measure_host_rates(threads: u32) -> HostReading {
    let before = cpu_ticks();
    let bandwidth_gb_per_s = host_bandwidth_gb_per_s(threads);
    let args = ["devices", "--json", "--measure-host"].map(String::from);
    let matmul_tflops = machine_rpc::run_child(&args, &[], "`run-fit devices --measure-host`")
        .ok()
        .and_then(|out| serde_json::from_slice::<Hardware>(&out).ok())
        .and_then(|hw| hw.host.matmul_tflops);
    let others_busy_share = before.zip(cpu_ticks()).and_then(|(a, b)| others_share(&a, &b));
    HostReading { bandwidth_gb_per_s, matmul_tflops, others_busy_share }
}

/// CPU time in clock ticks: all CPUs busy and in total (/proc/stat), and this process's own with its
/// waited-for children's (/proc/self/stat).
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuTicks {
    busy: u64,
    total: u64,
    mine: u64,
}

fn cpu_ticks() -> Option<CpuTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_ticks(&stat, &me)
}

fn parse_ticks(proc_stat: &str, self_stat: &str) -> Option<CpuTicks> {
    // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"; guest time is already
    // counted in user.
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4)?;
    // After the command name in parentheses: field 3 (state) first; utime, stime, cutime, cstime
    // are fields 14–17.
    let rest = &self_stat[self_stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let mine = f.get(11..15)?.iter().map(|x| x.parse::<u64>().ok()).sum::<Option<u64>>()?;
    Some(CpuTicks { busy: total - idle, total, mine })
}

/// Other programs' share of the machine's CPU time between two readings.
fn others_share(a: &CpuTicks, b: &CpuTicks) -> Option<f64> {
    let total = b.total.checked_sub(a.total).filter(|&t| t > 0)?;
    let busy = b.busy.saturating_sub(a.busy);
    let mine = b.mine.saturating_sub(a.mine);
    Some(busy.saturating_sub(mine) as f64 / total as f64)
}

/// The host alone (RAM size and threads): what its memory bandwidth belongs to. Remote devices and
/// GPUs come and go without changing it, so they must not make it measured again.
pub fn host_fingerprint(hw: &Hardware) -> String {
    format!("host:{}MiB:{}t;", hw.host.total_bytes >> 20, hw.host.threads)
}

/// Which machine a calibration record belongs to: its GPUs, RAM size and threads.
pub fn fingerprint(hw: &Hardware) -> String {
    let gpus: Vec<String> = hw.devices.iter().map(|d| format!("{}:{}", d.description, d.total_bytes >> 20)).collect();
    format!("host:{}MiB:{}t;{}", hw.host.total_bytes >> 20, hw.host.threads, gpus.join(","))
}

/// The kernel's count of processes it killed for memory: the system's (`/proc/vmstat`) plus this
/// cgroup's (`memory.events`, cgroup v2), so a container's limit counts too. None when neither can be
/// read. A SIGKILL while this stood still came from someone else.
pub fn oom_kills() -> Option<u64> {
    let field =
        |text: &str, key: &str| -> Option<u64> { text.lines().find_map(|l| l.strip_prefix(key)?.trim().parse().ok()) };
    let system = std::fs::read_to_string("/proc/vmstat").ok().and_then(|t| field(&t, "oom_kill "));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("0::").map(str::to_string)))
        .and_then(|path| std::fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.events")).ok())
        .and_then(|t| field(&t, "oom_kill "));
    match (system, cgroup) {
        (None, None) => None,
        (s, c) => Some(s.unwrap_or(0) + c.unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_programs_share_of_the_cpu_is_what_this_process_did_not_use() {
        let stat = |user: u64, idle: u64| format!("cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n");
        let me = |ticks: u64| format!("42 (run fit) R 1 2 3 4 5 6 7 8 9 10 {ticks} 0 0 0 20 0 1 0");
        let a = parse_ticks(&stat(1000, 5000), &me(100)).unwrap();
        assert_eq!(a, CpuTicks { busy: 1000, total: 6000, mine: 100 });
        // 200 ticks passed: 120 busy, of which this process used 40 → others 80 of 200
        let b = parse_ticks(&stat(1120, 5080), &me(140)).unwrap();
        assert_eq!(others_share(&a, &b), Some(0.4));
        // idle apart from this process
        let c = parse_ticks(&stat(1040, 5160), &me(140)).unwrap();
        assert_eq!(others_share(&a, &c), Some(0.0));
        assert_eq!(others_share(&a, &a), None);
        assert_eq!(parse_ticks("nonsense", &me(1)), None);
    }

    #[test]
    fn this_machine_can_be_read() {
        let t = cpu_ticks().expect("/proc is there on Linux");
        assert!(t.total >= t.busy && t.busy >= 1);
    }

    #[test]
    fn the_hosts_bandwidth_belongs_to_the_host_alone() {
        let alone = crate::fit::hardware::hypothetical(&[], 32 << 30);
        let pooled = crate::fit::hardware::hypothetical(&[12 << 30, 8 << 30], 32 << 30);
        assert_eq!(host_fingerprint(&alone), host_fingerprint(&pooled));
        assert_ne!(fingerprint(&alone), fingerprint(&pooled), "calibration runs still tell machines apart");
    }
}
