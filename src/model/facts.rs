//! What the memory model needs to know about a model, taken from a GGUF header.
//!
//! Hyperparameters are read generically from `{arch}.*` keys; only what really differs between
//! architectures is special-cased: sliding-window layer patterns, MLA (DeepSeek) and recurrent state.

use std::collections::BTreeMap;

use crate::model::archs;
use crate::model::gguf::{GgmlType, Model, TensorInfo, Value};

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error(
        "architecture '{0}' is not supported by the bundled llama.cpp; use a model of a supported architecture (llama, qwen2, gemma3, …) or a newer run-fit"
    )]
    UnknownArchitecture(String),
    #[error("the GGUF header has no {0}; the file was not written by a llama.cpp converter, re-convert the model")]
    MissingKey(String),
    #[error("{key} is {value}, which is impossible; the file is corrupt, fetch the model again")]
    BadValue { key: String, value: String },
}

/// Sliding-window attention: `layers[i]` is true for a layer that only attends to the last `window_tokens`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlidingWindow {
    pub window_tokens: u64,
    pub layers: Vec<bool>,
}

/// Weight bytes as llama.cpp places them: per repeating layer, the input layer (always on the CPU) and
/// the output layer (offloaded as the last "layer").
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub layer_bytes: Vec<u64>,
    /// token_embd and anything else outside `blk.N.` that is not the output head.
    pub input_bytes: u64,
    /// output + output_norm. When the embedding is tied (no output.weight), llama.cpp duplicates
    /// token_embd into the output layer, so it is counted here too: `tied_embedding_bytes` of it.
    pub output_bytes: u64,
    pub tied_embedding_bytes: u64,
    /// Of `layer_bytes` / `output_bytes`: the tensors llama.cpp's CPU backend repacks for its x86 AVX2
    /// kernels when they stay on the CPU (`CPU_REPACK`, a second copy in the rearranged layout).
    pub layer_repack_bytes: Vec<u64>,
    pub output_repack_bytes: u64,
    /// A tied embedding that the output layer multiplies by is repacked for that on the CPU: a copy
    /// of token_embd beside its mapping.
    pub tied_repack_bytes: u64,
    /// Where each tensor lies in its file, for the range llama.cpp maps (`footprint::mapped_bytes`).
    pub spans: Vec<Span>,
}

/// Which layer a tensor belongs to, as llama.cpp places them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// token_embd and the rest outside `blk.N.` that is not the output head: always on the CPU.
    Input,
    Layer(u32),
    /// The output head (and layers past block_count): offloaded as the last "layer".
    Output,
}

/// One tensor's place in its file: [start, end) in the data region of shard `shard`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The tensor's name: `-ot` patterns match it.
    pub name: String,
    pub owner: Owner,
    pub kind: TensorKind,
    pub shard: u32,
    pub start: u64,
    pub end: u64,
    /// The x86 AVX2 CPU backend repacks it when it is CPU-resident (`repacked_on_x86`).
    pub repacked: bool,
}

impl Span {
    pub fn bytes(&self) -> u64 {
        self.end - self.start
    }

    /// What the CPU backend's repack buffer takes for it (rounded up to its 32-byte alignment).
    pub fn repack_bytes(&self) -> u64 {
        if self.repacked { self.bytes().next_multiple_of(32) } else { 0 }
    }
}

/// What a tensor is to a mixture-of-experts placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// Attention, norms, the router, dense feed-forward: read by every token.
    Dense,
    /// A stack of routed experts (`ffn_{gate,up,down,gate_up}_exps`, `_chexps`): a token reads only
    /// the `n_expert_used` it is routed to.
    RoutedExperts,
    /// Shared experts (`…_shexp`): read by every token.
    SharedExperts,
}

impl TensorKind {
    /// llama.cpp's own test (`LLM_FFN_EXPS_REGEX`, `\.ffn_(up|down|gate_up|gate)_(ch|)exps`), and `_shexp`.
    pub fn of(name: &str) -> TensorKind {
        let routed = ["up", "down", "gate_up", "gate"]
            .iter()
            .any(|part| ["_exps", "_chexps"].iter().any(|tail| name.contains(&format!(".ffn_{part}{tail}"))));
        if routed {
            TensorKind::RoutedExperts
        } else if name.contains("_shexp") {
            TensorKind::SharedExperts
        } else {
            TensorKind::Dense
        }
    }
}

impl Weights {
    /// Bytes of tensor data in the file (a tied embedding once).
    pub fn file_bytes(&self) -> u64 {
        self.layer_bytes.iter().sum::<u64>() + self.input_bytes + self.output_bytes - self.tied_embedding_bytes
    }

    /// Bytes of each layer's tensors of `kind`.
    pub fn layer_bytes_of(&self, kind: TensorKind) -> Vec<u64> {
        let mut bytes = vec![0; self.layer_bytes.len()];
        for s in self.spans.iter().filter(|s| s.kind == kind) {
            if let Owner::Layer(l) = s.owner {
                bytes[l as usize] += s.bytes();
            }
        }
        bytes
    }

    /// Whether any layer has routed experts.
    pub fn has_routed_experts(&self) -> bool {
        self.spans.iter().any(|s| s.kind == TensorKind::RoutedExperts)
    }
}

/// Recurrent (Mamba, RWKV) layers keep a fixed f32 state per sequence instead of a KV cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrent {
    pub state_bytes_per_seq: u64,
    pub layers: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelFacts {
    pub architecture: String,
    pub name: Option<String>,
    pub n_layer: u32,
    pub n_embd: u64,
    pub n_vocab: u64,
    pub n_ff: u64,
    pub n_head: Vec<u64>,
    pub n_head_kv: Vec<u64>,
    /// Elements per head cached for K and V (MLA: the compressed latent; V is then 0).
    pub head_dim_k: u64,
    pub head_dim_v: u64,
    pub n_ctx_train: u64,
    pub sliding_window: Option<SlidingWindow>,
    pub n_expert: u64,
    pub n_expert_used: u64,
    /// Width of the shared experts' feed-forward (from `ffn_up_shexp`'s shape); 0: none.
    pub n_ff_shared: u64,
    pub recurrent: Option<Recurrent>,
    /// The most common weight type of the 2-D tensors, e.g. "Q4_K" for a Q4_K_M file.
    pub dominant_type: String,
    pub file_type: Option<String>,
    pub params: u64,
    pub weights: Weights,
}

impl ModelFacts {
    pub fn bits_per_weight(&self) -> f64 {
        self.weights.file_bytes() as f64 * 8.0 / self.params.max(1) as f64
    }
}

/// Extract the facts from a parsed model.
pub fn from_model(model: &Model) -> Result<ModelFacts, FactsError> {
    let md = &model.metadata;
    let arch = md
        .get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| FactsError::MissingKey("general.architecture".into()))?
        .to_string();
    if !archs::is_known(&arch) {
        return Err(FactsError::UnknownArchitecture(arch));
    }
    let key = |k: &str| format!("{arch}.{k}");
    let n_layer = bounded(required_u64(md, &key("block_count"))?, &key("block_count"), 4096)?;
    if n_layer == 0 {
        return Err(FactsError::BadValue { key: key("block_count"), value: "0".into() });
    }
    let n_layer_usize = n_layer as usize;
    let n_embd = bounded(required_u64(md, &key("embedding_length"))?, &key("embedding_length"), 1 << 17)?;
    let Attention { n_head, n_head_kv, head_dim_k, head_dim_v } = attention(md, &arch, n_layer_usize, n_embd)?;

    let n_ff = per_layer(md, &key("feed_forward_length"), n_layer_usize)?
        .and_then(|v| v.into_iter().max())
        .unwrap_or(4 * n_embd);
    let n_ff = bounded(n_ff, &key("feed_forward_length"), 1 << 22)?;
    let n_vocab = match md.get("tokenizer.ggml.tokens") {
        Some(Value::Array { len, .. }) => *len,
        _ => optional_u64(md, &key("vocab_size")).unwrap_or(0),
    };
    let sliding_window = sliding_window(md, &arch, n_layer_usize);
    let recurrent = recurrent(md, &arch, &n_head_kv, n_embd);
    let weights = weights(&model.tensors, n_layer_usize);
    let n_vocab = if n_vocab == 0 { embedding_rows(&model.tensors).unwrap_or(0) } else { n_vocab };
    let n_vocab = bounded(n_vocab, "tokenizer.ggml.tokens", 1 << 24)?;
    let n_ctx_train =
        bounded(optional_u64(md, &key("context_length")).unwrap_or(4096), &key("context_length"), 1 << 24)?;
    let n_expert = bounded(optional_u64(md, &key("expert_count")).unwrap_or(0), &key("expert_count"), 1 << 12)?;
    let n_expert_used =
        bounded(optional_u64(md, &key("expert_used_count")).unwrap_or(0), &key("expert_used_count"), 1 << 12)?;
    if let Some(sw) = &sliding_window {
        bounded(sw.window_tokens, &key("attention.sliding_window"), 1 << 24)?;
    }

    Ok(ModelFacts {
        name: md.get("general.name").and_then(Value::as_str).map(str::to_string),
        n_layer: n_layer as u32,
        n_embd,
        n_vocab,
        n_ff,
        n_head,
        n_head_kv,
        head_dim_k,
        head_dim_v,
        n_ctx_train,
        sliding_window,
        n_expert,
        n_expert_used,
        n_ff_shared: model
            .tensors
            .iter()
            .filter(|t| t.name.ends_with("ffn_up_shexp.weight"))
            .filter_map(|t| t.dims.get(1).copied())
            .max()
            .unwrap_or(0),
        recurrent,
        dominant_type: dominant_type(&model.tensors),
        file_type: optional_u64(md, "general.file_type").map(file_type_name),
        params: model.tensors.iter().map(TensorInfo::elements).sum(),
        weights,
        architecture: arch,
    })
}

/// Heads per layer and the elements each K and V row holds.
struct Attention {
    n_head: Vec<u64>,
    n_head_kv: Vec<u64>,
    head_dim_k: u64,
    head_dim_v: u64,
}

fn attention(
    md: &BTreeMap<String, Value>,
    arch: &str,
    n_layer_usize: usize,
    n_embd: u64,
) -> Result<Attention, FactsError> {
    let key = |k: &str| format!("{arch}.{k}");
    let n_head = per_layer(md, &key("attention.head_count"), n_layer_usize)?.unwrap_or_else(|| vec![0; n_layer_usize]);
    let n_head_kv = per_layer(md, &key("attention.head_count_kv"), n_layer_usize)?.unwrap_or_else(|| n_head.clone());
    for (heads, name) in [(&n_head, "attention.head_count"), (&n_head_kv, "attention.head_count_kv")] {
        bounded(heads.iter().copied().max().unwrap_or(0), &key(name), 1 << 12)?;
    }
    let n_head_max = n_head.iter().copied().max().unwrap_or(0);
    let default_head_dim = n_embd.checked_div(n_head_max).unwrap_or(0);
    let head_dim = |name: &str| bounded(optional_u64(md, &key(name)).unwrap_or(default_head_dim), &key(name), 1 << 14);
    let mut head_dim_k = head_dim("attention.key_length")?;
    let mut head_dim_v = head_dim("attention.value_length")?;
    let mut n_head_kv = n_head_kv;

    // MLA caches the compressed latent (kv_lora_rank) plus the rope part, once per token and layer, no V.
    let mla_kv_lora_rank =
        optional_u64(md, &key("attention.kv_lora_rank")).filter(|_| md.contains_key(&key("attention.key_length_mla")));
    if let Some(rank) = mla_kv_lora_rank {
        head_dim_k = bounded(rank, &key("attention.kv_lora_rank"), 1 << 14)?
            + bounded(
                optional_u64(md, &key("rope.dimension_count")).unwrap_or(64),
                &key("rope.dimension_count"),
                1 << 14,
            )?;
        head_dim_v = 0;
        n_head_kv = vec![1; n_layer_usize];
    }

    Ok(Attention { n_head, n_head_kv, head_dim_k, head_dim_v })
}

fn required_u64(md: &BTreeMap<String, Value>, key: &str) -> Result<u64, FactsError> {
    match md.get(key) {
        None => Err(FactsError::MissingKey(key.to_string())),
        Some(v) => v.as_u64().ok_or_else(|| FactsError::BadValue { key: key.to_string(), value: format!("{v:?}") }),
    }
}

/// Hyperparameters far beyond any real model are corruption; bounding them keeps every product of
/// them in the memory model inside u64.
fn bounded(value: u64, key: &str, max: u64) -> Result<u64, FactsError> {
    if value > max {
        return Err(FactsError::BadValue { key: key.to_string(), value: value.to_string() });
    }
    Ok(value)
}

fn optional_u64(md: &BTreeMap<String, Value>, key: &str) -> Option<u64> {
    md.get(key).and_then(Value::as_u64)
}

/// A per-layer hyperparameter: a scalar for every layer, or an array with one entry per layer.
fn per_layer(md: &BTreeMap<String, Value>, key: &str, n_layer: usize) -> Result<Option<Vec<u64>>, FactsError> {
    let bad = |v: &Value| FactsError::BadValue { key: key.to_string(), value: format!("{v:?}") };
    match md.get(key) {
        None => Ok(None),
        Some(Value::Array { items, .. }) => {
            if items.len() < n_layer {
                return Err(FactsError::BadValue {
                    key: key.to_string(),
                    value: format!("an array of {} for {n_layer} layers", items.len()),
                });
            }
            items[..n_layer].iter().map(|v| v.as_u64().ok_or_else(|| bad(v))).collect::<Result<_, _>>().map(Some)
        }
        Some(v) => v.as_u64().map(|x| Some(vec![x; n_layer])).ok_or_else(|| bad(v)),
    }
}

/// llama.cpp's default pattern per architecture (`load_swa_pattern` calls in src/models/*.cpp):
/// (period, dense_first). A `sliding_window_pattern` key in the file overrides it.
fn default_swa_pattern(arch: &str) -> Option<(u64, bool)> {
    Some(match arch {
        "gemma2" | "gpt-oss" => (2, false),
        "gemma3" | "gemma-embedding" => (6, false),
        "gemma3n" => (5, false),
        "cohere2" | "afmoe" | "exaone4" | "exaone-moe" | "llama4" | "mellum" | "olmo2" | "muse-glimmer" => (4, false),
        "cohere2moe" | "smallthinker" | "laguna" => (4, true),
        "plamo3" => (8, false),
        "phi3" => (1, false),
        _ => return None,
    })
}

fn sliding_window(md: &BTreeMap<String, Value>, arch: &str, n_layer: usize) -> Option<SlidingWindow> {
    let window_tokens = optional_u64(md, &format!("{arch}.attention.sliding_window")).filter(|&w| w > 0)?;
    let pattern_key = format!("{arch}.attention.sliding_window_pattern");
    let layers = match md.get(&pattern_key) {
        Some(Value::Array { items, .. }) if items.len() >= n_layer => {
            items[..n_layer].iter().map(|v| v.as_u64().unwrap_or(0) != 0).collect()
        }
        other => {
            let (default_period, dense_first) = default_swa_pattern(arch)?;
            let period = other.and_then(Value::as_u64).unwrap_or(default_period);
            // Mirrors llama_hparams::set_swa_pattern.
            (0..n_layer as u64)
                .map(|il| {
                    if dense_first { period == 0 || il % period != 0 } else { period == 0 || il % period < period - 1 }
                })
                .collect()
        }
    };
    Some(SlidingWindow { window_tokens, layers })
}

fn recurrent(md: &BTreeMap<String, Value>, arch: &str, n_head_kv: &[u64], n_embd: u64) -> Option<Recurrent> {
    let key = |k: &str| optional_u64(md, &format!("{arch}.{k}"));
    let f32_bytes = 4;
    let state_bytes_per_seq = if let (Some(d_conv), Some(d_inner), Some(d_state)) =
        (key("ssm.conv_kernel"), key("ssm.inner_size"), key("ssm.state_size"))
    {
        // Mamba: conv state (d_conv - 1) × (d_inner + 2·groups·d_state), ssm state d_state × d_inner.
        let groups = key("ssm.group_count").unwrap_or(0);
        (d_conv.saturating_sub(1) * (d_inner + 2 * groups * d_state) + d_state * d_inner) * f32_bytes
    } else if let Some(head_size) = key("wkv.head_size") {
        // RWKV: two token-shift rows and the wkv state (n_embd × head_size).
        n_embd.saturating_mul(head_size.saturating_add(2)).saturating_mul(f32_bytes)
    } else {
        return None;
    };
    // Hybrids (Jamba, Granite-hybrid, …) mark their recurrent layers with zero KV heads.
    let any_attention = n_head_kv.iter().any(|&h| h > 0);
    let layers = n_head_kv.iter().map(|&h| !any_attention || h == 0).collect();
    Some(Recurrent { state_bytes_per_seq, layers })
}

fn layer_index(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// Whether llama.cpp's x86 AVX2 CPU backend repacks this tensor when it is CPU-resident
/// (ggml-cpu/repack.cpp, `ggml_repack_get_optimal_repack_type`): a matrix (or a 3-D expert stack) used
/// by a matrix product, of Q4_0, Q4_K, IQ4_NL or MXFP4, whose rows come in eights. Q2_K needs AVX-512,
/// which llama.cpp's static build here never uses; Q8_0, Q5_K and Q6_K repack on ARM only. The input
/// embedding is looked up row by row, never multiplied: it is not repacked.
pub fn repacked_on_x86(t: &TensorInfo) -> bool {
    repackable(t) && t.name.ends_with(".weight") && t.name != "token_embd.weight"
}

/// The type and shape the x86 repack kernels take.
fn repackable(t: &TensorInfo) -> bool {
    const REPACKED: &[&str] = &["Q4_0", "Q4_K", "IQ4_NL", "MXFP4"];
    REPACKED.contains(&t.ggml_type.name) && matches!(t.dims.len(), 2 | 3) && t.dims[1].is_multiple_of(8)
}

/// The repack buffer rounds each tensor up to its 32-byte alignment.
fn repack_bytes(t: &TensorInfo) -> u64 {
    if repacked_on_x86(t) { t.size_bytes.next_multiple_of(32) } else { 0 }
}

fn weights(tensors: &[TensorInfo], n_layer: usize) -> Weights {
    let mut layer_bytes = vec![0u64; n_layer];
    let mut layer_repack_bytes = vec![0u64; n_layer];
    let mut output_repack_bytes = 0;
    let mut spans = Vec::with_capacity(tensors.len());
    let (mut input_bytes, mut output_bytes, mut has_output) = (0u64, 0u64, false);
    let mut embd_bytes = 0;
    let mut embd_repack_bytes = 0;
    for t in tensors {
        let owner = match layer_index(&t.name) {
            Some(il) if il < n_layer => Owner::Layer(il as u32),
            Some(_) => Owner::Output,
            None if t.name.starts_with("output.") || t.name.starts_with("output_norm") => Owner::Output,
            None => Owner::Input,
        };
        let end = t.offset_bytes.saturating_add(t.size_bytes);
        spans.push(Span {
            name: t.name.clone(),
            owner,
            kind: TensorKind::of(&t.name),
            shard: t.shard,
            start: t.offset_bytes,
            end,
            repacked: repacked_on_x86(t),
        });
        match owner {
            Owner::Layer(il) => {
                layer_bytes[il as usize] += t.size_bytes;
                layer_repack_bytes[il as usize] += repack_bytes(t);
            }
            // With the output head: layers past block_count (e.g. next-token-prediction heads) too.
            Owner::Output => {
                has_output |= t.name == "output.weight";
                output_bytes += t.size_bytes;
                output_repack_bytes += repack_bytes(t);
            }
            Owner::Input => {
                if t.name == "token_embd.weight" {
                    embd_bytes = t.size_bytes;
                    embd_repack_bytes = if repackable(t) { t.size_bytes.next_multiple_of(32) } else { 0 };
                }
                input_bytes += t.size_bytes;
            }
        }
    }
    let tied_embedding_bytes = if has_output { 0 } else { embd_bytes };
    let tied_repack_bytes = if has_output { 0 } else { embd_repack_bytes };
    output_bytes += tied_embedding_bytes;
    Weights {
        layer_bytes,
        input_bytes,
        output_bytes,
        tied_embedding_bytes,
        layer_repack_bytes,
        output_repack_bytes,
        tied_repack_bytes,
        spans,
    }
}

fn embedding_rows(tensors: &[TensorInfo]) -> Option<u64> {
    tensors.iter().find(|t| t.name == "token_embd.weight").and_then(|t| t.dims.get(1).copied())
}

fn dominant_type(tensors: &[TensorInfo]) -> String {
    let mut bytes_by_type: BTreeMap<&str, u64> = BTreeMap::new();
    for t in tensors.iter().filter(|t| t.dims.len() >= 2) {
        *bytes_by_type.entry(t.ggml_type.name).or_default() += t.size_bytes;
    }
    bytes_by_type.into_iter().max_by_key(|&(_, b)| b).map(|(n, _)| n.to_string()).unwrap_or_else(|| "F32".into())
}

/// `general.file_type` → the name llama.cpp's quantize tool uses (llama_ftype).
/// The llama.cpp built-in chat template for a model file that carries none, by architecture (a
/// Gemma file without a template would otherwise get ChatML, and never stop talking).
pub fn fallback_chat_template(architecture: &str) -> &'static str {
    match architecture {
        "gemma" | "gemma2" | "gemma3" | "gemma3n" | "gemma-embedding" => "gemma",
        "phi3" => "phi3",
        "command-r" | "cohere2" => "command-r",
        "deepseek" => "deepseek",
        "deepseek2" => "deepseek2",
        "exaone" => "exaone3",
        "exaone4" => "exaone4",
        "chatglm" | "glm4" => "chatglm4",
        "minicpm" => "minicpm",
        "granite" | "granitemoe" => "granite",
        "rwkv6" | "rwkv7" => "rwkv-world",
        "llama4" => "llama4",
        "gpt-oss" => "gpt-oss",
        _ => "chatml",
    }
}

pub fn file_type_name(ftype: u64) -> String {
    let name = match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return format!("type {ftype}"),
    };
    name.to_string()
}

/// Look up a ggml type by name for cache types given on the command line (`-ctk q8_0`).
pub fn cache_type(name: &str) -> Option<GgmlType> {
    const ALLOWED: &[&str] = &["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"];
    ALLOWED.iter().any(|a| a.eq_ignore_ascii_case(name)).then(|| GgmlType::from_name(name)).flatten()
}

#[cfg(test)]
mod tests {

    #[test]
    fn expert_tensors_are_told_apart_as_llama_cpp_does() {
        for routed in ["blk.3.ffn_gate_exps.weight", "blk.0.ffn_down_exps.bias", "blk.9.ffn_gate_up_exps.weight"] {
            assert_eq!(TensorKind::of(routed), TensorKind::RoutedExperts, "{routed}");
        }
        assert_eq!(TensorKind::of("blk.2.ffn_up_chexps.weight"), TensorKind::RoutedExperts);
        assert_eq!(TensorKind::of("blk.2.ffn_up_shexp.weight"), TensorKind::SharedExperts);
        assert_eq!(TensorKind::of("blk.2.ffn_gate_inp_shexp.weight"), TensorKind::SharedExperts);
        for dense in ["blk.2.ffn_gate_inp.weight", "blk.2.ffn_up.weight", "blk.2.attn_q.weight", "output.weight"] {
            assert_eq!(TensorKind::of(dense), TensorKind::Dense, "{dense}");
        }
    }

    #[test]
    fn files_without_a_template_get_their_family_s_template() {
        assert_eq!(fallback_chat_template("gemma3"), "gemma");
        assert_eq!(fallback_chat_template("phi3"), "phi3");
        assert_eq!(fallback_chat_template("llama"), "chatml");
    }

    use super::*;
    use crate::model::gguf::writer::{Kv, TensorSpec, write_header};

    /// Facts of a header with `kvs` and a 4-layer F16 tensor set.
    fn facts_of(arch: &str, kvs: Vec<(&str, Kv)>) -> Result<ModelFacts, FactsError> {
        let mut all: Vec<(String, Kv)> = vec![("general.architecture".into(), Kv::Str(arch.into()))];
        all.extend(kvs.into_iter().map(|(k, v)| (k.replace("{a}", arch), v)));
        let f16 = GgmlType::from_name("F16").unwrap();
        let mut tensors = vec![TensorSpec { name: "token_embd.weight".into(), dims: vec![64, 100], ggml_type: f16 }];
        for i in 0..4 {
            tensors.push(TensorSpec { name: format!("blk.{i}.w.weight"), dims: vec![64, 64], ggml_type: f16 });
        }
        let (header, data) = write_header(&all, &tensors);
        let h = crate::model::gguf::parse(&header[..], header.len() as u64 + data).unwrap();
        from_model(&Model { path: "t".into(), metadata: h.metadata, tensors: h.tensors, file_bytes: 0, shards: 1 })
    }

    #[test]
    fn mla_caches_the_latent_and_no_v() {
        let f = facts_of(
            "deepseek2",
            vec![
                ("{a}.block_count", Kv::U32(4)),
                ("{a}.embedding_length", Kv::U32(64)),
                ("{a}.attention.head_count", Kv::U32(16)),
                ("{a}.attention.head_count_kv", Kv::U32(16)),
                ("{a}.attention.kv_lora_rank", Kv::U32(512)),
                ("{a}.attention.key_length_mla", Kv::U32(192)),
                ("{a}.rope.dimension_count", Kv::U32(64)),
            ],
        )
        .unwrap();
        // FIELD-NOTES §5: 576 elements per token per layer, no V.
        assert_eq!((f.head_dim_k, f.head_dim_v, f.n_head_kv[0]), (576, 0, 1));
        let bytes = crate::fit::footprint::kv_bytes_per_token(
            &f,
            crate::model::gguf::types::F16,
            crate::model::gguf::types::F16,
        );
        assert_eq!(bytes, 4.0 * 576.0 * 2.0);
    }

    #[test]
    fn mamba_state_is_fixed_and_hybrids_mark_their_recurrent_layers() {
        let ssm = |kv: Vec<(&'static str, Kv)>| {
            let mut v = vec![
                ("{a}.block_count", Kv::U32(4)),
                ("{a}.embedding_length", Kv::U32(64)),
                ("{a}.ssm.conv_kernel", Kv::U32(4)),
                ("{a}.ssm.inner_size", Kv::U32(128)),
                ("{a}.ssm.state_size", Kv::U32(16)),
            ];
            v.extend(kv);
            v
        };
        let mamba = facts_of("mamba", ssm(vec![])).unwrap();
        let r = mamba.recurrent.unwrap();
        // conv: 3 × 128 f32, ssm: 16 × 128 f32
        assert_eq!(r.state_bytes_per_seq, (3 * 128 + 16 * 128) * 4);
        assert!(r.layers.iter().all(|&x| x));
        let jamba = facts_of(
            "jamba",
            ssm(vec![
                ("{a}.attention.head_count", Kv::U32(8)),
                ("{a}.attention.head_count_kv", Kv::ArrU32(vec![0, 0, 8, 0])),
            ]),
        )
        .unwrap();
        assert_eq!(jamba.recurrent.unwrap().layers, vec![true, true, false, true]);
    }

    #[test]
    fn unknown_architectures_and_absurd_values_are_refused() {
        let err = facts_of("brainfart", vec![]).unwrap_err();
        assert!(matches!(err, FactsError::UnknownArchitecture(_)));
        let err = facts_of("llama", vec![("{a}.block_count", Kv::U32(4))]).unwrap_err();
        assert!(err.to_string().contains("llama.embedding_length"), "{err}");
        let err = facts_of("llama", vec![("{a}.block_count", Kv::U32(4)), ("{a}.embedding_length", Kv::U32(1 << 30))])
            .unwrap_err();
        assert!(matches!(err, FactsError::BadValue { .. }));
        // a head dimension near 2^32 times 4096 heads and a 2^24-token context would overflow u64
        let err = facts_of(
            "llama",
            vec![
                ("{a}.block_count", Kv::U32(4)),
                ("{a}.embedding_length", Kv::U32(64)),
                ("{a}.attention.key_length", Kv::U32(u32::MAX)),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("llama.attention.key_length"), "{err}");
    }

    #[test]
    fn gemma3_pattern_matches_llama_cpp() {
        let mut md = BTreeMap::new();
        md.insert("gemma3.attention.sliding_window".to_string(), Value::U32(512));
        let sw = sliding_window(&md, "gemma3", 12).unwrap();
        // five sliding layers, then one global, repeated
        let global: Vec<usize> = sw.layers.iter().enumerate().filter(|(_, s)| !**s).map(|(i, _)| i).collect();
        assert_eq!(global, vec![5, 11]);
        assert_eq!(sw.window_tokens, 512);
    }

    #[test]
    fn dense_first_pattern() {
        let mut md = BTreeMap::new();
        md.insert("cohere2moe.attention.sliding_window".to_string(), Value::U32(4096));
        let sw = sliding_window(&md, "cohere2moe", 8).unwrap();
        assert_eq!(sw.layers, vec![false, true, true, true, false, true, true, true]);
    }

    #[test]
    fn per_layer_arrays_and_scalars() {
        let mut md = BTreeMap::new();
        md.insert("a".to_string(), Value::U32(8));
        md.insert("b".to_string(), Value::Array { len: 3, items: vec![Value::I32(1), Value::I32(0), Value::I32(2)] });
        assert_eq!(per_layer(&md, "a", 3).unwrap(), Some(vec![8, 8, 8]));
        assert_eq!(per_layer(&md, "b", 3).unwrap(), Some(vec![1, 0, 2]));
        assert!(per_layer(&md, "b", 4).is_err());
        assert_eq!(per_layer(&md, "c", 3).unwrap(), None);
    }

    #[test]
    fn cache_types_are_the_ones_llama_cpp_accepts() {
        assert_eq!(cache_type("q8_0").unwrap().name, "Q8_0");
        assert_eq!(cache_type("F16").unwrap().name, "F16");
        assert!(cache_type("q4_k").is_none());
    }
}
