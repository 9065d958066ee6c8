//! What earlier runs taught about this model on this machine: what llama.cpp really allocated per
//! device, whether a backoff was needed, and the host's measured memory bandwidth — and the rules that
//! turn a record into a plan adjustment (`adjust`). The file itself is `machine::cache`'s.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::fit::plan::{Plan, Policy, human};

pub const VERSION: u32 = 1;
/// Records kept per file, newest last.
const MAX_RUNS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cache {
    pub version: u32,
    /// Host memory bandwidth by machine fingerprint.
    #[serde(default)]
    pub host_bandwidth_gb_per_s: BTreeMap<String, f64>,
    #[serde(default)]
    pub runs: Vec<Run>,
    /// The measured link to each RPC server, by endpoint.
    #[serde(default)]
    pub rpc_links: BTreeMap<String, crate::fit::hardware::Link>,
    /// Remote devices' rates as ggml measured them, by "endpoint#index on that server".
    #[serde(default)]
    pub device_rates: BTreeMap<String, crate::fit::hardware::Rates>,
    /// The host CPU's Q4_0 matrix rate (ggml's CPU backend), by machine fingerprint.
    #[serde(default)]
    pub host_matmul_tflops: BTreeMap<String, f64>,
    /// Machines whose last readings were taken while other programs kept the CPU busy: the next run
    /// measures again (and keeps the better reading).
    #[serde(default)]
    pub host_busy: BTreeMap<String, bool>,
    /// This machine's devices whose measurement through ggml failed (cache keys): not tried again on
    /// every plan — each try starts a child and can take seconds — until `--fresh`.
    #[serde(default)]
    pub unmeasurable: BTreeSet<String>,
}

/// Another program's share of the machine's CPU time above which a measurement is not trusted as
/// the machine's own (on this project's shared 2-core machine the bandwidth read 7–19 GB/s).
pub const BUSY_SHARE: f64 = 0.25;

/// A new reading against the one kept: the better of the two (a lower one is a busy machine's, not
/// a slower machine's), unless `fresh` asks for the new one.
pub fn keep_best(kept: Option<f64>, new: Option<f64>, fresh: bool) -> Option<f64> {
    match (kept, new) {
        (Some(k), Some(n)) if !fresh => Some(k.max(n)),
        (k, None) => k,
        (_, n) => n,
    }
}

/// One successful load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Path, size and modification time of the model file.
    pub model: String,
    pub machine: String,
    /// Seconds since 1970, for the message.
    pub when: u64,
    pub n_gpu_layers: u32,
    pub n_ctx_tokens: u64,
    /// Bytes the plan predicted and llama.cpp reported, per device name ("host" for RAM).
    pub predicted_bytes: BTreeMap<String, u64>,
    pub measured_bytes: BTreeMap<String, u64>,
    /// The backoff steps this run needed (empty: the first plan loaded).
    pub backoff: Vec<String>,
    /// The context and GPU layers of the first plan, when a backoff made them smaller.
    pub first_n_ctx_tokens: u64,
    pub first_n_gpu_layers: u32,
}

impl Cache {
    pub fn latest(&self, model: &str, machine: &str) -> Option<&Run> {
        self.runs.iter().rev().find(|r| r.model == model && r.machine == machine)
    }

    pub fn record(&mut self, run: Run) {
        self.version = VERSION;
        self.runs.retain(|r| !(r.model == run.model && r.machine == run.machine));
        self.runs.push(run);
        let excess = self.runs.len().saturating_sub(MAX_RUNS);
        self.runs.drain(..excess);
    }

    /// Fold in `newer` (what this run knows) over what is on disk (`self`): per model and machine the
    /// newest record wins, so a concurrent run's record of another model survives.
    pub fn merge(&mut self, newer: Cache) {
        self.version = VERSION;
        self.host_bandwidth_gb_per_s.extend(newer.host_bandwidth_gb_per_s);
        self.rpc_links.extend(newer.rpc_links);
        // A device measured now is no longer one that failed.
        self.unmeasurable.retain(|k| !newer.device_rates.contains_key(k));
        self.unmeasurable.extend(newer.unmeasurable);
        self.device_rates.extend(newer.device_rates);
        self.host_matmul_tflops.extend(newer.host_matmul_tflops);
        self.host_busy.extend(newer.host_busy);
        for run in newer.runs {
            if self.latest(&run.model, &run.machine).is_none_or(|r| r.when <= run.when) {
                self.record(run);
            }
        }
    }

    /// What a file may say and still be believed: a bandwidth between 0.1 GB/s and 100 TB/s, sizes
    /// under 1 PiB. Anything else was not written by run-fit and is dropped.
    pub fn validated(mut self) -> Cache {
        const MAX_BYTES: u64 = 1 << 50;
        self.host_bandwidth_gb_per_s.retain(|_, bw| bw.is_finite() && (0.1..100_000.0).contains(bw));
        self.host_matmul_tflops.retain(|_, t| (1e-4..10_000.0).contains(t));
        // A round trip under a minute, a rate between 1 kB/s and 1 TB/s.
        self.rpc_links.retain(|_, l| (0.0..60.0).contains(&l.round_trip_s) && (1e3..1e12).contains(&l.bytes_per_s));
        self.device_rates.retain(|_, r| {
            (0.1..100_000.0).contains(&r.bandwidth_gb_per_s) && (1e-4..10_000.0).contains(&r.matmul_tflops)
        });
        self.runs.retain(|r| {
            r.measured_bytes.values().chain(r.predicted_bytes.values()).all(|&b| b < MAX_BYTES)
                && r.n_ctx_tokens <= u32::MAX as u64
                && r.first_n_ctx_tokens <= u32::MAX as u64
        });
        self
    }
}

impl Run {
    /// How much more than predicted `device` ("host" for RAM) used, ignoring noise: llama.cpp's own
    /// rounding and small buffers run-fit does not model (under 16 MiB or 1 %).
    fn excess_bytes(&self, device: &str) -> u64 {
        let (Some(&measured), Some(&predicted)) = (self.measured_bytes.get(device), self.predicted_bytes.get(device))
        else {
            return 0;
        };
        let over = measured.saturating_sub(predicted);
        if over > (16 << 20).max(predicted / 100) { over } else { 0 }
    }
}

/// Start from what the last run on this machine learned: a device that needed more than predicted
/// keeps that much more in reserve, and a context or layer count that ran out of memory is not tried
/// first again. Pins are the user's and stay as they are. Returns the notes to print.
pub fn adjust(policy: &mut Policy, run: &Run, device_names: &[String]) -> Vec<String> {
    let mut notes = Vec::new();
    let extra: Vec<u64> = device_names.iter().map(|name| run.excess_bytes(name)).collect();
    for (name, &over) in device_names.iter().zip(&extra) {
        if over > 0 {
            notes.push(format!("{name} used {} more than predicted last time: kept in reserve", human(over)));
        }
    }
    if extra.iter().any(|&e| e > 0) {
        let base = &policy.gpu_reserve_bytes;
        policy.gpu_reserve_bytes = extra
            .iter()
            .enumerate()
            .map(|(i, e)| base.get(i).or(base.first()).copied().unwrap_or(0).saturating_add(*e))
            .collect();
    }
    let host_over = run.excess_bytes("host");
    if host_over > 0 {
        policy.host_reserve_bytes = policy.host_reserve_bytes.saturating_add(host_over);
        notes.push(format!("RAM use was {} above the prediction last time: kept in reserve", human(host_over)));
    }
    if !run.backoff.is_empty() {
        if policy.pins.n_ctx_tokens.is_none() && run.n_ctx_tokens < run.first_n_ctx_tokens {
            policy.max_ctx_tokens = policy.max_ctx_tokens.min(run.n_ctx_tokens);
            policy.min_ctx_tokens = policy.min_ctx_tokens.min(run.n_ctx_tokens);
            notes.push(format!(
                "context {} ran out of memory last time: starting from {} tokens",
                run.first_n_ctx_tokens, run.n_ctx_tokens
            ));
        }
        if policy.pins.n_gpu_layers.is_none() && run.n_gpu_layers < run.first_n_gpu_layers {
            policy.max_gpu_layers = Some(run.n_gpu_layers);
            notes.push(format!(
                "{} GPU layers ran out of memory last time: starting from {}",
                run.first_n_gpu_layers, run.n_gpu_layers
            ));
        }
    }
    notes
}

/// The plan's predicted bytes per device name ("host" for RAM), to compare with what llama.cpp reports.
pub fn predicted(plan: &Plan) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = plan.devices.iter().map(|d| (d.name.clone(), d.bytes.total())).collect();
    m.insert("host".into(), plan.host.bytes.total());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(backoff: bool) -> Run {
        Run {
            model: "m".into(),
            machine: "x".into(),
            when: 0,
            n_gpu_layers: 20,
            n_ctx_tokens: 4096,
            predicted_bytes: [("CUDA0".to_string(), 10 << 30), ("host".to_string(), 4 << 30)].into(),
            measured_bytes: [("CUDA0".to_string(), (10 << 30) + (300 << 20)), ("host".to_string(), 3 << 30)].into(),
            backoff: if backoff { vec!["out of memory …".into()] } else { vec![] },
            first_n_ctx_tokens: if backoff { 8192 } else { 4096 },
            first_n_gpu_layers: if backoff { 24 } else { 20 },
        }
    }

    #[test]
    fn a_device_that_needed_more_keeps_it_in_reserve() {
        let mut p = Policy::default();
        let notes = adjust(&mut p, &run(false), &["CUDA0".into()]);
        assert_eq!(p.gpu_reserve_bytes, vec![(512 << 20) + (300 << 20)]);
        assert_eq!(p.host_reserve_bytes, 1 << 30, "less RAM than predicted changes nothing");
        assert_eq!(notes, ["CUDA0 used 300 MiB more than predicted last time: kept in reserve"]);
        // a few KiB over the prediction is llama.cpp's rounding, not a lesson
        let mut close = run(false);
        close.measured_bytes.insert("CUDA0".into(), (10 << 30) + (15 << 10));
        let mut p = Policy::default();
        assert!(adjust(&mut p, &close, &["CUDA0".into()]).is_empty());
        assert_eq!(p, Policy::default());
    }

    #[test]
    fn what_ran_out_of_memory_is_not_tried_first_again_unless_pinned() {
        let mut p = Policy::default();
        let notes = adjust(&mut p, &run(true), &["CUDA0".into()]);
        assert_eq!((p.max_ctx_tokens, p.max_gpu_layers), (4096, Some(20)));
        assert_eq!(notes.len(), 3);
        let mut pinned = Policy::default();
        pinned.pins.n_ctx_tokens = Some(8192);
        pinned.pins.n_gpu_layers = Some(24);
        adjust(&mut pinned, &run(true), &["CUDA0".into()]);
        assert_eq!((pinned.max_ctx_tokens, pinned.max_gpu_layers), (Policy::default().max_ctx_tokens, None));
    }

    #[test]
    fn the_newest_record_per_model_and_machine_wins() {
        let mut c = Cache::default();
        c.record(run(false));
        let mut newer = run(true);
        newer.when = 5;
        c.record(newer);
        assert_eq!(c.runs.len(), 1);
        assert_eq!(c.latest("m", "x").unwrap().when, 5);
        assert!(c.latest("m", "other machine").is_none());
    }

    #[test]
    fn a_lower_reading_does_not_replace_a_higher_one_unless_fresh() {
        assert_eq!(keep_best(Some(19.0), Some(7.0), false), Some(19.0));
        assert_eq!(keep_best(Some(7.0), Some(19.0), false), Some(19.0));
        assert_eq!(keep_best(Some(19.0), Some(7.0), true), Some(7.0));
        assert_eq!(keep_best(None, Some(7.0), false), Some(7.0));
        // a measurement that failed keeps what was known
        assert_eq!(keep_best(Some(19.0), None, true), Some(19.0));
    }

    #[test]
    fn values_no_run_fit_wrote_are_dropped() {
        let mut cache = Cache::default();
        cache.host_bandwidth_gb_per_s.insert("a".into(), -5.0);
        cache.host_bandwidth_gb_per_s.insert("b".into(), f64::NAN);
        cache.host_bandwidth_gb_per_s.insert("c".into(), 40.0);
        let mut absurd = run(false);
        absurd.model = "absurd".into();
        absurd.measured_bytes.insert("host".into(), u64::MAX - 10);
        cache.runs.push(absurd);
        cache.runs.push(run(false));
        let v = cache.validated();
        assert_eq!(v.host_bandwidth_gb_per_s.keys().collect::<Vec<_>>(), ["c"]);
        assert_eq!(v.runs.len(), 1);
        assert_ne!(v.runs[0].model, "absurd");
    }

    #[test]
    fn a_concurrent_run_s_record_survives_a_save() {
        let mut on_disk = Cache::default();
        let mut other = run(false);
        other.model = "other".into();
        on_disk.record(other);
        let mut ours = Cache::default();
        let mut mine = run(false);
        mine.when = 10;
        ours.record(mine);
        on_disk.merge(ours);
        let mut models: Vec<&str> = on_disk.runs.iter().map(|r| r.model.as_str()).collect();
        models.sort();
        assert_eq!(models, ["m", "other"]);
        // an older copy of a record does not replace a newer one
        let mut stale = Cache::default();
        let mut old = run(false);
        old.when = 1;
        old.n_ctx_tokens = 1;
        stale.record(old);
        on_disk.merge(stale);
        assert_eq!(on_disk.latest("m", "x").unwrap().n_ctx_tokens, 4096);
    }

    #[test]
    fn a_device_that_failed_to_measure_is_remembered_until_it_measures() {
        let mut on_disk = Cache::default();
        let mut failed = Cache::default();
        failed.unmeasurable.insert("local:CUDA0:card".into());
        on_disk.merge(failed);
        assert!(on_disk.unmeasurable.contains("local:CUDA0:card"));
        // measured later (--fresh): no longer one that failed
        let mut measured = Cache::default();
        let rates = crate::fit::hardware::Rates { bandwidth_gb_per_s: 800.0, matmul_tflops: 50.0 };
        measured.device_rates.insert("local:CUDA0:card".into(), rates);
        on_disk.merge(measured);
        assert!(on_disk.unmeasurable.is_empty() && on_disk.device_rates.contains_key("local:CUDA0:card"));
    }

    #[test]
    fn a_huge_recorded_excess_saturates_instead_of_wrapping() {
        let mut huge = run(false);
        huge.measured_bytes.insert("host".into(), u64::MAX);
        huge.predicted_bytes.insert("host".into(), 0);
        let mut policy = Policy::default();
        adjust(&mut policy, &huge, &[]);
        assert_eq!(policy.host_reserve_bytes, u64::MAX);
    }
}
