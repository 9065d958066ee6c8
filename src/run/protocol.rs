//! What the supervisor and the worker process say to each other: one JSON object per line, requests on
//! the worker's stdin, events on its stdout. The worker is a re-exec of run-fit (`run-fit __worker`)
//! because llama.cpp can end a process on out-of-memory (abort, exit, the kernel's OOM killer), and a
//! dead process cannot retry itself. Pure data: no I/O here.

#![deny(clippy::disallowed_methods, clippy::disallowed_types, clippy::print_stdout, clippy::print_stderr)]

use serde::{Deserialize, Serialize};

/// Everything the worker needs to load the model and create the context, decided by the planner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSpec {
    pub model: std::path::PathBuf,
    /// llama.cpp's n_gpu_layers, counting the output layer.
    pub n_gpu_layers: u32,
    /// Layers per GPU, passed as llama.cpp's tensor_split; empty for one GPU or none.
    pub tensor_split: Vec<f32>,
    pub split_mode: SplitMode,
    pub main_gpu: u32,
    pub n_ctx_tokens: u32,
    pub n_batch_tokens: u32,
    pub n_ubatch_tokens: u32,
    /// ggml type ids of the KV cache.
    pub type_k: u32,
    pub type_v: u32,
    pub flash_attn: bool,
    pub op_offload: bool,
    /// Always false from run-fit: the planner sized the sliding-window cache to the window.
    pub swa_full: bool,
    pub n_threads: u32,
    pub n_threads_batch: u32,
    pub use_mmap: bool,
    pub use_mlock: bool,
    /// Echo llama.cpp's own logs on stderr at every level (`-v`); otherwise only info and above, which
    /// the supervisor keeps to classify failures.
    pub verbose: bool,
    /// A llama.cpp built-in template name, used when the file carries no chat template.
    pub fallback_chat_template: String,
    /// RPC servers (`host:port`) whose devices the worker registers before loading: they come first
    /// in llama.cpp's device order, so `tensor_split` starts with them.
    #[serde(default)]
    pub rpc: Vec<String>,
    /// Tensor buffer-type overrides, in order: (pattern, device name — "CPU" for host memory).
    #[serde(default)]
    pub tensor_overrides: Vec<(String, String)>,
}

impl LoadSpec {
    /// Whether `other` places the same weights the same way, so a loaded model can be kept and only
    /// the context made again.
    pub fn same_weights(&self, other: &LoadSpec) -> bool {
        (
            &self.model,
            self.n_gpu_layers,
            &self.tensor_split,
            self.split_mode,
            self.main_gpu,
            self.use_mmap,
            self.use_mlock,
            &self.rpc,
            &self.tensor_overrides,
        ) == (
            &other.model,
            other.n_gpu_layers,
            &other.tensor_split,
            other.split_mode,
            other.main_gpu,
            other.use_mmap,
            other.use_mlock,
            &other.rpc,
            &other.tensor_overrides,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SplitMode {
    /// Everything on the main GPU.
    None,
    /// Whole layers per GPU (llama.cpp's default).
    Layer,
    /// Rows of each matrix across GPUs.
    Row,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.into(), content: content.into() }
    }
}

/// How many messages after the system prompt to drop, oldest first and a whole turn (user + assistant)
/// at a time, until `fits` accepts what is left; never the system prompt, never the last message (the
/// one being answered). None: even the last message alone does not fit.
pub fn messages_to_drop(messages: &[Message], mut fits: impl FnMut(&[Message]) -> bool) -> Option<usize> {
    let keep = messages.first().is_some_and(|m| m.role == "system") as usize;
    let mut dropped = 0;
    loop {
        let mut window = messages[..keep].to_vec();
        window.extend_from_slice(&messages[keep + dropped..]);
        if fits(&window) {
            return Some(dropped);
        }
        if keep + dropped + 1 >= messages.len() {
            return None;
        }
        dropped = (dropped + 2).min(messages.len() - keep - 1);
    }
}

/// llama.cpp's sampling flags. `temp <= 0` is greedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temp: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    /// None: a fresh random seed for every reply.
    pub seed: Option<u32>,
}

impl Default for Sampling {
    /// llama.cpp's defaults.
    fn default() -> Self {
        Sampling { temp: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, seed: None }
    }
}

/// How replies are generated: one set of settings from the command line to llama.cpp's sampler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// At most this many generated tokens; None: until end of generation or a full context.
    pub max_tokens: Option<u32>,
    /// Keep generating past end-of-generation tokens (benchmarks force a token count this way).
    pub ignore_eos: bool,
    pub sampling: Sampling,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The first line: load the model and create the context.
    Load(LoadSpec),
    /// Answer the last user message of `messages` (the whole conversation the model should see).
    Chat { messages: Vec<Message>, generation: Generation },
    /// Stop the reply being generated (Ctrl-C); the worker answers with `Done { stop: Stopped }`.
    Stop,
    /// A speed measurement as llama-bench makes it: an empty cache, `prompt_tokens` of prompt in one
    /// go, then `gen_tokens` generated greedily past end-of-generation. Answered with `Done`.
    Bench { prompt_tokens: u32, gen_tokens: u32 },
}

/// What the worker is doing, so a death can be attributed to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading weights into memory (model buffers).
    Load,
    /// Creating the context: KV cache, compute buffers.
    Context,
    /// The first decode: thread pools, lazily allocated buffers.
    Warmup,
    /// Answering a prompt.
    Decode,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Load => "loading the weights",
            Stage::Context => "creating the context",
            Stage::Warmup => "the first decode",
            Stage::Decode => "answering",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its reply.
    EndOfGeneration,
    /// `-n` tokens were generated.
    TokenLimit,
    /// The context is full; older turns are dropped next time.
    ContextFull,
    /// The user stopped it.
    Stopped,
}

/// One reply's numbers. Times are wall-clock in the worker; prompt time covers only the tokens that
/// were not already in the KV cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub prompt_tokens: u64,
    pub prompt_ms: f64,
    pub generated_tokens: u64,
    pub generation_ms: f64,
    /// Tokens in the context after the reply, and its size.
    pub ctx_used_tokens: u64,
    pub ctx_size_tokens: u64,
}

impl Stats {
    pub fn prompt_tok_per_s(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_ms)
    }
    pub fn generation_tok_per_s(&self) -> f64 {
        rate(self.generated_tokens, self.generation_ms)
    }
    /// Sum of several replies (`/stats`); context use is the latest.
    pub fn add(&mut self, other: &Stats) {
        self.prompt_tokens += other.prompt_tokens;
        self.prompt_ms += other.prompt_ms;
        self.generated_tokens += other.generated_tokens;
        self.generation_ms += other.generation_ms;
        self.ctx_used_tokens = other.ctx_used_tokens;
        self.ctx_size_tokens = other.ctx_size_tokens;
    }
    /// The line printed on stderr after every reply.
    pub fn line(&self) -> String {
        let tokens = |n: u64| if n == 1 { "1 token".to_string() } else { format!("{n} tokens") };
        format!(
            "prompt {}, {:.1} tok/s · reply {}, {:.1} tok/s · context {}/{} tokens",
            tokens(self.prompt_tokens),
            self.prompt_tok_per_s(),
            tokens(self.generated_tokens),
            self.generation_tok_per_s(),
            self.ctx_used_tokens,
            self.ctx_size_tokens
        )
    }
}

fn rate(tokens: u64, ms: f64) -> f64 {
    if ms > 0.0 { tokens as f64 * 1000.0 / ms } else { 0.0 }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Stage {
        stage: Stage,
    },
    /// Weight loading progress, 0.0..=1.0.
    Progress {
        fraction: f32,
    },
    /// Loaded; `buffers_bytes`: what llama.cpp allocated per device ("host" for RAM); `weight_loads`:
    /// how often this worker read the weights (1 when a smaller context reused them).
    Ready {
        n_ctx_tokens: u32,
        chat_template: bool,
        buffers_bytes: std::collections::BTreeMap<String, u64>,
        weight_loads: u32,
    },
    /// The oldest `dropped` messages after the system prompt did not fit the context.
    Trimmed {
        dropped: usize,
    },
    Token {
        text: String,
    },
    Done {
        stop: StopReason,
        stats: Stats,
    },
    /// A request the worker could not serve, not about memory (e.g. one message longer than the
    /// context). The worker lives on.
    Rejected {
        message: String,
        /// The chat template failed (not the user's text): llama.cpp's problem, not a usage error.
        #[serde(default)]
        template: bool,
    },
    /// llama.cpp returned an error at `stage`. Whether it was memory the supervisor decides, from the
    /// message and llama.cpp's last log lines (sent along: stderr is another pipe and may lag). With
    /// `waiting`, the weights are still loaded and the worker waits for another `Load`; otherwise it
    /// exits.
    Failed {
        stage: Stage,
        message: String,
        log_tail: Vec<String>,
        waiting: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_json_line_each() {
        let e = Event::Token { text: "a\nb".into() };
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), e);
        let r: Request = serde_json::from_str(r#"{"op":"stop"}"#).unwrap();
        assert_eq!(r, Request::Stop);
    }

    #[test]
    fn the_oldest_turns_go_first_and_the_system_prompt_stays() {
        let m = |r: &str, c: &str| Message::new(r, c);
        let conv = [
            m("system", "S"),
            m("user", "u1"),
            m("assistant", "a1"),
            m("user", "u2"),
            m("assistant", "a2"),
            m("user", "u3"),
        ];
        let mut seen = Vec::new();
        // fits once at most 3 messages remain
        let dropped = messages_to_drop(&conv, |w| {
            seen.push(w.iter().map(|x| x.content.as_str()).collect::<Vec<_>>().join(","));
            w.len() <= 3
        });
        assert_eq!(dropped, Some(4));
        assert_eq!(seen, ["S,u1,a1,u2,a2,u3", "S,u2,a2,u3", "S,u3"]);
        assert_eq!(messages_to_drop(&conv, |_| false), None);
        assert_eq!(messages_to_drop(&conv[1..], |w| w.len() <= 1), Some(4), "without a system prompt");
        assert_eq!(messages_to_drop(&conv, |_| true), Some(0));
    }

    #[test]
    fn stats_line_has_rates() {
        let s = Stats {
            prompt_tokens: 20,
            prompt_ms: 50.0,
            generated_tokens: 10,
            generation_ms: 100.0,
            ctx_used_tokens: 30,
            ctx_size_tokens: 4096,
        };
        assert_eq!(s.line(), "prompt 20 tokens, 400.0 tok/s · reply 10 tokens, 100.0 tok/s · context 30/4096 tokens");
        let one = Stats { generated_tokens: 1, ..s.clone() };
        assert!(one.line().contains("reply 1 token,"), "{}", one.line());
        assert_eq!(Stats::default().prompt_tok_per_s(), 0.0);
    }
}
