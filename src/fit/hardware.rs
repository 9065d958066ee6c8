//! Plain data about a machine: what the planner plans against. Filled by `probe` (the real machine)
//! or by a profile (`profiles/*.toml`, a machine you don't have). The planner never asks the system.

use serde::{Deserialize, Serialize};

use crate::run::protocol::SplitMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    Gpu,
    IntegratedGpu,
    Accelerator,
}

/// One GPU (or other offload device) as llama.cpp sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub name: String,
    pub description: String,
    pub backend: String,
    pub kind: DeviceKind,
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// Memory bandwidth, for speed estimates; None when unknown (then the catalogue's, if it knows it).
    pub bandwidth_gb_per_s: Option<f64>,
    /// Dense fp16 matrix rate, for prompt speed; None: the catalogue's.
    #[serde(default)]
    pub fp16_tflops: Option<f64>,
    /// A device of another machine, reached through llama.cpp's RPC backend: the server's `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// What the device itself reported as free, where run-fit planned with less (a CPU-backed RPC
    /// server reports all its RAM); llama.cpp's own fit sees this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_free_bytes: Option<u64>,
    /// The network between this machine and a remote device's server, measured or given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// The device's rates as ggml measured them on it; used before the catalogue's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Rates>,
}

/// A device's rates as ggml measured them on it (`engine::rates`): the bandwidth of a large copy and
/// the rate of a quantized matrix product of a prompt-sized batch (what prompt processing does).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub bandwidth_gb_per_s: f64,
    pub matmul_tflops: f64,
}

impl Device {
    /// A local device with nothing measured or given beyond its memory.
    pub fn new(
        name: &str,
        description: &str,
        backend: &str,
        kind: DeviceKind,
        free_bytes: u64,
        total_bytes: u64,
    ) -> Device {
        Device {
            name: name.into(),
            description: description.into(),
            backend: backend.into(),
            kind,
            free_bytes,
            total_bytes,
            bandwidth_gb_per_s: None,
            fp16_tflops: None,
            endpoint: None,
            reported_free_bytes: None,
            link: None,
            measured: None,
        }
    }
}

/// A network link to an RPC server: one request-and-answer round trip, and the rate bulk data moves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub round_trip_s: f64,
    pub bytes_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub total_bytes: u64,
    /// What a new process can use without swapping: MemAvailable, capped by the container's limit.
    pub available_bytes: u64,
    pub swap_free_bytes: u64,
    pub threads: u32,
    pub bandwidth_gb_per_s: Option<f64>,
    /// Apple silicon and other unified-memory machines: GPU allocations come out of host RAM too.
    pub unified_memory: bool,
    /// llama.cpp's CPU backend repacks some weights for its x86 AVX2 kernels (`CPU_REPACK`): a second,
    /// rearranged copy of each such tensor. Other CPUs repack by other rules, not modelled here.
    #[serde(default = "yes")]
    pub cpu_repack: bool,
    /// The CPU's rate on a prompt-sized Q4_0 matrix product, measured through ggml's CPU backend
    /// (`engine::rates`) or given by a profile; None: estimated from the thread count.
    #[serde(default)]
    pub matmul_tflops: Option<f64>,
    /// The CPU's name as the system reports it or a profile gives it ("" when unknown): the CPU
    /// catalogue's prompt rate where nothing was measured.
    #[serde(default)]
    pub cpu: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// Where the numbers come from: "this machine", a profile name, or "hypothetical".
    pub source: String,
    pub devices: Vec<Device>,
    pub host: Host,
    /// What the measurement could not trust, and what was assumed instead (the plan repeats it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The ggml backends this run-fit has on this machine, loaded or not (empty for a profile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Backend>,
}

/// A ggml backend of this run-fit: compiled in, or a module file it found beside itself at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    /// ggml's name ("CPU", "CUDA", "Vulkan", "RPC"); for a module that did not load, from its file.
    pub name: String,
    /// The module's path; None when compiled into run-fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    pub loaded: bool,
    /// The devices it registered (a loaded GPU backend with none has no card or driver to run on).
    pub devices: usize,
    /// Why it did not load, in words that say what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
    /// What the module was built for ("cuda 86;89"), from the note scripts/build-backend.sh leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_for: Option<String>,
}

impl Backend {
    /// A backend compiled into this binary, loaded.
    pub fn compiled_in(name: &str, devices: usize) -> Backend {
        Backend { name: name.into(), module: None, loaded: true, devices, why_not: None, built_for: None }
    }
}

/// What a remote device is planned with when it reports all its memory as free: a CPU-backed RPC
/// server does (ggml's CPU device says free = total = physical RAM), and no GPU ever does.
pub const CPU_SERVER_SHARE: f64 = 0.5;

/// The words of the warning [`distrust_cpu_servers`] gives (the planner drops it when budgets are given).
pub const ASSUMED_FREE: &str = "reported all memory as free";

/// A remote device that reports free = total is taken at [`CPU_SERVER_SHARE`] of it, with one warning
/// that says how to give the real budgets (`--vram-budget`, one value per device, RPC devices first).
pub fn distrust_cpu_servers(hw: &mut Hardware) {
    let mut named = Vec::new();
    for d in &mut hw.devices {
        if let Some(endpoint) = &d.endpoint
            && d.free_bytes == d.total_bytes
            && d.total_bytes > 0
        {
            let assumed = (d.total_bytes as f64 * CPU_SERVER_SHARE) as u64;
            named.push(format!("{} ({endpoint}, {} → {})", d.name, gib(d.total_bytes), gib(assumed)));
            d.reported_free_bytes = Some(d.free_bytes);
            d.free_bytes = assumed;
        }
    }
    if named.is_empty() {
        return;
    }
    let example: Vec<String> = hw.devices.iter().map(|d| format!("{}GiB", (d.free_bytes >> 30).max(1))).collect();
    hw.warnings.push(format!(
        "{} {ASSUMED_FREE}, as a CPU-backed RPC server does: planning with half; give what each device may use with --vram-budget {} (one value per device, in `run-fit devices` order)",
        named.join(", "),
        example.join(",")
    ));
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

// ---------------------------------------------------------------------------------------------------
// Profiles

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown profile '{name}'; use one of {known} or a path to a .toml file")]
    Unknown { name: String, known: String },
    #[error("{file}: cannot read ({source})")]
    Unreadable { file: String, source: std::io::Error },
    #[error("{file}:{line}: {message}")]
    Invalid { file: String, line: usize, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    host: HostSpec,
    #[serde(default)]
    gpu: Vec<GpuSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostSpec {
    #[serde(deserialize_with = "de_bytes")]
    ram: u64,
    /// Default: ram minus 10 % for the OS and desktop.
    #[serde(default, deserialize_with = "de_opt_bytes")]
    available: Option<u64>,
    #[serde(default)]
    threads: Option<u32>,
    #[serde(default)]
    bandwidth_gb_per_s: Option<f64>,
    #[serde(default)]
    unified_memory: bool,
    /// Default: an x86 machine (AVX2 repacking), unless unified memory says Apple silicon.
    #[serde(default)]
    cpu_repack: Option<bool>,
    /// The CPU's prompt-sized Q4_0 matrix rate (`run-fit devices` shows this machine's).
    #[serde(default)]
    matmul_tflops: Option<f64>,
    /// The CPU's name ("Core i7-8550U"): the CPU catalogue then gives its prompt rate.
    #[serde(default)]
    cpu: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GpuSpec {
    name: String,
    #[serde(default = "default_backend")]
    backend: String,
    #[serde(default)]
    integrated: bool,
    #[serde(deserialize_with = "de_bytes")]
    total: u64,
    /// Default: total minus what a driver and a desktop typically hold (3 %).
    #[serde(default, deserialize_with = "de_opt_bytes")]
    free: Option<u64>,
    #[serde(default)]
    bandwidth_gb_per_s: Option<f64>,
    /// Dense fp16 matrix rate (TFLOPS), for prompt speed; default: the device catalogue's.
    #[serde(default)]
    fp16_tflops: Option<f64>,
    #[serde(default = "one")]
    count: u32,
}

fn default_backend() -> String {
    "CUDA".into()
}

fn one() -> u32 {
    1
}

/// "12GiB", "11.5 GiB", "512MiB", or "64GB" (powers of ten, as vendors write them) → bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("'{text}' is not a size ({e}); write it like 12GiB, 11.5GiB, 512MiB or 64GB"))
}

fn de_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    parse_bytes(&text).map_err(serde::de::Error::custom)
}

fn de_opt_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_bytes(d).map(Some)
}

pub fn parse_profile(text: &str, file: &str) -> Result<Hardware, ProfileError> {
    let spec: ProfileFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1).unwrap_or(1);
        ProfileError::Invalid { file: file.to_string(), line, message: e.message().replace('\n', " ") }
    })?;
    let invalid = |line: usize, message: String| ProfileError::Invalid { file: file.to_string(), line, message };
    let mut devices = Vec::new();
    for gpu in &spec.gpu {
        let free = gpu.free.unwrap_or(gpu.total - gpu.total / 33);
        if free > gpu.total {
            let line = key_line(text, &format!("\"{}\"", gpu.name), "free");
            return Err(invalid(line, format!("gpu '{}': free is larger than total", gpu.name)));
        }
        for _ in 0..gpu.count {
            devices.push(Device {
                name: format!("{}{}", gpu.backend, devices.len()),
                description: gpu.name.clone(),
                backend: gpu.backend.clone(),
                kind: if gpu.integrated { DeviceKind::IntegratedGpu } else { DeviceKind::Gpu },
                free_bytes: free,
                total_bytes: gpu.total,
                bandwidth_gb_per_s: gpu.bandwidth_gb_per_s,
                fp16_tflops: gpu.fp16_tflops,
                endpoint: None,
                reported_free_bytes: None,
                link: None,
                measured: None,
            });
        }
    }
    let h = &spec.host;
    let available = h.available.unwrap_or(h.ram - h.ram / 10);
    if available > h.ram {
        return Err(invalid(key_line(text, "[host]", "available"), "host: available is larger than ram".into()));
    }
    for (key, value) in [("bandwidth_gb_per_s", h.bandwidth_gb_per_s), ("matmul_tflops", h.matmul_tflops)] {
        if value.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
            let message = format!("host: {key} must be a positive number, like {key} = 40");
            return Err(invalid(key_line(text, "[host]", key), message));
        }
    }
    Ok(Hardware {
        warnings: vec![],
        backends: vec![],
        source: format!("profile {}", spec.name),
        devices,
        host: Host {
            total_bytes: h.ram,
            available_bytes: available,
            swap_free_bytes: 0,
            threads: h.threads.unwrap_or(8),
            bandwidth_gb_per_s: h.bandwidth_gb_per_s,
            unified_memory: h.unified_memory,
            cpu_repack: h.cpu_repack.unwrap_or(!h.unified_memory),
            matmul_tflops: h.matmul_tflops,
            cpu: h.cpu.clone(),
        },
    })
}

/// The line (1-based) of the first `key =` after the first line containing `anchor`, for errors found
/// after parsing (serde's spans cover only syntax and types).
fn key_line(text: &str, anchor: &str, key: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.contains(anchor)).unwrap_or(0);
    lines[start..]
        .iter()
        .position(|l| l.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')))
        .map_or(start + 1, |i| start + i + 1)
}

/// `--vram 12GiB[,8GiB] --ram 32GiB`: a hypothetical machine with fully free memory.
pub fn hypothetical(vram_bytes: &[u64], ram_bytes: u64) -> Hardware {
    Hardware {
        warnings: vec![],
        backends: vec![],
        source: "hypothetical machine".into(),
        devices: vram_bytes
            .iter()
            .enumerate()
            .map(|(i, &bytes)| {
                Device::new(&format!("GPU{i}"), "hypothetical GPU", "CUDA", DeviceKind::Gpu, bytes, bytes)
            })
            .collect(),
        host: Host {
            total_bytes: ram_bytes,
            available_bytes: ram_bytes,
            swap_free_bytes: 0,
            threads: 8,
            bandwidth_gb_per_s: None,
            unified_memory: false,
            cpu_repack: true,
            matmul_tflops: None,
            cpu: String::new(),
        },
    }
}

/// The machine as a split mode uses it: `-sm none` uses only the main GPU (`-mg`), the others all of
/// them. Err: no such GPU.
pub fn as_split(mut hw: Hardware, split_mode: SplitMode, main_gpu: u32) -> Result<Hardware, String> {
    let mg = main_gpu as usize;
    if split_mode != SplitMode::None || hw.devices.is_empty() {
        return Ok(hw);
    }
    if mg >= hw.devices.len() {
        return Err(format!("--main-gpu {mg}: this machine has {} GPU(s), numbered from 0", hw.devices.len()));
    }
    hw.devices = vec![hw.devices.swap_remove(mg)];
    Ok(hw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_both_unit_families() {
        assert_eq!(parse_bytes("12GiB").unwrap(), 12 << 30);
        assert_eq!(parse_bytes("11.5 GiB").unwrap(), (11.5 * (1u64 << 30) as f64) as u64);
        assert_eq!(parse_bytes("64GB").unwrap(), 64_000_000_000);
        assert!(parse_bytes("12 gigs").unwrap_err().contains("is not a size"));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn bad_profiles_name_the_line_and_key() {
        let err = parse_profile("name = \"x\"\n[host]\nram = \"32GiB\"\nramm = 3\n", "p.toml").unwrap_err().to_string();
        assert!(err.starts_with("p.toml:4:") && err.contains("ramm"), "{err}");
        let err = parse_profile("name = \"x\"\n[host]\nram = \"32 parsecs\"\n", "p.toml").unwrap_err().to_string();
        assert!(err.starts_with("p.toml:3:") && err.contains("parsecs"), "{err}");
        let text =
            "name = \"x\"\n[host]\nram = \"32GiB\"\n[[gpu]]\nname = \"a\"\ntotal = \"12GiB\"\nfree = \"13GiB\"\n";
        let err = parse_profile(text, "p.toml").unwrap_err().to_string();
        assert!(err.starts_with("p.toml:7: gpu 'a': free is larger"), "{err}");
        let text = "name = \"x\"\n[host]\nram = \"32GiB\"\nmatmul_tflops = -1\n";
        let err = parse_profile(text, "p.toml").unwrap_err().to_string();
        assert!(err.starts_with("p.toml:4: host: matmul_tflops must be a positive number"), "{err}");
    }

    #[test]
    fn a_profile_gives_the_hosts_matrix_rate() {
        let text = "name = \"x\"\n[host]\nram = \"32GiB\"\nbandwidth_gb_per_s = 60\nmatmul_tflops = 1.5\n";
        let hw = parse_profile(text, "p.toml").unwrap();
        assert_eq!((hw.host.bandwidth_gb_per_s, hw.host.matmul_tflops), (Some(60.0), Some(1.5)));
    }
}
