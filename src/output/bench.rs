//! `run-fit bench`'s results as a table, JSON, CSV and an SVG chart: pure functions returning text.

use std::path::Path;

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{CellAlignment, Table};

use crate::cli::BenchRequest;
use crate::run::bench::{Outcome, Rate, fastest};

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
                best.generation.map_or(0.0, |g| g.mean_tok_per_s),
                best.setting.command(model)
            )
        }
        None => out += "no setting ran\n",
    }
    out
}

pub fn json(outcomes: &[Outcome]) -> String {
    serde_json::to_string_pretty(outcomes).unwrap_or_default()
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
pub fn chart(outcomes: &[Outcome], title: &str) -> Result<String, String> {
    let mut svg = String::new();
    draw(outcomes, title, &mut svg)?;
    Ok(svg)
}

fn draw(outcomes: &[Outcome], title: &str, svg: &mut String) -> Result<(), String> {
    use plotters::prelude::*;
    let n = outcomes.len().max(1);
    let root = SVGBackend::with_string(svg, (960, 720)).into_drawing_area();
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
        req.load.levers.threads.map_or(String::new(), |t| format!(", {t} threads"))
    )
}
