//! Across hosts, what fits is not always what is fastest: a remote device's layers cost a network round
//! trip per token, which over a slow link can exceed what they save. After the planner fits, each
//! remote device is tried without layers; the faster plan wins, and its reasons say why.

use crate::fit::hardware::Hardware;
use crate::fit::plan::{self, DeviceCap, Plan, PlanError, Policy};
use crate::fit::speed;
use crate::model::facts::ModelFacts;

/// A plan must be this much faster to be preferred: predictions are not finer than that.
const BETTER_BY: f64 = 1.05;
/// A CPU-backed server's speed is assumed (like this machine's CPU), not known: it is left out for
/// speed only over a link at least this slow, where the network alone decides.
const SLOW_ROUND_TRIP_S: f64 = 1e-3;

/// The planner's plan, then without each remote device that slows generation down; with the policy
/// that made it (advice must vary that one).
pub fn plan(facts: &ModelFacts, hw: &Hardware, policy: &Policy) -> Result<(Plan, Policy), PlanError> {
    let (mut best, mut policy) = experts_or_whole_layers(facts, hw, policy)?;
    // The user's -ngl or -ts decide the placement themselves.
    if policy.pins.n_gpu_layers.is_some() || policy.pins.tensor_split.is_some() {
        return Ok((best, policy));
    }
    for (i, d) in hw.devices.iter().enumerate() {
        let Some(link) = d.link.filter(|_| best.devices[i].layers > 0) else { continue };
        if d.reported_free_bytes.is_some() && link.round_trip_s < SLOW_ROUND_TRIP_S {
            continue;
        }
        let Some(current) = speed::predict_apart(facts, &best, hw) else { continue };
        let mut without = policy.clone();
        without.device_layer_caps.push(DeviceCap { device: d.name.clone(), layers: 0, why: String::new() });
        let Ok(other) = plan::plan(facts, hw, &without) else { continue };
        let Some(faster) = speed::predict_apart(facts, &other, hw) else { continue };
        if faster.generation_tok_per_s > current.generation_tok_per_s * BETTER_BY {
            let why = format!(
                "over its link to {} ({:.1} ms round trip, {:.0} MB/s) generation would be ~{:.0} tok/s, ~{:.0} without it",
                d.endpoint.as_deref().unwrap_or("its server"),
                link.round_trip_s * 1e3,
                link.bytes_per_s / 1e6,
                current.generation_tok_per_s,
                faster.generation_tok_per_s
            );
            if let Some(cap) = without.device_layer_caps.last_mut() {
                cap.why = why;
            }
            // Planned again so that the reasons carry the why.
            best = plan::plan(facts, hw, &without)?;
            policy = without;
        }
    }
    Ok((best, policy))
}

/// A mixture of experts planned with some layers' experts in RAM, against whole layers: the faster
/// (by predicted generation) wins. With experts in RAM every token reads its attention from the GPU
/// and only its experts' share from RAM, so this is almost always the split; it is checked, not assumed.
fn experts_or_whole_layers(facts: &ModelFacts, hw: &Hardware, policy: &Policy) -> Result<(Plan, Policy), PlanError> {
    let split = plan::plan(facts, hw, policy)?;
    if !split.tensor_args.iter().any(|a| a == "--n-cpu-moe") || !policy.pins.experts.is_empty() {
        return Ok((split, policy.clone()));
    }
    let whole_policy = Policy { split_experts: false, ..policy.clone() };
    let Ok(whole) = plan::plan(facts, hw, &whole_policy) else { return Ok((split, policy.clone())) };
    // As if each server were a machine of its own (see `speed::predict_apart`): loopback servers that
    // share this machine's cores are there to test placement, not to be avoided.
    let (Some(a), Some(b)) = (speed::predict_apart(facts, &split, hw), speed::predict_apart(facts, &whole, hw)) else {
        return Ok((split, policy.clone()));
    };
    if b.generation_tok_per_s > a.generation_tok_per_s * BETTER_BY {
        let mut whole = whole;
        whole.reasons.push(format!(
            "whole layers: ~{:.0} tok/s generating, against ~{:.0} with routed experts in RAM",
            b.generation_tok_per_s, a.generation_tok_per_s
        ));
        return Ok((whole, whole_policy));
    }
    Ok((split, policy.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::hardware::{Device, DeviceKind, Link, hypothetical};
    use crate::model::{shapes, synth};

    fn remote(link: Link) -> Hardware {
        let mut hw = hypothetical(&[24 << 30], 64 << 30);
        hw.host.bandwidth_gb_per_s = Some(60.0);
        hw.devices[0] = Device {
            bandwidth_gb_per_s: Some(936.0),
            fp16_tflops: Some(71.0),
            endpoint: Some("gpu-box:50052".into()),
            link: Some(link),
            ..Device::new("RPC0", "gpu-box:50052", "RPC", DeviceKind::Gpu, 24 << 30, 24 << 30)
        };
        hw
    }

    #[test]
    fn a_remote_gpu_is_used_over_a_fast_link_and_left_out_over_a_slow_one() {
        let f = synth::facts(&shapes::TINYLLAMA_1B, "Q4_K_M");
        let lan = remote(Link { round_trip_s: 0.2e-3, bytes_per_s: 117e6 });
        let (p, _) = plan(&f, &lan, &Policy::default()).unwrap();
        assert_eq!(p.devices[0].layers, p.max_layers, "{:?}", p.reasons);
        // Across the internet a round trip costs more than the whole model on this machine's CPU.
        let far = remote(Link { round_trip_s: 80e-3, bytes_per_s: 2e6 });
        let (p, _) = plan(&f, &far, &Policy::default()).unwrap();
        assert_eq!(p.devices[0].layers, 0);
        assert!(p.reasons.iter().any(|r| r.contains("no layers on RPC0") && r.contains("80.0 ms")), "{:?}", p.reasons);
        // Pinned, the user's placement stands.
        let pinned = Policy { pins: plan::Pins { n_gpu_layers: Some(10), ..Default::default() }, ..Policy::default() };
        assert_eq!(plan(&f, &far, &pinned).unwrap().0.devices[0].layers, 10);
    }
}
