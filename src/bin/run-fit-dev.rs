//! Developer tools, not part of run-fit's user interface:
//!   run-fit-dev synth SHAPE QUANT OUT.gguf [--random SEED]
//!                                              write a synthetic model of a real shape: sparse (the data
//!                                              region a hole, for planning), or with random but valid
//!                                              weights quantized by ggml (it loads and runs; gibberish)
//!   run-fit-dev accuracy MODEL CTX [CTX…]      predicted vs llama.cpp-reported buffers (CPU, a real load
//!                                              with mmap and repacking, as users run it); a context
//!                                              written 8192f uses a full-size sliding-window cache, 8192n
//!                                              turns flash attention off, 8192m reads the file (--no-mmap)
//!   run-fit-dev rpc-accuracy MODEL HOST:PORT[,…] NGL:CTX[:TS[:FLAG+VALUE…]] […]
//!                                              predicted vs llama.cpp-reported buffers on each remote
//!                                              device (one device per server): `run-fit plan --json` and
//!                                              a real `run-fit MODEL -p hi -n 1 -v` with the same pins;
//!                                              a markdown row and a JSON line per device (NGL `-`: planned)
//!   run-fit-dev fit-quality MODEL HOST:PORT,HOST:PORT BUDGET,BUDGET CTX
//!                                              two remote devices with budgets: run-fit's choice (and
//!                                              its real allocation), llama.cpp's fit, and the true
//!                                              maximum (each count and split tried in its own process);
//!                                              one markdown row
//!   run-fit-dev rates DEVICE THREADS             a device's bandwidth and matrix rate, measured through
//!                                              ggml on its backend (CPU, CUDA0 …), one JSON line
//!   run-fit-dev llama-fit MODEL                llama.cpp's own fit, as a whole process (latency benchmark)
//!   run-fit-dev speed-published                published llama.cpp results vs run-fit's prediction (markdown)
//!   run-fit-dev direct MODEL PROMPT N THREADS CTX
//!                                              llama.cpp driven directly: prompt and generation tok/s
//!                                              (throughput-parity benchmark), one JSON line

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use run_fit::dev::Engine;
use run_fit::dev::footprint::{self, Config};
use run_fit::dev::gguf::types::F16;
use run_fit::dev::{gguf, read_facts, shapes, synth, write_sparse, write_with_data};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("synth") if args.len() == 4 => write_synth(&args[1], &args[2], Path::new(&args[3]), None),
        Some("synth") if args.len() == 6 && args[4] == "--random" => match args[5].parse() {
            Ok(seed) => write_synth(&args[1], &args[2], Path::new(&args[3]), Some(seed)),
            Err(_) => Err(anyhow::anyhow!("--random {}: give a number as the seed", args[5])),
        },
        Some("accuracy") if args.len() >= 3 => accuracy(Path::new(&args[1]), &args[2..]),
        Some("llama-fit") if args.len() == 2 => llama_fit(Path::new(&args[1])),
        Some("rates") if args.len() == 3 => rates(&args[1], &args[2]),
        Some("rpc-accuracy") if args.len() >= 4 => rpc_accuracy(Path::new(&args[1]), &args[2], &args[3..]),
        Some("fit-quality") if args.len() == 5 => fit_quality(Path::new(&args[1]), &args[2], &args[3], &args[4]),
        Some("direct") if args.len() == 6 => direct(&args[1..]),
        Some("speed-published") => speed_published(),
        _ => {
            eprintln!(
                "usage: run-fit-dev synth SHAPE QUANT OUT.gguf [--random SEED] | accuracy MODEL CTX [CTX…] | llama-fit MODEL | direct MODEL PROMPT N THREADS CTX"
            );
            eprintln!("shapes: {}", shapes::SHAPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", "));
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("run-fit-dev: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_synth(shape: &str, quant: &str, out: &Path, random_seed: Option<u64>) -> Result<()> {
    let Some(shape) = shapes::by_name(shape) else { bail!("unknown shape {shape}") };
    let Some(q) = synth::quant(quant) else { bail!("unknown quant {quant}; use Q4_K_M, Q8_0, Q4_0, F16, …") };
    let (kvs, tensors) = synth::model(shape, q);
    let started = std::time::Instant::now();
    let bytes = match random_seed {
        None => write_sparse(out, &kvs, &tensors),
        Some(seed) => {
            // The engine's quantizer runs without llama.cpp's backend; nothing else is needed.
            let mut failure = None;
            let r = write_with_data(out, &kvs, &tensors, |t, w| {
                random_tensor(t, seed, w).map_err(|e| {
                    failure = Some(e.to_string());
                    std::io::Error::other("quantization failed")
                })
            });
            if let Some(f) = failure {
                let _ = std::fs::remove_file(out);
                bail!("{f}");
            }
            r
        }
    }
    .with_context(|| format!("writing {}", out.display()))?;
    let kind = if random_seed.is_some() { "random weights" } else { "sparse" };
    println!("{}: {} bytes ({kind}) in {:.1} s", out.display(), bytes, started.elapsed().as_secs_f64());
    Ok(())
}

/// A tensor's data: random values (weights ~ ±1/√n, norms ~1) quantized by ggml, in chunks of rows
/// spread over the cores, written in order.
fn random_tensor(t: &gguf::writer::TensorSpec, seed: u64, out: &mut dyn std::io::Write) -> Result<()> {
    let n_per_row = t.dims[0] as usize;
    let rows = t.dims[1..].iter().product::<u64>() as usize;
    let norm = t.name.ends_with("norm.weight");
    let scale = if norm { 0.1 } else { 1.0 / (n_per_row as f32).sqrt() };
    let chunk_rows = ((1 << 20) / n_per_row).max(1);
    let n_chunks = rows.div_ceil(chunk_rows);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let name_hash =
        t.name.bytes().fold(seed ^ 0x9E37_79B9_7F4A_7C15, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3));
    let make = |chunk: usize| -> Result<Vec<u8>> {
        let first = chunk * chunk_rows;
        let n = chunk_rows.min(rows - first);
        let mut state = name_hash ^ (chunk as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        let values: Vec<f32> = (0..n * n_per_row)
            .map(|_| {
                // splitmix64 → uniform in [-1, 1)
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                let u = (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                if norm { 1.0 + u * scale } else { u * scale }
            })
            .collect();
        run_fit::dev::quantize_rows(t.ggml_type.id, &values, n_per_row)
    };
    for batch in (0..n_chunks).collect::<Vec<_>>().chunks(threads) {
        let results: Vec<Result<Vec<u8>>> = std::thread::scope(|s| {
            batch
                .iter()
                .map(|&c| s.spawn(move || make(c)))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a quantizer thread panicked"))))
                .collect()
        });
        for r in results {
            out.write_all(&r?)?;
        }
    }
    Ok(())
}

/// One markdown row per context: predicted and reported bytes of weights, KV, compute and total.
fn accuracy(model: &Path, contexts: &[String]) -> Result<()> {
    let facts = read_facts(model)?;
    let engine = Engine::init(false)?;
    let name = model.file_name().unwrap_or_default().to_string_lossy();
    for ctx in contexts {
        let swa_full = ctx.contains('f');
        let flash_attn = !ctx.contains('n');
        let use_mmap = !ctx.contains('m');
        let n_ctx: u32 = ctx.trim_end_matches(['f', 'n', 'm']).parse().with_context(|| format!("context {ctx}"))?;
        let config = Config {
            gpu_layers: vec![],
            n_ctx_tokens: n_ctx.into(),
            cache_k: F16,
            cache_v: F16,
            n_ubatch_tokens: 512.min(n_ctx.into()),
            flash_attn,
            n_seq: 1,
            swa_full,
            op_offload: true,
            cpu_repack: true,
            use_mmap,
            use_mlock: false,
            overrides: vec![],
        };
        let predicted = footprint::footprint(&facts, &config).host;
        let real = engine.measure_buffers(model, n_ctx, flash_attn, swa_full, use_mmap)?;
        // The host's compute figure includes llama.cpp's output (logits) buffer.
        let real_compute = real.compute_bytes + real.output_bytes;
        let real_total = real.model_bytes + real.kv_bytes + real_compute;
        let err = |p: u64, r: u64| if r == 0 { 0.0 } else { (p as f64 - r as f64) / r as f64 * 100.0 };
        let mib = |b: u64| b as f64 / 1048576.0;
        println!(
            "| {name} | {ctx} | {:.2} / {:.2} ({:+.2} %) | {:.2} / {:.2} ({:+.2} %) | {:.2} / {:.2} ({:+.1} %) | {:.2} / {:.2} ({:+.2} %) |",
            mib(predicted.weights + predicted.repack),
            mib(real.model_bytes),
            err(predicted.weights + predicted.repack, real.model_bytes),
            mib(predicted.kv),
            mib(real.kv_bytes),
            err(predicted.kv, real.kv_bytes),
            mib(predicted.compute),
            mib(real_compute),
            err(predicted.compute, real_compute),
            mib(predicted.total()),
            mib(real_total),
            err(predicted.total(), real_total),
        );
    }
    Ok(())
}

fn llama_fit(model: &Path) -> Result<()> {
    let engine = Engine::init(false)?;
    let fit = engine.llama_fit(model, 4096, &[run_fit::dev::plan::DEFAULT_GPU_RESERVE_BYTES])?;
    println!("-ngl {} -c {} (fitted: {})", fit.n_gpu_layers, fit.n_ctx_tokens, fit.fitted);
    Ok(())
}

fn direct(args: &[String]) -> Result<()> {
    let number = |i: usize| args[i].parse::<u32>().with_context(|| format!("{} is not a number", args[i]));
    let engine = Engine::init(false)?;
    let speed = engine.direct_speed(Path::new(&args[0]), &args[1], number(2)?, number(3)? as i32, number(4)?)?;
    println!("{}", serde_json::to_string(&speed)?);
    Ok(())
}

fn speed_published() -> Result<()> {
    use run_fit::dev::speed::{CLASSES, PUBLISHED, Published, predict_published, published_median_error_of};
    println!(
        "| source | hardware | model | set | measured tg tok/s | predicted | error | measured pp tok/s | predicted | error |"
    );
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
    let cell = |m: Option<f64>, p: f64| match m {
        Some(m) => (format!("{m:.1}"), format!("{p:.1}"), format!("{:+.0} %", (p / m - 1.0) * 100.0)),
        None => ("-".into(), "-".into(), "-".into()),
    };
    for row in PUBLISHED {
        let p = predict_published(row).context("no prediction")?;
        let (tg, tgp, tge) = cell(row.generation_tok_per_s, p.generation_tok_per_s);
        let (pp, ppp, ppe) = cell(row.prompt_tok_per_s, p.prompt_tok_per_s);
        let hw = match (row.gpu, row.n_gpu_layers) {
            ("", _) => format!("{}, {} threads", row.cpu, row.threads),
            (gpu, Some(ngl)) => format!("{gpu} + {}, -ngl {ngl}", row.cpu),
            (gpu, None) => gpu.to_string(),
        };
        let set = if row.held_out { "held out" } else { "fit" };
        println!(
            "| {} | {hw} | {} {} | {set} | {tg} | {tgp} | {tge} | {pp} | {ppp} | {ppe} |",
            row.source, row.shape.name, row.quant
        );
    }
    println!();
    println!("| rows | n | median generation error | median prompt error |");
    println!("|---|---:|---:|---:|");
    let line = |label: &str, keep: &dyn Fn(&Published) -> bool| {
        let n = PUBLISHED.iter().filter(|r| keep(r)).count();
        let pct = |e: f64| if e.is_nan() { "-".to_string() } else { format!("{:.0} %", e * 100.0) };
        println!(
            "| {label} | {n} | {} | {} |",
            pct(published_median_error_of(true, keep)),
            pct(published_median_error_of(false, keep))
        );
    };
    line("fit (two thirds)", &|r| !r.held_out);
    line("**held out (one third)**", &|r| r.held_out);
    for &c in CLASSES {
        line(&format!("held out: {c}"), &|r| r.held_out && r.class() == c);
        line(&format!("all: {c}"), &|r| r.class() == c);
    }
    let devices: std::collections::BTreeSet<&str> = PUBLISHED.iter().map(Published::device).collect();
    println!("\n{} rows over {} devices.", PUBLISHED.len(), devices.len());
    Ok(())
}

/// `run-fit` beside this executable.
fn run_fit_exe() -> Result<std::path::PathBuf> {
    let me = std::env::current_exe().context("finding run-fit-dev")?;
    Ok(me.with_file_name("run-fit"))
}

/// One remote device's predicted and logged bytes: weights, KV, compute.
#[derive(serde::Serialize)]
struct DeviceAccuracy {
    model: String,
    config: String,
    device: String,
    predicted: [u64; 3],
    logged: [u64; 3],
}

fn rpc_accuracy(model: &Path, rpc: &str, configs: &[String]) -> Result<()> {
    let endpoints: Vec<&str> = rpc.split(',').collect();
    let name = model.file_name().unwrap_or_default().to_string_lossy().into_owned();
    for config in configs {
        let mut fields = config.split(':');
        let (ngl, ctx, ts) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""), fields.next());
        let mut pins: Vec<String> = vec!["--rpc".into(), rpc.into(), "-c".into(), ctx.into()];
        // `-`: the planner chooses the layers (and, for a mixture of experts, which experts stay in RAM)
        if ngl != "-" {
            pins.extend(["-ngl".into(), ngl.into()]);
        }
        if let Some(ts) = ts.filter(|t| !t.is_empty()) {
            pins.extend(["-ts".into(), ts.into()]);
        }
        // Any further flags, joined by '+': `--n-cpu-moe+2`, `--vram-budget+60MiB`.
        if let Some(extra) = fields.next() {
            pins.extend(extra.split('+').map(str::to_string));
        }
        let mut plan_args = vec!["plan".to_string(), model.display().to_string(), "--json".into()];
        plan_args.extend(pins.iter().cloned());
        let out = std::process::Command::new(run_fit_exe()?).args(&plan_args).output()?;
        anyhow::ensure!(out.status.success(), "run-fit plan failed: {}", String::from_utf8_lossy(&out.stderr));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let mut run_args =
            vec![model.display().to_string(), "-p".into(), "hi".into(), "-n".into(), "1".into(), "-v".into()];
        run_args.extend(pins.iter().cloned());
        let out =
            std::process::Command::new(run_fit_exe()?).args(&run_args).stdin(std::process::Stdio::null()).output()?;
        anyhow::ensure!(out.status.success(), "run-fit failed: {}", String::from_utf8_lossy(&out.stderr));
        let logged = logged_buffers(&String::from_utf8_lossy(&out.stderr), &endpoints);
        let mut devices = plan["plan"]["devices"].as_array().cloned().unwrap_or_default();
        let mut host = plan["plan"]["host"].clone();
        host["name"] = "host".into();
        devices.push(host);
        for d in devices {
            let device = d["name"].as_str().unwrap_or("").to_string();
            let b = &d["bytes"];
            let get = |k: &str| b[k].as_u64().unwrap_or(0);
            let predicted = [get("weights") + get("repack"), get("kv"), get("compute")];
            let logged = logged.get(&device).copied().unwrap_or([0; 3]);
            if predicted == [0; 3] && logged == [0; 3] {
                continue;
            }
            print_device_row(&name, config, &device, predicted, logged);
            let row = DeviceAccuracy { model: name.clone(), config: config.clone(), device, predicted, logged };
            println!("{}", serde_json::to_string(&row)?);
        }
    }
    Ok(())
}

/// llama.cpp's "RPC0[127.0.0.1:50052] model buffer size = 52.84 MiB" lines per client device: the
/// buffer name carries the server's own device index and its endpoint (one device per server here).
fn logged_buffers(log: &str, endpoints: &[&str]) -> std::collections::BTreeMap<String, [u64; 3]> {
    let mut out = std::collections::BTreeMap::new();
    for line in log.lines() {
        let Some((label, value)) = line.split_once(" buffer size = ") else { continue };
        let Some(mib) = value.trim().strip_suffix("MiB").and_then(|v| v.trim().parse::<f64>().ok()) else { continue };
        let Some(rest) = label.split_once(':').map(|(_, r)| r) else { continue };
        let mut words = rest.split_whitespace();
        let (Some(buffer), Some(kind)) = (words.next(), words.next_back()) else { continue };
        // The host's buffers: CPU, CPU_Mapped, CPU_REPACK; its output (logits) buffer counts as compute.
        let device = if buffer.starts_with("CPU") {
            "host".to_string()
        } else {
            let Some(endpoint) = buffer.split_once('[').and_then(|(_, e)| e.strip_suffix(']')) else { continue };
            let Some(index) = endpoints.iter().position(|e| *e == endpoint) else { continue };
            format!("RPC{index}")
        };
        let slot = match kind {
            "model" => 0,
            "KV" => 1,
            "compute" | "output" => 2,
            _ => continue,
        };
        out.entry(device).or_insert([0u64; 3])[slot] += (mib * 1048576.0).round() as u64;
    }
    out
}

fn print_device_row(model: &str, config: &str, device: &str, p: [u64; 3], r: [u64; 3]) {
    let err = |p: u64, r: u64| if r == 0 { 0.0 } else { (p as f64 - r as f64) / r as f64 * 100.0 };
    let mib = |b: u64| b as f64 / 1048576.0;
    let (pt, rt) = (p.iter().sum::<u64>(), r.iter().sum::<u64>());
    println!(
        "| {model} | {config} | {device} | {:.2} / {:.2} ({:+.2} %) | {:.2} / {:.2} ({:+.2} %) | {:.2} / {:.2} ({:+.1} %) | {:.2} / {:.2} ({:+.2} %) |",
        mib(p[0]),
        mib(r[0]),
        err(p[0], r[0]),
        mib(p[1]),
        mib(r[1]),
        err(p[1], r[1]),
        mib(p[2]),
        mib(r[2]),
        err(p[2], r[2]),
        mib(pt),
        mib(rt),
        err(pt, rt),
    );
}

/// What llama.cpp really allocated on each remote device for `-ngl n -ts a,b` (a real load, its own
/// process), in bytes per device: model + KV + compute.
fn real_use(model: &Path, rpc: &str, endpoints: &[&str], ctx: &str, split: [u32; 2]) -> Result<[u64; 2]> {
    let n = split[0] + split[1];
    let mut args = vec![model.display().to_string(), "--rpc".into(), rpc.into(), "-c".into(), ctx.into()];
    args.extend(["-ngl".into(), n.to_string(), "-ts".into(), format!("{},{}", split[0], split[1])]);
    args.extend(["-p".into(), "hi".into(), "-n".into(), "1".into(), "-v".into()]);
    let out = std::process::Command::new(run_fit_exe()?).args(&args).stdin(std::process::Stdio::null()).output()?;
    anyhow::ensure!(out.status.success(), "run-fit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let logged = logged_buffers(&String::from_utf8_lossy(&out.stderr), endpoints);
    let total = |d: &str| logged.get(d).map_or(0, |b| b.iter().sum());
    Ok([total("RPC0"), total("RPC1")])
}

fn fit_quality(model: &Path, rpc: &str, budgets: &str, ctx: &str) -> Result<()> {
    let endpoints: Vec<&str> = rpc.split(',').collect();
    anyhow::ensure!(endpoints.len() == 2, "give two servers");
    let budget: Vec<u64> = budgets
        .split(',')
        .map(|b| b.parse::<bytesize::ByteSize>().map(|b| b.as_u64()).map_err(|e| anyhow::anyhow!("{b}: {e}")))
        .collect::<Result<_>>()?;
    anyhow::ensure!(budget.len() == 2, "give two budgets");
    let facts = read_facts(model)?;
    let n_total = facts.n_layer + 1;
    // run-fit's choice, and llama.cpp's fit on the same devices and margins.
    let args = [
        "plan",
        &model.display().to_string(),
        "--rpc",
        rpc,
        "--vram-budget",
        budgets,
        "-c",
        ctx,
        "--json",
        "--compare-llama",
    ];
    let out = std::process::Command::new(run_fit_exe()?).args(args).output()?;
    anyhow::ensure!(out.status.success(), "run-fit plan failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let layers = |i: usize| report["plan"]["devices"][i]["layers"].as_u64().unwrap_or(0) as u32;
    let ours = [layers(0), layers(1)];
    let llama = match report["llama_fit"]["n_gpu_layers"].as_i64().unwrap_or(0) {
        n if n < 0 => n_total,
        n => n as u32,
    };
    let ours_real = if ours == [0, 0] { [0, 0] } else { real_use(model, rpc, &endpoints, ctx, ours)? };
    let (truth, tried) = true_maximum(model, rpc, &endpoints, ctx, &budget)?;
    let mib = |b: u64| b as f64 / 1048576.0;
    let name = model.file_name().unwrap_or_default().to_string_lossy();
    let n_ours = ours[0] + ours[1];
    let n_true = truth.0[0] + truth.0[1];
    let within = ours_real[0] <= budget[0] && ours_real[1] <= budget[1];
    let verdict = match (within, n_true.saturating_sub(n_ours), n_ours >= llama.min(n_total)) {
        (false, _, _) => "OVER BUDGET".to_string(),
        (true, 0, true) => "= true max".to_string(),
        (true, 1, true) => "1 below".to_string(),
        (true, d, true) => format!("{d} below"),
        (true, _, false) => "fewer than llama.cpp".to_string(),
    };
    println!(
        "| {name} | {ctx} | {:.0} + {:.0} | {n_ours} ({},{}) using {:.1} + {:.1} | {llama} | {n_true} ({},{}) using {:.1} + {:.1} ({tried} loads) | {verdict} |",
        mib(budget[0]),
        mib(budget[1]),
        ours[0],
        ours[1],
        mib(ours_real[0]),
        mib(ours_real[1]),
        truth.0[0],
        truth.0[1],
        mib(truth.1[0]),
        mib(truth.1[1])
    );
    Ok(())
}

/// The most layers whose real allocation stays inside both budgets, with its split and real bytes,
/// and how many loads it took: from every layer down, each split whose prediction is not far over a
/// budget (the model is within 2 %: 20 % over is hopeless) is loaded for real; the first that fits wins.
type Truth = ([u32; 2], [u64; 2]);
fn true_maximum(model: &Path, rpc: &str, endpoints: &[&str], ctx: &str, budget: &[u64]) -> Result<(Truth, usize)> {
    let facts = read_facts(model)?;
    let n_ctx: u64 = ctx.parse()?;
    let config = |split: [u32; 2]| Config {
        gpu_layers: split.to_vec(),
        n_ctx_tokens: n_ctx,
        cache_k: F16,
        cache_v: F16,
        n_ubatch_tokens: 512.min(n_ctx),
        flash_attn: true,
        n_seq: 1,
        swa_full: false,
        op_offload: false,
        cpu_repack: true,
        use_mmap: true,
        use_mlock: false,
        overrides: vec![],
    };
    let mut tried = 0;
    for n in (1..=facts.n_layer + 1).rev() {
        for a in 0..=n {
            let split = [a, n - a];
            let fp = footprint::footprint(&facts, &config(split));
            if (0..2).any(|i| fp.devices[i].total() as f64 > budget[i] as f64 * 1.2) {
                continue;
            }
            tried += 1;
            let real = real_use(model, rpc, endpoints, ctx, split)?;
            if real[0] <= budget[0] && real[1] <= budget[1] {
                return Ok(((split, real), tried));
            }
        }
    }
    Ok((([0, 0], [0, 0]), tried))
}

fn rates(device: &str, threads: &str) -> Result<()> {
    let engine = Engine::init(false)?;
    let rates = engine.measure_rates(device, threads.parse().context("threads")?)?;
    println!("{}", serde_json::to_string(&rates)?);
    Ok(())
}
