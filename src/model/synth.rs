//! Synthetic GGUF models of real architectures' shapes: the header of a Llama-3-8B-like or
//! Llama-2-70B-like file at Q4_K_M, with a vocabulary llama.cpp accepts. Written sparse (the data
//! region is a hole), so a 40 GB shape costs kilobytes of disk. Used by tests, the accuracy benchmark
//! and the `gguf-synth` tool; not part of run-fit's user interface.

use crate::model::gguf::GgmlType;
use crate::model::gguf::types::F32;
use crate::model::gguf::writer::{Kv, TensorSpec};
use crate::model::shapes::Shape;

/// Weight types of a file: the main type, and the higher-precision type llama.cpp's quantizer gives
/// some tensors (Q4_K_M: attn_v and ffn_down in some layers, and the output, get Q6_K).
#[derive(Debug, Clone, Copy)]
pub struct Quant {
    pub name: &'static str,
    pub base: GgmlType,
    pub more_bits: GgmlType,
    pub file_type: u32,
}

/// Every quantization run-fit can build: (name, main type, more-bits type, llama.cpp file type). The
/// more-bits type is what llama.cpp's quantizer gives attn_v, some ffn_down and the output.
const QUANTS: &[(&str, &str, &str, u32)] = &[
    ("F32", "F32", "F32", 0),
    ("F16", "F16", "F16", 1),
    ("Q4_0", "Q4_0", "Q4_0", 2),
    ("Q4_1", "Q4_1", "Q4_1", 3),
    ("Q8_0", "Q8_0", "Q8_0", 7),
    ("Q5_0", "Q5_0", "Q5_0", 8),
    ("Q5_1", "Q5_1", "Q5_1", 9),
    ("Q2_K", "Q2_K", "Q3_K", 10),
    ("Q3_K_S", "Q3_K", "Q3_K", 11),
    ("Q3_K_M", "Q3_K", "Q4_K", 12),
    ("Q3_K_L", "Q3_K", "Q5_K", 13),
    ("Q4_K_S", "Q4_K", "Q5_K", 14),
    ("Q4_K_M", "Q4_K", "Q6_K", 15),
    ("Q5_K_S", "Q5_K", "Q5_K", 16),
    ("Q5_K_M", "Q5_K", "Q6_K", 17),
    ("Q6_K", "Q6_K", "Q6_K", 18),
    ("IQ2_XXS", "IQ2_XXS", "Q2_K", 19),
    ("IQ2_XS", "IQ2_XS", "Q2_K", 20),
    ("IQ3_XXS", "IQ3_XXS", "IQ3_S", 23),
    ("IQ1_S", "IQ1_S", "IQ2_XXS", 24),
    ("IQ4_NL", "IQ4_NL", "IQ4_NL", 25),
    ("IQ3_S", "IQ3_S", "IQ3_S", 26),
    ("IQ4_XS", "IQ4_XS", "IQ4_XS", 30),
    ("BF16", "BF16", "BF16", 32),
    ("MXFP4", "MXFP4", "Q8_0", 38),
];

pub fn quant(name: &str) -> Option<Quant> {
    let ty = |n| GgmlType::from_name(n).expect("known type");
    let upper = name.to_ascii_uppercase();
    QUANTS.iter().find(|q| q.0 == upper).map(|&(name, base, more, file_type)| Quant {
        name,
        base: ty(base),
        more_bits: ty(more),
        file_type,
    })
}

/// llama.cpp's `use_more_bits` (src/llama-quant.cpp): the first and last eighth, and every third layer between.
fn use_more_bits(i: u32, n: u32) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// Metadata and tensor list of `shape` at `quant`.
pub fn model(shape: &Shape, q: Quant) -> (Vec<(String, Kv)>, Vec<TensorSpec>) {
    let arch = shape.arch;
    let gemma = arch == "gemma3";
    let head_dim = shape.head_dim();
    let mut kvs = hyperparameters(shape, q);
    kvs.extend(vocabulary(shape.n_vocab));

    // A row that is not a whole number of the type's blocks cannot use it; llama.cpp's quantizer then
    // falls back to a type with 32-element blocks (Q8_0 here, the safe upper bound).
    let t = |name: String, dims: Vec<u64>, ggml_type: GgmlType| {
        let ggml_type = if dims[0].is_multiple_of(ggml_type.block_elems) {
            ggml_type
        } else {
            GgmlType::from_name("Q8_0").expect("known")
        };
        TensorSpec { name, dims, ggml_type }
    };
    let (e, ff, qd, kvd) = (shape.n_embd, shape.n_ff, shape.n_head * head_dim, shape.n_head_kv * head_dim);
    let mut tensors = vec![t("token_embd.weight".into(), vec![e, shape.n_vocab], q.base)];
    for i in 0..shape.n_layer {
        let more = if use_more_bits(i, shape.n_layer) { q.more_bits } else { q.base };
        let b = |s: &str| format!("blk.{i}.{s}");
        tensors.push(t(b("attn_norm.weight"), vec![e], F32));
        tensors.push(t(b("attn_q.weight"), vec![e, qd], q.base));
        tensors.push(t(b("attn_k.weight"), vec![e, kvd], q.base));
        tensors.push(t(b("attn_v.weight"), vec![e, kvd], more));
        tensors.push(t(b("attn_output.weight"), vec![qd, e], q.base));
        if gemma {
            // Gemma 3: per-head norms of Q and K, and norms after attention and after the feed-forward
            tensors.push(t(b("attn_q_norm.weight"), vec![head_dim], F32));
            tensors.push(t(b("attn_k_norm.weight"), vec![head_dim], F32));
            tensors.push(t(b("post_attention_norm.weight"), vec![e], F32));
            tensors.push(t(b("post_ffw_norm.weight"), vec![e], F32));
        }
        tensors.push(t(b("ffn_norm.weight"), vec![e], F32));
        if shape.n_expert > 0 {
            let x = shape.n_expert;
            tensors.push(t(b("ffn_gate_inp.weight"), vec![e, x], F32));
            tensors.push(t(b("ffn_gate_exps.weight"), vec![e, ff, x], q.base));
            tensors.push(t(b("ffn_up_exps.weight"), vec![e, ff, x], q.base));
            tensors.push(t(b("ffn_down_exps.weight"), vec![ff, e, x], more));
            let sh = shape.n_ff_shared;
            if sh > 0 {
                tensors.push(t(b("ffn_gate_inp_shexp.weight"), vec![e], F32));
                tensors.push(t(b("ffn_gate_shexp.weight"), vec![e, sh], q.base));
                tensors.push(t(b("ffn_up_shexp.weight"), vec![e, sh], q.base));
                tensors.push(t(b("ffn_down_shexp.weight"), vec![sh, e], more));
            }
        } else {
            tensors.push(t(b("ffn_gate.weight"), vec![e, ff], q.base));
            tensors.push(t(b("ffn_up.weight"), vec![e, ff], q.base));
            tensors.push(t(b("ffn_down.weight"), vec![ff, e], more));
        }
    }
    tensors.push(t("output_norm.weight".into(), vec![e], F32));
    if !shape.tied_embedding {
        tensors.push(t("output.weight".into(), vec![e, shape.n_vocab], q.more_bits));
    }
    (kvs, tensors)
}

/// The header's `{arch}.*` keys (and `general.*`) for `shape` at `q`.
fn hyperparameters(shape: &Shape, q: Quant) -> Vec<(String, Kv)> {
    let arch = shape.arch;
    let gemma = arch == "gemma3";
    let head_dim = shape.head_dim();
    let k = |s: &str| format!("{arch}.{s}");
    let mut kvs: Vec<(String, Kv)> = vec![
        ("general.architecture".into(), Kv::Str(arch.into())),
        ("general.name".into(), Kv::Str(format!("synthetic {} {}", shape.name, q.name))),
        ("general.file_type".into(), Kv::U32(q.file_type)),
        (k("block_count"), Kv::U32(shape.n_layer)),
        (k("context_length"), Kv::U32(shape.n_ctx_train as u32)),
        (k("embedding_length"), Kv::U32(shape.n_embd as u32)),
        (k("feed_forward_length"), Kv::U32(shape.n_ff as u32)),
        (k("attention.head_count"), Kv::U32(shape.n_head as u32)),
        (k("attention.head_count_kv"), Kv::U32(shape.n_head_kv as u32)),
        (k("rope.dimension_count"), Kv::U32(head_dim as u32)),
        (k("rope.freq_base"), Kv::F32(500000.0)),
        (k("attention.layer_norm_rms_epsilon"), Kv::F32(1e-5)),
        (k("vocab_size"), Kv::U32(shape.n_vocab as u32)),
    ];
    if gemma || shape.head_dim > 0 {
        kvs.push((k("attention.key_length"), Kv::U32(head_dim as u32)));
        kvs.push((k("attention.value_length"), Kv::U32(head_dim as u32)));
    }
    if shape.sliding_window > 0 {
        kvs.push((k("attention.sliding_window"), Kv::U32(shape.sliding_window as u32)));
    }
    if shape.n_expert > 0 {
        kvs.push((k("expert_count"), Kv::U32(shape.n_expert as u32)));
        kvs.push((k("expert_used_count"), Kv::U32(shape.n_expert_used as u32)));
        kvs.push((k("expert_feed_forward_length"), Kv::U32(shape.n_ff as u32)));
    }
    if shape.n_ff_shared > 0 {
        kvs.push((k("expert_shared_feed_forward_length"), Kv::U32(shape.n_ff_shared as u32)));
    }
    if arch == "deepseek2" {
        // MLA (DeepSeek-V3's config): the cache holds a 512-wide latent and a 64-wide rope part.
        kvs.push((k("attention.kv_lora_rank"), Kv::U32(512)));
        kvs.push((k("attention.key_length_mla"), Kv::U32(192)));
        kvs.retain(|(key, _)| key != &k("rope.dimension_count"));
        kvs.push((k("rope.dimension_count"), Kv::U32(64)));
    }
    kvs
}

/// A SentencePiece-style vocabulary llama.cpp accepts: <unk>, <s>, </s>, 256 byte tokens, then filler.
fn vocabulary(n_vocab: u64) -> Vec<(String, Kv)> {
    let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    let mut types = vec![2i32, 3, 3]; // unknown, control, control
    for b in 0..256 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6); // byte
    }
    let mut i = 0;
    while (tokens.len() as u64) < n_vocab {
        tokens.push(format!("\u{2581}t{i}"));
        types.push(1); // normal
        i += 1;
    }
    tokens.truncate(n_vocab as usize);
    types.truncate(n_vocab as usize);
    let scores = (0..tokens.len()).map(|i| -(i as f32)).collect();
    vec![
        ("tokenizer.ggml.model".into(), Kv::Str("llama".into())),
        ("tokenizer.ggml.tokens".into(), Kv::ArrStr(tokens)),
        ("tokenizer.ggml.scores".into(), Kv::ArrF32(scores)),
        ("tokenizer.ggml.token_type".into(), Kv::ArrI32(types)),
        ("tokenizer.ggml.bos_token_id".into(), Kv::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Kv::U32(2)),
        ("tokenizer.ggml.unknown_token_id".into(), Kv::U32(0)),
    ]
}

/// The facts of `shape` at `quant`, without touching the disk (for tests of the planner).
pub fn facts(shape: &Shape, quant_name: &str) -> crate::model::facts::ModelFacts {
    let (kvs, tensors) = model(shape, quant(quant_name).expect("known quant"));
    let (header, data_bytes) = crate::model::gguf::writer::write_header(&kvs, &tensors);
    let file_bytes = header.len() as u64 + data_bytes;
    // The data region is not read: parse the header bytes and declare the full file length.
    let h = crate::model::gguf::parse(&header[..], file_bytes).expect("synthetic header parses");
    let model = crate::model::gguf::Model {
        path: shape.name.into(),
        metadata: h.metadata,
        tensors: h.tensors,
        file_bytes,
        shards: 1,
    };
    crate::model::facts::from_model(&model).expect("synthetic facts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::shapes::*;

    #[test]
    fn the_gemma_like_shape_has_gemma_3_s_windows() {
        let f = facts(&GEMMA3_1B, "Q4_K_M");
        assert_eq!(f.architecture, "gemma3");
        let w = f.sliding_window.expect("sliding window");
        assert_eq!(w.window_tokens, 512);
        // five local layers to one global, as Gemma 3
        assert_eq!(w.layers.iter().filter(|&&local| !local).count(), 26 / 6);
        assert_eq!((f.head_dim_k, f.n_head_kv[0]), (256, 1));
    }

    #[test]
    fn q4_k_m_shapes_weigh_what_real_files_weigh() {
        // FIELD-NOTES §6: Llama-3-70B Q4_K_M is 39.6 GiB; real Llama-2-70B Q4_K_M files are ~41.4 GB and
        // Llama-3-8B Q4_K_M 4.92 GB (4.89 bits per weight).
        let bytes = |s: &Shape| model(s, quant("Q4_K_M").unwrap()).1.iter().map(TensorSpec::bytes).sum::<u64>();
        let gb = |b: u64| b as f64 / 1e9;
        assert!((gb(bytes(&LLAMA3_8B)) - 4.92).abs() < 0.1, "{}", gb(bytes(&LLAMA3_8B)));
        assert!((gb(bytes(&LLAMA2_70B)) - 41.4).abs() < 0.6, "{}", gb(bytes(&LLAMA2_70B)));
    }
}
