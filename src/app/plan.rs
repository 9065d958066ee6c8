//! `run-fit plan`: the decision and why, for this machine, a profile or a hypothetical machine.

use crate::cli::{HardwareSource, PlanRequest};
use crate::engine::{CAN_OFFLOAD, Engine};
use crate::error::Failure;
use crate::fit::hardware::{self, Hardware};
use crate::fit::{advice, levers, plan, speed};
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
        HardwareSource::ThisMachine => {
            if CAN_OFFLOAD || req.compare_llama {
                engine = Some(Engine::init(printer.verbose())?);
            }
            probe::measure(engine.as_ref())?
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
    let plan = plan::plan(&facts, &hardware, &policy)?;
    let speed = speed::predict(&facts, &plan, &hardware);
    let quant_advice = advice::quant_advice(&facts, &hardware, &policy, &plan);
    let levers = levers::lever_advice(&facts, &hardware, &policy, &plan);
    let llama_fit = match (&engine, req.compare_llama) {
        // Same minimum context and the same per-GPU reserves as our plan, so the two choices compare.
        (Some(e), true) => {
            let reserves: Vec<u64> = plan.devices.iter().map(|d| d.reserve_bytes).collect();
            Some(e.llama_fit(std::path::Path::new(&label), plan.min_ctx_tokens as u32, &reserves)?)
        }
        _ => None,
    };
    let report = PlanReport {
        model: report::model_summary(&label, &facts),
        hardware: &hardware,
        plan: &plan,
        llama_args: plan.llama_args(),
        llama_fit: llama_fit.as_ref(),
        estimate,
        speed,
        learned,
        quant_advice,
        levers,
    };
    let text = if req.json { report::plan_json(&report) } else { report::plan_text(&report) };
    printer.out(&text)
}
