//! After a worker dies: was it memory, and what is the next smaller configuration? Pure: the supervisor
//! gathers the evidence (stage, exit status, llama.cpp's last log lines) and applies the answer.
//!
//! llama.cpp runs out of memory in several ways (FIELD-NOTES §3): an error value, an abort on a failed
//! `GGML_ASSERT`, `exit(1)` from libgomp when a thread cannot be created, SIGKILL from the kernel's OOM
//! killer. The same exits also happen for reasons that are not memory, so a verdict of "memory" needs
//! either SIGKILL or a log line that says so.

use crate::fit::hardware::Device;
use crate::run::protocol::Stage;

/// How a worker ended, as the supervisor saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Death {
    pub stage: Stage,
    /// The worker's own `Failed` message, when llama.cpp returned an error instead of ending the process.
    pub message: Option<String>,
    pub exit: Exit,
    /// llama.cpp's last log lines and anything else the worker wrote on stderr, oldest first.
    pub log_tail: Vec<String>,
    /// For a SIGKILL: whether the kernel's count of out-of-memory kills moved while the worker ran
    /// (None: the count cannot be read here).
    pub oom_killer: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Still running: it reported the failure, kept the weights and waits for a smaller context.
    Waiting,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Out of memory at this stage; `evidence` is the line that says so, for the user.
    Memory { stage: Stage, evidence: String },
    /// Anything else: reported at once, never retried.
    Other(String),
}

const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;
const SIGSEGV: i32 = 11;

/// Phrases llama.cpp, ggml, its backends and the C runtime print when an allocation fails.
const MEMORY_PHRASES: &[&str] = &[
    "failed to allocate",
    "out of memory",
    "insufficient memory",
    "cannot allocate memory",
    "unable to allocate",
    "mem_buffer != null",
    "thread creation failed",
    "std::bad_alloc",
    "erroroutofdevicememory",
    "erroroutofhostmemory",
    "cudamalloc failed",
    "failed to mmap",
];

pub fn classify(death: &Death) -> Verdict {
    let mut lines = death.log_tail.iter().map(String::as_str).chain(death.message.as_deref());
    let evidence = lines
        .rfind(|l| {
            let lower = l.to_ascii_lowercase();
            MEMORY_PHRASES.iter().any(|p| lower.contains(p))
        })
        .map(|l| without_dirs(l.trim()));
    match (evidence, death.exit) {
        (Some(evidence), _) => Verdict::Memory { stage: death.stage, evidence },
        // A SIGKILL from someone else (`kill -9`) is no lesson about memory: the kernel counts its own.
        (None, Exit::Signal(SIGKILL)) if death.oom_killer == Some(false) => Verdict::Other(format!(
            "the worker was killed by SIGKILL from outside run-fit while {} (not by the kernel's \
             out-of-memory killer: its count did not move)",
            death.stage.describe()
        )),
        (None, Exit::Signal(SIGKILL)) => Verdict::Memory {
            stage: death.stage,
            evidence: "killed by SIGKILL (the kernel's out-of-memory killer)".into(),
        },
        (None, exit) => {
            let how = match exit {
                Exit::Signal(SIGABRT) => "llama.cpp aborted".to_string(),
                Exit::Signal(SIGSEGV) => "llama.cpp crashed (segmentation fault)".to_string(),
                Exit::Signal(s) => format!("the worker died of signal {s}"),
                Exit::Code(c) => format!("the worker exited with status {c}"),
                Exit::Waiting => "llama.cpp failed".to_string(),
            };
            // The most telling line: the worker's message, else the last error-looking log line.
            let detail = death.message.clone().or_else(|| {
                death
                    .log_tail
                    .iter()
                    .rev()
                    .find(|l| {
                        let lower = l.to_ascii_lowercase();
                        lower.contains("error") || lower.contains("failed") || lower.contains("assert")
                    })
                    .map(|l| l.trim().to_string())
            });
            Verdict::Other(match detail {
                Some(d) => format!("{how} while {}: {d}", death.stage.describe()),
                None => format!("{how} while {}", death.stage.describe()),
            })
        }
    }
}

/// `/root/.cargo/…/ggml/src/ggml.c:1644: GGML_ASSERT(…)` → `ggml.c:1644: GGML_ASSERT(…)`: the build
/// machine's folders say nothing to the user.
fn without_dirs(line: &str) -> String {
    line.split(' ')
        .map(|word| match word.rfind('/') {
            Some(i) if word.starts_with('/') && i + 1 < word.len() => &word[i + 1..],
            _ => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The configuration that failed, in the planner's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tried {
    pub n_gpu_layers: u32,
    pub n_ctx_tokens: u64,
    /// A mixture of experts planned with the routed experts of this many layers in RAM…
    pub experts_in_ram: u32,
    /// …of this many layers whose experts could go there (0: not such a plan, or the user placed them).
    pub expert_layers: u32,
}

/// What the user pinned; backoff never changes those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fixed {
    pub n_gpu_layers: bool,
    pub n_ctx_tokens: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Plan again with at most this context.
    Context { from: u64, to: u64 },
    /// Plan again with at most this many GPU layers.
    Layers { from: u32, to: u32 },
    /// Plan again with the routed experts of at least this many layers in RAM (a mixture of experts:
    /// experts move before any layer's attention leaves a GPU).
    Experts { from: u32, to: u32 },
}

impl Step {
    pub fn describe(&self) -> String {
        match self {
            Step::Context { from, to } => format!("context {from} → {to} tokens"),
            Step::Layers { from, to } => format!("GPU layers {from} → {to}"),
            Step::Experts { from, to } => format!("routed experts of {from} → {to} layers in RAM (--n-cpu-moe)"),
        }
    }
}

/// The device an allocation failed on, from ggml's "failed to allocate RPC0[127.0.0.1:50052] buffer of
/// size …" (a remote device's buffer carries the server's device index and endpoint) or
/// "… CUDA1 buffer …": its index in `devices`. None for the host or when no line names a device.
pub fn failed_device(log_tail: &[String], devices: &[Device]) -> Option<usize> {
    let line = log_tail.iter().rev().find(|l| l.contains("failed to allocate ") && l.contains(" buffer of size"))?;
    let buffer = line.split("failed to allocate ").nth(1)?.split_whitespace().next()?;
    if let Some((local, endpoint)) = buffer.strip_prefix("RPC").and_then(|r| r.strip_suffix(']')?.split_once('[')) {
        let local: usize = local.parse().ok()?;
        let on_server: Vec<usize> =
            (0..devices.len()).filter(|&i| devices[i].endpoint.as_deref() == Some(endpoint)).collect();
        return on_server.get(local).copied();
    }
    devices.iter().position(|d| d.name == buffer)
}

/// Below this a chat is not worth having; refuse instead.
pub const CTX_FLOOR_TOKENS: u64 = 512;

/// The next smaller configuration after an out-of-memory at `stage`: what failed shrinks first. The
/// weights are placed at load, so a load failure shrinks layers; everything later (KV cache, compute
/// buffers, threads) shrinks the context down to `min_ctx`, then layers, then the context again down to
/// a floor. None: nothing left to shrink that the user did not pin.
pub fn next_step(stage: Stage, tried: Tried, fixed: Fixed, min_ctx_tokens: u64) -> Option<Step> {
    let halve_ctx = |floor: u64| -> Option<Step> {
        let floor = floor.max(CTX_FLOOR_TOKENS);
        (!fixed.n_ctx_tokens && tried.n_ctx_tokens > floor).then(|| Step::Context {
            from: tried.n_ctx_tokens,
            // multiples of 256, as llama.cpp rounds them
            to: (tried.n_ctx_tokens / 2 / 256 * 256).max(floor),
        })
    };
    let fewer_layers = || -> Option<Step> {
        let n = tried.n_gpu_layers;
        (!fixed.n_gpu_layers && n > 0).then(|| Step::Layers { from: n, to: n - n.div_ceil(8) })
    };
    // Experts to RAM first: a token reads only its experts' share of them, all of its attention.
    let more_experts = || -> Option<Step> {
        let (k, n) = (tried.experts_in_ram, tried.expert_layers);
        (k < n).then(|| Step::Experts { from: k, to: (k + n.div_ceil(8)).min(n) })
    };
    let smaller_weights = || more_experts().or_else(fewer_layers);
    match stage {
        Stage::Load => smaller_weights(),
        Stage::Context | Stage::Warmup | Stage::Decode => {
            halve_ctx(min_ctx_tokens).or_else(smaller_weights).or_else(|| halve_ctx(CTX_FLOOR_TOKENS))
        }
    }
}

/// How far backoff may go: the attempt that just failed (counting the first), the most attempts, and
/// the context the planner fits layers at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub attempts: usize,
    pub max_attempts: usize,
    pub min_ctx_tokens: u64,
}

/// Why backoff does not try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The worker did not die of memory: report it, never retry.
    NotMemory(String),
    /// Out of memory, and no attempt or nothing unpinned is left; the message says what to do.
    NothingSmaller(String),
}

/// After a worker's `death` at `tried`: the line to print and the next step, or why there is none.
pub fn decide(death: &Death, tried: Tried, fixed: Fixed, limits: Limits) -> Result<(String, Step), Refusal> {
    let (stage, evidence) = match classify(death) {
        Verdict::Other(message) => return Err(Refusal::NotMemory(message)),
        Verdict::Memory { stage, evidence } => (stage, evidence),
    };
    let what = format!(
        "out of memory while {} at -ngl {} -c {} ({evidence})",
        stage.describe(),
        tried.n_gpu_layers,
        tried.n_ctx_tokens
    );
    if limits.attempts >= limits.max_attempts {
        return Err(Refusal::NothingSmaller(format!("{what}; giving up after {} attempts", limits.max_attempts)));
    }
    let Some(step) = next_step(stage, tried, fixed, limits.min_ctx_tokens) else {
        let advice = if fixed.n_gpu_layers || fixed.n_ctx_tokens {
            "drop -ngl / -c to let run-fit shrink them, or free some memory"
        } else {
            "free some memory or use a smaller quantization"
        };
        return Err(Refusal::NothingSmaller(format!("{what}, and nothing smaller is left: {advice}")));
    };
    Ok((format!("{what}; retrying with {}", step.describe()), step))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn death(stage: Stage, exit: Exit, tail: &[&str]) -> Death {
        Death { stage, message: None, exit, log_tail: tail.iter().map(|s| s.to_string()).collect(), oom_killer: None }
    }

    #[test]
    fn the_measured_failures_read_as_memory() {
        // The lines llama.cpp printed in the real failures recorded in tests/backoff.rs.
        let abort = death(
            Stage::Context,
            Exit::Signal(6),
            &["/root/x/ggml/src/ggml.c:1644: GGML_ASSERT(ctx->mem_buffer != NULL) failed"],
        );
        assert_eq!(
            classify(&abort),
            Verdict::Memory {
                stage: Stage::Context,
                evidence: "ggml.c:1644: GGML_ASSERT(ctx->mem_buffer != NULL) failed".into()
            }
        );
        let gomp =
            death(Stage::Warmup, Exit::Code(1), &["libgomp: Thread creation failed: Resource temporarily unavailable"]);
        assert!(matches!(classify(&gomp), Verdict::Memory { stage: Stage::Warmup, .. }));
        let err = Death {
            message: Some("llama.cpp could not create a context of 8192 tokens".into()),
            ..death(
                Stage::Context,
                Exit::Code(3),
                &["ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 188743680"],
            )
        };
        match classify(&err) {
            Verdict::Memory { evidence, .. } => assert!(evidence.contains("188743680")),
            v => panic!("{v:?}"),
        }
        assert!(matches!(classify(&death(Stage::Decode, Exit::Signal(9), &[])), Verdict::Memory { .. }));
    }

    #[test]
    fn other_failures_are_not_retried() {
        let bad = Death {
            message: Some("llama.cpp could not load the model".into()),
            ..death(
                Stage::Load,
                Exit::Code(3),
                &["llama_model_load: error loading model: unknown model architecture: 'x'"],
            )
        };
        assert_eq!(
            classify(&bad),
            Verdict::Other(
                "the worker exited with status 3 while loading the weights: llama.cpp could not load the model".into()
            )
        );
        let crash = death(Stage::Decode, Exit::Signal(11), &["ok", "some error here"]);
        assert_eq!(
            classify(&crash),
            Verdict::Other("llama.cpp crashed (segmentation fault) while answering: some error here".into())
        );
        assert!(matches!(
            classify(&death(Stage::Warmup, Exit::Signal(6), &["GGML_ASSERT(x) failed"])),
            Verdict::Other(_)
        ));
    }

    #[test]
    fn what_failed_shrinks_first() {
        let tried = Tried { n_gpu_layers: 20, n_ctx_tokens: 8192, ..Tried::default() };
        let free = Fixed::default();
        assert_eq!(next_step(Stage::Load, tried, free, 4096), Some(Step::Layers { from: 20, to: 17 }));
        assert_eq!(next_step(Stage::Context, tried, free, 4096), Some(Step::Context { from: 8192, to: 4096 }));
        // at the minimum context: layers, then the context below the minimum, then nothing
        let at_min = Tried { n_gpu_layers: 20, n_ctx_tokens: 4096, ..Tried::default() };
        assert_eq!(next_step(Stage::Warmup, at_min, free, 4096), Some(Step::Layers { from: 20, to: 17 }));
        let cpu = Tried { n_gpu_layers: 0, n_ctx_tokens: 4096, ..Tried::default() };
        assert_eq!(next_step(Stage::Decode, cpu, free, 4096), Some(Step::Context { from: 4096, to: 2048 }));
        let floor = Tried { n_gpu_layers: 0, n_ctx_tokens: 512, ..Tried::default() };
        assert_eq!(next_step(Stage::Decode, floor, free, 4096), None);
        assert_eq!(next_step(Stage::Load, cpu, free, 4096), None);
        // one layer still goes
        let one = Tried { n_gpu_layers: 1, n_ctx_tokens: 512, ..Tried::default() };
        assert_eq!(next_step(Stage::Load, one, free, 4096), Some(Step::Layers { from: 1, to: 0 }));
    }

    #[test]
    fn a_mixture_of_experts_moves_experts_to_ram_before_attention_leaves_the_gpu() {
        let free = Fixed::default();
        let moe = Tried { n_gpu_layers: 49, n_ctx_tokens: 4096, experts_in_ram: 21, expert_layers: 48 };
        assert_eq!(next_step(Stage::Load, moe, free, 4096), Some(Step::Experts { from: 21, to: 27 }));
        assert_eq!(next_step(Stage::Warmup, moe, free, 4096), Some(Step::Experts { from: 21, to: 27 }));
        let all = Tried { experts_in_ram: 48, ..moe };
        assert_eq!(next_step(Stage::Load, all, free, 4096), Some(Step::Layers { from: 49, to: 42 }));
    }

    #[test]
    fn pins_are_never_shrunk() {
        let tried = Tried { n_gpu_layers: 20, n_ctx_tokens: 8192, ..Tried::default() };
        let ctx_pinned = Fixed { n_ctx_tokens: true, n_gpu_layers: false };
        assert_eq!(next_step(Stage::Context, tried, ctx_pinned, 4096), Some(Step::Layers { from: 20, to: 17 }));
        let both = Fixed { n_ctx_tokens: true, n_gpu_layers: true };
        assert_eq!(next_step(Stage::Context, tried, both, 4096), None);
        assert_eq!(next_step(Stage::Load, tried, Fixed { n_gpu_layers: true, n_ctx_tokens: false }, 4096), None);
    }

    fn oom_at_context() -> Death {
        Death {
            stage: Stage::Context,
            message: Some("failed to allocate compute pp buffers".into()),
            exit: Exit::Waiting,
            log_tail: vec![],
            oom_killer: None,
        }
    }

    #[test]
    fn the_last_attempt_gives_up_with_the_count() {
        let tried = Tried { n_gpu_layers: 0, n_ctx_tokens: 8192, ..Tried::default() };
        let limits = Limits { attempts: 8, max_attempts: 8, min_ctx_tokens: 4096 };
        let refusal = decide(&oom_at_context(), tried, Fixed::default(), limits).unwrap_err();
        let Refusal::NothingSmaller(message) = refusal else { panic!("{refusal:?}") };
        assert!(message.contains("giving up after 8 attempts"), "{message}");
        assert!(message.starts_with("out of memory while creating the context at -ngl 0 -c 8192"), "{message}");
        // one attempt earlier there is still a step to take
        let (line, step) =
            decide(&oom_at_context(), tried, Fixed::default(), Limits { attempts: 7, ..limits }).unwrap();
        assert_eq!(step, Step::Context { from: 8192, to: 4096 });
        assert!(line.ends_with("retrying with context 8192 → 4096 tokens"), "{line}");
    }

    #[test]
    fn pinned_values_are_refused_not_shrunk_and_other_deaths_are_not_retried() {
        let tried = Tried { n_gpu_layers: 0, n_ctx_tokens: 8192, ..Tried::default() };
        let limits = Limits { attempts: 1, max_attempts: 8, min_ctx_tokens: 4096 };
        let pinned = Fixed { n_gpu_layers: true, n_ctx_tokens: true };
        let Err(Refusal::NothingSmaller(message)) = decide(&oom_at_context(), tried, pinned, limits) else { panic!() };
        assert!(message.contains("drop -ngl / -c"), "{message}");
        let crash =
            Death { stage: Stage::Load, message: None, exit: Exit::Signal(11), log_tail: vec![], oom_killer: None };
        assert!(matches!(decide(&crash, tried, Fixed::default(), limits), Err(Refusal::NotMemory(_))));
    }

    #[test]
    fn a_sigkill_the_kernel_did_not_count_is_not_memory() {
        let mut killed = death(Stage::Decode, Exit::Signal(9), &[]);
        assert!(matches!(classify(&killed), Verdict::Memory { .. }), "unknown count: as before, memory");
        killed.oom_killer = Some(true);
        assert!(matches!(classify(&killed), Verdict::Memory { .. }));
        killed.oom_killer = Some(false);
        let Verdict::Other(why) = classify(&killed) else { panic!("a kill -9 taken for out-of-memory") };
        assert!(why.contains("from outside run-fit"), "{why}");
    }

    #[test]
    fn the_device_a_buffer_failed_on_is_named_by_its_buffer() {
        let dev = |name: &str, endpoint: Option<&str>| Device {
            endpoint: endpoint.map(str::to_string),
            ..Device::new(name, "", "", crate::fit::hardware::DeviceKind::Gpu, 0, 0)
        };
        // Two servers, the second with two devices: its device 1 is the client's RPC2.
        let devices =
            [dev("RPC0", Some("a:1")), dev("RPC1", Some("b:2")), dev("RPC2", Some("b:2")), dev("CUDA0", None)];
        let tail = |line: &str| vec!["x".to_string(), line.to_string()];
        let rpc = "ggml_backend_buft_alloc_buffer_n_default: failed to allocate RPC1[b:2] buffer of size 94371840";
        assert_eq!(failed_device(&tail(rpc), &devices), Some(2));
        let cuda = "ggml_backend_cuda_buffer_type_alloc_buffer: failed to allocate CUDA0 buffer of size 1";
        assert_eq!(failed_device(&tail(cuda), &devices), Some(3));
        let host = "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 188743680";
        assert_eq!(failed_device(&tail(host), &devices), None);
    }
}
