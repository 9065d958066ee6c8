//! Which quantization of the same model would fit: for a plan that leaves layers in RAM, re-plan the
//! model at smaller quantizations (weights scaled by bits per weight) and report the first that fits
//! entirely on the GPUs, with its predicted speed, or the best partial fit. Pure.

use serde::Serialize;

use crate::fit::hardware::Hardware;
use crate::fit::plan::{self, Plan, Policy};
use crate::fit::speed;
use crate::model::facts::ModelFacts;

/// Average bits per weight of real files (FIELD-NOTES §6, Llama-3.1-8B mixes), largest first.
pub const QUANT_BITS: &[(&str, f64)] = &[
    ("Q8_0", 8.50),
    ("Q6_K", 6.56),
    ("Q5_K_M", 5.70),
    ("Q4_K_M", 4.89),
    ("IQ4_XS", 4.46),
    ("Q3_K_M", 3.91),
    ("Q2_K", 3.16),
    ("IQ2_XS", 2.42),
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantOption {
    pub quant: String,
    pub weights_bytes: u64,
    pub gpu_layers: u32,
    pub max_layers: u32,
    pub generation_tok_per_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantAdvice {
    /// This file as planned.
    pub current: QuantOption,
    /// The largest quantization that puts every layer on the GPUs, if any does.
    pub fits_fully: Option<QuantOption>,
    /// Otherwise the one that puts the most layers there (the smallest).
    pub best_partial: Option<QuantOption>,
}

/// `facts` with every weight scaled from its bits per weight to `bits`.
/// The same model at `bits` per weight: what a requantized file of it would hold.
pub(crate) fn requantized(facts: &ModelFacts, bits: f64) -> ModelFacts {
    let ratio = bits / facts.bits_per_weight();
    let scale = |b: u64| (b as f64 * ratio) as u64;
    let mut f = facts.clone();
    f.weights.layer_bytes = f.weights.layer_bytes.iter().map(|&b| scale(b)).collect();
    f.weights.input_bytes = scale(f.weights.input_bytes);
    f.weights.output_bytes = scale(f.weights.output_bytes);
    f.weights.tied_embedding_bytes = scale(f.weights.tied_embedding_bytes);
    f.weights.layer_repack_bytes = f.weights.layer_repack_bytes.iter().map(|&b| scale(b)).collect();
    f.weights.output_repack_bytes = scale(f.weights.output_repack_bytes);
    f.weights.tied_repack_bytes = scale(f.weights.tied_repack_bytes);
    for span in &mut f.weights.spans {
        (span.start, span.end) = (scale(span.start), scale(span.end));
    }
    f
}

fn option(name: &str, facts: &ModelFacts, plan: &Plan, hw: &Hardware) -> QuantOption {
    QuantOption {
        quant: name.to_string(),
        weights_bytes: facts.weights.file_bytes(),
        gpu_layers: plan.config.n_gpu_layers(),
        max_layers: plan.max_layers,
        generation_tok_per_s: speed::predict(facts, plan, hw).map(|s| s.generation_tok_per_s),
    }
}

/// None when there is no GPU, or every layer already fits.
pub fn quant_advice(facts: &ModelFacts, hw: &Hardware, policy: &Policy, current: &Plan) -> Option<QuantAdvice> {
    if hw.devices.is_empty()
        || current.config.n_gpu_layers() >= current.max_layers
        || policy.pins.n_gpu_layers.is_some()
    {
        return None;
    }
    let now = facts.bits_per_weight();
    let name = facts.file_type.clone().unwrap_or_else(|| facts.dominant_type.clone());
    let mut advice = QuantAdvice { current: option(&name, facts, current, hw), fits_fully: None, best_partial: None };
    for &(quant, bits) in QUANT_BITS.iter().filter(|(_, b)| *b < now - 0.05) {
        let f = requantized(facts, bits);
        let Ok(p) = plan::plan(&f, hw, policy) else { continue };
        let o = option(quant, &f, &p, hw);
        if p.config.n_gpu_layers() >= p.max_layers {
            advice.fits_fully = Some(o);
            return Some(advice);
        }
        advice.best_partial = Some(o);
    }
    Some(advice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::hardware;
    use crate::model::{shapes, synth};

    #[test]
    fn an_f16_8b_on_12_gb_is_told_which_quant_fits() {
        let f = synth::facts(&shapes::LLAMA3_8B, "F16");
        let hw = crate::machine::profiles::load_profile("rtx3060-12g").unwrap();
        let p = plan::plan(&f, &hw, &Policy::default()).unwrap();
        let a = quant_advice(&f, &hw, &Policy::default(), &p).unwrap();
        let fits = a.fits_fully.unwrap();
        assert_eq!(fits.quant, "Q8_0");
        assert_eq!(fits.gpu_layers, fits.max_layers);
        assert!(fits.generation_tok_per_s.unwrap() > 3.0 * a.current.generation_tok_per_s.unwrap());
    }

    #[test]
    fn a_70b_on_a_4090_fits_fully_only_at_two_bits() {
        let f = synth::facts(&shapes::LLAMA2_70B, "Q4_K_M");
        let hw = crate::machine::profiles::load_profile("rtx4090-64g").unwrap();
        let p = plan::plan(&f, &hw, &Policy::default()).unwrap();
        let a = quant_advice(&f, &hw, &Policy::default(), &p).unwrap();
        let fits = a.fits_fully.unwrap();
        assert_eq!(fits.quant, "IQ2_XS");
        assert!(fits.generation_tok_per_s.unwrap() > 5.0 * a.current.generation_tok_per_s.unwrap());
    }

    #[test]
    fn the_seed_s_64_gb_model_on_a_12_gb_gpu() {
        // "expect 0.5–2 tokens/s; a Q2_K would fit more layers": a 70B at Q6_K (57 GB), RTX 3060, 96 GB RAM
        let f = synth::facts(&shapes::LLAMA2_70B, "Q6_K");
        let mut hw = hardware::hypothetical(&[12 << 30], 96 << 30);
        hw.devices[0].description = "NVIDIA GeForce RTX 3060".into();
        hw.host.bandwidth_gb_per_s = Some(51.2);
        let p = plan::plan(&f, &hw, &Policy::default()).unwrap();
        let a = quant_advice(&f, &hw, &Policy::default(), &p).unwrap();
        let now = a.current.generation_tok_per_s.unwrap();
        assert!((0.5..2.0).contains(&now), "{now}");
        assert!(a.fits_fully.is_none());
        let best = a.best_partial.unwrap();
        assert_eq!(best.quant, "IQ2_XS");
        assert!(best.gpu_layers > 2 * a.current.gpu_layers, "{best:?} vs {:?}", a.current);
    }

    #[test]
    fn nothing_to_advise_when_everything_fits_or_there_is_no_gpu() {
        let f = synth::facts(&shapes::TINY, "Q8_0");
        let hw = crate::machine::profiles::load_profile("rtx3060-12g").unwrap();
        let p = plan::plan(&f, &hw, &Policy::default()).unwrap();
        assert!(quant_advice(&f, &hw, &Policy::default(), &p).is_none());
        let cpu = crate::machine::profiles::load_profile("cpu-16g").unwrap();
        let p = plan::plan(&f, &cpu, &Policy::default()).unwrap();
        assert!(quant_advice(&f, &cpu, &Policy::default(), &p).is_none());
    }
}
