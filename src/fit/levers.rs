//! What each fit lever would buy, predicted: for a plan that leaves layers in RAM or stops the context
//! short of its target, re-plan with one lever changed at a time — a quantized KV cache (`-ctk q8_0
//! -ctv q8_0` halves it), flash attention, a smaller physical batch, less context — and report those
//! that place more layers on the GPUs or give a longer context, with their predicted speed. No tool in
//! this field advises the KV type; run-fit says what it buys and never applies it by itself. Pure.

use serde::Serialize;

use crate::fit::hardware::Hardware;
use crate::fit::plan::{self, Pins, Plan, Policy};
use crate::fit::speed;
use crate::model::facts::ModelFacts;
use crate::model::gguf::GgmlType;
use crate::model::gguf::types::F16;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lever {
    /// The flags that pull it, as `run-fit` and llama.cpp take them.
    pub flags: String,
    /// What it buys, in words: "context 27648 instead of 13568 tokens", "+6 layers on the GPU (30/81)".
    pub gives: String,
    pub n_gpu_layers: u32,
    pub n_ctx_tokens: u64,
    pub generation_tok_per_s: Option<f64>,
}

/// Levers worth pulling for `current`, the plan of `facts` on `hw` under `policy`; none when every
/// layer is on the GPUs (or there are none) and the context reached its target. Pinned values are
/// the user's: a lever that would change one is not offered.
pub fn lever_advice(facts: &ModelFacts, hw: &Hardware, policy: &Policy, current: &Plan) -> Vec<Lever> {
    let c = &current.config;
    let layers_short =
        !hw.devices.is_empty() && c.n_gpu_layers() < current.max_layers && policy.pins.n_gpu_layers.is_none();
    let target_ctx = policy.max_ctx_tokens.min(facts.n_ctx_train.max(256));
    let ctx_short = policy.pins.n_ctx_tokens.is_none() && c.n_ctx_tokens < target_ctx;
    if !layers_short && !ctx_short {
        return Vec::new();
    }
    candidates(policy, current, layers_short)
        .into_iter()
        .filter_map(|(flags, lever_policy)| {
            let p = plan::plan(facts, hw, &lever_policy).ok()?;
            let gives = gain(current, &p)?;
            Some(Lever {
                flags,
                gives,
                n_gpu_layers: p.config.n_gpu_layers(),
                n_ctx_tokens: p.config.n_ctx_tokens,
                generation_tok_per_s: speed::predict(facts, &p, hw).map(|s| s.generation_tok_per_s),
            })
        })
        .collect()
}

/// Each lever as flags and the policy that pulls it.
fn candidates(policy: &Policy, current: &Plan, layers_short: bool) -> Vec<(String, Policy)> {
    let c = &current.config;
    let pins = &policy.pins;
    let with = |pins: Pins| Policy { pins, ..policy.clone() };
    let mut out = Vec::new();
    // A quantized V cache needs flash attention; q8_0 is the one that costs no measurable quality.
    if pins.cache_k.is_none() && pins.cache_v.is_none() && c.cache_k == F16 && c.cache_v == F16 && c.flash_attn {
        let q8 = GgmlType::from_name("Q8_0");
        out.push(("-ctk q8_0 -ctv q8_0".to_string(), with(Pins { cache_k: q8, cache_v: q8, ..pins.clone() })));
    }
    if pins.flash_attn == Some(false) {
        out.push(("-fa on".to_string(), with(Pins { flash_attn: Some(true), ..pins.clone() })));
    }
    if c.n_ubatch_tokens > 256 && !c.gpu_layers.is_empty() {
        out.push(("-ub 256".to_string(), Policy { n_ubatch_tokens: 256, ..policy.clone() }));
    }
    // Less context buys layers: fit them at a quarter of the context they were fitted at.
    let shorter = (current.min_ctx_tokens / 4 / 256 * 256).max(1024);
    if layers_short && pins.n_ctx_tokens.is_none() && shorter < c.n_ctx_tokens {
        out.push((
            format!("-c {shorter}"),
            Policy { min_ctx_tokens: shorter, max_ctx_tokens: shorter, ..policy.clone() },
        ));
    }
    out
}

/// What `lever` buys over `current`: more layers on the GPUs (the context said when it changes), or a
/// longer context at no fewer layers. None: nothing.
fn gain(current: &Plan, lever: &Plan) -> Option<String> {
    let (layers, ctx) = (current.config.n_gpu_layers(), current.config.n_ctx_tokens);
    let (l, c) = (lever.config.n_gpu_layers(), lever.config.n_ctx_tokens);
    if l > layers {
        let context = if c == ctx { String::new() } else { format!(", context {c} tokens") };
        let more = l - layers;
        let noun = if more == 1 { "layer" } else { "layers" };
        return Some(format!("+{more} {noun} on the GPU ({l}/{}){context}", lever.max_layers));
    }
    (l == layers && c > ctx).then(|| format!("context {c} instead of {ctx} tokens"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::hardware::hypothetical;
    use crate::model::{shapes, synth};

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_quantized_kv_cache_is_advised_with_what_it_buys() {
        // Llama-3-8B Q4_K_M on a 4 GiB GPU: layers stay in RAM.
        let f = synth::facts(&shapes::LLAMA3_8B, "Q4_K_M");
        let hw = hypothetical(&[4 * GIB], 32 * GIB);
        let policy = Policy::default();
        let current = plan::plan(&f, &hw, &policy).unwrap();
        assert!(current.config.n_gpu_layers() < current.max_layers);
        let levers = lever_advice(&f, &hw, &policy, &current);
        let kv = levers.iter().find(|l| l.flags == "-ctk q8_0 -ctv q8_0").expect("KV advice");
        // its numbers are a re-plan's, not a guess
        let q8 = GgmlType::from_name("Q8_0");
        let pinned = Policy { pins: Pins { cache_k: q8, cache_v: q8, ..Pins::default() }, ..policy.clone() };
        let replanned = plan::plan(&f, &hw, &pinned).unwrap();
        assert_eq!(
            (kv.n_gpu_layers, kv.n_ctx_tokens),
            (replanned.config.n_gpu_layers(), replanned.config.n_ctx_tokens)
        );
        assert!(kv.gives.starts_with('+') && kv.gives.contains(" on the GPU ("), "{}", kv.gives);
        assert!(kv.generation_tok_per_s.is_none(), "no bandwidth known for a hypothetical GPU");
        // less context is offered too, and buys more layers
        let less = levers.iter().find(|l| l.flags.starts_with("-c ")).expect("less context");
        assert!(less.n_gpu_layers > current.config.n_gpu_layers(), "{less:?}");
    }

    #[test]
    fn a_context_below_its_target_is_offered_a_longer_one() {
        // CPU only, RAM that holds the weights but not the trained 8192-token f16 cache.
        let f = synth::facts(&shapes::LLAMA3_8B, "Q4_K_M");
        let policy = Policy { min_ctx_tokens: 1024, ..Policy::default() };
        let hw = hypothetical(&[], 6 * GIB + GIB / 2);
        let current = plan::plan(&f, &hw, &policy).unwrap();
        assert!(current.config.n_ctx_tokens < 8192, "{}", current.config.n_ctx_tokens);
        let levers = lever_advice(&f, &hw, &policy, &current);
        let kv = levers.iter().find(|l| l.flags.starts_with("-ctk")).expect("KV advice");
        assert_eq!(kv.gives, format!("context {} instead of {} tokens", kv.n_ctx_tokens, current.config.n_ctx_tokens));
        assert!(kv.n_ctx_tokens > current.config.n_ctx_tokens);
    }

    #[test]
    fn nothing_is_advised_when_everything_fits_or_the_user_pinned_it() {
        let f = synth::facts(&shapes::TINY, "Q8_0");
        let hw = hypothetical(&[12 * GIB], 32 * GIB);
        let p = plan::plan(&f, &hw, &Policy::default()).unwrap();
        assert!(lever_advice(&f, &hw, &Policy::default(), &p).is_empty());
        // a pinned KV type is the user's: no KV advice for it
        let big = synth::facts(&shapes::LLAMA3_8B, "Q4_K_M");
        let small_gpu = hypothetical(&[4 * GIB], 32 * GIB);
        let f16 = GgmlType::from_name("F16");
        let pinned = Policy { pins: Pins { cache_k: f16, cache_v: f16, ..Pins::default() }, ..Policy::default() };
        let p = plan::plan(&big, &small_gpu, &pinned).unwrap();
        assert!(lever_advice(&big, &small_gpu, &pinned, &p).iter().all(|l| !l.flags.starts_with("-ctk")));
    }
}
