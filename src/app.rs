//! The commands, as typed steps: read the model, get the hardware, plan, report. `main` calls these.

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::cli::{BenchRequest, HardwareSource, Mode, ModelSource, PlanRequest, RunRequest};
use crate::engine::{CAN_OFFLOAD, Engine};
use crate::error::Failure;
use crate::facts::{self, ModelFacts};
use crate::hardware::{self, Hardware};
use crate::launch::{Launcher, Learn, Ui};
use crate::plan;
use crate::plan::Policy;
use crate::report::{self, Estimate, PlanReport};
use crate::speed;
use crate::{advice, bench, calibration};
use crate::{chat, supervisor};
use crate::{gguf, names, probe, synth};

/// Read and understand the model file (safe Rust only; llama.cpp never sees an unchecked file).
pub fn read_facts(path: &std::path::Path) -> Result<ModelFacts, Failure> {
    let model = gguf::read_model(path)?;
    Ok(facts::from_model(&model)?)
}

/// A file's facts, or (for a name or `--params`) the facts of a typical model of that size and
/// quantization, with how the estimate was made.
pub fn resolve_model(source: &ModelSource) -> Result<(String, ModelFacts, Option<Estimate>), Failure> {
    let (from, info) = match source {
        ModelSource::Path(path) if path.exists() => {
            return Ok((path.display().to_string(), read_facts(path)?, None));
        }
        ModelSource::Path(path) => {
            let text = path.display().to_string();
            match names::parse_name(&text) {
                Ok(info) => (text, info),
                Err(name_error) => {
                    let file_error = read_facts(path).err().map(|e| e.to_string()).unwrap_or_default();
                    return Err(Failure::NotAModel(format!(
                        "{file_error}; read as a model name instead: {name_error}"
                    )));
                }
            }
        }
        ModelSource::Params { params, quant } => (
            format!("--params {params} --quant {quant}"),
            names::from_flags(params, quant).map_err(|e| Failure::Usage(e.to_string()))?,
        ),
    };
    let shape = names::closest_shape(&info);
    let facts = synth::facts(shape, info.quant);
    let estimate = Estimate {
        from: from.clone(),
        params_named: info.params,
        quant: info.quant.to_string(),
        shape: shape.name.to_string(),
        naive_weight_bytes: names::naive_weight_bytes(&info) as u64,
        naive_bits_per_weight: info.naive_bits,
    };
    Ok((from, facts, Some(estimate)))
}

pub fn run_plan(req: &PlanRequest, verbose: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let (label, facts, estimate) = resolve_model(&req.model)?;
    if req.compare_llama && estimate.is_some() {
        return Err(Failure::Usage("--compare-llama needs a model file: llama.cpp's fit reads it".into()));
    }
    let mut engine = None;
    let hardware: Hardware = match &req.hardware {
        HardwareSource::Profile(p) => hardware::load_profile(p)?,
        HardwareSource::Hypothetical { vram_bytes, ram_bytes } => hardware::hypothetical(vram_bytes, *ram_bytes),
        HardwareSource::ThisMachine => {
            if CAN_OFFLOAD || req.compare_llama {
                engine = Some(Engine::init(verbose)?);
            }
            probe::measure(engine.as_ref())?
        }
    };
    let mut hardware = hardware;
    let mut policy = req.policy.clone();
    let mut learned = Vec::new();
    if matches!(req.hardware, HardwareSource::ThisMachine) {
        let path = estimate.is_none().then(|| std::path::Path::new(&label));
        learn_from_earlier_runs(&mut hardware, path, &mut policy, req.fresh, &mut learned);
    }
    let plan = plan::plan(&facts, &hardware, &policy)?;
    let speed = speed::predict(&facts, &plan, &hardware);
    let quant_advice = advice::quant_advice(&facts, &hardware, &policy, &plan);
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
    };
    let text = if req.json { report::plan_json(&report) } else { report::plan_text(&report) };
    write_out(out, &text)
}

pub fn run_devices(json: bool, verbose: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let engine = if CAN_OFFLOAD { Some(Engine::init(verbose)?) } else { None };
    let hw = probe::measure(engine.as_ref())?;
    let text = if json { report::devices_json(&hw) } else { report::devices_text(&hw, CAN_OFFLOAD) };
    write_out(out, &text)
}

/// `run-fit devices --watch`: memory in use per device, again every `seconds`, each reading one block
/// with a time stamp (a terminal gets the screen cleared first).
pub fn watch_devices(seconds: f64, count: Option<u64>, verbose: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let engine = if CAN_OFFLOAD { Some(Engine::init(verbose)?) } else { None };
    let clear = std::io::stdout().is_terminal();
    let started = std::time::Instant::now();
    let mut n = 0;
    loop {
        let hw = probe::measure(engine.as_ref())?;
        let mut text = if clear { "\x1b[2J\x1b[H".to_string() } else { String::new() };
        text += &format!("t = {:.1} s\n{}", started.elapsed().as_secs_f64(), report::memory_use_text(&hw));
        write_out(out, &text)?;
        n += 1;
        if count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs_f64(seconds));
    }
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        // A closed pipe (`run-fit plan … | head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Failure::Internal(e.into())),
    }
}

/// `run-fit MODEL`: plan, load in a worker (backing off on out-of-memory), then chat or answer once.
pub fn run_model(req: &RunRequest, ui: &Ui) -> Result<(), Failure> {
    let facts = read_facts(&req.model)?;
    // Read a piped prompt first: a missing prompt should fail before a model is loaded.
    let piped = match &req.mode {
        Mode::Once(None) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::Usage(format!("reading the prompt from stdin: {e}")))?;
            if text.trim().is_empty() {
                return Err(Failure::Usage(
                    "no prompt: give -p TEXT, pipe a prompt on stdin, or run in a terminal to chat".into(),
                ));
            }
            Some(text.trim_end().to_string())
        }
        _ => None,
    };
    let interrupt = install_interrupt()?;
    let mut hardware = probe::measure_isolated()?;
    let mut policy = req.policy.clone();
    let mut learned = Vec::new();
    let learn = learn_from_earlier_runs(&mut hardware, Some(&req.model), &mut policy, req.fresh, &mut learned);
    for note in &learned {
        ui.note(note);
    }
    let launcher = Launcher::new(req, &facts, hardware, policy, learn, ui, Arc::clone(&interrupt));
    match (&req.mode, piped) {
        (Mode::Once(Some(prompt)), _) => chat::once(req, prompt.clone(), launcher, ui, interrupt),
        (Mode::Once(None), Some(prompt)) => chat::once(req, prompt, launcher, ui, interrupt),
        _ => chat::interactive(req, launcher, ui, interrupt),
    }
}

/// This machine's calibration: fill the host's memory bandwidth (measured once, then cached) and,
/// unless `fresh`, start `policy` from what the last run of `model` here learned (notes say what).
/// Returns where the next successful load is recorded. A broken cache is a warning, never an error.
fn learn_from_earlier_runs(
    hardware: &mut Hardware,
    model: Option<&std::path::Path>,
    policy: &mut Policy,
    fresh: bool,
    notes: &mut Vec<String>,
) -> Option<Learn> {
    let (mut cache, warning) = calibration::load();
    notes.extend(warning.map(|w| format!("warning: {w}")));
    let machine = probe::fingerprint(hardware);
    let bandwidth = match cache.host_bandwidth_gb_per_s.get(&machine) {
        Some(&bw) if !fresh => Some(bw),
        _ => {
            let bw = probe::host_bandwidth_gb_per_s(hardware.host.threads);
            if let Some(bw) = bw {
                cache.version = calibration::VERSION;
                cache.host_bandwidth_gb_per_s.insert(machine.clone(), bw);
                if let Some(w) = calibration::save(&cache) {
                    notes.push(format!("warning: {w}"));
                }
            }
            bw
        }
    };
    if hardware.host.bandwidth_gb_per_s.is_none() {
        hardware.host.bandwidth_gb_per_s = bandwidth;
    }
    let model_key = calibration::model_key(model?);
    if !fresh && let Some(run) = cache.latest(&model_key, &machine) {
        let names: Vec<String> = hardware.devices.iter().map(|d| d.name.clone()).collect();
        let adjustments = calibration::adjust(policy, run, &names);
        let when = run.when;
        if adjustments.is_empty() {
            notes.push(format!("calibrated: the last run here ({}) used what was predicted", ago(when)));
        } else {
            notes.extend(
                adjustments.into_iter().map(|a| format!("calibrated from the last run here ({}): {a}", ago(when))),
            );
        }
    }
    Some(Learn { cache, model_key, machine })
}

fn ago(when: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match now.saturating_sub(when) {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86400),
    }
}

/// `run-fit bench`: the sweep, then the table (or JSON/CSV) and the chart.
pub fn run_bench(req: &BenchRequest, ui: &Ui, out: &mut dyn Write) -> Result<(), Failure> {
    let facts = read_facts(&req.model)?;
    let interrupt = install_interrupt()?;
    let mut hardware = probe::measure_isolated()?;
    let mut policy = req.policy.clone();
    let mut notes = Vec::new();
    learn_from_earlier_runs(&mut hardware, None, &mut policy, false, &mut notes);
    for n in &notes {
        ui.note(n);
    }
    let quiet_ui = Ui { quiet: true, verbose: ui.verbose };
    let bar = ui.progress_bar(1, "measuring {bar:40} {pos}/{len}");
    let outcomes = bench::run(req, &facts, &hardware, &quiet_ui, interrupt, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let text = if req.json {
        bench::json(&outcomes) + "\n"
    } else if req.csv {
        bench::csv(&outcomes)
    } else {
        bench::text(&outcomes, &req.model, req)
    };
    if let Some(path) = &req.chart {
        let title =
            format!("{} — {}", req.model.file_name().unwrap_or_default().to_string_lossy(), bench::describe(req));
        bench::chart(&outcomes, path, &title)
            .map_err(|e| Failure::Internal(anyhow::anyhow!("drawing {}: {e}", path.display())))?;
        ui.note(&format!("chart written to {}", path.display()));
    }
    write_out(out, &text)
}

/// Ctrl-C becomes a flag the waits look at (and a wake-up for them): it stops a reply instead of
/// killing run-fit.
fn install_interrupt() -> Result<Arc<AtomicBool>, Failure> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT])
        .map_err(|e| Failure::Internal(anyhow::Error::from(e).context("installing the Ctrl-C handler")))?;
    let flag = Arc::clone(&interrupt);
    std::thread::spawn(move || {
        for _ in signals.forever() {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            supervisor::wake_all();
        }
    });
    Ok(interrupt)
}
