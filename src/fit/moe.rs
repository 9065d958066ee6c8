//! Mixture-of-experts placement: tensor overrides (llama.cpp's `-ot PATTERN=DEVICE`, `--cpu-moe`,
//! `--n-cpu-moe N`) resolved against a model's tensor table, and the planner's own "experts of the
//! first N layers in RAM".
//!
//! A token reads every layer's attention, norms, router and shared experts, but only `n_expert_used`
//! of its routed experts: keeping the routed experts in RAM and everything else on the GPU puts in RAM
//! what is read least.

use regex::Regex;
use serde::Serialize;

use crate::fit::footprint::{Override, Place};
use crate::model::facts::{ModelFacts, Owner, TensorKind};

/// llama.cpp's pattern for the routed experts (`LLM_FFN_EXPS_REGEX` in common/common.h).
pub const EXPERTS_PATTERN: &str = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps";

/// A user's `-ot PATTERN=DEVICE` entry, as given (the device is resolved against the machine's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorPin {
    pub pattern: String,
    pub device: String,
}

/// What the user pinned about tensor placement, in llama.cpp's terms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExpertPins {
    /// `-ot` entries, in order.
    pub tensor_pins: Vec<TensorPin>,
    /// `--cpu-moe`: every layer's routed experts in RAM.
    pub cpu_moe: bool,
    /// `--n-cpu-moe N`: the routed experts of layers 0..N in RAM.
    pub n_cpu_moe: Option<u32>,
}

impl ExpertPins {
    pub fn is_empty(&self) -> bool {
        self.tensor_pins.is_empty() && !self.cpu_moe && self.n_cpu_moe.is_none()
    }

    /// The same pins as llama.cpp arguments.
    pub fn llama_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if !self.tensor_pins.is_empty() {
            let list: Vec<String> = self.tensor_pins.iter().map(|p| format!("{}={}", p.pattern, p.device)).collect();
            args.extend(["-ot".to_string(), list.join(",")]);
        }
        if self.cpu_moe {
            args.push("--cpu-moe".into());
        }
        if let Some(n) = self.n_cpu_moe {
            args.extend(["--n-cpu-moe".to_string(), n.to_string()]);
        }
        args
    }
}

/// Check a pattern as the command line reads it: llama.cpp searches tensor names with it (std::regex,
/// ECMAScript); run-fit needs the same match here. Returns a one-line reason when it cannot.
pub fn check_pattern(pattern: &str) -> Result<Regex, String> {
    if pattern.is_empty() {
        return Err(
            "an -ot entry has an empty pattern; write PATTERN=DEVICE, e.g. -ot 'blk\\.1[0-9]\\.ffn_.*_exps=CPU'".into(),
        );
    }
    Regex::new(pattern).map_err(|e| {
        let first = e.to_string().lines().last().unwrap_or("").trim().to_string();
        format!("-ot pattern '{pattern}' is not a regular expression run-fit can read ({first}); fix the pattern")
    })
}

/// Where the `device` name of an `-ot` entry puts tensors: `CPU` (or a host buffer type such as
/// `CUDA_Host`) is the host; otherwise one of `devices`, by name, ignoring case.
pub fn resolve_device(device: &str, devices: &[String]) -> Result<Place, String> {
    let lower = device.to_ascii_lowercase();
    if lower == "cpu" || lower.ends_with("_host") || lower == "cpu_repack" {
        return Ok(None);
    }
    devices.iter().position(|d| d.eq_ignore_ascii_case(device)).map(Some).ok_or_else(|| {
        let known: Vec<&str> = std::iter::once("CPU").chain(devices.iter().map(String::as_str)).collect();
        format!("-ot names device '{device}', which this machine does not have; use one of {}", known.join(", "))
    })
}

/// The override of `pattern` to `place`: the tensors whose names it matches (llama.cpp's
/// `std::regex_search`: anywhere in the name).
pub fn resolve(facts: &ModelFacts, pattern: &Regex, place: Place) -> Override {
    let spans = facts.weights.spans.iter().enumerate().filter(|(_, s)| pattern.is_match(&s.name)).map(|(i, _)| i);
    Override { pattern: pattern.as_str().to_string(), place, spans: spans.collect() }
}

/// The user's pins as overrides, in llama.cpp's order: `-ot` entries, then `--cpu-moe`, then the
/// `--n-cpu-moe` layers.
pub fn pinned_overrides(facts: &ModelFacts, pins: &ExpertPins, devices: &[String]) -> Result<Vec<Override>, String> {
    let mut out = Vec::new();
    for pin in &pins.tensor_pins {
        let place = resolve_device(&pin.device, devices)?;
        out.push(resolve(facts, &check_pattern(&pin.pattern)?, place));
    }
    if pins.cpu_moe {
        out.push(resolve(facts, &Regex::new(EXPERTS_PATTERN).expect("valid"), None));
    }
    for layer in 0..pins.n_cpu_moe.unwrap_or(0).min(facts.n_layer) {
        out.push(experts_in_ram(facts, layer));
    }
    Ok(out)
}

/// The routed experts of `layer` in RAM, as llama.cpp's `--n-cpu-moe` and its fit write it.
pub fn experts_in_ram(facts: &ModelFacts, layer: u32) -> Override {
    let spans = facts
        .weights
        .spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.owner == Owner::Layer(layer) && s.kind == TensorKind::RoutedExperts);
    Override { pattern: format!(r"blk\.{layer}{EXPERTS_PATTERN}"), place: None, spans: spans.map(|(i, _)| i).collect() }
}

/// [`experts_in_ram`] of every layer, in one pass over the tensors; empty for a dense model.
pub fn experts_in_ram_by_layer(facts: &ModelFacts) -> Vec<Override> {
    if !facts.weights.has_routed_experts() {
        return Vec::new();
    }
    let mut out: Vec<Override> = (0..facts.n_layer)
        .map(|layer| Override { pattern: format!(r"blk\.{layer}{EXPERTS_PATTERN}"), place: None, spans: Vec::new() })
        .collect();
    for (i, s) in facts.weights.spans.iter().enumerate() {
        if let (Owner::Layer(l), TensorKind::RoutedExperts) = (s.owner, s.kind) {
            out[l as usize].spans.push(i);
        }
    }
    out
}

/// "0–20", "3", or "0–4, 9" for a set of layer numbers.
pub fn ranges(layers: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        let mut j = i;
        while j + 1 < layers.len() && layers[j + 1] == layers[j] + 1 {
            j += 1;
        }
        out.push(if i == j { layers[i].to_string() } else { format!("{}–{}", layers[i], layers[j]) });
        i = j + 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::facts::TensorKind;
    use crate::model::shapes::MOE_TINY;
    use crate::model::synth;

    #[test]
    fn the_planner_s_pattern_matches_the_tensors_it_names() {
        let f = synth::facts(&MOE_TINY, "Q8_0");
        for layer in 0..f.n_layer {
            let o = experts_in_ram(&f, layer);
            let by_regex = resolve(&f, &Regex::new(&o.pattern).unwrap(), None);
            assert_eq!(o.spans, by_regex.spans, "layer {layer}: {}", o.pattern);
            assert_eq!(o.spans.len(), 3, "gate, up and down experts");
            assert_eq!(experts_in_ram_by_layer(&f)[layer as usize], o);
        }
        // blk\.1\. must not take layer 10's or 21's experts: the dot after the number anchors it
        let names: Vec<&str> = experts_in_ram(&f, 1).spans.iter().map(|&i| f.weights.spans[i].name.as_str()).collect();
        assert!(names.iter().all(|n| n.starts_with("blk.1.")), "{names:?}");
    }

    #[test]
    fn pins_resolve_in_llama_cpp_s_order_and_bad_ones_say_what_to_do() {
        let f = synth::facts(&MOE_TINY, "Q8_0");
        let devices = vec!["CUDA0".to_string()];
        let pins = ExpertPins {
            tensor_pins: vec![TensorPin { pattern: r"blk\.3\.ffn_down_exps".into(), device: "cuda0".into() }],
            cpu_moe: false,
            n_cpu_moe: Some(2),
        };
        let o = pinned_overrides(&f, &pins, &devices).unwrap();
        assert_eq!(o.len(), 3);
        assert_eq!((o[0].place, o[0].spans.len()), (Some(0), 1));
        assert_eq!(o[1].place, None);
        assert_eq!(pins.llama_args(), vec!["-ot", r"blk\.3\.ffn_down_exps=cuda0", "--n-cpu-moe", "2"]);
        let unknown =
            ExpertPins { tensor_pins: vec![TensorPin { pattern: "x".into(), device: "CUDA7".into() }], ..pins.clone() };
        let err = pinned_overrides(&f, &unknown, &devices).unwrap_err();
        assert!(err.contains("CUDA7") && err.contains("CPU, CUDA0"), "{err}");
        let err = check_pattern("blk\\.(1").unwrap_err();
        assert!(err.contains("blk\\.(1"), "{err}");
        assert_eq!(resolve_device("CUDA_Host", &devices), Ok(None));
    }

    use crate::fit::footprint::footprint;
    use crate::fit::hardware::{Hardware, hypothetical};
    use crate::fit::plan::{GIB, Plan, Policy, plan};
    use crate::fit::{fastest, speed};
    use crate::model::shapes::{self, MIXTRAL_8X7B, QWEN3_30B_A3B};

    /// GPUs of `vram_gib` free each (bandwidth 360 GB/s, an RTX 3060's) and `ram_gib` of 50 GB/s RAM.
    fn machine(vram_gib: &[f64], ram_gib: u64) -> Hardware {
        let vram: Vec<u64> = vram_gib.iter().map(|g| (g * GIB as f64) as u64).collect();
        let mut hw = hypothetical(&vram, ram_gib * GIB);
        for d in &mut hw.devices {
            (d.bandwidth_gb_per_s, d.fp16_tflops) = (Some(360.0), Some(50.0));
        }
        hw.host.bandwidth_gb_per_s = Some(50.0);
        hw
    }

    fn within_budgets(p: &Plan) {
        for d in &p.devices {
            assert!(d.headroom_bytes >= 0, "{} over: {:?}", d.name, d);
        }
        assert!(p.host.headroom_bytes >= 0, "host over: {:?}", p.host);
    }

    fn n_cpu_moe(p: &Plan) -> Option<u32> {
        let i = p.tensor_args.iter().position(|a| a == "--n-cpu-moe")?;
        p.tensor_args[i + 1].parse().ok()
    }

    #[test]
    fn qwen3_30b_a3b_on_12_gb_keeps_all_attention_on_the_gpu_and_is_faster_than_whole_layers() {
        let f = synth::facts(&QWEN3_30B_A3B, "Q4_K_M");
        let hw = machine(&[11.5], 32);
        let (split, _) = fastest::plan(&f, &hw, &Policy::default()).unwrap();
        within_budgets(&split);
        assert_eq!(split.config.n_gpu_layers(), 49, "every layer's attention on the GPU");
        let k = n_cpu_moe(&split).expect("some layers' experts in RAM");
        assert!((10..48).contains(&k), "{k}");
        // RAM holds exactly those layers' routed experts (repacked for the CPU), nothing of attention
        let experts_bytes: u64 = f.weights.layer_bytes_of(TensorKind::RoutedExperts)[..k as usize].iter().sum();
        assert!(split.host.bytes.experts.abs_diff(experts_bytes) < experts_bytes / 100, "{:?}", split.host.bytes);
        assert_eq!(split.host.bytes.kv, 0);
        assert!(split.reasons.iter().any(|r| r.contains(&format!("routed experts of layers 0–{} in RAM", k - 1))));
        // one layer's experts fewer in RAM does not fit
        let fewer = Policy {
            pins: crate::fit::plan::Pins {
                experts: ExpertPins { n_cpu_moe: Some(k - 1), ..Default::default() },
                ..Default::default()
            },
            ..Policy::default()
        };
        let tighter = plan(&f, &hw, &fewer);
        assert!(
            tighter.map_or(true, |p| p.config.n_gpu_layers() < 49 || p.config.n_ctx_tokens < split.config.n_ctx_tokens)
        );
        let whole = plan(&f, &hw, &Policy { split_experts: false, ..Policy::default() }).unwrap();
        within_budgets(&whole);
        assert!(whole.config.n_gpu_layers() < 40, "whole layers: {}", whole.config.n_gpu_layers());
        let (a, b) = (speed::predict(&f, &split, &hw).unwrap(), speed::predict(&f, &whole, &hw).unwrap());
        assert!(a.generation_tok_per_s > b.generation_tok_per_s * 1.2, "{a:?} vs {b:?}");
    }

    #[test]
    fn gpt_oss_120b_on_24_gb_and_64_gb_of_ram() {
        let shape = shapes::by_name("gpt-oss-120b").unwrap();
        let f = synth::facts(shape, "MXFP4");
        let hw = machine(&[23.5], 64);
        let (p, _) = fastest::plan(&f, &hw, &Policy::default()).unwrap();
        within_budgets(&p);
        assert_eq!(p.config.n_gpu_layers(), 37);
        let k = n_cpu_moe(&p).unwrap();
        assert!(k > 20 && k < 36, "{k}");
        // the sliding-window layers keep only their window: the context reaches well past 4096
        assert!(p.config.n_ctx_tokens >= 16384, "{}", p.config.n_ctx_tokens);
    }

    #[test]
    fn mixtral_on_two_uneven_gpus_keeps_experts_only_of_the_first_device_s_layers() {
        let f = synth::facts(&MIXTRAL_8X7B, "Q4_K_M");
        let hw = machine(&[11.5, 7.5], 64);
        let (p, _) = fastest::plan(&f, &hw, &Policy::default()).unwrap();
        within_budgets(&p);
        assert_eq!(p.config.n_gpu_layers(), 33);
        let k = n_cpu_moe(&p).unwrap();
        // the last device takes whole layers from the top; the layers left for CUDA0 lose their experts
        assert!(p.config.gpu_layers[1] > 0 && p.config.gpu_layers[0] >= k, "{:?} k={k}", p.config.gpu_layers);
        let fp = footprint(&f, &p.config);
        assert_eq!(
            fp.devices[1].experts,
            f.weights.layer_bytes_of(TensorKind::RoutedExperts)[33 - p.config.gpu_layers[1] as usize..]
                .iter()
                .sum::<u64>()
        );
        assert!(p.tensor_args.contains(&"--n-cpu-moe".to_string()) && p.llama_args().contains(&"-ts".to_string()));
    }

    #[test]
    fn pins_are_honoured_and_the_rest_is_fitted_around_them() {
        let f = synth::facts(&QWEN3_30B_A3B, "Q4_K_M");
        let hw = machine(&[11.5], 32);
        let pinned = |pins: ExpertPins| Policy {
            pins: crate::fit::plan::Pins { experts: pins, ..Default::default() },
            ..Policy::default()
        };
        // --cpu-moe: every expert in RAM, and no planner's --n-cpu-moe beside it
        let p = plan(&f, &hw, &pinned(ExpertPins { cpu_moe: true, ..Default::default() })).unwrap();
        assert_eq!(p.tensor_args, vec!["--cpu-moe"]);
        assert_eq!(p.config.n_gpu_layers(), 49);
        let all: u64 = f.weights.layer_bytes_of(TensorKind::RoutedExperts).iter().sum();
        assert!(p.host.bytes.experts >= all, "{} < {all}", p.host.bytes.experts);
        assert!(p.config.n_ctx_tokens > 16384, "the freed VRAM goes to context: {}", p.config.n_ctx_tokens);
        // --n-cpu-moe 4: too few for every layer, so fewer layers are offloaded rather than more experts moved
        let p = plan(&f, &hw, &pinned(ExpertPins { n_cpu_moe: Some(4), ..Default::default() })).unwrap();
        within_budgets(&p);
        assert!(p.config.n_gpu_layers() < 49);
        assert_eq!(p.config.overrides.len(), 4);
        // -ot pattern=CPU names exactly what it matches; an unknown device is a usage error
        let attn = TensorPin { pattern: r"blk\.0\.attn_q".into(), device: "CPU".into() };
        let p = plan(&f, &hw, &pinned(ExpertPins { tensor_pins: vec![attn], cpu_moe: true, ..Default::default() }))
            .unwrap();
        assert_eq!(p.config.overrides[0].spans.len(), 1);
        let bad = TensorPin { pattern: "exps".into(), device: "CUDA3".into() };
        let err = plan(&f, &hw, &pinned(ExpertPins { tensor_pins: vec![bad], ..Default::default() })).unwrap_err();
        assert!(matches!(err, crate::fit::plan::PlanError::BadPin(_)), "{err}");
        // pinned with -ngl too: a context that does not fit is refused with the numbers
        let mut both = pinned(ExpertPins { n_cpu_moe: Some(2), ..Default::default() });
        both.pins.n_gpu_layers = Some(49);
        let err = plan(&f, &hw, &both).unwrap_err().to_string();
        assert!(err.contains("-ngl 49") && err.contains("at most -ngl"), "{err}");
    }

    #[test]
    fn when_the_non_expert_part_does_not_fit_the_top_layers_go_without_experts_the_rest_whole() {
        let f = synth::facts(&QWEN3_30B_A3B, "Q4_K_M");
        // 2 GiB: not every layer's attention fits, so the top layers go there without their experts
        // and the rest stay whole in RAM, as llama.cpp's fit does
        let hw = machine(&[2.0], 32);
        let p = plan(&f, &hw, &Policy::default()).unwrap();
        within_budgets(&p);
        assert!(p.config.n_gpu_layers() < 49);
        assert_eq!(n_cpu_moe(&p), Some(48), "{:?}", p.tensor_args);
        assert!(
            p.reasons.iter().any(|r| r.contains("without their routed experts, the rest stay whole")),
            "{:?}",
            p.reasons
        );
        let whole = plan(&f, &hw, &Policy { split_experts: false, ..Policy::default() }).unwrap();
        assert!(p.config.n_gpu_layers() > whole.config.n_gpu_layers(), "more layers' attention than whole layers");
        assert_eq!(footprint(&f, &p.config).devices[0].experts, 0);
        // -ngl 49 asks for every layer: that is whole layers or nothing, and here it is refused
        let mut pinned = Policy::default();
        pinned.pins.n_gpu_layers = Some(49);
        assert!(plan(&f, &hw, &pinned).is_err());
        // and fastest keeps whichever is predicted faster
        let (best, _) = fastest::plan(&f, &hw, &Policy::default()).unwrap();
        let speed_of = |p: &Plan| speed::predict_apart(&f, p, &hw).unwrap().generation_tok_per_s;
        assert!(speed_of(&best) >= speed_of(&p).min(speed_of(&whole)));
    }

    #[test]
    fn layer_sets_read_as_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 3]), "0–3");
        assert_eq!(ranges(&[0, 1, 2, 7, 9, 10]), "0–2, 7, 9–10");
        assert_eq!(ranges(&[5]), "5");
    }
}
