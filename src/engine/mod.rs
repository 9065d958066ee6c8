//! The only module that calls llama.cpp (`llama_cpp_2` and, where the safe crate has no API, its sys
//! crate). Everything llama.cpp-specific that churns between releases is kept behind these functions.
//! The only place where `unsafe` is allowed.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::{CStr, CString, c_char, c_void};
use std::path::Path;
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{Context, Result, anyhow};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::{LlamaBackendDeviceType, list_llama_ggml_backend_devices};
use llama_cpp_sys_2 as sys;

use crate::fit::hardware::{Device, DeviceKind};

pub mod modules;
pub mod rates;
pub mod rpc;
pub mod session;

/// Whether this build can see offload devices at all: a GPU backend compiled in, or backend modules
/// loaded at run time. A static CPU-only build registers only the CPU backend, so there is nothing to
/// enumerate and run-fit skips llama.cpp's start-up (its CPU tables cost ~1.7 ms of a 7 ms plan).
pub const CAN_OFFLOAD: bool =
    cfg!(any(feature = "cuda", feature = "vulkan", feature = "metal", feature = "dynamic-backends"));

/// glibc gives each thread that allocates an arena of its own, reserving 64 MiB of address space for
/// each; under a `ulimit -v` (or a container's address-space limit) run-fit's supervisor then ran out
/// of address space with memory to spare and died in Rust's allocator (measured: 9 of 12 runs at a
/// 150 MiB limit aborted; with two arenas none did, each ending in a clean refusal). Two arenas are
/// plenty: llama.cpp allocates its large buffers directly, not from arenas. Called first thing, in
/// every run-fit process (the worker and the server are run-fit too).
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// common_fit_params' own default margin per device.
const LLAMA_FIT_DEFAULT_MARGIN_BYTES: usize = 1 << 30;

/// Lines llama.cpp logged most recently, kept to classify failures and to read buffer sizes.
static LOG_TAIL: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
static LOG_ECHO: AtomicU8 = AtomicU8::new(LogEcho::Nothing as u8);
const LOG_TAIL_LINES: usize = 400;

extern "C" fn on_log(level: sys::ggml_log_level, text: *const c_char, _user: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for the duration of the call.
    let line = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let echo = LOG_ECHO.load(Ordering::Relaxed);
    // Debug lines (one per tensor, per graph node) would push the informative ones out of the tail.
    let debug = level == sys::GGML_LOG_LEVEL_DEBUG;
    if echo == LogEcho::Everything as u8 || (echo == LogEcho::Informative as u8 && !debug) {
        // The reader is the supervisor (or a terminal); if it is gone there is no one to tell.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
    if debug {
        return;
    }
    let mut tail = LOG_TAIL.lock().unwrap_or_else(|e| e.into_inner());
    if tail.len() == LOG_TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(line.into_owned());
}

/// llama.cpp's informative log lines since the last call, oldest first, and forget them: the evidence
/// for classifying the failure of the step that just ran.
pub fn take_log_tail(max_lines: usize) -> Vec<String> {
    let mut tail = LOG_TAIL.lock().unwrap_or_else(|e| e.into_inner());
    let skip = tail.len().saturating_sub(max_lines);
    let lines = tail.iter().skip(skip).map(|l| l.trim_end().to_string()).collect();
    tail.clear();
    lines
}

/// Which of llama.cpp's log lines go to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEcho {
    Nothing = 0,
    /// Info and above: the worker's stderr, which the supervisor keeps to classify failures.
    Informative = 1,
    Everything = 2,
}

/// An initialised llama.cpp backend. Only one may exist at a time.
pub struct Engine {
    _backend: LlamaBackend,
}

impl Engine {
    /// Start llama.cpp. Its logs are kept quiet unless `echo_logs` (run-fit's -v).
    pub fn init(echo_logs: bool) -> Result<Engine> {
        Engine::init_with(if echo_logs { LogEcho::Everything } else { LogEcho::Nothing })
    }

    pub fn init_with(echo: LogEcho) -> Result<Engine> {
        LOG_ECHO.store(echo as u8, Ordering::Relaxed);
        // SAFETY: installing a plain C callback before any other llama.cpp call.
        unsafe {
            sys::llama_log_set(Some(on_log), std::ptr::null_mut());
        }
        let backend = LlamaBackend::init().context("starting llama.cpp")?;
        Ok(Engine { _backend: backend })
    }

    /// Offload devices as llama.cpp sees them, in the order a model load uses them: remote (RPC)
    /// devices first, "to minimize network transfers" (llama.cpp's words), then the GPUs. The CPU is
    /// measured separately by `probe`: llama.cpp reports physical RAM as free and ignores container
    /// limits.
    pub fn devices(&self) -> Vec<Device> {
        let mut devices = self.registered_devices();
        devices.sort_by_key(|d| d.endpoint.is_none());
        devices
    }

    fn registered_devices(&self) -> Vec<Device> {
        list_llama_ggml_backend_devices()
            .into_iter()
            .filter_map(|d| {
                let kind = match d.device_type {
                    LlamaBackendDeviceType::Gpu => DeviceKind::Gpu,
                    LlamaBackendDeviceType::IntegratedGpu => DeviceKind::IntegratedGpu,
                    LlamaBackendDeviceType::Accelerator => DeviceKind::Accelerator,
                    LlamaBackendDeviceType::Cpu | LlamaBackendDeviceType::Unknown => return None,
                };
                // BLAS and similar accelerators hold no memory of their own; they are not offload targets.
                if d.memory_total == 0 {
                    return None;
                }
                Some(Device {
                    backend: d.backend.clone(),
                    kind,
                    free_bytes: d.memory_free as u64,
                    total_bytes: d.memory_total as u64,
                    bandwidth_gb_per_s: None,
                    fp16_tflops: None,
                    // A remote device's description is its server's endpoint (ggml-rpc.cpp).
                    endpoint: (d.backend == "RPC").then(|| d.description.clone()),
                    reported_free_bytes: None,
                    link: None,
                    measured: None,
                    name: d.name,
                    description: d.description,
                })
            })
            .collect()
    }

    /// llama.cpp's own fit (`common_fit_params`) on the same file: its choice of -ngl and -c.
    /// `margins_bytes` per GPU, in device order; devices beyond it keep llama.cpp's default margin.
    pub fn llama_fit(&self, model: &Path, n_ctx_min_tokens: u32, margins_bytes: &[u64]) -> Result<LlamaFit> {
        let path = path_cstring(model)?;
        let mut mparams = pin!(LlamaModelParams::default());
        let mut cparams = LlamaContextParams::default().with_n_ctx(None);
        let mut margins = vec![LLAMA_FIT_DEFAULT_MARGIN_BYTES; llama_cpp_2::max_devices()];
        for (slot, &m) in margins.iter_mut().zip(margins_bytes) {
            *slot = m as usize;
        }
        let result =
            mparams.as_mut().fit_params(&path, &mut cparams, &mut margins, n_ctx_min_tokens, sys::GGML_LOG_LEVEL_ERROR);
        let fitted = result.is_ok();
        let n_ctx = result.map(|r| r.n_ctx).unwrap_or(0);
        let tensor_overrides = mparams.tensor_buft_override_patterns();
        Ok(LlamaFit { n_gpu_layers: mparams.n_gpu_layers(), n_ctx_tokens: n_ctx, fitted, tensor_overrides })
    }

    /// Load `model` for real on the CPU (mmap on, weight repacking off so the mapped weights stay
    /// mapped) and create a context; return the buffer sizes llama.cpp reported. The ground truth of
    /// the accuracy benchmark.
    /// What llama.cpp allocates for `model` on the CPU at `n_ctx_tokens`, in the configuration users run:
    /// weight repacking on, the file mapped (or, `use_mmap` false, read as `--no-mmap` does).
    pub fn measure_buffers(
        &self,
        model: &Path,
        n_ctx_tokens: u32,
        flash_attn: bool,
        swa_full: bool,
        use_mmap: bool,
    ) -> Result<Buffers> {
        let path = path_cstring(model)?;
        LOG_TAIL.lock().unwrap_or_else(|e| e.into_inner()).clear();
        // SAFETY: plain calls into llama.cpp's C API with parameters from its own default constructors;
        // every pointer is checked for null and freed exactly once below.
        unsafe {
            let mut mp = sys::llama_model_default_params();
            mp.n_gpu_layers = 0;
            if !use_mmap {
                mp.load_mode = sys::LLAMA_LOAD_MODE_NONE;
            }
            let m = sys::llama_model_load_from_file(path.as_ptr(), mp);
            if m.is_null() {
                return Err(anyhow!("llama.cpp could not load {}", model.display()));
            }
            let mut cp = sys::llama_context_default_params();
            cp.n_ctx = n_ctx_tokens;
            cp.n_threads = 1;
            cp.swa_full = swa_full;
            cp.n_threads_batch = 1;
            cp.flash_attn_type =
                if flash_attn { sys::LLAMA_FLASH_ATTN_TYPE_ENABLED } else { sys::LLAMA_FLASH_ATTN_TYPE_DISABLED };
            let ctx = sys::llama_init_from_model(m, cp);
            let result = if ctx.is_null() {
                Err(anyhow!("llama.cpp could not create a context of {n_ctx_tokens} tokens"))
            } else {
                sys::llama_free(ctx);
                Ok(parse_buffers(&LOG_TAIL.lock().unwrap_or_else(|e| e.into_inner())))
            };
            sys::llama_model_free(m);
            result
        }
    }
}

/// Prompt and generation speed as llama.cpp's own counters report them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DirectSpeed {
    pub prompt_tokens: i32,
    pub prompt_tok_per_s: f64,
    pub generated_tokens: i32,
    pub generation_tok_per_s: f64,
}

impl Engine {
    /// llama.cpp driven directly, as its `simple` example does, for the throughput-parity benchmark:
    /// the model's chat template around `prompt`, one batch for the prompt, then `n_gen` greedy tokens
    /// (end of generation ignored), timed by llama.cpp's perf counters. Same settings run-fit plans on a
    /// CPU: all layers on the CPU, flash attention on, 512-token micro-batches, window-sized SWA cache.
    pub fn direct_speed(
        &self,
        model: &Path,
        prompt: &str,
        n_gen: u32,
        n_threads: i32,
        n_ctx: u32,
    ) -> Result<DirectSpeed> {
        let path = path_cstring(model)?;
        let text = CString::new(prompt).context("the prompt contains a NUL byte")?;
        let role = CString::new("user").expect("no NUL");
        // SAFETY: plain llama.cpp C API calls; every pointer is checked and freed once, buffers outlive
        // the calls that use them.
        unsafe {
            let mut mp = sys::llama_model_default_params();
            mp.n_gpu_layers = 0;
            let m = sys::llama_model_load_from_file(path.as_ptr(), mp);
            anyhow::ensure!(!m.is_null(), "llama.cpp could not load {}", model.display());
            let mut cp = sys::llama_context_default_params();
            cp.n_ctx = n_ctx;
            cp.n_batch = 2048;
            cp.n_ubatch = 512;
            cp.n_threads = n_threads;
            cp.n_threads_batch = n_threads;
            cp.flash_attn_type = sys::LLAMA_FLASH_ATTN_TYPE_ENABLED;
            cp.swa_full = false;
            cp.no_perf = false;
            let ctx = sys::llama_init_from_model(m, cp);
            if ctx.is_null() {
                sys::llama_model_free(m);
                anyhow::bail!("llama.cpp could not create the context");
            }
            let vocab = sys::llama_model_get_vocab(m);
            let msg = sys::llama_chat_message { role: role.as_ptr(), content: text.as_ptr() };
            let tmpl = sys::llama_model_chat_template(m, std::ptr::null());
            let mut buf = vec![0u8; prompt.len() * 2 + 4096];
            let n =
                sys::llama_chat_apply_template(tmpl, &msg, 1, true, buf.as_mut_ptr() as *mut c_char, buf.len() as i32);
            buf.truncate(n.max(0) as usize);
            let mut tokens = vec![0i32; buf.len() + 16];
            let n_tok = sys::llama_tokenize(
                vocab,
                buf.as_ptr() as *const c_char,
                buf.len() as i32,
                tokens.as_mut_ptr(),
                tokens.len() as i32,
                true,
                true,
            );
            tokens.truncate(n_tok.max(0) as usize);
            let mut rc = sys::llama_decode(ctx, sys::llama_batch_get_one(tokens.as_mut_ptr(), tokens.len() as i32));
            let sampler = sys::llama_sampler_init_greedy();
            for _ in 0..n_gen {
                if rc != 0 {
                    break;
                }
                let mut t = [sys::llama_sampler_sample(sampler, ctx, -1)];
                rc = sys::llama_decode(ctx, sys::llama_batch_get_one(t.as_mut_ptr(), 1));
            }
            let perf = sys::llama_perf_context(ctx);
            sys::llama_sampler_free(sampler);
            sys::llama_free(ctx);
            sys::llama_model_free(m);
            anyhow::ensure!(rc == 0, "llama_decode failed with {rc}");
            let rate = |n: i32, ms: f64| if ms > 0.0 { n as f64 * 1000.0 / ms } else { 0.0 };
            Ok(DirectSpeed {
                prompt_tokens: perf.n_p_eval,
                prompt_tok_per_s: rate(perf.n_p_eval, perf.t_p_eval_ms),
                generated_tokens: perf.n_eval,
                generation_tok_per_s: rate(perf.n_eval, perf.t_eval_ms),
            })
        }
    }
}

/// Quantize `values` (`values.len() / n_per_row` rows) to ggml type `type_id` with ggml's own
/// quantizer, for the synthetic-model generator. F32 is copied. Types that need an importance matrix
/// (IQ2_XXS, IQ2_XS, IQ1_S…) are refused: random weights have none.
pub fn quantize_rows(type_id: u32, values: &[f32], n_per_row: usize) -> Result<Vec<u8>> {
    let ty = type_id as sys::ggml_type;
    if type_id == sys::GGML_TYPE_F32 {
        return Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    anyhow::ensure!(n_per_row > 0 && values.len().is_multiple_of(n_per_row), "values are not whole rows");
    // SAFETY: lookups in ggml's static tables for a valid type id.
    let (needs_imatrix, row_bytes) =
        unsafe { (sys::ggml_quantize_requires_imatrix(ty), sys::ggml_row_size(ty, n_per_row as i64)) };
    anyhow::ensure!(!needs_imatrix, "type {type_id} needs an importance matrix; random weights have none");
    let rows = values.len() / n_per_row;
    let mut out = vec![0u8; row_bytes * rows];
    // SAFETY: `values` holds rows × n_per_row floats and `out` rows × row_bytes bytes, as ggml expects;
    // ggml_quantize_chunk initialises its tables itself (thread-safe).
    let written = unsafe {
        sys::ggml_quantize_chunk(
            ty,
            values.as_ptr(),
            out.as_mut_ptr() as *mut c_void,
            0,
            rows as i64,
            n_per_row as i64,
            std::ptr::null(),
        )
    };
    anyhow::ensure!(written == out.len(), "ggml wrote {written} bytes, expected {}", out.len());
    Ok(out)
}

/// What llama.cpp's own fit chose.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlamaFit {
    pub n_gpu_layers: i32,
    pub n_ctx_tokens: u32,
    /// False when llama.cpp reported that nothing fits (it then loads with its defaults anyway).
    pub fitted: bool,
    /// The tensor overrides its fit chose for a mixture of experts (patterns; on a single device
    /// they all name host memory).
    #[serde(default)]
    pub tensor_overrides: Vec<String>,
}

/// Buffer sizes llama.cpp logged while loading, summed over buffer names, in bytes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Buffers {
    pub model_bytes: u64,
    pub kv_bytes: u64,
    pub compute_bytes: u64,
    pub output_bytes: u64,
}

/// What llama.cpp allocated since the last call (or the last `take_log_tail`), per device: "host" for
/// every CPU-side buffer (CPU, CPU_Mapped, CPU_REPACK, CUDA_Host…), else the device's name (CUDA0…),
/// in bytes. The log lines read are forgotten.
pub fn take_buffers_by_device() -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut tail = LOG_TAIL.lock().unwrap_or_else(|e| e.into_inner());
    for line in tail.drain(..) {
        let Some(b) = buffer_line(&line) else { continue };
        let device = match rpc::device_of_buffer(b.device) {
            Some(remote) => remote,
            None if b.device.starts_with("CPU") || b.device.ends_with("_Host") => "host".to_string(),
            None => b.device.to_string(),
        };
        *out.entry(device).or_insert(0) += b.bytes;
    }
    out
}

/// One "load_tensors:   CPU_Mapped model buffer size =    92.12 MiB" line: the device, the kind
/// ("model", "KV", "compute", "output") and the size (MiB with two decimals: 10 KiB resolution).
struct BufferLine<'a> {
    device: &'a str,
    kind: &'a str,
    bytes: u64,
}

fn buffer_line(line: &str) -> Option<BufferLine<'_>> {
    let (label, value) = line.split_once(" buffer size = ")?;
    let mib: f64 = value.trim().strip_suffix("MiB")?.trim().parse().ok()?;
    let mut words = label.split_once(':')?.1.split_whitespace();
    Some(BufferLine { device: words.next()?, kind: words.next_back()?, bytes: (mib * 1024.0 * 1024.0).round() as u64 })
}

/// llama.cpp's buffers summed by kind.
fn parse_buffers(lines: &VecDeque<String>) -> Buffers {
    let mut b = Buffers::default();
    for line in lines {
        let Some(l) = buffer_line(line) else { continue };
        let slot = match l.kind {
            "model" => &mut b.model_bytes,
            "KV" => &mut b.kv_bytes,
            "compute" => &mut b.compute_bytes,
            "output" => &mut b.output_bytes,
            _ => continue,
        };
        *slot += l.bytes;
    }
    b
}

fn path_cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| anyhow!("{}: the path contains a NUL byte", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gguf::types::TYPES;

    #[test]
    fn type_table_matches_the_linked_ggml() {
        for t in TYPES {
            // SAFETY: pure lookups in ggml's static type table for ids it defines.
            let (blck, size) = unsafe { (sys::ggml_blck_size(t.id as _), sys::ggml_type_size(t.id as _)) };
            assert_eq!((blck as u64, size as u64), (t.block_elems, t.block_bytes), "{}", t.name);
        }
        assert_eq!(TYPES.len() as u32 + 8, sys::GGML_TYPE_COUNT, "a type was added to ggml");
    }

    #[test]
    fn buffer_lines_are_summed_by_device() {
        let mut tail = LOG_TAIL.lock().unwrap_or_else(|e| e.into_inner());
        tail.clear();
        for l in [
            "load_tensors:   CPU_Mapped model buffer size =    92.12 MiB\n",
            "load_tensors:        CUDA0 model buffer size =  1000.00 MiB\n",
            "llama_kv_cache:      CUDA0 KV buffer size =    45.00 MiB\n",
            "sched_reserve:   CUDA_Host compute buffer size =     8.00 MiB\n",
        ] {
            tail.push_back(l.to_string());
        }
        drop(tail);
        let by = take_buffers_by_device();
        assert_eq!(by["CUDA0"], 1045 << 20);
        assert_eq!(by["host"], (92.12f64 * 1048576.0).round() as u64 + (8 << 20));
        assert!(take_buffers_by_device().is_empty(), "the lines were taken");
    }

    #[test]
    fn buffer_lines_are_summed_by_kind() {
        let lines: VecDeque<String> = [
            "load_tensors:   CPU_Mapped model buffer size =    92.12 MiB\n",
            "llama_kv_cache:        CPU KV buffer size =    45.00 MiB\n",
            "llama_context:        CPU  output buffer size =     0.19 MiB\n",
            "sched_reserve:        CPU compute buffer size =   104.50 MiB\n",
            "unrelated line\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let b = parse_buffers(&lines);
        assert_eq!(b.model_bytes, (92.12f64 * 1048576.0).round() as u64);
        assert_eq!(b.kv_bytes, 45 << 20);
        assert_eq!(b.compute_bytes, (104.5 * 1048576.0) as u64);
        assert_eq!(b.output_bytes, (0.19f64 * 1048576.0).round() as u64);
    }
}
