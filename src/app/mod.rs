//! The commands, as chained steps: read the model, get the hardware, plan, then report, run or measure.
//! One file per command; this one dispatches and holds the steps they share. The only place where
//! I/O steps are chained.

mod bench;
mod devices;
mod plan;
mod rpc_server;
mod run;

use std::process::ExitCode;

use crate::cli::{Early, Invocation, LoadRequest, ModelSource, Request};
use crate::error::Failure;
use crate::fit::calibration;
use crate::fit::hardware::Hardware;
use crate::fit::plan::Policy;
use crate::machine::{cache, probe};
use crate::model::facts::{self, ModelFacts};
use crate::model::{names, synth};
use crate::output::printer::Printer;
use crate::output::report::Estimate;
use crate::run::launch::Learn;

/// Run what the user asked for; every outcome, errors included, is printed here.
pub fn execute(invocation: Invocation) -> ExitCode {
    crate::engine::limit_malloc_arenas();
    let printer = Printer::new(invocation.quiet, invocation.verbose);
    let result = match invocation.request {
        Request::Worker => return crate::run::worker::run(),
        Request::Run(req) => run::run_model(&req, &printer),
        Request::Plan(req) => plan::run_plan(&req, &printer),
        Request::Bench(req) => bench::run_bench(&req, &printer),
        Request::Devices(req) => devices::run_devices(&req, &printer),
        Request::RpcServer(req) => rpc_server::run_rpc_server(&req, &printer),
        Request::RpcServe(spec) => rpc_server::serve_child(&spec, invocation.verbose),
        Request::LlamaFit(spec) => plan::llama_fit_child(&spec, &printer),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => printer.error(&failure),
    }
}

/// The command line did not make a request: help and version go to stdout (exit 0); a usage error is
/// one line on stderr, clap's first paragraph joined, with where to look (exit 2).
pub fn finish_early(early: Early) -> ExitCode {
    match early {
        Early::Clap(e) if !e.use_stderr() => {
            let printer = Printer::new(false, false);
            match printer.out(&e.render().to_string()) {
                Ok(()) | Err(Failure::OutputClosed) => ExitCode::SUCCESS,
                Err(failure) => printer.error(&failure),
            }
        }
        Early::Clap(e) => {
            let rendered = e.render().to_string();
            let paragraph: Vec<&str> =
                rendered.lines().map(str::trim).skip_while(|l| l.is_empty()).take_while(|l| !l.is_empty()).collect();
            let text = paragraph.join(" ");
            let message = text.strip_prefix("error: ").unwrap_or(&text);
            Printer::new(false, false).error(&Failure::Usage(format!("{message} (run-fit --help lists the flags)")))
        }
        Early::Usage { quiet, message } => Printer::new(quiet, false).error(&Failure::Usage(message)),
    }
}

/// Read and understand the model file (safe Rust only; llama.cpp never sees an unchecked file).
pub fn read_facts(path: &std::path::Path) -> Result<ModelFacts, Failure> {
    let model = crate::machine::model_file::read_model(path)?;
    Ok(facts::from_model(&model)?)
}

/// A file's facts, or (for a name or `--params`) the facts of a typical model of that size and
/// quantization, with how the estimate was made.
pub(crate) fn resolve_model(source: &ModelSource) -> Result<(String, ModelFacts, Option<Estimate>), Failure> {
    let (from, info) = match source {
        // Anything on disk is a file to read, even a broken or looping symlink: only a path that names
        // nothing is read as a model name.
        ModelSource::Path(path) if path.symlink_metadata().is_ok() => {
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
    let chosen = names::closest_shape(&info, &from);
    let facts = synth::facts(&chosen.shape, info.quant);
    let estimate = Estimate {
        from: from.clone(),
        params_named: info.params,
        quant: info.quant.to_string(),
        shape: chosen.description,
        naive_weight_bytes: names::naive_weight_bytes(&info) as u64,
        naive_bits_per_weight: info.naive_bits,
    };
    Ok((from, facts, Some(estimate)))
}

/// This machine's calibration: fill the host's memory bandwidth (measured once, then cached) and,
/// unless `fresh`, start `policy` from what the last run of `model` here learned (notes say what).
/// Returns where the next successful load is recorded. A broken cache is a warning, never an error.
pub(crate) fn learn_from_earlier_runs(
    hardware: &mut Hardware,
    model: Option<&std::path::Path>,
    policy: &mut Policy,
    fresh: bool,
    notes: &mut Vec<String>,
) -> Option<Learn> {
    let (mut cache, warning) = cache::load();
    notes.extend(warning.map(|w| format!("warning: {w}")));
    let machine = probe::fingerprint(hardware);
    host_rates(hardware, &mut cache, fresh, notes);
    let model_key = cache::model_key(model?);
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

/// The host's memory bandwidth and CPU matrix rate: measured once per machine and cached; measured
/// again with `fresh`, or when the last readings were taken on a busy machine — a lower reading then
/// never replaces a higher one (unless `fresh`). What a profile or the user gave stays.
fn host_rates(hardware: &mut Hardware, cache: &mut calibration::Cache, fresh: bool, notes: &mut Vec<String>) {
    let host = probe::host_fingerprint(hardware);
    let kept_bw = cache.host_bandwidth_gb_per_s.get(&host).copied();
    let kept_mm = cache.host_matmul_tflops.get(&host).copied();
    let busy_before = cache.host_busy.get(&host).copied().unwrap_or(false);
    let (bandwidth, matmul) = if fresh || busy_before || kept_bw.is_none() || kept_mm.is_none() {
        let reading = probe::measure_host_rates(hardware.host.threads);
        let bandwidth = calibration::keep_best(kept_bw, reading.bandwidth_gb_per_s, fresh);
        let matmul = calibration::keep_best(kept_mm, reading.matmul_tflops, fresh);
        let busy = reading.others_busy_share.filter(|&s| s > calibration::BUSY_SHARE);
        if let Some(share) = busy {
            notes.push(format!(
                "warning: other programs used {:.0} % of the CPU while run-fit measured this machine ({} GB/s \
                 memory, {} TFLOPS matrix): speeds predicted from it may be low; the next run measures again \
                 and keeps the better reading, --fresh takes the new one",
                share * 100.0,
                reading.bandwidth_gb_per_s.map_or("?".into(), |b| format!("{b:.0}")),
                reading.matmul_tflops.map_or("?".into(), |t| format!("{t:.2}")),
            ));
        }
        cache.version = calibration::VERSION;
        bandwidth.map(|b| cache.host_bandwidth_gb_per_s.insert(host.clone(), b));
        matmul.map(|t| cache.host_matmul_tflops.insert(host.clone(), t));
        cache.host_busy.insert(host, busy.is_some());
        if let Some(w) = cache::save(cache) {
            notes.push(format!("warning: {w}"));
        }
        (bandwidth, matmul)
    } else {
        (kept_bw, kept_mm)
    };
    hardware.host.bandwidth_gb_per_s = hardware.host.bandwidth_gb_per_s.or(bandwidth);
    hardware.host.matmul_tflops = hardware.host.matmul_tflops.or(matmul);
}

/// What the calibration cache knows of this machine's rates, for `run-fit devices` (which measures
/// nothing it need not).
pub(crate) fn cached_host_rates(hardware: &mut Hardware) {
    let (cache, _) = cache::load();
    let host = probe::host_fingerprint(hardware);
    let h = &mut hardware.host;
    h.bandwidth_gb_per_s = h.bandwidth_gb_per_s.or(cache.host_bandwidth_gb_per_s.get(&host).copied());
    h.matmul_tflops = h.matmul_tflops.or(cache.host_matmul_tflops.get(&host).copied());
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

/// More threads than CPUs only slow llama.cpp down, and `-t 10000` would start ten thousand (and
/// answer nothing for minutes): `-t` is capped at four times the CPUs this process may use, at least
/// 32, and run-fit says so. Below that a user may oversubscribe on purpose.
pub(crate) fn cap_threads(load: &LoadRequest, cpus: u32, printer: &Printer) -> LoadRequest {
    let mut load = load.clone();
    let cap = cpus.saturating_mul(4).max(32);
    if let Some(t) = load.levers.threads
        && t > cap
    {
        printer.note(&format!("-t {t}: more than {cap} threads for {cpus} CPUs only slows llama.cpp; using {cpus}"));
        load.levers.threads = Some(cpus.max(1));
    }
    load
}
