//! The shapes of real models and of the small ones tests use: one table. Name estimates pick the
//! closest real one (`names`), the generator writes any of them (`synth`), speed's published rows
//! name the model they ran.

/// The shape of a dense or MoE transformer in llama.cpp's `llama` architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub name: &'static str,
    pub n_layer: u32,
    pub n_embd: u64,
    pub n_ff: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub n_vocab: u64,
    pub n_ctx_train: u64,
    pub n_expert: u64,
    pub n_expert_used: u64,
    pub tied_embedding: bool,
    /// Elements per attention head; 0: n_embd / n_head.
    pub head_dim: u64,
    /// Sliding-window attention (Gemma 3's 5 local layers to 1 global); 0: none, the `llama` architecture.
    pub sliding_window: u64,
    /// Whether name estimates may pick this shape (a real model's), or only tests and the generator.
    pub estimates: bool,
    /// llama.cpp's architecture name the generator writes: `llama` (dense, or Mixtral-style experts),
    /// `gemma3`, `qwen2moe` (routed and shared experts), `gpt-oss` (sliding window on alternate layers),
    /// `deepseek2` (MLA: a compressed KV cache). Only `llama`, `gemma3` and `qwen2moe` files are
    /// loaded by tests; the others feed estimates.
    pub arch: &'static str,
    /// Width of the shared experts' feed-forward (Qwen-MoE, Llama 4, DeepSeek, GLM); 0: none. For a
    /// mixture of experts `n_ff` is one routed expert's width.
    pub n_ff_shared: u64,
}

impl Shape {
    pub fn head_dim(&self) -> u64 {
        if self.head_dim > 0 { self.head_dim } else { self.n_embd / self.n_head }
    }
}

/// Gemma-3-1B-like: the `gemma3` architecture, sliding-window attention (512 tokens), 4 heads of 256.
pub const GEMMA3_1B: Shape = Shape {
    name: "Gemma-3-1B",
    n_layer: 26,
    n_embd: 1152,
    n_ff: 6912,
    n_head: 4,
    n_head_kv: 1,
    n_vocab: 262144,
    n_ctx_train: 32768,
    n_expert: 0,
    n_expert_used: 0,
    tied_embedding: true,
    head_dim: 256,
    sliding_window: 512,
    estimates: false,
    arch: "gemma3",
    n_ff_shared: 0,
};

/// A sliding-window model small enough for a test.
pub const SWA_TINY: Shape = Shape {
    name: "swa-tiny",
    n_layer: 6,
    n_embd: 256,
    n_ff: 512,
    n_head: 4,
    n_head_kv: 1,
    n_vocab: 512,
    n_ctx_train: 4096,
    n_expert: 0,
    n_expert_used: 0,
    tied_embedding: true,
    head_dim: 64,
    sliding_window: 128,
    estimates: false,
    arch: "gemma3",
    n_ff_shared: 0,
};

pub const LLAMA3_8B: Shape = Shape {
    name: "Llama-3-8B",
    n_layer: 32,
    n_embd: 4096,
    n_ff: 14336,
    n_head: 32,
    n_head_kv: 8,
    n_vocab: 128256,
    n_ctx_train: 8192,
    n_expert: 0,
    n_expert_used: 0,
    tied_embedding: false,
    head_dim: 0,
    sliding_window: 0,
    estimates: true,
    arch: "llama",
    n_ff_shared: 0,
};

pub const LLAMA2_70B: Shape = Shape {
    name: "Llama-2-70B",
    n_layer: 80,
    n_embd: 8192,
    n_ff: 28672,
    n_head: 64,
    n_head_kv: 8,
    n_vocab: 32000,
    n_ctx_train: 4096,
    n_expert: 0,
    n_expert_used: 0,
    tied_embedding: false,
    head_dim: 0,
    sliding_window: 0,
    estimates: true,
    arch: "llama",
    n_ff_shared: 0,
};

pub const MIXTRAL_8X7B: Shape = Shape {
    name: "Mixtral-8x7B",
    n_layer: 32,
    n_embd: 4096,
    n_ff: 14336,
    n_head: 32,
    n_head_kv: 8,
    n_vocab: 32000,
    n_ctx_train: 32768,
    n_expert: 8,
    n_expert_used: 2,
    tied_embedding: false,
    head_dim: 0,
    sliding_window: 0,
    estimates: true,
    arch: "llama",
    n_ff_shared: 0,
};

/// A mixture of experts small enough to load and run in a test (Mixtral's layout: 8 experts, 2 used).
pub const MOE_TINY: Shape = Shape {
    name: "moe-tiny",
    n_layer: 4,
    n_embd: 256,
    n_ff: 512,
    n_head: 4,
    n_head_kv: 2,
    n_vocab: 512,
    n_ctx_train: 4096,
    n_expert: 8,
    n_expert_used: 2,
    tied_embedding: false,
    head_dim: 0,
    sliding_window: 0,
    estimates: false,
    arch: "llama",
    n_ff_shared: 0,
};

/// Qwen3-30B-A3B: 48 layers, 128 routed experts of 768, 8 used, no shared expert; 32 heads of 128.
pub const QWEN3_30B_A3B: Shape = Shape {
    name: "Qwen3-30B-A3B",
    n_layer: 48,
    n_embd: 2048,
    n_ff: 768,
    n_head: 32,
    n_head_kv: 4,
    n_vocab: 151936,
    n_ctx_train: 40960,
    n_expert: 128,
    n_expert_used: 8,
    tied_embedding: false,
    head_dim: 128,
    sliding_window: 0,
    estimates: true,
    arch: "llama",
    n_ff_shared: 0,
};

/// gpt-oss's common shape (the 20b and 120b differ in layers and experts).
const GPT_OSS: Shape = Shape {
    name: "gpt-oss",
    n_layer: 24,
    n_embd: 2880,
    n_ff: 2880,
    n_head: 64,
    n_head_kv: 8,
    n_vocab: 201088,
    n_ctx_train: 131072,
    n_expert: 32,
    n_expert_used: 4,
    tied_embedding: false,
    head_dim: 64,
    sliding_window: 128,
    estimates: true,
    arch: "gpt-oss",
    n_ff_shared: 0,
};

/// Mixtral's layout, small enough to generate with random weights and load in a test: 8 experts, 2
/// used, experts the bulk of every layer.
pub const MOE_MIXTRAL_MINI: Shape =
    Shape { name: "moe-mixtral-mini", n_layer: 6, n_embd: 512, n_ff: 1024, n_head: 8, ..MOE_TINY };

/// Qwen-MoE's layout (llama.cpp's `qwen2moe`): 16 routed experts, 4 used, and a shared expert every
/// token reads.
pub const MOE_QWEN_MINI: Shape = Shape {
    name: "moe-qwen-mini",
    n_ff: 512,
    n_expert: 16,
    n_expert_used: 4,
    arch: "qwen2moe",
    n_ff_shared: 1024,
    ..MOE_MIXTRAL_MINI
};

/// Small enough to load and run anywhere in a test.
pub const TINY: Shape = Shape {
    name: "tiny",
    n_layer: 4,
    n_embd: 256,
    n_ff: 512,
    n_head: 4,
    n_head_kv: 2,
    n_vocab: 512,
    n_ctx_train: 2048,
    n_expert: 0,
    n_expert_used: 0,
    tied_embedding: true,
    head_dim: 0,
    sliding_window: 0,
    estimates: false,
    arch: "llama",
    n_ff_shared: 0,
};

/// The smallest shape llama.cpp loads: a seed for the fuzzer and the fastest test model.
pub const MICRO: Shape = Shape {
    name: "micro",
    n_layer: 2,
    n_embd: 64,
    n_ff: 128,
    n_head: 2,
    n_head_kv: 1,
    n_vocab: 300,
    n_ctx_train: 512,
    n_expert: 0,
    n_expert_used: 0,
    tied_embedding: true,
    head_dim: 0,
    sliding_window: 0,
    estimates: false,
    arch: "llama",
    n_ff_shared: 0,
};

pub const MISTRAL_7B: Shape = shape("Mistral-7B", 32, 4096, 14336, 32, 8, 32768, 32768, false);
pub const LLAMA31_8B: Shape = shape("Llama-3.1-8B", 32, 4096, 14336, 32, 8, 128256, 131072, false);

/// Llama-3-70B (8,192 tokens trained), for published speed results; names pick Llama-3.3-70B.
pub const LLAMA3_70B: Shape = Shape { name: "Llama-3-70B", n_ctx_train: 8192, estimates: false, ..LLAMA33_70B };
const LLAMA33_70B: Shape = shape("Llama-3.3-70B", 80, 8192, 28672, 64, 8, 128256, 131072, false);

/// Typical shapes by size (real models' hyperparameters; docs/ESTIMATES.md lists their sources).
pub const TINYLLAMA_1B: Shape = shape("TinyLlama-1.1B", 22, 2048, 5632, 32, 4, 32000, 2048, false);
pub const LLAMA32_3B: Shape = shape("Llama-3.2-3B", 28, 3072, 8192, 24, 8, 128256, 131072, true);
pub const LLAMA2_7B: Shape = shape("Llama-2-7B", 32, 4096, 11008, 32, 32, 32000, 4096, false);
pub const LLAMA2_13B: Shape = shape("Llama-2-13B", 40, 5120, 13824, 40, 40, 32000, 4096, false);
pub const QWEN25_14B: Shape = shape("Qwen2.5-14B", 48, 5120, 13824, 40, 8, 152064, 32768, false);
pub const PHI4: Shape = shape("Phi-4", 40, 5120, 17920, 40, 10, 100352, 16384, false);
pub const GEMMA3_12B: Shape = gemma3("Gemma-3-12B", 48, 3840, 15360, 16, 8, 256);

/// Every shape run-fit knows, in one table: real models' (name estimates pick among those marked
/// `estimates`), then the small ones tests and the generator use.
pub const SHAPES: &[Shape] = &[
    shape("SmolLM2-135M", 30, 576, 1536, 9, 3, 49152, 8192, true),
    shape("SmolLM2-360M", 32, 960, 2560, 15, 5, 49152, 8192, true),
    shape("Qwen2.5-0.5B", 24, 896, 4864, 14, 2, 151936, 32768, true),
    TINYLLAMA_1B,
    shape("Llama-3.2-1B", 16, 2048, 8192, 32, 8, 128256, 131072, true),
    // The GGUF files of Qwen2.5-1.5B carry their own output matrix (the hardening issue measured one).
    shape("Qwen2.5-1.5B", 28, 1536, 8960, 12, 2, 151936, 32768, false),
    shape("Qwen2.5-3B", 36, 2048, 11008, 16, 2, 151936, 32768, true),
    LLAMA32_3B,
    shape("Phi-3-mini", 32, 3072, 8192, 32, 32, 32064, 4096, false),
    LLAMA2_7B,
    MISTRAL_7B,
    shape("Qwen2.5-7B", 28, 3584, 18944, 28, 4, 152064, 32768, false),
    // Qwen2.5-Math-7B's shape with its 131,072-token context
    shape("DeepSeek-R1-Distill-Qwen-7B", 28, 3584, 18944, 28, 4, 152064, 131072, false),
    LLAMA3_8B,
    LLAMA31_8B,
    LLAMA2_13B,
    QWEN25_14B,
    PHI4,
    shape("Qwen2.5-32B", 64, 5120, 27648, 40, 8, 152064, 32768, false),
    shape("CodeLlama-34B", 48, 8192, 22016, 64, 8, 32000, 16384, false),
    LLAMA2_70B,
    LLAMA33_70B,
    LLAMA3_70B,
    shape("Falcon-180B-like", 80, 14848, 39680, 232, 8, 65024, 2048, false),
    shape("Llama-3.1-405B", 126, 16384, 53248, 128, 8, 128256, 131072, false),
    gemma3("Gemma-3-4B", 34, 2560, 10240, 8, 4, 256),
    GEMMA3_12B,
    gemma3("Gemma-3-27B", 62, 5376, 21504, 32, 16, 128),
    // mixtures of experts, chosen when the name says `NxMb` or `…-aNb`
    MIXTRAL_8X7B,
    Shape {
        name: "Mixtral-8x22B",
        n_layer: 56,
        n_embd: 6144,
        n_ff: 16384,
        n_head: 48,
        n_head_kv: 8,
        n_vocab: 32768,
        n_ctx_train: 65536,
        n_expert: 8,
        n_expert_used: 2,
        tied_embedding: false,
        head_dim: 0,
        sliding_window: 0,
        estimates: true,
        arch: "llama",
        n_ff_shared: 0,
    },
    QWEN3_30B_A3B,
    moe("Qwen3-235B-A22B", "llama", 94, 4096, 1536, 0, 64, 4, 128, 8, 151936, 40960),
    // gpt-oss: 64 heads of 64, sliding window of 128 tokens on every other layer (docs/ESTIMATES.md)
    Shape { name: "gpt-oss-20b", n_layer: 24, n_expert: 32, n_expert_used: 4, ..GPT_OSS },
    Shape { name: "gpt-oss-120b", n_layer: 36, n_expert: 128, n_expert_used: 4, ..GPT_OSS },
    moe("GLM-4.5-Air", "qwen2moe", 46, 4096, 1408, 1408, 96, 8, 128, 8, 151552, 131072),
    moe("Llama-4-Scout-17B-16E", "qwen2moe", 48, 5120, 8192, 8192, 40, 8, 16, 1, 202048, 131072),
    moe("Qwen3-Next-80B-A3B", "qwen2moe", 48, 2048, 512, 512, 16, 2, 512, 10, 151936, 262144),
    // DeepSeek-V3: 61 layers, the first 3 dense; in bytes about 59 MoE layers (MLA: one KV head)
    moe("DeepSeek-V3", "deepseek2", 59, 7168, 2048, 2048, 128, 1, 256, 8, 129280, 163840),
    // for tests and the generator only
    GEMMA3_1B,
    MOE_TINY,
    MOE_MIXTRAL_MINI,
    MOE_QWEN_MINI,
    TINY,
    MICRO,
    SWA_TINY,
];

#[allow(clippy::too_many_arguments)]
const fn shape(
    name: &'static str,
    n_layer: u32,
    n_embd: u64,
    n_ff: u64,
    n_head: u64,
    n_head_kv: u64,
    n_vocab: u64,
    n_ctx_train: u64,
    tied_embedding: bool,
) -> Shape {
    Shape {
        name,
        n_layer,
        n_embd,
        n_ff,
        n_head,
        n_head_kv,
        n_vocab,
        n_ctx_train,
        n_expert: 0,
        n_expert_used: 0,
        tied_embedding,
        head_dim: 0,
        sliding_window: 0,
        estimates: true,
        arch: "llama",
        n_ff_shared: 0,
    }
}

/// Gemma 3 (4B and up): 5 sliding-window layers of 1024 tokens to 1 global, a tied 262,144 vocabulary,
/// 131,072 tokens trained.
const fn gemma3(
    name: &'static str,
    n_layer: u32,
    n_embd: u64,
    n_ff: u64,
    n_head: u64,
    n_head_kv: u64,
    head_dim: u64,
) -> Shape {
    Shape {
        name,
        n_layer,
        n_embd,
        n_ff,
        n_head,
        n_head_kv,
        n_vocab: 262144,
        n_ctx_train: 131072,
        n_expert: 0,
        n_expert_used: 0,
        tied_embedding: true,
        head_dim,
        sliding_window: 1024,
        estimates: true,
        arch: "gemma3",
        n_ff_shared: 0,
    }
}

/// A mixture of experts of real hyperparameters (docs/ESTIMATES.md gives the sources).
#[allow(clippy::too_many_arguments)]
const fn moe(
    name: &'static str,
    arch: &'static str,
    n_layer: u32,
    n_embd: u64,
    n_ff: u64,
    n_ff_shared: u64,
    n_head: u64,
    n_head_kv: u64,
    n_expert: u64,
    n_expert_used: u64,
    n_vocab: u64,
    n_ctx_train: u64,
) -> Shape {
    Shape {
        n_expert,
        n_expert_used,
        head_dim: 128,
        arch,
        n_ff_shared,
        ..shape(name, n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab, n_ctx_train, false)
    }
}

/// Parameters of a shape (weights of every matrix, embeddings included).
pub fn params(s: &Shape) -> f64 {
    let (e, f, v) = (s.n_embd as f64, s.n_ff as f64, s.n_vocab as f64);
    let head_dim = s.head_dim() as f64;
    let attn = 2.0 * e * head_dim * s.n_head as f64 + 2.0 * e * head_dim * s.n_head_kv as f64;
    let ffn = 3.0 * e * f * s.n_expert.max(1) as f64 + 3.0 * e * s.n_ff_shared as f64;
    let embeddings = if s.tied_embedding { v * e } else { 2.0 * v * e };
    s.n_layer as f64 * (attn + ffn) + embeddings
}

/// The shape named `name`, ignoring case, dashes, dots and underscores (`llama3-8b` is Llama-3-8B).
pub fn by_name(name: &str) -> Option<&'static Shape> {
    let key = |n: &str| n.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    SHAPES.iter().find(|s| key(s.name) == key(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_names_find_their_shapes() {
        assert_eq!(by_name("llama3-8b").map(|s| s.name), Some("Llama-3-8B"));
        assert_eq!(by_name("mixtral-8x7b").map(|s| s.name), Some("Mixtral-8x7B"));
        assert_eq!(by_name("gemma3-1b").map(|s| s.name), Some("Gemma-3-1B"));
        assert_eq!(by_name("swa-tiny").map(|s| s.name), Some("swa-tiny"));
        assert!(by_name("llama3-9b").is_none());
        let mut names: Vec<_> = SHAPES.iter().map(|s| s.name.to_ascii_lowercase()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SHAPES.len(), "one name, one shape");
    }
}
