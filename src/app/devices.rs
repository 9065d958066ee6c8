//! `run-fit devices`: what llama.cpp sees and the RAM available, once or again and again.

use crate::cli::DevicesRequest;
use crate::engine::{CAN_OFFLOAD, Engine};
use crate::error::Failure;
use crate::fit::hardware::Hardware;
use crate::machine::probe;
use crate::output::printer::Printer;
use crate::output::report;

pub(super) fn run_devices(req: &DevicesRequest, printer: &Printer) -> Result<(), Failure> {
    // With `--rpc`, this process never talks to a server itself (llama.cpp's client aborts on a lost
    // one): a child does (`--probe-child`), after each endpoint was seen to accept connections.
    let isolated = !req.rpc.is_empty() && !req.probe_child;
    let engine = if !isolated && (CAN_OFFLOAD || !req.rpc.is_empty() || req.measure_host) {
        let engine = Engine::init(printer.verbose())?;
        engine.add_rpc_servers(&req.rpc)?;
        Some(engine)
    } else {
        None
    };
    let measure = || -> Result<Hardware, Failure> {
        if isolated {
            // `devices` shows the link as it is now.
            return probe::measure_isolated_with(&req.rpc, req.rpc_link, true);
        }
        let mut hw = probe::measure(engine.as_ref())?;
        if let (Some(engine), true) = (&engine, req.measure_host) {
            hw.host.matmul_tflops = engine.measure_matmul_tflops("CPU", hw.host.threads).ok();
            return Ok(hw);
        }
        if let (Some(engine), true) = (&engine, req.measure_local) {
            // This machine's GPUs, through ggml on each (about a second each), unless known.
            for d in hw.devices.iter_mut().filter(|d| d.endpoint.is_none()) {
                if !req.known_devices.contains(&probe::local_key(d)) {
                    d.measured = engine.measure_rates(&d.name, hw.host.threads).ok();
                }
            }
        }
        if let (Some(engine), true) = (&engine, req.probe_child) {
            if req.rpc_link.is_none() {
                measure_links(engine, &mut hw, &req.known_links);
            }
            // The servers' devices, through ggml on them (about a second each), unless known.
            for d in hw.devices.iter_mut().filter(|d| d.endpoint.as_ref().is_some_and(|e| !req.known_links.contains(e)))
            {
                d.measured = engine.measure_rates(&d.name, hw.host.threads).ok();
            }
        }
        Ok(hw)
    };
    let Some(interval) = req.watch else {
        let mut hw = measure()?;
        if !req.measure_host && !req.probe_child && !req.measure_local {
            super::cached_host_rates(&mut hw);
            if !isolated {
                probe::fill_local_rates(&mut hw, false);
            }
        }
        if !req.json {
            hw.warnings.iter().for_each(|w| printer.warn(w));
        }
        let offload = CAN_OFFLOAD || !req.rpc.is_empty();
        let text = if req.json { report::devices_json(&hw) } else { report::devices_text(&hw, offload) };
        return printer.out(&text);
    };
    // `--watch`: memory in use per device, each reading one block with a time stamp (a terminal gets
    // the screen cleared first). A closed stdout ends it.
    let clear = printer.stdout_is_terminal();
    let started = std::time::Instant::now();
    let mut n = 0;
    loop {
        let hw = measure()?;
        let mut text = if clear { "\x1b[2J\x1b[H".to_string() } else { String::new() };
        text += &format!("t = {:.1} s\n{}", started.elapsed().as_secs_f64(), report::memory_use_text(&hw));
        printer.out(&text)?;
        n += 1;
        if req.count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// Each server's link, measured once through its first device and shared by its others. A link that
/// cannot be measured stays unknown (the speed prediction then leaves the network out and says so).
fn measure_links(engine: &Engine, hw: &mut Hardware, known: &[String]) {
    let mut seen: Vec<(String, Option<crate::fit::hardware::Link>)> = Vec::new();
    for d in &mut hw.devices {
        let Some(endpoint) = d.endpoint.clone().filter(|e| !known.contains(e)) else { continue };
        let link = match seen.iter().find(|(e, _)| *e == endpoint) {
            Some((_, link)) => *link,
            None => {
                let link = engine.measure_link(&d.name).ok();
                seen.push((endpoint, link));
                link
            }
        };
        d.link = link;
    }
}
