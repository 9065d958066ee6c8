//! Turns plans and device lists into text or JSON. Pure: returns strings, prints nothing.

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{CellAlignment, Table};
use serde::Serialize;

use super::printer::escape;

use crate::engine::LlamaFit;
use crate::fit::advice::{QuantAdvice, QuantOption};
use crate::fit::footprint::{Bytes, kv_bytes_per_token};
use crate::fit::hardware::Hardware;
use crate::fit::levers::Lever;
use crate::fit::plan::{MIB, Plan, human};
use crate::fit::speed::Speed;
use crate::model::facts::ModelFacts;

/// Two placements of the same model on the same machine, costed alike: weights other than routed
/// experts on the devices (what a token reads from fast memory every time) and predicted speed.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    pub llama_non_expert_device_bytes: u64,
    pub ours_non_expert_device_bytes: u64,
    pub llama_generation_tok_per_s: Option<f64>,
    pub ours_generation_tok_per_s: Option<f64>,
    /// Whether run-fit's model puts llama.cpp's choice over a device's usable memory.
    pub llama_over_budget: bool,
}

/// Weights on the devices that are not routed experts.
pub fn non_expert_device_bytes(plan: &Plan) -> u64 {
    plan.devices.iter().map(|d| d.bytes.weights - d.bytes.experts.min(d.bytes.weights)).sum()
}

/// Everything `run-fit plan --json` prints.
#[derive(Debug, Serialize)]
pub struct PlanReport<'a> {
    pub model: ModelSummary,
    pub hardware: &'a Hardware,
    pub plan: &'a Plan,
    pub llama_args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llama_fit: Option<&'a LlamaFit>,
    /// llama.cpp's choice costed by run-fit's model, beside run-fit's own (`--compare-llama`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llama_fit_costed: Option<Compared>,
    /// Set when the model is a name, not a file: the numbers are an estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
    /// Predicted speed; None when a bandwidth is unknown.
    pub speed: Option<Speed>,
    /// What earlier runs on this machine changed in this plan.
    pub learned: Vec<String>,
    /// For a plan that leaves layers in RAM: which quantization would fit.
    pub quant_advice: Option<QuantAdvice>,
    /// For a plan that leaves layers in RAM or the context short: what each other lever would buy.
    pub levers: Vec<Lever>,
    /// What loading sends to each RPC server, and how long that takes over its link.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<Transfer>,
}

/// Loading's traffic to one RPC server: the weights its devices hold.
#[derive(Debug, Clone, Serialize)]
pub struct Transfer {
    pub endpoint: String,
    pub bytes: u64,
    /// None when the link is unknown.
    pub seconds: Option<f64>,
    pub link: Option<crate::fit::hardware::Link>,
}

/// How an estimate was made, and the naive figure beside it.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// What the user gave: a name, or `--params 70B --quant Q4_K_M`.
    pub from: String,
    pub params_named: f64,
    pub quant: String,
    /// The typical model whose shape the estimate uses.
    pub shape: String,
    /// Parameters × bytes per parameter, as the usual tables compute it.
    pub naive_weight_bytes: u64,
    pub naive_bits_per_weight: f64,
}

#[derive(Debug, Serialize)]
pub struct ModelSummary {
    pub path: String,
    pub name: Option<String>,
    pub architecture: String,
    pub layers: u32,
    pub params: u64,
    pub weights_bytes: u64,
    pub quant: String,
    pub bits_per_weight: f64,
    pub trained_ctx_tokens: u64,
    pub kv_bytes_per_token_f16: f64,
    pub sliding_window_tokens: Option<u64>,
    pub experts: u64,
}

/// What the output says about the model. Text from the file (and the path) is escaped here: a name
/// with control characters in it must not drive the terminal.
pub fn model_summary(path: &str, f: &ModelFacts) -> ModelSummary {
    use crate::model::gguf::types::F16;
    ModelSummary {
        path: escape(path),
        name: f.name.as_deref().map(escape),
        architecture: escape(&f.architecture),
        layers: f.n_layer,
        params: f.params,
        weights_bytes: f.weights.file_bytes(),
        quant: f.file_type.clone().unwrap_or_else(|| f.dominant_type.clone()),
        bits_per_weight: (f.bits_per_weight() * 100.0).round() / 100.0,
        trained_ctx_tokens: f.n_ctx_train,
        kv_bytes_per_token_f16: kv_bytes_per_token(f, F16, F16),
        sliding_window_tokens: f.sliding_window.as_ref().map(|s| s.window_tokens),
        experts: f.n_expert,
    }
}

fn params_human(p: u64) -> String {
    match p {
        p if p >= 1_000_000_000 => format!("{:.1} B", p as f64 / 1e9),
        p => format!("{:.0} M", p as f64 / 1e6),
    }
}

pub fn plan_json(report: &PlanReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default()
}

/// The plan as people read it: what the model and machine are, the decision and its reasons, speed and
/// advice, the per-device table, and the same choice as llama.cpp arguments.
pub fn plan_text(report: &PlanReport) -> String {
    let mut out = String::new();
    if let Some(e) = &report.estimate {
        out += &estimate_lines(e, &report.model);
    }
    out += &model_line(&report.model);
    out += &machine_line(report.hardware);
    out += &plan_backend_lines(report.hardware);
    out += &decision_lines(report);
    if let Some(s) = &report.speed {
        out += &format!(
            "speed    ~{:.0} tok/s generating (limited by {}), ~{:.0} tok/s reading the prompt (predicted)\n",
            s.generation_tok_per_s, s.limited_by, s.prompt_tok_per_s
        );
    }
    let unknown: Vec<&str> = report
        .hardware
        .devices
        .iter()
        .filter(|d| crate::fit::speed::device_rates(d).is_none())
        .map(|d| d.description.as_str())
        .collect();
    if report.speed.is_none() && !unknown.is_empty() {
        out += &format!(
            "speed    not predicted: {} not in run-fit's device catalogue; give bandwidth_gb_per_s (and fp16_tflops) \
             for it in a profile\n",
            unknown.join(", ") + if unknown.len() == 1 { " is" } else { " are" }
        );
    }
    out += &cpu_guess_line(report);
    for t in &report.network {
        let how = match (t.seconds, t.link) {
            (Some(s), Some(l)) => format!(
                " (~{s:.1} s over its link: {:.1} ms round trip, {:.0} MB/s)",
                l.round_trip_s * 1e3,
                l.bytes_per_s / 1e6
            ),
            _ => String::new(),
        };
        out += &format!("network  loading sends {} to {}{how}\n", human(t.bytes), t.endpoint);
    }
    if let Some(a) = &report.quant_advice {
        out += &quant_line(a);
    }
    for l in &report.levers {
        let speed = l.generation_tok_per_s.map_or(String::new(), |t| format!(", ~{t:.1} tok/s"));
        out += &format!("lever    {}: {}{speed}\n", l.flags, l.gives);
    }
    out += "\n";
    out += &device_table(report.plan);
    out += "\n";
    out += &mapping_note(&report.plan.host.bytes);
    out += "\n";
    out += &format!("llama.cpp  {}\n", report.llama_args.join(" "));
    out += &llama_fit_lines(report);
    out
}

/// When a CPU-only plan's prompt rate is a guess from the thread count: the CPU was not measured and
/// the CPU catalogue does not know it.
fn cpu_guess_line(report: &PlanReport) -> String {
    let host = &report.hardware.host;
    let guessed = crate::fit::speed::cpu_prompt_rate(host).1;
    if report.speed.is_none() || !report.hardware.devices.is_empty() || !guessed {
        return String::new();
    }
    let what = if host.cpu.is_empty() {
        "name the CPU (cpu = \"Core i7-8550U\") or give matmul_tflops under [host] in a profile".to_string()
    } else {
        format!("{} is not in run-fit's CPU catalogue; give matmul_tflops under [host] in a profile", host.cpu)
    };
    format!("speed    the prompt rate is a guess from the {} threads: {what}\n", host.threads)
}

/// Why RAM's resident bytes are fewer than its total: mapped pages nothing reads.
fn mapping_note(host: &Bytes) -> String {
    let mut out = String::new();
    if host.evictable > 0 && host.repack < MIB {
        out += &format!(
            "RAM maps {} of weights it does not read (tensors of the devices inside the mapped range): their\n\
             pages can be dropped, so {} stays resident (the headroom counts that)\n",
            human(host.evictable),
            human(host.resident())
        );
    } else if host.evictable > 0 {
        out += &format!(
            "RAM keeps {} of weights twice: llama.cpp repacks them for its AVX2 kernels (CPU_REPACK), and their\n\
             mapped pages then go unused and can be dropped, so {} stays resident (the headroom counts that)\n",
            human(host.repack),
            human(host.resident())
        );
    }
    out
}

/// llama.cpp's own fit (`--compare-llama`), and how run-fit's model costs it.
fn llama_fit_lines(report: &PlanReport) -> String {
    let mut out = String::new();
    if let Some(fit) = report.llama_fit {
        let ngl = match fit.n_gpu_layers {
            n if n < 0 => format!("{n} (all that the GPUs take; none here, so the CPU)"),
            n => n.to_string(),
        };
        let overrides = match fit.tensor_overrides.len() {
            0 => String::new(),
            n => format!(" and {n} tensor override{} to the CPU", if n == 1 { "" } else { "s" }),
        };
        out += &format!(
            "llama.cpp's own fit chose  -ngl {ngl} -c {}{overrides}{}\n",
            fit.n_ctx_tokens,
            if fit.fitted { "" } else { " (it reported that nothing fits and would load anyway)" }
        );
    }
    if let Some(c) = &report.llama_fit_costed {
        let tok = |t: Option<f64>| t.map_or("speed unknown".to_string(), |t| format!("~{t:.0} tok/s"));
        out += &format!(
            "  costed by run-fit: {} of non-expert weights on the devices, {} (run-fit's plan: {}, {}){}\n",
            human(c.llama_non_expert_device_bytes),
            tok(c.llama_generation_tok_per_s),
            human(c.ours_non_expert_device_bytes),
            tok(c.ours_generation_tok_per_s),
            if c.llama_over_budget { "; over a device's usable memory by run-fit's model" } else { "" }
        );
    }
    out
}

fn estimate_lines(e: &Estimate, m: &ModelSummary) -> String {
    // Decimal GB here, as the usual "RAM per model size" tables use them.
    let gb = |b: f64| format!("{:.2} GB", b / 1e9);
    format!(
        "ESTIMATE no file: {} read as {} params at {}; shape of {}\n\
         naive    {} × {} bits = {} of weights; this estimate: {} ({} has {} params; {} averages {:.2} bits/weight)\n",
        e.from,
        params_human(e.params_named as u64),
        e.quant,
        e.shape,
        params_human(e.params_named as u64),
        e.naive_bits_per_weight,
        gb(e.naive_weight_bytes as f64),
        gb(m.weights_bytes as f64),
        e.shape,
        params_human(m.params),
        e.quant,
        m.bits_per_weight
    )
}

fn model_line(m: &ModelSummary) -> String {
    let name = std::path::Path::new(&m.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!(
        "model    {name}: {} {}, {} layers, {} params, {} ({:.2} bits/weight), {}\n",
        m.architecture,
        if m.experts > 0 { format!("MoE ({} experts)", m.experts) } else { "dense".into() },
        m.layers,
        params_human(m.params),
        m.quant,
        m.bits_per_weight,
        human(m.weights_bytes)
    )
}

fn machine_line(hw: &Hardware) -> String {
    let remote = hw.devices.iter().filter(|d| d.endpoint.is_some()).count();
    let gpus = match (hw.devices.len(), remote) {
        (0, _) => "no GPU".to_string(),
        (1, 0) => format!("1 GPU ({})", hw.devices[0].description),
        (n, 0) => format!("{n} GPUs"),
        (n, r) => {
            let servers: Vec<String> =
                hw.devices.iter().filter_map(|d| Some(format!("{} at {}", d.name, d.endpoint.as_ref()?))).collect();
            let local = if n > r { format!("{} local GPU(s) and ", n - r) } else { String::new() };
            format!("{local}{r} remote device(s) ({})", servers.join(", "))
        }
    };
    format!("machine  {}: {gpus}, {} RAM available\n", hw.source, human(hw.host.available_bytes))
}

/// "plan …" with where the layers go, then its reasons, warnings and what earlier runs taught.
fn decision_lines(report: &PlanReport) -> String {
    let p = report.plan;
    let c = &p.config;
    let placed = if c.n_gpu_layers() == 0 {
        "all layers on the CPU".to_string()
    } else {
        let used: Vec<_> = p.devices.iter().filter(|d| d.layers > 0).collect();
        match used.as_slice() {
            [one] => format!("{} of {} layers on {}", one.layers, p.max_layers, one.name),
            many => {
                let on: Vec<String> = many.iter().map(|d| format!("{} on {}", d.layers, d.name)).collect();
                format!("{} of {} layers on the GPUs ({})", c.n_gpu_layers(), p.max_layers, on.join(", "))
            }
        }
    };
    let mut out = format!(
        "plan     {placed}, context {} tokens, KV cache {}/{}, flash attention {}\n",
        c.n_ctx_tokens,
        c.cache_k.name.to_lowercase(),
        c.cache_v.name.to_lowercase(),
        if c.flash_attn { "on" } else { "off" }
    );
    for r in &p.reasons {
        out += &format!("         - {r}\n");
    }
    for w in &p.warnings {
        out += &format!("warning  {w}\n");
    }
    for l in &report.learned {
        out += &format!("learned  {l}\n");
    }
    out
}

fn quant_line(a: &QuantAdvice) -> String {
    let speed = |o: &QuantOption| o.generation_tok_per_s.map_or(String::new(), |t| format!(", ~{t:.1} tok/s"));
    let gb = |b: u64| format!("{:.1} GB", b as f64 / 1e9);
    let mut out = format!(
        "quant    this {} file: {}/{} layers on the GPU{}; ",
        a.current.quant,
        a.current.gpu_layers,
        a.current.max_layers,
        speed(&a.current)
    );
    out += &match (&a.fits_fully, &a.best_partial) {
        (Some(f), _) => {
            format!("{} ({}) would put all {} there{}\n", f.quant, gb(f.weights_bytes), f.max_layers, speed(f))
        }
        (None, Some(b)) => format!(
            "no quantization fits entirely; {} ({}) would put {}/{} there{} (fewer bits, lower quality)\n",
            b.quant,
            gb(b.weights_bytes),
            b.gpu_layers,
            b.max_layers,
            speed(b)
        ),
        (None, None) => "no smaller quantization fits this machine\n".into(),
    };
    out
}

/// Per device and the host: layers, weights + KV cache + compute = total, reserve, free, headroom.
fn device_table(p: &Plan) -> String {
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN);
    table.set_header(["", "layers", "weights", "KV cache", "compute", "= total", "reserve", "free", "headroom"]);
    let row = |name: &str, layers: u32, b: &Bytes, reserve: u64, free: u64, headroom: i64| {
        // RAM that holds routed experts of layers placed on a device says so.
        let experts = if name == "RAM" && b.experts > 0 { " + experts" } else { "" };
        [
            name.to_string(),
            format!("{layers}{experts}"),
            human(b.weights + b.repack),
            human(b.kv),
            human(b.compute),
            human(b.total()),
            human(reserve),
            human(free),
            signed_human(headroom),
        ]
    };
    for d in &p.devices {
        table.add_row(row(&d.name, d.layers, &d.bytes, d.reserve_bytes, d.free_bytes, d.headroom_bytes));
    }
    let h = &p.host;
    table.add_row(row("RAM", h.layers, &h.bytes, h.reserve_bytes, h.available_bytes, h.headroom_bytes));
    for i in 1..9 {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.to_string()
}

fn signed_human(bytes: i64) -> String {
    if bytes < 0 { format!("-{}", human(bytes.unsigned_abs())) } else { human(bytes as u64) }
}

pub fn devices_text(hw: &Hardware, can_offload: bool) -> String {
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN);
    table.set_header(["device", "backend", "type", "description", "free", "total", "measured"]);
    let link =
        |l: crate::fit::hardware::Link| format!("link {:.1} ms, {:.0} MB/s", l.round_trip_s * 1e3, l.bytes_per_s / 1e6);
    for d in &hw.devices {
        let measured = match (d.measured, d.link) {
            (Some(m), l) => format!(
                "{} GB/s copy, {} TFLOPS Q4_0{}",
                two_digits(m.bandwidth_gb_per_s),
                two_digits(m.matmul_tflops),
                l.map_or(String::new(), |l| format!("; {}", link(l)))
            ),
            (None, Some(l)) => link(l),
            (None, None) => String::new(),
        };
        table.add_row([
            d.name.clone(),
            d.backend.clone(),
            format!("{:?}", d.kind).to_lowercase(),
            d.description.clone(),
            human(d.free_bytes),
            human(d.total_bytes),
            measured,
        ]);
    }
    let h = &hw.host;
    table.add_row([
        "RAM".to_string(),
        "CPU".into(),
        "host".into(),
        format!(
            "{}{} threads, swap free {}",
            if h.cpu.is_empty() { String::new() } else { format!("{}, ", h.cpu) },
            h.threads,
            human(h.swap_free_bytes)
        ),
        human(h.available_bytes),
        human(h.total_bytes),
        match (h.bandwidth_gb_per_s, h.matmul_tflops) {
            (Some(b), Some(t)) => format!("{b:.0} GB/s read, {t:.2} TFLOPS Q4_0"),
            (Some(b), None) => format!("{b:.0} GB/s read"),
            (None, Some(t)) => format!("{t:.2} TFLOPS Q4_0"),
            (None, None) => "not yet (the first plan measures it)".into(),
        },
    ]);
    let mut out = table.to_string();
    out.push('\n');
    out += &backend_lines(hw);
    if !can_offload {
        out += "this run-fit is a CPU-only build: where a CUDA toolkit (nvcc) or the Vulkan toolchain (glslc, \
                libvulkan-dev, spirv-headers) is installed, `bash scripts/setup.sh` builds for the GPU\n";
    } else if hw.devices.is_empty() {
        out += "no GPU found: llama.cpp will run every layer on the CPU\n";
    }
    out
}

/// The plan's short form: the backends loaded, and GPU modules that did not load (CPU variants for
/// other CPUs are normal and left to `run-fit devices`).
fn plan_backend_lines(hw: &Hardware) -> String {
    let Some(loaded) = loaded_backends(hw) else { return String::new() };
    let mut out = format!("backends {loaded}\n");
    for b in hw.backends.iter().filter(|b| !b.loaded && b.name != "CPU") {
        let why = b.why_not.as_deref().unwrap_or("did not load");
        out += &format!("         not loaded: {} {why}\n", b.module.as_deref().map_or(b.name.clone(), file_name));
    }
    out
}

/// A module's file name, from its path.
fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map_or(path.to_string(), |f| f.to_string_lossy().into())
}

/// The backends loaded: "CPU, RPC (compiled in)", or each with its module (and devices, and what a CUDA
/// module was built for); None when nothing is known of them (a profile).
fn loaded_backends(hw: &Hardware) -> Option<String> {
    // Each RPC server registers a backend of its own ("RPC[host:port]"); the machine line names them.
    let loaded: Vec<&crate::fit::hardware::Backend> =
        hw.backends.iter().filter(|b| b.loaded && !b.name.starts_with("RPC[")).collect();
    if loaded.is_empty() {
        return None;
    }
    if loaded.iter().all(|b| b.module.is_none()) {
        let names: Vec<&str> = loaded.iter().map(|b| b.name.as_str()).collect();
        return Some(format!("{} (compiled in)", names.join(", ")));
    }
    let each: Vec<String> = loaded
        .iter()
        .map(|b| {
            let devices = match (b.name.as_str(), b.devices) {
                ("CPU" | "RPC", _) => String::new(),
                (_, 1) => "1 device, ".into(),
                (_, n) => format!("{n} devices, "),
            };
            // Only a CUDA module's architectures can disagree with the card (Vulkan compiles at load).
            let built = b.built_for.as_ref().filter(|f| f.starts_with("cuda ")).map_or(String::new(), |f| {
                format!(", built for compute capability {}", f.trim_start_matches("cuda ").replace(';', ", "))
            });
            format!("{} ({devices}{}{built})", b.name, b.module.as_deref().map_or("compiled in".into(), file_name))
        })
        .collect();
    Some(each.join(", "))
}

/// The backends loaded and the modules that were found but not loaded, each with why.
pub fn backend_lines(hw: &Hardware) -> String {
    let Some(loaded) = loaded_backends(hw) else { return String::new() };
    let mut out = format!("backends: {loaded}\n");
    // CPU variants that lost to a better one are normal: one line names them all.
    let lost = |b: &&crate::fit::hardware::Backend| b.why_not.as_deref().is_some_and(|w| w.starts_with("a variant"));
    let mut not_loaded: Vec<String> = hw
        .backends
        .iter()
        .filter(|b| !b.loaded && !lost(b))
        .map(|b| {
            let why = b.why_not.as_deref().unwrap_or("did not load");
            format!("  {} {why}\n", b.module.as_deref().map_or(b.name.clone(), file_name))
        })
        .collect();
    let variants: Vec<String> = hw
        .backends
        .iter()
        .filter(|b| !b.loaded && lost(b))
        .filter_map(|b| {
            Some(file_name(b.module.as_deref()?).trim_start_matches("libggml-cpu-").trim_end_matches(".so").into())
        })
        .collect();
    if !variants.is_empty() {
        not_loaded.push(format!("  {} other CPU variants, for other CPUs: {}\n", variants.len(), variants.join(", ")));
    }
    if !not_loaded.is_empty() {
        out += "modules found, not loaded:\n";
        out += &not_loaded.concat();
    }
    out
}

/// A rate with two significant digits at least: 400, 40, 4.0, 0.42, 0.0026 (a software device's).
fn two_digits(x: f64) -> String {
    let decimals = if x >= 10.0 || x <= 0.0 { 0 } else { (1.0 - x.log10().floor()).min(6.0) as usize };
    format!("{x:.decimals$}")
}

pub fn devices_json(hw: &Hardware) -> String {
    serde_json::to_string_pretty(hw).expect("hardware serialises")
}

/// The one line `run-fit MODEL` prints before loading: model, quant, where the layers go, context,
/// cache types, and the memory it expects to use.
pub fn run_summary(model: &ModelSummary, plan: &Plan) -> String {
    let c = &plan.config;
    let name = model.name.clone().unwrap_or_else(|| {
        std::path::Path::new(&model.path).file_name().map_or(model.path.clone(), |n| n.to_string_lossy().into())
    });
    let layers = if plan.devices.is_empty() {
        format!("{} layers on the CPU", plan.max_layers)
    } else {
        let on: Vec<String> =
            plan.devices.iter().filter(|d| d.layers > 0).map(|d| format!("{} {}", d.layers, d.name)).collect();
        let gpu = if on.is_empty() { "none".to_string() } else { on.join(" + ") };
        let experts = if plan.host.bytes.experts > 0 {
            format!(", routed experts {} in RAM ({})", human(plan.host.bytes.experts), plan.tensor_args.join(" "))
        } else {
            String::new()
        };
        format!("{}/{} layers on GPU ({gpu}{experts})", c.n_gpu_layers(), plan.max_layers)
    };
    let vram: u64 = plan.devices.iter().map(|d| d.bytes.total()).sum();
    let vram = if plan.devices.is_empty() { String::new() } else { format!(" · VRAM {}", human(vram)) };
    format!(
        "{name} {} · {layers} · context {} tokens · KV {}/{} · flash attention {}{vram} · RAM {}",
        model.quant,
        c.n_ctx_tokens,
        c.cache_k.name.to_lowercase(),
        c.cache_v.name.to_lowercase(),
        if c.flash_attn { "on" } else { "off" },
        human(plan.host.bytes.total()),
    )
}

/// Memory in use now, per device and for RAM (`devices --watch`, the chat's `/stats`).
pub fn memory_use_text(hw: &Hardware) -> String {
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN);
    table.set_header(["device", "used", "free", "total", "use"]);
    let mut row = |name: String, free: u64, total: u64| {
        let used = total.saturating_sub(free);
        let share = if total > 0 { used as f64 * 100.0 / total as f64 } else { 0.0 };
        table.add_row([name, human(used), human(free), human(total), format!("{share:.0} %")]);
    };
    for d in &hw.devices {
        row(d.name.clone(), d.free_bytes, d.total_bytes);
    }
    row("RAM".into(), hw.host.available_bytes, hw.host.total_bytes);
    format!("{table}\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_keep_two_significant_digits() {
        let shown: Vec<String> = [400.4, 42.0, 4.04, 0.42, 0.0026, 0.0].map(super::two_digits).into();
        assert_eq!(shown, ["400", "42", "4.0", "0.42", "0.0026", "0"]);
    }
}
