//! `run-fit bench MODEL`: load each setting of a sweep safely (the launcher's planning and backoff; a
//! setting that does not fit is a row that says so), measure prompt and generation speed as llama-bench
//! does, repeat, and report measured beside predicted — as a table, JSON, CSV and an SVG chart.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{CellAlignment, Table};
use serde::Serialize;

use crate::backoff::Verdict;
use crate::cli::{BenchRequest, Mode, RunRequest};
use crate::error::Failure;
use crate::facts::ModelFacts;
use crate::gguf::GgmlType;
use crate::hardware::Hardware;
use crate::launch::{Launcher, Ui};
use crate::plan::{self, Pins};
use crate::protocol::Sampling;
use crate::speed::{self, Speed};

/// One point of the sweep; None = what the planner would choose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    pub n_gpu_layers: u32,
    pub n_ctx_tokens: u64,
    pub cache_k: String,
    pub cache_v: String,
    pub flash_attn: bool,
    pub n_ubatch_tokens: u64,
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
    let planned = plan::plan(facts, hardware, &req.policy)?;
    let max = planned.config.n_gpu_layers();
    let ngls: Vec<u32> = match &req.n_gpu_layers {
        Some(list) => list.iter().map(|n| n.unwrap_or(max)).collect(),
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
                    for &ub in &req.ubatch_tokens {
                        out.push(Setting {
                            n_gpu_layers: ngl,
                            n_ctx_tokens: ctx,
                            cache_k: k.unwrap_or(f16).name.to_lowercase(),
                            cache_v: v.unwrap_or(f16).name.to_lowercase(),
                            flash_attn: fa,
                            n_ubatch_tokens: ub,
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
    ui: &Ui,
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
        if setting.n_ctx_tokens < (req.prompt_tokens + req.gen_tokens) as u64 {
            outcomes.push(Outcome {
                setting: setting.clone(),
                prompt: None,
                generation: None,
                predicted: None,
                status: format!(
                    "did not run: a context of {} tokens cannot hold -p {} + -n {}",
                    setting.n_ctx_tokens, req.prompt_tokens, req.gen_tokens
                ),
            });
            done += req.repetitions as u64;
            on_step(done, total);
            continue;
        }
        let mut policy = req.policy.clone();
        policy.pins = Pins {
            n_gpu_layers: Some(setting.n_gpu_layers),
            n_ctx_tokens: Some(setting.n_ctx_tokens),
            cache_k: GgmlType::from_name(&setting.cache_k.to_uppercase()),
            cache_v: GgmlType::from_name(&setting.cache_v.to_uppercase()),
            flash_attn: Some(setting.flash_attn),
            ..policy.pins.clone()
        };
        policy.n_ubatch_tokens = setting.n_ubatch_tokens;
        let run_req = RunRequest {
            fresh: true,
            model: req.model.clone(),
            policy: policy.clone(),
            levers: req.levers.clone(),
            mode: Mode::Once(None),
            system_prompt: None,
            max_tokens: Some(req.gen_tokens),
            ignore_eos: true,
            sampling: Sampling::default(),
            json: false,
        };
        let mut launcher = Launcher::new(&run_req, facts, hardware.clone(), policy, None, ui, Arc::clone(&interrupt));
        let mut outcome = Outcome {
            setting: setting.clone(),
            prompt: None,
            generation: None,
            predicted: None,
            status: String::new(),
        };
        match launcher.start() {
            Err(Failure::Interrupted) => return Err(Failure::Interrupted),
            Err(e @ (Failure::DoesNotFit(_) | Failure::OutOfMemory(_) | Failure::Engine(_))) => {
                outcome.status = format!("did not run: {e}");
                done += req.repetitions as u64;
                on_step(done, total);
            }
            Err(other) => return Err(other),
            Ok(mut running) => {
                // The plan that ran; tg starts from an empty context, as in llama-bench, so on average
                // half the generated tokens are in it.
                let fill = (req.gen_tokens / 2) as u64;
                outcome.predicted = speed::predict_at(facts, &running.plan, hardware, fill);
                let (mut pp, mut tg) = (Vec::new(), Vec::new());
                for _ in 0..req.repetitions {
                    match running.worker.bench(req.prompt_tokens, req.gen_tokens, &interrupt) {
                        Ok(stats) => {
                            pp.push(stats.prompt_tok_per_s());
                            tg.push(stats.generation_tok_per_s());
                        }
                        Err(death) => {
                            outcome.status = match crate::backoff::classify(&death) {
                                Verdict::Memory { evidence, .. } => {
                                    format!("out of memory while measuring ({evidence})")
                                }
                                Verdict::Other(why) => format!("failed while measuring: {why}"),
                            };
                            break;
                        }
                    }
                    done += 1;
                    on_step(done, total);
                }
                outcome.prompt = Rate::of(&pp);
                outcome.generation = Rate::of(&tg);
                if outcome.status.is_empty() {
                    outcome.status = "ok".into();
                }
            }
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The setting with the fastest generation (the rate a chat feels), if any ran.
pub fn fastest(outcomes: &[Outcome]) -> Option<&Outcome> {
    outcomes
        .iter()
        .filter(|o| o.generation.is_some())
        .max_by(|a, b| a.generation.unwrap().mean_tok_per_s.total_cmp(&b.generation.unwrap().mean_tok_per_s))
}

fn rate_text(r: Option<Rate>) -> String {
    r.map_or("-".into(), |r| format!("{:.1} ± {:.1}", r.mean_tok_per_s, r.stdev_tok_per_s))
}

pub fn text(outcomes: &[Outcome], model: &Path, req: &BenchRequest) -> String {
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN);
    table.set_header([
        "setting".to_string(),
        format!("pp{} tok/s", req.prompt_tokens),
        "predicted".into(),
        format!("tg{} tok/s", req.gen_tokens),
        "predicted".into(),
        "status".into(),
    ]);
    for o in outcomes {
        table.add_row([
            o.setting.label(),
            rate_text(o.prompt),
            o.predicted.as_ref().map_or("-".into(), |p| format!("{:.0}", p.prompt_tok_per_s)),
            rate_text(o.generation),
            o.predicted.as_ref().map_or("-".into(), |p| format!("{:.0}", p.generation_tok_per_s)),
            o.status.clone(),
        ]);
    }
    for i in 1..5 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = format!("{table}\n");
    out += &format!("mean ± standard deviation of {} runs each; prediction: docs/SPEED.md\n", req.repetitions);
    match fastest(outcomes) {
        Some(best) => {
            out += &format!(
                "fastest: {} ({:.1} tok/s generating)\n  {}\n",
                best.setting.label(),
                best.generation.unwrap().mean_tok_per_s,
                best.setting.command(model)
            )
        }
        None => out += "no setting ran\n",
    }
    out
}

pub fn json(outcomes: &[Outcome]) -> String {
    serde_json::to_string_pretty(outcomes).expect("serializes")
}

pub fn csv(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "n_gpu_layers,n_ctx_tokens,cache_k,cache_v,flash_attn,n_ubatch_tokens,prompt_tok_per_s,prompt_stdev,predicted_prompt_tok_per_s,generation_tok_per_s,generation_stdev,predicted_generation_tok_per_s,status\n",
    );
    let num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
    for o in outcomes {
        let s = &o.setting;
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"\n",
            s.n_gpu_layers,
            s.n_ctx_tokens,
            s.cache_k,
            s.cache_v,
            s.flash_attn,
            s.n_ubatch_tokens,
            num(o.prompt.map(|r| r.mean_tok_per_s)),
            num(o.prompt.map(|r| r.stdev_tok_per_s)),
            num(o.predicted.as_ref().map(|p| p.prompt_tok_per_s)),
            num(o.generation.map(|r| r.mean_tok_per_s)),
            num(o.generation.map(|r| r.stdev_tok_per_s)),
            num(o.predicted.as_ref().map(|p| p.generation_tok_per_s)),
            o.status.replace('"', "'")
        );
    }
    out
}

/// Two panels (prompt processing above, generation below): measured (solid, with points) and
/// predicted (dashed) tok/s for each setting, in sweep order.
pub fn chart(outcomes: &[Outcome], path: &Path, title: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let n = outcomes.len().max(1);
    let root = SVGBackend::new(path, (960, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((2, 1));
    let labels: Vec<String> = outcomes.iter().map(|o| o.setting.label()).collect();
    type Pick = fn(&Outcome) -> (Option<f64>, Option<f64>);
    let pick_pp: Pick = |o| (o.prompt.map(|r| r.mean_tok_per_s), o.predicted.as_ref().map(|p| p.prompt_tok_per_s));
    let pick_tg: Pick =
        |o| (o.generation.map(|r| r.mean_tok_per_s), o.predicted.as_ref().map(|p| p.generation_tok_per_s));
    for (panel, (caption, pick)) in panels.iter().zip([("prompt processing", pick_pp), ("generation", pick_tg)]) {
        let measured: Vec<(f64, f64)> =
            outcomes.iter().enumerate().filter_map(|(i, o)| pick(o).0.map(|v| (i as f64, v))).collect();
        let predicted: Vec<(f64, f64)> =
            outcomes.iter().enumerate().filter_map(|(i, o)| pick(o).1.map(|v| (i as f64, v))).collect();
        let y_max = measured.iter().chain(&predicted).map(|p| p.1).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{caption} (tok/s)"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("tok/s")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(measured.clone(), BLUE.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("measured")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart.draw_series(measured.iter().map(|&p| Circle::new(p, 4, BLUE.filled()))).map_err(|e| e.to_string())?;
        chart
            .draw_series(DashedLineSeries::new(predicted.clone(), 6, 4, RED.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("predicted")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// What every setting shares, for the chart title.
pub fn describe(req: &BenchRequest) -> String {
    format!(
        "pp{} / tg{}, {} runs each{}",
        req.prompt_tokens,
        req.gen_tokens,
        req.repetitions,
        req.levers.threads.map_or(String::new(), |t| format!(", {t} threads"))
    )
}
