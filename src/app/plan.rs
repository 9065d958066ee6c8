//! `run-fit plan`: the decision and why, for this machine, a profile or a hypothetical machine.

use crate::cli::{HardwareSource, PlanRequest};
use crate::engine::{CAN_OFFLOAD, Engine, LlamaFit};
use crate::error::Failure;
use crate::fit::hardware::{self, Hardware};
use crate::fit::{advice, fastest, levers, speed};
use crate::machine::{probe, profiles};
use crate::output::printer::Printer;
use crate::output::report::{self, PlanReport};

use super::{learn_from_earlier_runs, resolve_model};

pub(super) fn run_plan(req: &PlanRequest, printer: &Printer) -> Result<(), Failure> {
    let (label, facts, estimate) = resolve_model(&req.model)?;
    if req.compare_llama && estimate.is_some() {
        return Err(Failure::Usage("--compare-llama needs a model file: llama.cpp's fit reads it".into()));
    }
    let mut engine = None;
    let hardware: Hardware = match &req.hardware {
        HardwareSource::Profile(p) => profiles::load_profile(p)?,
        HardwareSource::Hypothetical { vram_bytes, ram_bytes } => hardware::hypothetical(vram_bytes, *ram_bytes),
        // Remote devices are measured by a child process, never by this one (see machine::rpc).
        HardwareSource::ThisMachine if !req.levers.rpc.is_empty() => {
            probe::measure_isolated_with(&req.levers.rpc, req.levers.rpc_link, req.fresh)?
        }
        HardwareSource::ThisMachine => {
            if CAN_OFFLOAD || req.compare_llama {
                engine = Some(Engine::init(printer.verbose())?);
            }
            let mut hw = probe::measure(engine.as_ref())?;
            probe::fill_local_rates(&mut hw, req.fresh);
            hw
        }
    };
    let mut hardware =
        hardware::as_split(hardware, req.levers.split_mode, req.levers.main_gpu).map_err(Failure::Usage)?;
    let mut policy = req.policy.clone();
    let mut learned = Vec::new();
    if matches!(req.hardware, HardwareSource::ThisMachine) {
        let path = estimate.is_none().then(|| std::path::Path::new(&label));
        learn_from_earlier_runs(&mut hardware, path, &mut policy, req.fresh, &mut learned);
    }
    // The policy that made the plan (a slow link can leave a device out) is what advice varies.
    let (plan, policy) = fastest::plan(&facts, &hardware, &policy)?;
    let speed = speed::predict(&facts, &plan, &hardware);
    let quant_advice = advice::quant_advice(&facts, &hardware, &policy, &plan);
    let levers = levers::lever_advice(&facts, &hardware, &policy, &plan);
    // Same minimum context and the same per-device margins as our plan, so the two choices compare: the
    // reserve, plus what a budget keeps unused of the free memory.
    let margins: Vec<u64> = (plan.devices.iter().zip(&hardware.devices))
        .map(|(d, dev)| dev.reported_free_bytes.unwrap_or(d.free_bytes).saturating_sub(d.usable_bytes))
        .collect();
    let model_path = std::path::Path::new(&label);
    let llama_fit = match (&engine, req.compare_llama) {
        (Some(e), true) => Some(e.llama_fit(model_path, plan.min_ctx_tokens as u32, &margins)?),
        (None, true) => Some(llama_fit_isolated(model_path, plan.min_ctx_tokens as u32, &margins, &req.levers.rpc)?),
        _ => None,
    };
    let llama_fit_costed = llama_fit.as_ref().map(|fit| cost_llama_fit(&facts, &hardware, &plan, fit));
    let report = PlanReport {
        model: report::model_summary(&label, &facts),
        hardware: &hardware,
        plan: &plan,
        llama_args: plan.llama_args(),
        llama_fit: llama_fit.as_ref(),
        llama_fit_costed,
        estimate,
        speed,
        learned,
        quant_advice,
        levers,
        network: transfers(&plan, &hardware),
    };
    let text = if req.json { report::plan_json(&report) } else { report::plan_text(&report) };
    printer.out(&text)
}

/// llama.cpp's fit as run-fit's model costs it, beside run-fit's plan. Its overrides are read as host
/// memory, which is where its fit sends what overflows the last device (with several devices a
/// partial layer may go to the next one instead: then this is an approximation).
fn cost_llama_fit(
    facts: &crate::model::facts::ModelFacts,
    hw: &Hardware,
    ours: &crate::fit::plan::Plan,
    fit: &LlamaFit,
) -> report::Compared {
    let n_total = facts.n_layer + 1;
    let n_gpu = if fit.n_gpu_layers < 0 { n_total } else { (fit.n_gpu_layers as u32).min(n_total) };
    let overrides = fit
        .tensor_overrides
        .iter()
        .filter_map(|p| crate::fit::moe::check_pattern(p).ok())
        .map(|re| crate::fit::moe::resolve(facts, &re, None))
        .collect();
    let gpu_layers = match hw.devices.len() {
        0 => vec![],
        1 => vec![n_gpu],
        n => crate::fit::plan::proportional_split(n_gpu, &vec![1.0; n]),
    };
    let n_ctx = if fit.n_ctx_tokens > 0 { u64::from(fit.n_ctx_tokens) } else { ours.config.n_ctx_tokens };
    let config = crate::fit::footprint::Config { gpu_layers, n_ctx_tokens: n_ctx, overrides, ..ours.config.clone() };
    let theirs = crate::fit::plan::as_configured(facts, hw, ours, config);
    report::Compared {
        llama_non_expert_device_bytes: report::non_expert_device_bytes(&theirs),
        ours_non_expert_device_bytes: report::non_expert_device_bytes(ours),
        // As the placement is chosen: each server as a machine of its own (`speed::predict_apart`).
        llama_generation_tok_per_s: speed::predict_apart(facts, &theirs, hw).map(|s| s.generation_tok_per_s),
        ours_generation_tok_per_s: speed::predict_apart(facts, ours, hw).map(|s| s.generation_tok_per_s),
        llama_over_budget: theirs.devices.iter().any(|d| d.headroom_bytes < 0),
    }
}

/// What `run-fit __llama-fit` is asked: llama.cpp's fit of `model` with these RPC servers' devices.
#[derive(serde::Serialize, serde::Deserialize)]
struct LlamaFitRequest {
    model: std::path::PathBuf,
    n_ctx_min_tokens: u32,
    margins_bytes: Vec<u64>,
    rpc: Vec<String>,
}

/// llama.cpp's fit in a child process: the only kind that may talk to RPC servers.
fn llama_fit_isolated(
    model: &std::path::Path,
    n_ctx_min_tokens: u32,
    margins_bytes: &[u64],
    rpc: &[String],
) -> Result<LlamaFit, Failure> {
    let request = LlamaFitRequest {
        model: model.to_path_buf(),
        n_ctx_min_tokens,
        margins_bytes: margins_bytes.to_vec(),
        rpc: rpc.to_vec(),
    };
    let spec = serde_json::to_string(&request).map_err(anyhow::Error::from)?;
    let out = crate::machine::rpc::run_child(&["__llama-fit".into(), spec], rpc, "llama.cpp's fit")?;
    Ok(serde_json::from_slice(&out).map_err(anyhow::Error::from)?)
}

/// `run-fit __llama-fit JSON`: prints llama.cpp's choice as JSON.
pub(super) fn llama_fit_child(spec: &str, printer: &Printer) -> Result<(), Failure> {
    let req: LlamaFitRequest =
        serde_json::from_str(spec).map_err(|e| Failure::Usage(format!("__llama-fit is started by run-fit ({e})")))?;
    let engine = Engine::init(printer.verbose())?;
    engine.add_rpc_servers(&req.rpc)?;
    let fit = engine.llama_fit(&req.model, req.n_ctx_min_tokens, &req.margins_bytes)?;
    printer.out(&serde_json::to_string(&fit).map_err(anyhow::Error::from)?)
}

fn transfers(plan: &crate::fit::plan::Plan, hw: &Hardware) -> Vec<report::Transfer> {
    speed::load_transfers(plan, hw)
        .into_iter()
        .filter(|t| t.1 > 0)
        .map(|(endpoint, bytes, seconds)| {
            let link = hw.devices.iter().find(|d| d.endpoint.as_deref() == Some(&endpoint)).and_then(|d| d.link);
            report::Transfer { endpoint, bytes, seconds, link }
        })
        .collect()
}
