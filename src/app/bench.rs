//! `run-fit bench`: the sweep, then the table (or JSON/CSV) and the chart.

use crate::cli::BenchRequest;
use crate::error::Failure;
use crate::machine::probe;
use crate::output::bench as render;
use crate::output::printer::Printer;
use crate::run::bench;

use super::{learn_from_earlier_runs, read_facts};

pub(super) fn run_bench(req: &BenchRequest, printer: &Printer) -> Result<(), Failure> {
    let facts = read_facts(&req.load.model)?;
    // A chart that cannot be written is found before minutes of measuring, not after.
    if let Some(path) = &req.chart {
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path).map_err(|e| {
            Failure::Usage(format!("--chart {}: cannot write there ({e}); give a writable path", path.display()))
        })?;
    }
    let interrupt = crate::run::signals::install(*printer)?;
    let mut hardware = probe::measure_isolated(&req.load.levers.rpc, req.load.levers.rpc_link)?;
    let mut policy = req.load.policy.clone();
    let mut notes = Vec::new();
    learn_from_earlier_runs(&mut hardware, None, &mut policy, false, &mut notes);
    for n in &notes {
        printer.note(n);
    }
    let req = &BenchRequest { load: super::cap_threads(&req.load, hardware.host.threads, printer), ..req.clone() };
    let bar = printer.progress_bar(1, "measuring {bar:40} {pos}/{len}");
    let outcomes = bench::run(req, &facts, &hardware, printer.silenced(), interrupt, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let text = if req.json {
        render::json(&outcomes) + "\n"
    } else if req.csv {
        render::csv(&outcomes)
    } else {
        render::text(&outcomes, &req.load.model, req)
    };
    if let Some(path) = &req.chart {
        let model = req.load.model.file_name().unwrap_or_default().to_string_lossy();
        let title = format!("{model} — {}", render::describe(req));
        let svg = render::chart(&outcomes, &title)
            .map_err(|e| Failure::Internal(anyhow::anyhow!("drawing {}: {e}", path.display())))?;
        std::fs::write(path, svg)
            .map_err(|e| Failure::Internal(anyhow::anyhow!("writing the chart {}: {e}", path.display())))?;
        printer.note(&format!("chart written to {}", path.display()));
    }
    printer.out(&text)?;
    if bench::fastest(&outcomes).is_none() {
        return Err(Failure::OutOfMemory("no setting of the sweep ran; the status column says why".into()));
    }
    Ok(())
}
