//! Command-line definitions (clap) and their conversion into typed requests. No system calls here:
//! everything the user typed is validated before the machine is touched.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::facts::cache_type;
use crate::hardware::parse_bytes;
use crate::plan::{DEFAULT_MIN_CTX_TOKENS, Pins, Policy};

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
    /// Explain how the model would be placed on this machine (or a profile) without loading it.
    Plan(Box<PlanArgs>),
    /// List the GPUs llama.cpp sees and the RAM available to run-fit.
    Devices(DevicesArgs),
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOffAuto {
    On,
    Off,
    Auto,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A .gguf file (the first shard of a split model).
    pub model: PathBuf,
    /// Plan for a machine described in profiles/ (a name such as rtx3060-12g) or in a .toml file.
    #[arg(long, value_name = "NAME|FILE", conflicts_with_all = ["vram", "ram"])]
    pub profile: Option<String>,
    /// Plan for a hypothetical machine with these GPUs, e.g. 12GiB or 24GiB,24GiB.
    #[arg(long, value_name = "SIZE[,SIZE…]", requires = "ram")]
    pub vram: Option<String>,
    /// RAM of the hypothetical machine, e.g. 32GiB.
    #[arg(long, value_name = "SIZE")]
    pub ram: Option<String>,
    #[command(flatten)]
    pub fit: FitArgs,
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
    #[arg(short = 'c', long = "ctx-size", value_name = "TOKENS")]
    pub ctx_size: Option<u64>,
    /// -ctk: K cache type: f16, bf16, f32, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl.
    #[arg(long = "cache-type-k", value_name = "TYPE")]
    pub cache_type_k: Option<String>,
    /// -ctv: V cache type; quantized types need flash attention.
    #[arg(long = "cache-type-v", value_name = "TYPE")]
    pub cache_type_v: Option<String>,
    /// -fa: flash attention; auto turns it on where the backend supports it.
    #[arg(long = "flash-attn", value_name = "on|off|auto")]
    pub flash_attn: Option<OnOffAuto>,
    /// -ts: proportions of the offloaded layers per GPU, e.g. 3,1.
    #[arg(long = "tensor-split", value_name = "N,N…")]
    pub tensor_split: Option<String>,
    /// -ub: physical batch size in tokens.
    #[arg(long = "ubatch-size", value_name = "TOKENS", default_value_t = 512)]
    pub ubatch_size: u64,
    /// VRAM kept free on each GPU, one value or one per GPU [default: 512MiB].
    #[arg(long, value_name = "SIZE[,SIZE…]")]
    pub reserve: Option<String>,
    /// RAM kept free for the system.
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    pub host_reserve: String,
    /// Never use more than this much VRAM per GPU, e.g. 11.5GiB or 10GiB,20GiB.
    #[arg(long, value_name = "SIZE[,SIZE…]")]
    pub vram_budget: Option<String>,
    /// The smallest context worth keeping while fitting layers [default: 4096, or the trained context].
    #[arg(long, value_name = "TOKENS")]
    pub min_ctx: Option<u64>,
    /// The context to grow to when memory allows [default: the trained context, at most 32768].
    #[arg(long, value_name = "TOKENS")]
    pub max_ctx: Option<u64>,
    /// Plan even when the CPU part would not fit in RAM (it will swap).
    #[arg(long)]
    pub allow_swap: bool,
}

/// llama.cpp's multi-letter short flags, which clap cannot declare, mapped to their long names.
const LLAMA_SHORT_FLAGS: &[(&str, &str)] = &[
    ("-ngl", "--n-gpu-layers"),
    ("-ctk", "--cache-type-k"),
    ("-ctv", "--cache-type-v"),
    ("-fa", "--flash-attn"),
    ("-ts", "--tensor-split"),
    ("-ub", "--ubatch-size"),
];

/// Rewrite `-ngl 99` (and `-ngl=99`) into `--n-gpu-layers 99` so llama.cpp habits work.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
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

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    pub model: PathBuf,
    pub hardware: HardwareSource,
    pub policy: Policy,
    pub json: bool,
    pub compare_llama: bool,
}

fn sizes(text: &str, flag: &str) -> Result<Vec<u64>, String> {
    text.split(',').map(|s| parse_bytes(s).map_err(|e| format!("{flag}: {e}"))).collect()
}

impl FitArgs {
    pub fn policy(&self) -> Result<Policy, String> {
        let cache = |name: &Option<String>, flag: &str| -> Result<_, String> {
            name.as_deref()
                .map(|n| {
                    cache_type(n).ok_or_else(|| {
                        format!("{flag} {n}: not a KV cache type; use f16, bf16, f32, q8_0, q5_1, q5_0, q4_1, q4_0 or iq4_nl")
                    })
                })
                .transpose()
        };
        let tensor_split = match &self.tensor_split {
            None => None,
            Some(text) => Some(
                text.split([',', '/'])
                    .map(|s| s.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0))
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| {
                        format!("--tensor-split {text}: give non-negative numbers separated by commas, e.g. 3,1")
                    })?,
            ),
        };
        if self.ubatch_size == 0 {
            return Err("--ubatch-size 0: give a batch size in tokens, e.g. 512".into());
        }
        let mut policy = Policy {
            host_reserve_bytes: parse_bytes(&self.host_reserve).map_err(|e| format!("--host-reserve: {e}"))?,
            vram_budget_bytes: self.vram_budget.as_deref().map(|t| sizes(t, "--vram-budget")).transpose()?,
            n_ubatch_tokens: self.ubatch_size,
            allow_swap: self.allow_swap,
            pins: Pins {
                n_gpu_layers: self.n_gpu_layers,
                n_ctx_tokens: self.ctx_size,
                cache_k: cache(&self.cache_type_k, "--cache-type-k")?,
                cache_v: cache(&self.cache_type_v, "--cache-type-v")?,
                tensor_split,
                flash_attn: match self.flash_attn {
                    None | Some(OnOffAuto::Auto) => None,
                    Some(OnOffAuto::On) => Some(true),
                    Some(OnOffAuto::Off) => Some(false),
                },
            },
            ..Policy::default()
        };
        if let Some(r) = &self.reserve {
            policy.gpu_reserve_bytes = sizes(r, "--reserve")?;
        }
        policy.min_ctx_tokens = self.min_ctx.unwrap_or(DEFAULT_MIN_CTX_TOKENS).max(1);
        if let Some(max) = self.max_ctx {
            policy.max_ctx_tokens = max.max(policy.min_ctx_tokens);
        }
        Ok(policy)
    }
}

impl PlanArgs {
    pub fn request(&self) -> Result<PlanRequest, String> {
        let hardware = match (&self.profile, &self.vram, &self.ram) {
            (Some(p), _, _) => HardwareSource::Profile(p.clone()),
            (None, Some(v), Some(r)) => HardwareSource::Hypothetical {
                vram_bytes: sizes(v, "--vram")?,
                ram_bytes: parse_bytes(r).map_err(|e| format!("--ram: {e}"))?,
            },
            (None, None, Some(r)) => HardwareSource::Hypothetical {
                vram_bytes: vec![],
                ram_bytes: parse_bytes(r).map_err(|e| format!("--ram: {e}"))?,
            },
            _ => HardwareSource::ThisMachine,
        };
        Ok(PlanRequest {
            model: self.model.clone(),
            hardware,
            policy: self.fit.policy()?,
            json: self.json,
            compare_llama: self.compare_llama,
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
            Command::Devices(_) => Err("devices".into()),
        }
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
    fn arguments_after_double_dash_are_left_alone() {
        let out = normalize_args(["x", "-ngl", "--", "-ngl"].map(String::from));
        assert_eq!(out, ["x", "--n-gpu-layers", "--", "-ngl"]);
    }
}
