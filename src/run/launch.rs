//! `run-fit MODEL`, up to a ready worker: measure, plan, start a worker with the plan, and when it runs
//! out of memory, plan smaller and start again — one line per step, a bounded number of steps.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::cli::LoadRequest;
use crate::error::Failure;
use crate::fit::backoff::{self, Death, Exit, Fixed, Refusal, Step, Tried};
use crate::fit::calibration::{self, Cache};
use crate::fit::hardware::Hardware;
use crate::fit::plan::{self, Plan, Policy};
use crate::fit::speed::{self, Speed};
use crate::machine::cache;
use crate::machine::probe;
use crate::machine::rpc as machine_rpc;
use crate::model::facts::{self, ModelFacts};
use crate::output::printer::Printer;
use crate::output::report::{self, ModelSummary};
use crate::run::protocol::{LoadSpec, SplitMode};
use crate::run::supervisor::{Interrupted, Loaded, Worker};

/// Starts, counting the first: enough to halve the context and shed layers a few times.
pub const MAX_ATTEMPTS: usize = 8;

/// A worker that loaded the model and is ready to answer.
pub struct Running {
    pub worker: Worker,
    pub plan: Plan,
    pub n_ctx_tokens: u32,
    /// The speed the plan predicts, to flag a run far below it.
    pub predicted: Option<Speed>,
}

/// Where a successful load is recorded (`calibration`): the cache, this model file and this machine.
pub struct Learn {
    pub cache: Cache,
    pub model_key: String,
    pub machine: String,
}

pub struct Launcher<'a> {
    req: &'a LoadRequest,
    facts: &'a ModelFacts,
    summary: ModelSummary,
    printer: Printer,
    interrupt: Arc<AtomicBool>,
    policy: Policy,
    first_hardware: Option<Hardware>,
    /// The host's memory bandwidth (measured once, cached): a fresh measurement after a crash does not
    /// repeat it, and the speed prediction needs it.
    host_bandwidth_gb_per_s: Option<f64>,
    attempts: usize,
    /// One line per backoff step, as printed.
    pub steps: Vec<String>,
    learn: Option<Learn>,
    /// GPU layers and context of the first plan, for the calibration record.
    first_config: Option<(u32, u64)>,
    /// The RPC servers still in use: a server that is lost leaves this list, and its devices the plan.
    rpc: Vec<String>,
    /// The hardware the last plan was made for (which device sat where).
    last_hardware: Option<Hardware>,
}

impl<'a> Launcher<'a> {
    /// `policy` is where planning starts (the request's, adjusted by what earlier runs learned);
    /// `learn` is where a successful load is recorded.
    pub fn new(
        req: &'a LoadRequest,
        facts: &'a ModelFacts,
        hardware: Hardware,
        policy: Policy,
        learn: Option<Learn>,
        printer: Printer,
        interrupt: Arc<AtomicBool>,
    ) -> Launcher<'a> {
        Launcher {
            req,
            facts,
            summary: report::model_summary(&req.model.display().to_string(), facts),
            printer,
            interrupt,
            policy,
            host_bandwidth_gb_per_s: hardware.host.bandwidth_gb_per_s,
            first_hardware: Some(hardware),
            attempts: 0,
            steps: Vec::new(),
            learn,
            first_config: None,
            rpc: req.levers.rpc.clone(),
            last_hardware: None,
        }
    }

    /// Plan and start workers until one is ready, or say why none can be.
    pub fn start(&mut self) -> Result<Running, Failure> {
        // A worker whose context failed with an error value keeps its weights loaded; if the next plan
        // places the same weights, it only makes a smaller context (no second read of the weights).
        let mut waiting: Option<(Worker, LoadSpec, Hardware)> = None;
        loop {
            self.attempts += 1;
            let hardware = match (&waiting, self.first_hardware.take()) {
                // The waiting worker's weights are counted as used by a fresh measurement; the
                // measurement it was planned with is the right one.
                (Some((_, _, hw)), _) => hw.clone(),
                (None, Some(hw)) => hw,
                // Measure again after a crash: free memory may be what changed.
                (None, None) => {
                    let mut hw = probe::measure_isolated(&self.rpc, self.req.levers.rpc_link)?;
                    hw.host.bandwidth_gb_per_s = hw.host.bandwidth_gb_per_s.or(self.host_bandwidth_gb_per_s);
                    hw
                }
            };
            let hardware = self.restrict(hardware)?;
            self.last_hardware = Some(hardware.clone());
            let (plan, _) = crate::fit::fastest::plan(self.facts, &hardware, &self.policy)?;
            self.first_config.get_or_insert((plan.config.n_gpu_layers(), plan.config.n_ctx_tokens));
            self.printer.note(&report::run_summary(&self.summary, &plan));
            for warning in &plan.warnings {
                self.printer.warn(warning);
            }
            if self.req.levers.split_mode == SplitMode::Row && hardware.devices.len() > 1 {
                self.printer.warn(
                    "-sm row: memory is planned as for whole layers per GPU; row split puts more on the main GPU",
                );
            }
            let spec = self.spec(&plan);
            let reuse = match waiting.take() {
                Some((worker, loaded, _)) if loaded.same_weights(&spec) => Some(worker),
                other => {
                    drop(other); // the old weights leave memory before new ones are read
                    None
                }
            };
            let reused = reuse.is_some();
            let mut worker = match reuse {
                Some(mut worker) => {
                    worker.reload(&spec);
                    worker
                }
                None => Worker::spawn(&spec, self.printer)?,
            };
            let bar = self.printer.progress_bar(100, "loading {bar:40} {pos:>3}%");
            let ready = worker.wait_ready(&self.interrupt, &mut |f| bar.set_position((f * 100.0) as u64));
            bar.finish_and_clear();
            match ready {
                Ok(loaded) => {
                    if reused && loaded.weight_loads == 1 {
                        self.printer.note("the weights stayed loaded: only the context was made again");
                    }
                    if !loaded.chat_template {
                        self.printer.note(&format!(
                            "the model file has no chat template: using llama.cpp's built-in '{}' template",
                            spec.fallback_chat_template
                        ));
                    }
                    self.record(&plan, &loaded);
                    let predicted = speed::predict(self.facts, &plan, &hardware);
                    return Ok(Running { worker, plan, n_ctx_tokens: loaded.n_ctx_tokens, predicted });
                }
                Err(Interrupted::ByUser) => return Err(Failure::Interrupted),
                Err(Interrupted::Died(death)) => {
                    self.shrink(&plan, &death)?;
                    if death.exit == Exit::Waiting {
                        waiting = Some((worker, spec, hardware));
                    }
                }
            }
        }
    }

    /// A worker running `plan` died: if it was memory, make the policy smaller for the next start
    /// (`backoff::decide` says how, or why not).
    pub fn shrink(&mut self, plan: &Plan, death: &Death) -> Result<(), Failure> {
        if !self.rpc.is_empty()
            && let Some(why) = machine_rpc::lost_server(&death.log_tail)
        {
            return self.drop_lost_servers(&why);
        }
        let pins = &self.req.policy.pins;
        let fixed = Fixed { n_gpu_layers: pins.n_gpu_layers.is_some(), n_ctx_tokens: pins.n_ctx_tokens.is_some() };
        let tried = Tried {
            n_gpu_layers: plan.config.n_gpu_layers(),
            n_ctx_tokens: plan.config.n_ctx_tokens,
            experts_in_ram: plan.experts_in_ram_layers,
            // Only the planner's own experts move (every layer offloaded); the user's placement is theirs.
            expert_layers: if self.facts.weights.has_routed_experts()
                && pins.experts.is_empty()
                && plan.config.n_gpu_layers() > self.facts.n_layer
            {
                self.facts.n_layer
            } else {
                0
            },
        };
        let limits = backoff::Limits {
            attempts: self.attempts,
            max_attempts: MAX_ATTEMPTS,
            min_ctx_tokens: self.req.policy.min_ctx_tokens,
        };
        let (mut line, step) = match backoff::decide(death, tried, fixed, limits) {
            Ok(decision) => decision,
            Err(Refusal::NotMemory(message)) => return Err(Failure::Engine(message)),
            Err(Refusal::NothingSmaller(message)) => return Err(Failure::OutOfMemory(message)),
        };
        // Fewer layers, and ggml named the device whose buffer failed: that device gives up an eighth
        // of its layers, the others keep theirs (unless -ts fixes the proportions).
        let devices = self.last_hardware.as_ref().map_or(&[][..], |hw| &hw.devices[..]);
        if let (Step::Layers { .. }, Some(i), None) =
            (step, backoff::failed_device(&death.log_tail, devices), &pins.tensor_split)
            && plan.devices.get(i).is_some_and(|d| d.layers > 0)
        {
            let d = &plan.devices[i];
            let to = d.layers - d.layers.div_ceil(8);
            let what = line.split_once("; retrying with").map_or(line.as_str(), |(w, _)| w);
            line = format!("{what}; retrying with {} layers {} → {to}", d.name, d.layers);
            self.policy.device_layer_caps.retain(|c| c.device != d.name);
            self.policy.device_layer_caps.push(plan::DeviceCap {
                device: d.name.clone(),
                layers: to,
                why: "a real allocation failed there with more".into(),
            });
            self.printer.note(&line);
            self.steps.push(line);
            return Ok(());
        }
        self.printer.note(&line);
        self.steps.push(line);
        match step {
            Step::Context { to, .. } => {
                self.policy.max_ctx_tokens = to;
                self.policy.min_ctx_tokens = self.policy.min_ctx_tokens.min(to);
            }
            Step::Layers { to, .. } => self.policy.max_gpu_layers = Some(to),
            Step::Experts { to, .. } => self.policy.min_expert_layers_in_ram = to,
        }
        Ok(())
    }

    /// A worker died because an RPC server went away: the servers that no longer accept connections
    /// leave the plan (their per-device values with them), and the next start re-measures and plans on
    /// what remains. If every server answers again, the same plan is tried again.
    fn drop_lost_servers(&mut self, why: &str) -> Result<(), Failure> {
        if self.attempts >= MAX_ATTEMPTS {
            return Err(Failure::Rpc(format!("{why}; giving up after {MAX_ATTEMPTS} attempts")));
        }
        let gone = machine_rpc::unreachable(&self.rpc);
        let line = if gone.is_empty() {
            format!("{why}; every RPC server accepts connections again: starting again")
        } else {
            let devices = self.last_hardware.as_ref().map_or(&[][..], |hw| &hw.devices[..]);
            let lost: Vec<usize> = (0..devices.len())
                .filter(|&i| devices[i].endpoint.as_ref().is_some_and(|e| gone.contains(e)))
                .collect();
            plan::forget_devices(&mut self.policy, &lost, devices.len());
            self.rpc.retain(|e| !gone.contains(e));
            format!("{why}: {} no longer answers; planning again on the devices that remain", gone.join(", "))
        };
        self.printer.note(&line);
        self.steps.push(line);
        Ok(())
    }

    /// Remember what llama.cpp really allocated (and any backoff) for the next plan of this model here.
    fn record(&mut self, plan: &Plan, loaded: &Loaded) {
        let Some(learn) = &mut self.learn else { return };
        let (first_n_gpu_layers, first_n_ctx_tokens) =
            self.first_config.unwrap_or((plan.config.n_gpu_layers(), plan.config.n_ctx_tokens));
        learn.cache.record(calibration::Run {
            model: learn.model_key.clone(),
            machine: learn.machine.clone(),
            when: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            n_gpu_layers: plan.config.n_gpu_layers(),
            n_ctx_tokens: plan.config.n_ctx_tokens,
            predicted_bytes: calibration::predicted(plan),
            measured_bytes: loaded.buffers_bytes.clone(),
            backoff: self.steps.clone(),
            first_n_ctx_tokens,
            first_n_gpu_layers,
        });
        if let Some(warning) = cache::save(&learn.cache) {
            self.printer.warn(&warning);
        }
    }

    /// `-sm none` uses only the main GPU: plan for that one alone.
    fn restrict(&self, hw: Hardware) -> Result<Hardware, Failure> {
        let levers = &self.req.levers;
        crate::fit::hardware::as_split(hw, levers.split_mode, levers.main_gpu).map_err(Failure::Usage)
    }

    fn spec(&self, plan: &Plan) -> LoadSpec {
        let c = &plan.config;
        let levers = &self.req.levers;
        let threads = levers.threads.unwrap_or_else(probe::physical_cores);
        LoadSpec {
            model: self.req.model.clone(),
            n_gpu_layers: c.n_gpu_layers(),
            tensor_split: if c.gpu_layers.len() > 1 {
                c.gpu_layers.iter().map(|&l| l as f32).collect()
            } else {
                vec![]
            },
            split_mode: levers.split_mode,
            main_gpu: levers.main_gpu,
            n_ctx_tokens: c.n_ctx_tokens as u32,
            n_batch_tokens: levers.batch_tokens.max(c.n_ubatch_tokens as u32),
            n_ubatch_tokens: c.n_ubatch_tokens as u32,
            type_k: c.cache_k.id,
            type_v: c.cache_v.id,
            flash_attn: c.flash_attn,
            op_offload: c.op_offload,
            swa_full: c.swa_full,
            n_threads: threads,
            n_threads_batch: threads,
            use_mmap: levers.use_mmap,
            use_mlock: levers.use_mlock,
            verbose: self.printer.verbose(),
            fallback_chat_template: facts::fallback_chat_template(&self.facts.architecture).to_string(),
            rpc: self.rpc.clone(),
            tensor_overrides: c
                .overrides
                .iter()
                .map(|o| {
                    let device = o.place.and_then(|d| plan.devices.get(d)).map_or("CPU", |d| d.name.as_str());
                    (o.pattern.clone(), device.to_string())
                })
                .collect(),
        }
    }
}
