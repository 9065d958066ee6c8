//! Command-line definitions (clap) and their conversion into typed requests. No system calls here:
//! everything the user typed is validated before the machine is touched.

#![deny(clippy::disallowed_methods, clippy::disallowed_types, clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod rpc;
pub use rpc::{RpcArgs, RpcServerArgs, RpcServerRequest};

use crate::fit::hardware::parse_bytes;
use crate::fit::moe::{self, ExpertPins, TensorPin};
use crate::fit::plan::{DEFAULT_MIN_CTX_TOKENS, Pins, Policy};
use crate::model::facts::cache_type;
use crate::model::gguf::GgmlType;
use crate::run::protocol::{Generation, Sampling, SplitMode};

#[derive(Debug, Parser)]
#[command(
    name = "run-fit",
    version,
    about = "Fit a GGUF model to this machine's GPUs and RAM, then run it with llama.cpp"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Show llama.cpp's own logs on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Print only results and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the model at the best setting this machine allows and chat (`run-fit MODEL` does the same).
    Run(Box<RunArgs>),
    /// Explain how the model would be placed on this machine (or a profile) without loading it.
    Plan(Box<PlanArgs>),
    /// Measure prompt and generation speed across offload settings; name the fastest.
    Bench(Box<BenchArgs>),
    /// List the GPUs llama.cpp sees and the RAM available to run-fit.
    Devices(DevicesArgs),
    /// Serve this machine's devices to another machine's run-fit (or llama.cpp) over llama.cpp's RPC.
    #[command(name = "rpc-server")]
    RpcServer(RpcServerArgs),
    /// The process that runs llama.cpp's RPC server; started by `run-fit rpc-server`, not by people.
    #[command(name = "__rpc-serve", hide = true)]
    RpcServe { spec: String },
    /// llama.cpp's own fit in a child process (it may talk to RPC servers); started by `plan`.
    #[command(name = "__llama-fit", hide = true)]
    LlamaFit { spec: String },
    /// The process that loads the model; started by `run-fit run`, not by people.
    #[command(name = "__worker", hide = true)]
    Worker,
}

/// `12GiB`, `11.5GiB`, `512MiB`, `64GB` → bytes (clap's value parser for every size flag).
fn size(text: &str) -> Result<u64, String> {
    parse_bytes(text)
}

/// A KV cache type llama.cpp accepts (clap's value parser for -ctk/-ctv).
fn kv_type(text: &str) -> Result<GgmlType, String> {
    cache_type(text).ok_or_else(|| {
        format!("'{text}' is not a KV cache type; use f16, bf16, f32, q8_0, q5_1, q5_0, q4_1, q4_0 or iq4_nl")
    })
}

/// `-ts 3,1` (or llama.cpp's `3/1`): non-negative proportions, one value of the flag (a newtype, so
/// that clap does not read it as a list of flags).
#[derive(Debug, Clone, PartialEq)]
pub struct Proportions(pub Vec<f64>);

fn proportions(text: &str) -> Result<Proportions, String> {
    text.split([',', '/'])
        .map(|s| s.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0))
        .collect::<Option<Vec<f64>>>()
        .map(Proportions)
        .ok_or_else(|| format!("'{text}': give non-negative numbers separated by commas, e.g. 3,1"))
}

/// `-ot 'blk\.1[0-9]\.ffn_.*_exps=CPU,…'`: one value of the flag, entries separated by commas as
/// llama.cpp reads them (a newtype, so that clap keeps the flag's values apart).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPins(pub Vec<TensorPin>);

fn tensor_pins(text: &str) -> Result<TensorPins, String> {
    text.split(',')
        .map(|entry| {
            let (pattern, device) = entry.split_once('=').ok_or_else(|| {
                format!(
                    "-ot '{entry}' names no device; write PATTERN=DEVICE, e.g. -ot 'blk\\.1[0-9]\\.ffn_.*_exps=CPU'"
                )
            })?;
            moe::check_pattern(pattern)?;
            if device.trim().is_empty() {
                return Err(format!(
                    "-ot '{entry}' names no device after '='; use CPU or a GPU's name (run-fit devices lists them)"
                ));
            }
            Ok(TensorPin { pattern: pattern.to_string(), device: device.trim().to_string() })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(TensorPins)
}

fn positive(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| format!("'{text}': give a whole number above 0"))
}

/// One `-ngl` value of a bench sweep: a count, or `max` (the planned maximum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerChoice {
    Count(u32),
    Max,
}

fn layer_choice(text: &str) -> Result<LayerChoice, String> {
    match text.trim() {
        "max" => Ok(LayerChoice::Max),
        t => t.parse().map(LayerChoice::Count).map_err(|_| format!("'{t}': give layer counts or max, e.g. 0,8,16,max")),
    }
}

fn on_off(text: &str) -> Result<bool, String> {
    match text.trim() {
        "on" | "1" | "auto" => Ok(true),
        "off" | "0" => Ok(false),
        t => Err(format!("'{t}': give on or off, e.g. on,off")),
    }
}

/// llama.cpp's context size is a 32-bit count that it rounds up to a multiple of 256.
const MAX_CTX_TOKENS: u64 = u32::MAX as u64 / 256 * 256;

/// What the user asked for, typed and checked; nothing on the machine has been touched yet.
#[derive(Debug)]
pub struct Invocation {
    pub quiet: bool,
    pub verbose: bool,
    pub request: Request,
}

#[derive(Debug)]
pub enum Request {
    Run(Box<RunRequest>),
    Plan(Box<PlanRequest>),
    Bench(Box<BenchRequest>),
    Devices(DevicesRequest),
    RpcServer(RpcServerRequest),
    /// The worker process (`run-fit __worker`), started by run-fit itself.
    Worker,
    /// The RPC server process, started by `run-fit rpc-server` with its request as JSON.
    RpcServe(String),
    /// llama.cpp's fit with remote devices, started by `plan --compare-llama --rpc` (JSON request).
    LlamaFit(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DevicesRequest {
    pub json: bool,
    /// `--rpc`: remote servers whose devices join the list.
    pub rpc: Vec<String>,
    /// This process is run-fit's own child that may talk to the servers.
    pub probe_child: bool,
    /// Servers whose link need not be measured.
    pub known_links: Vec<String>,
    /// This process is run-fit's own child measuring the host CPU's matrix rate.
    pub measure_host: bool,
    /// This process is run-fit's own child measuring the local GPUs, but for the known ones.
    pub measure_local: bool,
    pub known_devices: Vec<String>,
    pub rpc_link: Option<crate::fit::hardware::Link>,
    /// `--watch`: read again at this interval, at most `count` times.
    pub watch: Option<std::time::Duration>,
    pub count: Option<u64>,
}

/// Why no request came out of the command line.
#[derive(Debug)]
pub enum Early {
    /// `--help`, `--version`, or clap's own usage error, rendered by clap.
    Clap(clap::Error),
    /// A value clap accepted but run-fit cannot use; exit 2.
    Usage { quiet: bool, message: String },
}

/// Parse the command line (`args` with the program name first). `stdin_is_terminal`: without -p, a
/// terminal means a chat and a pipe means one answer.
pub fn parse(args: impl IntoIterator<Item = String>, stdin_is_terminal: bool) -> Result<Invocation, Early> {
    let cli = Cli::try_parse_from(normalize_args(args)).map_err(Early::Clap)?;
    let usage = |message: String| Early::Usage { quiet: cli.quiet, message };
    let request = match &cli.command {
        Command::Worker => Request::Worker,
        Command::Run(args) => Request::Run(Box::new(args.request(stdin_is_terminal).map_err(usage)?)),
        Command::Plan(args) => Request::Plan(Box::new(args.request().map_err(usage)?)),
        Command::Bench(args) => Request::Bench(Box::new(args.request().map_err(usage)?)),
        Command::Devices(args) => Request::Devices(args.request().map_err(usage)?),
        Command::RpcServer(args) => Request::RpcServer(args.request().map_err(usage)?),
        Command::RpcServe { spec } => Request::RpcServe(spec.clone()),
        Command::LlamaFit { spec } => Request::LlamaFit(spec.clone()),
    };
    Ok(Invocation { quiet: cli.quiet, verbose: cli.verbose, request })
}

impl DevicesArgs {
    fn request(&self) -> Result<DevicesRequest, String> {
        let watch = match self.watch {
            None => None,
            Some(seconds) => Some(
                std::time::Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|d| !d.is_zero() && d.as_secs() <= 86_400)
                    .ok_or_else(|| format!("--watch {seconds}: give a number of seconds above 0 and at most a day (86400), e.g. --watch 2"))?,
            ),
        };
        Ok(DevicesRequest {
            json: self.json,
            watch,
            count: self.count,
            rpc: self.rpc.endpoints()?,
            rpc_link: self.rpc.rpc_link,
            probe_child: self.probe_child,
            known_links: self.known_links.clone(),
            measure_host: self.measure_host,
            measure_local: self.measure_local,
            known_devices: self.known_devices.clone(),
        })
    }
}

/// Subcommand names: `run-fit MODEL` is `run-fit run MODEL` when the first word is none of these.
const SUBCOMMANDS: &[&str] =
    &["run", "plan", "bench", "devices", "rpc-server", "help", "__worker", "__rpc-serve", "__llama-fit"];

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A .gguf file (the first shard of a split model).
    pub model: PathBuf,
    #[command(flatten)]
    pub fit: FitArgs,
    #[command(flatten)]
    pub levers: LeverArgs,
    /// Answer this prompt once and exit (without -p, a prompt piped on stdin is answered once).
    #[arg(short = 'p', long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// -sys: the system prompt.
    #[arg(long = "system-prompt", value_name = "TEXT")]
    pub system_prompt: Option<String>,
    /// Generate at most N tokens per reply; -1: until the model stops or the context is full.
    #[arg(short = 'n', long = "n-predict", value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub n_predict: i64,
    /// Keep generating past the end-of-generation token (to force a token count).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Temperature; 0 is greedy.
    #[arg(long, value_name = "T", default_value_t = Sampling::default().temp, allow_negative_numbers = true)]
    pub temp: f32,
    #[arg(long = "top-k", value_name = "K", default_value_t = Sampling::default().top_k)]
    pub top_k: i32,
    #[arg(long = "top-p", value_name = "P", default_value_t = Sampling::default().top_p)]
    pub top_p: f32,
    #[arg(long = "min-p", value_name = "P", default_value_t = Sampling::default().min_p)]
    pub min_p: f32,
    /// Random seed; -1: a new one every reply.
    #[arg(short = 's', long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub seed: i64,
    /// Print the reply, the statistics and the configuration as one JSON object (with -p or piped stdin).
    #[arg(long)]
    pub json: bool,
}

/// `run-fit bench`: lists like llama-bench's (`-ngl 0,8,16,max -c 4096,16384`).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A .gguf file.
    pub model: PathBuf,
    /// -ngl: GPU layer counts to try; `max` is the planned maximum [default: 0 to the maximum in quarters].
    #[arg(long = "n-gpu-layers", visible_alias = "ngl", value_name = "N,N…|max", value_delimiter = ',', value_parser = layer_choice)]
    pub n_gpu_layers: Option<Vec<LayerChoice>>,
    /// Context sizes to try [default: prompt + generated tokens, rounded up to 256].
    #[arg(short = 'c', long = "ctx-size", value_name = "TOKENS,…", value_delimiter = ',', value_parser = positive)]
    pub ctx_size: Option<Vec<u64>>,
    /// -ctk: K cache types to try.
    #[arg(long = "cache-type-k", value_name = "TYPE,…", value_delimiter = ',', value_parser = kv_type)]
    pub cache_type_k: Option<Vec<GgmlType>>,
    /// -ctv: V cache types to try.
    #[arg(long = "cache-type-v", value_name = "TYPE,…", value_delimiter = ',', value_parser = kv_type)]
    pub cache_type_v: Option<Vec<GgmlType>>,
    /// -fa: flash attention settings to try.
    #[arg(long = "flash-attn", value_name = "on|off,…", value_delimiter = ',', value_parser = on_off, default_value = "on")]
    pub flash_attn: Vec<bool>,
    /// -ub: physical batch sizes to try.
    #[arg(long = "ubatch-size", value_name = "TOKENS,…", value_delimiter = ',', value_parser = positive, default_value = "512")]
    pub ubatch_size: Vec<u64>,
    /// -ncmoe: for a mixture of experts, how many layers' routed experts to keep in RAM, e.g. 0,8,16
    /// [default: as planned].
    #[arg(long = "n-cpu-moe", value_name = "N,…", value_delimiter = ',')]
    pub n_cpu_moe: Option<Vec<u32>>,
    /// Prompt tokens per measurement.
    #[arg(short = 'p', long = "n-prompt", value_name = "TOKENS", default_value_t = 512)]
    pub n_prompt: u32,
    /// Generated tokens per measurement.
    #[arg(short = 'n', long = "n-gen", value_name = "TOKENS", default_value_t = 128)]
    pub n_gen: u32,
    /// Repetitions of each measurement.
    #[arg(short = 'r', long = "repetitions", value_name = "N", default_value_t = 3)]
    pub repetitions: u32,
    /// CPU threads [default: physical cores].
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV instead of a table.
    #[arg(long)]
    pub csv: bool,
    /// Also draw the results as an SVG chart in FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    #[command(flatten)]
    pub rpc: RpcArgs,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BenchRequest {
    /// The model, the policy every setting starts from, and the levers.
    pub load: LoadRequest,
    /// None: 0 to the planned maximum in quarters.
    pub n_gpu_layers: Option<Vec<LayerChoice>>,
    pub ctx_tokens: Option<Vec<u64>>,
    /// Every (K, V) pair of the lists; None: f16.
    pub cache_types: Vec<(Option<GgmlType>, Option<GgmlType>)>,
    pub flash_attn: Vec<bool>,
    pub ubatch_tokens: Vec<u64>,
    /// `--n-cpu-moe` values; `[None]`: as planned.
    pub n_cpu_moe: Vec<Option<u32>>,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub repetitions: u32,
    pub json: bool,
    pub csv: bool,
    pub chart: Option<PathBuf>,
}

impl BenchArgs {
    pub fn request(&self) -> Result<BenchRequest, String> {
        let types = |t: &Option<Vec<GgmlType>>| -> Vec<Option<GgmlType>> {
            t.as_ref().map_or(vec![None], |list| list.iter().copied().map(Some).collect())
        };
        let (ks, vs) = (types(&self.cache_type_k), types(&self.cache_type_v));
        let cache_types = ks.iter().flat_map(|k| vs.iter().map(move |v| (*k, *v))).collect();
        if self.repetitions == 0 || self.n_gen == 0 || self.n_prompt == 0 {
            return Err("-p, -n and -r must be at least 1".into());
        }
        if self.threads == Some(0) {
            return Err("-t 0: give a number of threads, e.g. -t 4".into());
        }
        if let Some(chart) = &self.chart
            && chart.extension().is_none_or(|e| e != "svg")
        {
            return Err(format!("--chart {}: run-fit draws SVG; give a file name ending in .svg", chart.display()));
        }
        let levers = Levers {
            threads: self.threads,
            batch_tokens: 2048,
            use_mmap: true,
            use_mlock: false,
            split_mode: SplitMode::Layer,
            main_gpu: 0,
            rpc: self.rpc.endpoints()?,
            rpc_link: self.rpc.rpc_link,
        };
        Ok(BenchRequest {
            load: LoadRequest { model: self.model.clone(), policy: Policy::default(), levers },
            n_gpu_layers: self.n_gpu_layers.clone(),
            ctx_tokens: self.ctx_size.clone(),
            cache_types,
            flash_attn: self.flash_attn.clone(),
            ubatch_tokens: self.ubatch_size.clone(),
            n_cpu_moe: self.n_cpu_moe.as_ref().map_or(vec![None], |l| l.iter().copied().map(Some).collect()),
            prompt_tokens: self.n_prompt,
            gen_tokens: self.n_gen,
            repetitions: self.repetitions,
            json: self.json,
            csv: self.csv,
            chart: self.chart.clone(),
        })
    }
}

/// llama.cpp's loading and threading levers, passed through as given.
#[derive(Debug, Args)]
pub struct LeverArgs {
    /// CPU threads for generation and prompt processing [default: physical cores].
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<u32>,
    /// Logical batch size in tokens.
    #[arg(short = 'b', long = "batch-size", value_name = "TOKENS", default_value_t = 2048)]
    pub batch_size: u32,
    /// Read the weights into memory instead of mapping the file.
    #[arg(long)]
    pub no_mmap: bool,
    /// Lock the weights in RAM so the OS cannot page them out.
    #[arg(long)]
    pub mlock: bool,
    /// -sm: how to use several GPUs: layer (whole layers per GPU), row, or none (only the main GPU).
    #[arg(long = "split-mode", value_name = "none|layer|row", default_value = "layer")]
    pub split_mode: SplitMode,
    /// -mg: the GPU used with --split-mode none (and for row-split intermediate results).
    #[arg(long = "main-gpu", value_name = "N", default_value_t = 0)]
    pub main_gpu: u32,
    #[command(flatten)]
    pub rpc: RpcArgs,
}

impl LeverArgs {
    fn levers(&self) -> Result<Levers, String> {
        Ok(Levers {
            threads: self.threads,
            batch_tokens: self.batch_size.max(1),
            use_mmap: !self.no_mmap,
            use_mlock: self.mlock,
            split_mode: self.split_mode,
            main_gpu: self.main_gpu,
            rpc: self.rpc.endpoints()?,
            rpc_link: self.rpc.rpc_link,
        })
    }
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show memory use again every SECONDS (default 1) until Ctrl-C.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1")]
    pub watch: Option<f64>,
    /// With --watch: stop after N readings.
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub rpc: RpcArgs,
    /// Set by run-fit when it lists remote devices in a child process of its own.
    #[arg(long, hide = true, requires = "rpc")]
    pub probe_child: bool,
    /// With --probe-child: servers whose link run-fit already measured (not measured again).
    #[arg(long, hide = true, value_delimiter = ',', requires = "probe_child")]
    pub known_links: Vec<String>,
    /// Set by run-fit to measure this machine's CPU matrix rate through ggml in a child of its own.
    #[arg(long, hide = true, requires = "json")]
    pub measure_host: bool,
    /// Set by run-fit to measure this machine's GPUs through ggml in a child of its own, but for the
    /// `--known-devices` (`NAME:DESCRIPTION;…`) it measured before.
    #[arg(long, hide = true, requires = "json")]
    pub measure_local: bool,
    #[arg(long, hide = true, value_delimiter = ';', requires = "measure_local")]
    pub known_devices: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOffAuto {
    On,
    Off,
    Auto,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A .gguf file (the first shard of a split model), or the name of a model you don't have, such as
    /// Llama-2-70b-chat.Q3_K_M (an estimate from the parameter count and precision in the name).
    #[arg(required_unless_present = "params")]
    pub model: Option<PathBuf>,
    /// Estimate for a model of this many parameters instead of a file, e.g. 70B, 1.5B, 135M.
    #[arg(long, value_name = "SIZE", requires = "quant", conflicts_with = "model")]
    pub params: Option<String>,
    /// With --params: the quantization, e.g. Q4_K_M, Q8_0, F16 (also fp16, int8, int4, q4).
    #[arg(long, value_name = "NAME", requires = "params")]
    pub quant: Option<String>,
    /// Plan for a machine described in profiles/ (a name such as rtx3060-12g) or in a .toml file.
    #[arg(long, value_name = "NAME|FILE", conflicts_with_all = ["vram", "ram"])]
    pub profile: Option<String>,
    /// Plan for a hypothetical machine with these GPUs, e.g. 12GiB or 24GiB,24GiB.
    #[arg(long, value_name = "SIZE[,SIZE…]", requires = "ram", value_delimiter = ',', value_parser = size)]
    pub vram: Option<Vec<u64>>,
    /// RAM of the hypothetical machine, e.g. 32GiB.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub ram: Option<u64>,
    #[command(flatten)]
    pub fit: FitArgs,
    /// The levers `run` takes, so that a run's command line plans as it is.
    #[command(flatten)]
    pub levers: LeverArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also run llama.cpp's own fit (--fit) on the same file and machine and show its choice.
    #[arg(long, conflicts_with_all = ["profile", "vram"])]
    pub compare_llama: bool,
}

/// The levers a llama.cpp user knows, with llama.cpp's names. Unset means "plan it".
#[derive(Debug, Args, Default)]
pub struct FitArgs {
    /// -ngl: layers to put on the GPU(s), counting the output layer as llama.cpp does.
    #[arg(long = "n-gpu-layers", visible_alias = "ngl", value_name = "N")]
    pub n_gpu_layers: Option<u32>,
    /// Context size in tokens.
    #[arg(short = 'c', long = "ctx-size", visible_alias = "ctx", value_name = "TOKENS")]
    pub ctx_size: Option<u64>,
    /// -ctk: K cache type: f16, bf16, f32, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl.
    #[arg(long = "cache-type-k", value_name = "TYPE", value_parser = kv_type)]
    pub cache_type_k: Option<GgmlType>,
    /// -ctv: V cache type; quantized types need flash attention.
    #[arg(long = "cache-type-v", value_name = "TYPE", value_parser = kv_type)]
    pub cache_type_v: Option<GgmlType>,
    /// -fa: flash attention; auto turns it on where the backend supports it.
    #[arg(long = "flash-attn", value_name = "on|off|auto")]
    pub flash_attn: Option<OnOffAuto>,
    /// -ts: proportions of the offloaded layers per GPU, e.g. 3,1.
    #[arg(long = "tensor-split", value_name = "N,N…", value_parser = proportions)]
    pub tensor_split: Option<Proportions>,
    /// -ub: physical batch size in tokens.
    #[arg(long = "ubatch-size", value_name = "TOKENS", default_value_t = 512)]
    pub ubatch_size: u64,
    /// -ot: tensors whose names match PATTERN go to DEVICE (CPU, or a device `run-fit devices` lists),
    /// e.g. 'blk\.(1[0-9])\.ffn_.*_exps=CPU'; entries separated by commas, or the flag repeated.
    #[arg(long = "override-tensor", value_name = "PATTERN=DEVICE,…", value_parser = tensor_pins)]
    pub override_tensor: Vec<TensorPins>,
    /// -cmoe: keep every layer's routed experts (mixture of experts) in RAM.
    #[arg(long = "cpu-moe")]
    pub cpu_moe: bool,
    /// -ncmoe: keep the routed experts of the first N layers in RAM.
    #[arg(long = "n-cpu-moe", value_name = "N")]
    pub n_cpu_moe: Option<u32>,
    /// Place a mixture of experts in whole layers, as -ngl alone does (to compare with the default:
    /// every layer's attention on the GPU, routed experts overflowing to RAM).
    #[arg(long)]
    pub whole_layers: bool,
    /// VRAM kept free on each GPU, one value or one per GPU [default: 512MiB].
    #[arg(long, value_name = "SIZE[,SIZE…]", value_delimiter = ',', value_parser = size)]
    pub reserve: Option<Vec<u64>>,
    /// RAM kept free for the system.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = size)]
    pub host_reserve: u64,
    /// Never use more than this much VRAM per GPU, e.g. 11.5GiB or 10GiB,20GiB.
    #[arg(long, value_name = "SIZE[,SIZE…]", value_delimiter = ',', value_parser = size)]
    pub vram_budget: Option<Vec<u64>>,
    /// The smallest context worth keeping while fitting layers [default: 4096, or the trained context].
    #[arg(long, value_name = "TOKENS")]
    pub min_ctx: Option<u64>,
    /// The context to grow to when memory allows [default: the trained context, at most 32768].
    #[arg(long, value_name = "TOKENS")]
    pub max_ctx: Option<u64>,
    /// Plan even when the CPU part would not fit in RAM (it will swap).
    #[arg(long)]
    pub allow_swap: bool,
    /// Ignore what earlier runs on this machine recorded (the calibration cache) and measure afresh.
    #[arg(long)]
    pub fresh: bool,
}

/// llama.cpp's multi-letter short flags, which clap cannot declare, mapped to their long names.
const LLAMA_SHORT_FLAGS: &[(&str, &str)] = &[
    ("-ngl", "--n-gpu-layers"),
    ("-ctk", "--cache-type-k"),
    ("-ctv", "--cache-type-v"),
    ("-fa", "--flash-attn"),
    ("-ts", "--tensor-split"),
    ("-ub", "--ubatch-size"),
    ("-ot", "--override-tensor"),
    ("-cmoe", "--cpu-moe"),
    ("-ncmoe", "--n-cpu-moe"),
    ("-sys", "--system-prompt"),
    ("-sm", "--split-mode"),
    ("-mg", "--main-gpu"),
];

/// Rewrite `-ngl 99` (and `-ngl=99`) into `--n-gpu-layers 99` so llama.cpp habits work, and
/// `run-fit MODEL …` into `run-fit run MODEL …`.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut args: Vec<String> = args.into_iter().collect();
    // The first word that is not a global flag (`run-fit -v devices` is the devices command).
    let first = args.iter().skip(1).find(|a| !matches!(a.as_str(), "-v" | "--verbose" | "-q" | "--quiet"));
    if let Some(first) = first
        && !SUBCOMMANDS.contains(&first.as_str())
        && !matches!(first.as_str(), "-h" | "--help" | "-V" | "--version")
    {
        args.insert(1, "run".into());
    }
    let mut out = Vec::new();
    let mut after_double_dash = false;
    for arg in args {
        if after_double_dash {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            after_double_dash = true;
            out.push(arg);
            continue;
        }
        let (flag, value) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (arg.as_str(), None),
        };
        match LLAMA_SHORT_FLAGS.iter().find(|(short, _)| *short == flag) {
            Some((_, long)) => out.push(match value {
                Some(v) => format!("{long}={v}"),
                None => long.to_string(),
            }),
            None => out.push(arg),
        }
    }
    out
}

/// Where the hardware comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum HardwareSource {
    ThisMachine,
    Profile(String),
    Hypothetical { vram_bytes: Vec<u64>, ram_bytes: u64 },
}

/// What to plan for: a file, or a model described by name or flags (an estimate).
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A path; if no such file exists, it is read as a model name.
    Path(PathBuf),
    Params {
        params: String,
        quant: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    pub fresh: bool,
    pub model: ModelSource,
    pub hardware: HardwareSource,
    pub policy: Policy,
    pub levers: Levers,
    pub json: bool,
    pub compare_llama: bool,
}

impl FitArgs {
    pub fn policy(&self) -> Result<Policy, String> {
        if self.ubatch_size == 0 {
            return Err("--ubatch-size 0: give a batch size in tokens, e.g. 512".into());
        }
        let mut policy = Policy {
            host_reserve_bytes: self.host_reserve,
            vram_budget_bytes: self.vram_budget.clone(),
            n_ubatch_tokens: self.ubatch_size,
            allow_swap: self.allow_swap,
            pins: Pins {
                n_gpu_layers: self.n_gpu_layers,
                n_ctx_tokens: self.ctx_size,
                cache_k: self.cache_type_k,
                cache_v: self.cache_type_v,
                tensor_split: self.tensor_split.clone().map(|p| p.0),
                flash_attn: match self.flash_attn {
                    None | Some(OnOffAuto::Auto) => None,
                    Some(OnOffAuto::On) => Some(true),
                    Some(OnOffAuto::Off) => Some(false),
                },
                experts: ExpertPins {
                    tensor_pins: self.override_tensor.iter().flat_map(|p| p.0.clone()).collect(),
                    cpu_moe: self.cpu_moe,
                    n_cpu_moe: self.n_cpu_moe,
                },
            },
            split_experts: !self.whole_layers,
            ..Policy::default()
        };
        if let Some(r) = &self.reserve {
            policy.gpu_reserve_bytes = r.clone();
        }
        for (flag, value) in [("-c", self.ctx_size), ("--min-ctx", self.min_ctx), ("--max-ctx", self.max_ctx)] {
            match value {
                Some(0) => return Err(format!("{flag} 0: give a context size in tokens, e.g. {flag} 4096")),
                Some(n) if n > MAX_CTX_TOKENS => {
                    return Err(format!("{flag} {n}: llama.cpp's context holds at most {MAX_CTX_TOKENS} tokens"));
                }
                _ => {}
            }
        }
        if let Some(ts) = &self.tensor_split
            && !(ts.0.iter().sum::<f64>().is_finite() && ts.0.iter().sum::<f64>() > 0.0)
        {
            return Err("--tensor-split: give proportions such as 3,1 (not all zero, not astronomically large)".into());
        }
        policy.min_ctx_tokens = match (self.min_ctx, self.max_ctx) {
            (Some(min), Some(max)) if min > max => {
                return Err(format!("--min-ctx {min} is above --max-ctx {max}; give a minimum at most the maximum"));
            }
            (Some(min), _) => min,
            // A smaller maximum also lowers the default minimum.
            (None, Some(max)) => DEFAULT_MIN_CTX_TOKENS.min(max),
            (None, None) => DEFAULT_MIN_CTX_TOKENS,
        };
        if let Some(max) = self.max_ctx {
            policy.max_ctx_tokens = max;
        }
        Ok(policy)
    }
}

impl PlanArgs {
    pub fn request(&self) -> Result<PlanRequest, String> {
        let hardware = match (&self.profile, &self.vram, &self.ram) {
            (Some(p), _, _) => HardwareSource::Profile(p.clone()),
            (None, v, Some(r)) => {
                HardwareSource::Hypothetical { vram_bytes: v.clone().unwrap_or_default(), ram_bytes: *r }
            }
            _ => HardwareSource::ThisMachine,
        };
        let model = match (&self.model, &self.params, &self.quant) {
            (Some(path), _, _) => ModelSource::Path(path.clone()),
            (None, Some(params), Some(quant)) => ModelSource::Params { params: params.clone(), quant: quant.clone() },
            _ => return Err("give a model file or name, or --params SIZE --quant NAME".into()),
        };
        let mut policy = self.fit.policy()?;
        (policy.use_mmap, policy.use_mlock) = (!self.levers.no_mmap, self.levers.mlock);
        // As for `run`: -b smaller than -ub shrinks the physical batch too.
        policy.n_ubatch_tokens = policy.n_ubatch_tokens.min(self.levers.batch_size.max(1) as u64);
        Ok(PlanRequest {
            fresh: self.fit.fresh,
            model,
            hardware,
            levers: self.levers.levers()?,
            policy,
            json: self.json,
            compare_llama: self.compare_llama,
        })
    }
}

/// How the run ends: a chat at the terminal, or one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Interactive,
    /// `-p TEXT`, or (None) the prompt is read from stdin.
    Once(Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Levers {
    pub threads: Option<u32>,
    pub batch_tokens: u32,
    pub use_mmap: bool,
    pub use_mlock: bool,
    pub split_mode: SplitMode,
    pub main_gpu: u32,
    /// `--rpc`: remote servers (`host:port`) whose devices join this machine's, in order.
    pub rpc: Vec<String>,
    /// `--rpc-link`: the network to them, given instead of measured.
    pub rpc_link: Option<crate::fit::hardware::Link>,
}

/// What loading a model needs, for `run` and for each setting of `bench`: the file, the planner's
/// policy (with the user's pins) and llama.cpp's levers.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRequest {
    pub model: PathBuf,
    pub policy: Policy,
    pub levers: Levers,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub fresh: bool,
    pub load: LoadRequest,
    pub mode: Mode,
    pub system_prompt: Option<String>,
    pub generation: Generation,
    pub json: bool,
}

impl RunArgs {
    /// `stdin_is_terminal`: without -p, a terminal means a chat and a pipe means one answer.
    pub fn request(&self, stdin_is_terminal: bool) -> Result<RunRequest, String> {
        let probability = |v: f32, flag: &str| {
            if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{flag} {v}: give a value from 0 to 1")) }
        };
        if !self.temp.is_finite() || self.temp < 0.0 {
            return Err(format!("--temp {}: give 0 (greedy) or a positive temperature such as 0.8", self.temp));
        }
        let sampling = Sampling {
            temp: self.temp,
            top_k: self.top_k.max(0),
            top_p: probability(self.top_p, "--top-p")?,
            min_p: probability(self.min_p, "--min-p")?,
            seed: match self.seed {
                -1 => None,
                s => Some(u32::try_from(s).map_err(|_| format!("--seed {s}: give 0 to 4294967295, or -1 for random"))?),
            },
        };
        let max_tokens = match self.n_predict {
            -1 => None,
            n => Some(u32::try_from(n).map_err(|_| format!("-n {n}: give a number of tokens, or -1 for no limit"))?),
        };
        if self.levers.threads == Some(0) {
            return Err("-t 0: give a number of threads, e.g. -t 4".into());
        }
        let mode = match &self.prompt {
            Some(p) => Mode::Once(Some(p.clone())),
            None if stdin_is_terminal => Mode::Interactive,
            None => Mode::Once(None),
        };
        if self.json && mode == Mode::Interactive {
            return Err("--json prints one answer: give a prompt with -p or on stdin".into());
        }
        let mut policy = self.fit.policy()?;
        (policy.use_mmap, policy.use_mlock) = (!self.levers.no_mmap, self.levers.mlock);
        // -b smaller than -ub makes llama.cpp shrink the physical batch too; plan what it will use.
        policy.n_ubatch_tokens = policy.n_ubatch_tokens.min(self.levers.batch_size.max(1) as u64);
        let levers = self.levers.levers()?;
        Ok(RunRequest {
            fresh: self.fit.fresh,
            load: LoadRequest { model: self.model.clone(), policy, levers },
            mode,
            system_prompt: self.system_prompt.clone(),
            generation: Generation { max_tokens, ignore_eos: self.ignore_eos, sampling },
            json: self.json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<PlanRequest, String> {
        let argv = normalize_args(std::iter::once("run-fit".to_string()).chain(args.iter().map(|s| s.to_string())));
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Plan(p) => p.request(),
            _ => Err("not plan".into()),
        }
    }

    fn run(args: &[&str]) -> Result<RunRequest, String> {
        let argv = normalize_args(std::iter::once("run-fit".to_string()).chain(args.iter().map(|s| s.to_string())));
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Run(r) => r.request(true),
            _ => Err("not run".into()),
        }
    }

    #[test]
    fn a_bare_model_path_means_run() {
        let r = run(&["m.gguf", "-p", "hi", "-n", "16", "--temp", "0", "-t", "2", "-c", "2048"]).unwrap();
        assert_eq!(r.load.model, PathBuf::from("m.gguf"));
        assert_eq!(r.mode, Mode::Once(Some("hi".into())));
        assert_eq!(r.generation.max_tokens, Some(16));
        assert_eq!(r.generation.sampling.temp, 0.0);
        assert_eq!(r.load.levers.threads, Some(2));
        assert_eq!(r.load.policy.pins.n_ctx_tokens, Some(2048));
        assert_eq!(run(&["run", "m.gguf"]).unwrap().mode, Mode::Interactive);
        // global flags before the model still work, and before a subcommand name
        assert_eq!(run(&["-v", "m.gguf"]).unwrap().load.model, PathBuf::from("m.gguf"));
        let devices = Cli::try_parse_from(normalize_args(["run-fit", "-v", "devices"].map(String::from))).unwrap();
        assert!(matches!(devices.command, Command::Devices(_)) && devices.verbose);
    }

    #[test]
    fn llama_cpp_run_flags_work() {
        let r = run(&["m.gguf", "-sm", "none", "-mg", "1", "-sys", "be brief", "-b", "256", "-ub", "512", "--no-mmap"]);
        let r = r.unwrap();
        assert_eq!(r.load.levers.split_mode, SplitMode::None);
        assert_eq!(r.load.levers.main_gpu, 1);
        assert_eq!(r.system_prompt.as_deref(), Some("be brief"));
        assert_eq!(r.load.policy.n_ubatch_tokens, 256, "the physical batch is capped by -b");
        assert!(!r.load.levers.use_mmap);
        assert_eq!(r.generation.sampling.seed, None);
        assert_eq!(run(&["m.gguf", "-s", "42"]).unwrap().generation.sampling.seed, Some(42));
    }

    #[test]
    fn bad_run_values_say_what_to_do() {
        assert!(run(&["m.gguf", "--temp", "-1"]).unwrap_err().contains("greedy"));
        assert!(run(&["m.gguf", "--top-p", "2"]).unwrap_err().contains("from 0 to 1"));
        assert!(run(&["m.gguf", "-n", "-5"]).unwrap_err().contains("-1 for no limit"));
        assert!(run(&["m.gguf", "--json"]).unwrap_err().contains("-p"));
        assert!(run(&["m.gguf", "-t", "0"]).unwrap_err().contains("threads"));
    }

    #[test]
    fn llama_cpp_flag_names_work() {
        let r = parse(&["plan", "m.gguf", "-ngl", "20", "-c", "8192", "-ctk", "q8_0", "-fa=on", "-ts", "3,1"]).unwrap();
        assert_eq!(r.policy.pins.n_gpu_layers, Some(20));
        assert_eq!(r.policy.pins.n_ctx_tokens, Some(8192));
        assert_eq!(r.policy.pins.cache_k.unwrap().name, "Q8_0");
        assert_eq!(r.policy.pins.flash_attn, Some(true));
        assert_eq!(r.policy.pins.tensor_split, Some(vec![3.0, 1.0]));
    }

    #[test]
    fn sizes_and_hypothetical_machines() {
        let r =
            parse(&["plan", "m.gguf", "--vram", "12GiB,8GiB", "--ram", "32GiB", "--vram-budget", "11.5GiB"]).unwrap();
        assert_eq!(
            r.hardware,
            HardwareSource::Hypothetical { vram_bytes: vec![12 << 30, 8 << 30], ram_bytes: 32 << 30 }
        );
        assert_eq!(r.policy.vram_budget_bytes, Some(vec![(11.5 * (1u64 << 30) as f64) as u64]));
    }

    #[test]
    fn bad_values_say_what_to_do() {
        assert!(parse(&["plan", "m.gguf", "-ctk", "q4_k"]).unwrap_err().contains("use f16"));
        assert!(
            parse(&["plan", "m.gguf", "--vram-budget", "12 parsecs", "--ram", "1GiB"])
                .unwrap_err()
                .contains("is not a size")
        );
        assert!(parse(&["plan", "m.gguf", "-ts", "a,b"]).unwrap_err().contains("non-negative"));
        assert!(parse(&["plan", "m.gguf", "-ngl", "-3"]).is_err());
    }

    #[test]
    fn contexts_are_checked_against_what_llama_cpp_can_hold() {
        assert!(parse(&["plan", "m.gguf", "-c", "4294967296"]).unwrap_err().contains("at most 4294967040"));
        assert!(parse(&["plan", "m.gguf", "-c", "0"]).unwrap_err().contains("-c 0"));
        assert!(parse(&["plan", "m.gguf", "--max-ctx", "0"]).unwrap_err().contains("--max-ctx 0"));
        let err = parse(&["plan", "m.gguf", "--min-ctx", "100000", "--max-ctx", "10"]).unwrap_err();
        assert!(err.contains("--min-ctx 100000 is above --max-ctx 10"), "{err}");
        let p = parse(&["plan", "m.gguf", "--max-ctx", "1024"]).unwrap().policy;
        assert_eq!((p.min_ctx_tokens, p.max_ctx_tokens), (1024, 1024), "a lower maximum lowers the minimum");
        assert!(parse(&["plan", "m.gguf", "-ts", "1e308,1e308"]).unwrap_err().contains("astronomically"));
    }

    #[test]
    fn arguments_after_double_dash_are_left_alone() {
        let out = normalize_args(["x", "plan", "-ngl", "--", "-ngl"].map(String::from));
        assert_eq!(out, ["x", "plan", "--n-gpu-layers", "--", "-ngl"]);
    }
}
