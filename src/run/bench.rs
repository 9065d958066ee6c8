//! `run-fit bench MODEL`: load each setting of a sweep safely (the launcher's planning and backoff; a
//! setting that does not fit is a row that says so), measure prompt and generation speed as llama-bench
//! does, repeat, with the prediction beside each measurement. `output::bench` renders the results.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::cli::{BenchRequest, LayerChoice, LoadRequest};
use crate::error::Failure;
use crate::fit::hardware::Hardware;
use crate::fit::moe::ExpertPins;
use crate::fit::plan::{self, Pins, Policy};
use crate::fit::speed::{self, Speed};
use crate::model::facts::ModelFacts;
use crate::model::gguf::GgmlType;
use crate::output::printer::Printer;
use crate::run::launch::Launcher;
use crate::run::session::ModelSession;

/// One point of the sweep; None = what the planner would choose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    pub n_gpu_layers: u32,
    pub n_ctx_tokens: u64,
    pub cache_k: String,
    pub cache_v: String,
    pub flash_attn: bool,
    pub n_ubatch_tokens: u64,
    /// `--n-cpu-moe`; None: as the planner places experts.
    pub n_cpu_moe: Option<u32>,
}

impl Setting {
    pub fn label(&self) -> String {
        let mut l = format!("ngl {} c {}", self.n_gpu_layers, self.n_ctx_tokens);
        if self.cache_k != "f16" || self.cache_v != "f16" {
            l += &format!(" kv {}/{}", self.cache_k, self.cache_v);
        }
        l += if self.flash_attn { " fa on" } else { " fa off" };
        if self.n_ubatch_tokens != plan::DEFAULT_UBATCH_TOKENS {
            l += &format!(" ub {}", self.n_ubatch_tokens);
        }
        if let Some(n) = self.n_cpu_moe {
            l += &format!(" ncmoe {n}");
        }
        l
    }

    /// The `run-fit` command line that runs this setting.
    pub fn command(&self, model: &Path) -> String {
        let mut c = format!("run-fit {} -ngl {} -c {}", model.display(), self.n_gpu_layers, self.n_ctx_tokens);
        if self.cache_k != "f16" {
            c += &format!(" -ctk {}", self.cache_k);
        }
        if self.cache_v != "f16" {
            c += &format!(" -ctv {}", self.cache_v);
        }
        c += if self.flash_attn { " -fa on" } else { " -fa off" };
        if self.n_ubatch_tokens != plan::DEFAULT_UBATCH_TOKENS {
            c += &format!(" -ub {}", self.n_ubatch_tokens);
        }
        if let Some(n) = self.n_cpu_moe {
            c += &format!(" --n-cpu-moe {n}");
        }
        c
    }
}

/// Mean and standard deviation of the repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub mean_tok_per_s: f64,
    pub stdev_tok_per_s: f64,
}

impl Rate {
    fn of(samples: &[f64]) -> Option<Rate> {
        if samples.is_empty() {
            return None;
        }
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var =
            if samples.len() > 1 { samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
        Some(Rate { mean_tok_per_s: mean, stdev_tok_per_s: var.sqrt() })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub setting: Setting,
    /// None when the setting could not run; `status` says why.
    pub prompt: Option<Rate>,
    pub generation: Option<Rate>,
    pub predicted: Option<Speed>,
    pub status: String,
}

/// The settings of the sweep: every combination of the lists, GPU layers `max` resolved to the
/// planned maximum. Without `-ngl`, 0 to the planned maximum in quarters.
fn settings(req: &BenchRequest, facts: &ModelFacts, hardware: &Hardware) -> Result<Vec<Setting>, Failure> {
    let planned = plan::plan(facts, hardware, &req.load.policy)?;
    let max = planned.config.n_gpu_layers();
    let ngls: Vec<u32> = match &req.n_gpu_layers {
        Some(list) => list
            .iter()
            .map(|n| match n {
                LayerChoice::Count(n) => *n,
                LayerChoice::Max => max,
            })
            .collect(),
        None => {
            let mut v: Vec<u32> = (0..=4).map(|q| max * q / 4).collect();
            v.dedup();
            v
        }
    };
    let f16 = GgmlType::from_name("F16").expect("known");
    let ctxs = req.ctx_tokens.clone().unwrap_or_else(|| vec![default_ctx(req)]);
    let mut out = Vec::new();
    for &ngl in &ngls {
        for &ctx in &ctxs {
            for &(k, v) in &req.cache_types {
                for &fa in &req.flash_attn {
                    for (&ub, &n_cpu_moe) in
                        req.ubatch_tokens.iter().flat_map(|ub| req.n_cpu_moe.iter().map(move |m| (ub, m)))
                    {
                        out.push(Setting {
                            n_gpu_layers: ngl,
                            n_ctx_tokens: ctx,
                            cache_k: k.unwrap_or(f16).name.to_lowercase(),
                            cache_v: v.unwrap_or(f16).name.to_lowercase(),
                            flash_attn: fa,
                            n_ubatch_tokens: ub,
                            n_cpu_moe,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// llama-bench's context: room for the prompt and the generated tokens, in multiples of 256.
fn default_ctx(req: &BenchRequest) -> u64 {
    ((req.prompt_tokens + req.gen_tokens) as u64).div_ceil(256).max(1) * 256
}

/// Run the sweep. `on_step` sees (done, total) for a progress bar.
pub fn run(
    req: &BenchRequest,
    facts: &ModelFacts,
    hardware: &Hardware,
    printer: Printer,
    interrupt: Arc<AtomicBool>,
    on_step: &mut dyn FnMut(u64, u64),
) -> Result<Vec<Outcome>, Failure> {
    let sweep = settings(req, facts, hardware)?;
    let total = sweep.len() as u64 * req.repetitions as u64;
    let mut done = 0;
    let mut outcomes = Vec::new();
    for setting in sweep {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Failure::Interrupted);
        }
        let outcome = if setting.n_ctx_tokens < (req.prompt_tokens + req.gen_tokens) as u64 {
            let status = format!(
                "did not run: a context of {} tokens cannot hold -p {} + -n {}",
                setting.n_ctx_tokens, req.prompt_tokens, req.gen_tokens
            );
            Outcome { setting, prompt: None, generation: None, predicted: None, status }
        } else {
            let load = LoadRequest { policy: pinned(&req.load.policy, &setting), ..req.load.clone() };
            let launcher = Launcher::new(
                &load,
                facts,
                hardware.clone(),
                load.policy.clone(),
                None,
                printer,
                Arc::clone(&interrupt),
            );
            measure_setting(req, facts, hardware, setting, launcher, &interrupt, &mut || {
                done += 1;
                on_step(done, total)
            })?
        };
        // Settings that did not run, or stopped early, still count as done.
        done = (outcomes.len() as u64 + 1) * req.repetitions as u64;
        on_step(done, total);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The policy that loads exactly `setting`.
fn pinned(policy: &Policy, setting: &Setting) -> Policy {
    Policy {
        pins: Pins {
            n_gpu_layers: Some(setting.n_gpu_layers),
            n_ctx_tokens: Some(setting.n_ctx_tokens),
            cache_k: GgmlType::from_name(&setting.cache_k.to_uppercase()),
            cache_v: GgmlType::from_name(&setting.cache_v.to_uppercase()),
            flash_attn: Some(setting.flash_attn),
            experts: ExpertPins { n_cpu_moe: setting.n_cpu_moe, ..policy.pins.experts.clone() },
            ..policy.pins.clone()
        },
        n_ubatch_tokens: setting.n_ubatch_tokens,
        ..policy.clone()
    }
}

/// Load one setting and measure it `-r` times; a setting that does not fit or fails is a row that
/// says so. `on_repetition` ticks after each measurement.
fn measure_setting(
    req: &BenchRequest,
    facts: &ModelFacts,
    hardware: &Hardware,
    setting: Setting,
    launcher: Launcher,
    interrupt: &Arc<AtomicBool>,
    on_repetition: &mut dyn FnMut(),
) -> Result<Outcome, Failure> {
    let mut outcome = Outcome { setting, prompt: None, generation: None, predicted: None, status: String::new() };
    let mut session = match ModelSession::start(launcher, Arc::clone(interrupt)) {
        Err(e @ (Failure::DoesNotFit(_) | Failure::OutOfMemory(_) | Failure::Engine(_))) => {
            outcome.status = format!("did not run: {e}");
            return Ok(outcome);
        }
        Err(other) => return Err(other),
        Ok(session) => session,
    };
    // The plan that ran; tg starts from an empty context, as in llama-bench, so on average half the
    // generated tokens are in it.
    outcome.predicted = speed::predict_at(facts, session.plan(), hardware, (req.gen_tokens / 2) as u64);
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for _ in 0..req.repetitions {
        match session.measure(req.prompt_tokens, req.gen_tokens) {
            Ok(stats) => {
                pp.push(stats.prompt_tok_per_s());
                tg.push(stats.generation_tok_per_s());
            }
            Err(status) => {
                outcome.status = status;
                break;
            }
        }
        on_repetition();
    }
    if interrupt.load(Ordering::Relaxed) {
        return Err(Failure::Interrupted);
    }
    outcome.prompt = Rate::of(&pp);
    outcome.generation = Rate::of(&tg);
    if outcome.status.is_empty() {
        outcome.status = "ok".into();
    }
    Ok(outcome)
}

/// The setting with the fastest generation (the rate a chat feels), if any ran.
pub fn fastest(outcomes: &[Outcome]) -> Option<&Outcome> {
    outcomes.iter().filter(|o| o.generation.is_some()).max_by(|a, b| {
        let rate = |o: &Outcome| o.generation.map_or(0.0, |g| g.mean_tok_per_s);
        rate(a).total_cmp(&rate(b))
    })
}
