//! Mixtures of experts on real llama.cpp: generated models (random weights) of Mixtral's layout and
//! of Qwen-MoE's (with a shared expert), loaded on loopback RPC devices, where the bytes llama.cpp
//! reports per device show where each tensor went.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use crate::rpc::{Server, assert_accurate};

/// `run-fit-dev synth SHAPE Q8_0 … --random 3`: every tensor really there, so a load reads it.
fn generated(dir: &Path, shape: &str) -> PathBuf {
    let path = dir.join(format!("{shape}.gguf"));
    let o = Command::new(env!("CARGO_BIN_EXE_run-fit-dev"))
        .args(["synth", shape, "Q8_0"])
        .arg(&path)
        .args(["--random", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    path
}

fn plan_json(args: &[&str]) -> serde_json::Value {
    let o = run_fit(&[&["plan", "--json"], args].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn attention_and_shared_experts_on_the_remote_device_routed_experts_in_ram_as_llama_cpp_allocates_them() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut rows = 0;
    for shape in ["moe-qwen-mini", "moe-mixtral-mini"] {
        let model = generated(dir.path(), shape);
        let path = model.display().to_string();
        // 60 MiB for a model of 80–90 MiB, every layer on RPC0 (-ngl 99: on a CPU-backed device the
        // planner alone would take whole layers, which are faster there): some layers' experts in RAM
        let plan = plan_json(&[&path, "--rpc", &server.endpoint, "--vram-budget", "60MiB", "-c", "1024", "-ngl", "99"]);
        let p = &plan["plan"];
        assert_eq!(p["devices"][0]["layers"], 7, "{shape}: {p}");
        let args: Vec<&str> = p["tensor_args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(args[0], "--n-cpu-moe", "{shape}: {args:?}");
        let k: u64 = args[1].parse().unwrap();
        assert!((1..6).contains(&k), "{shape}: {k}");
        assert!(p["host"]["bytes"]["experts"].as_u64().unwrap() > 0);
        assert_eq!(p["host"]["bytes"]["kv"], 0, "the KV cache stays with the attention");
        // what llama.cpp really allocates, device by device: the planner's choice, the user's pins
        // (--n-cpu-moe, --cpu-moe, -ot). docs/MOE.md §2 lists the placements measured outside the
        // targets: whole MoE layers partly offloaded (compute −6 %, total −2.1 % on these tiny models),
        // one expert tensor alone on a device whose layers run elsewhere.
        let configs = [
            "99:1024::--vram-budget+60MiB",
            "-:1024::--n-cpu-moe+2",
            "-:2048::--cpu-moe",
            r"7:1024::-ot+blk\.[0-2]\.ffn_.*_exps=CPU",
        ];
        rows += assert_accurate(&model, &server.endpoint, &configs);
    }
    assert!(rows >= 16, "{rows} rows");
}

#[test]
fn n_cpu_moe_and_ot_load_answer_and_llama_cpp_logs_the_overrides() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let model = generated(dir.path(), "moe-qwen-mini");
    let path = model.display().to_string();
    let ask = |extra: &[&str]| {
        let o = run_fit_command()
            .args([path.as_str(), "-p", "hi", "-n", "4", "-v"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        assert!(!stdout(&o).trim().is_empty(), "{extra:?}: no answer");
        stderr(&o)
    };
    let log = ask(&["--n-cpu-moe", "2"]);
    for layer in 0..2 {
        for part in ["gate", "up", "down"] {
            let line = format!("tensor blk.{layer}.ffn_{part}_exps.weight (");
            let applied = log.lines().any(|l| l.contains(&line) && l.contains("buffer type overridden to CPU"));
            assert!(applied, "no override of layer {layer}'s {part} experts in llama.cpp's log");
        }
    }
    assert!(!log.contains("tensor blk.2.ffn_up_exps.weight ("), "layer 2's experts were moved too");
    // -ot to a remote device: llama.cpp puts exactly that tensor there
    let log = ask(&["--rpc", &server.endpoint, "-ngl", "0", "-ot", r"blk\.0\.ffn_down_exps=RPC0"]);
    let there =
        format!("tensor blk.0.ffn_down_exps.weight (4 MiB q8_0) buffer type overridden to RPC0[{}]", server.endpoint);
    assert!(log.contains(&there), "no `{there}` in:\n{log}");
    // the planner's own choice loads as planned
    let log = ask(&["--rpc", &server.endpoint, "--vram-budget", "60MiB", "-c", "1024", "-ngl", "99"]);
    assert!(log.contains("tensor blk.0.ffn_up_exps.weight (") && log.contains("overridden to CPU"), "{log}");
}

#[test]
fn plan_compares_its_placement_with_llama_cpp_s_fit_on_the_same_device() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let model = generated(dir.path(), "moe-qwen-mini");
    let path = model.display().to_string();
    let compared = |budget: &str, extra: &[&str]| {
        let base = [path.as_str(), "--rpc", &server.endpoint, "--rpc-link", "1Gbit/0.2ms", "--vram-budget", budget];
        let report = plan_json(&[&base[..], &["-c", "1024", "--compare-llama"], extra].concat());
        report["llama_fit_costed"].clone()
    };
    for budget in ["40MiB", "60MiB", "80MiB"] {
        // As planned: at least the speed llama.cpp's fit is predicted to reach (on a CPU-backed device
        // whole layers are faster than attention there and experts here, so run-fit chooses those).
        let c = compared(budget, &[]);
        let (a, b) =
            (c["ours_generation_tok_per_s"].as_f64().unwrap(), c["llama_generation_tok_per_s"].as_f64().unwrap());
        assert!(a >= b * 0.99, "{budget}: run-fit ~{a:.0} tok/s, llama.cpp's fit ~{b:.0}");
        // Every layer's attention on the device (-ngl 99, as a GPU user asks): at least as many bytes
        // of non-expert weights there as llama.cpp's fit keeps.
        let c = compared(budget, &["-ngl", "99"]);
        let (ours, theirs) =
            (c["ours_non_expert_device_bytes"].as_u64().unwrap(), c["llama_non_expert_device_bytes"].as_u64().unwrap());
        assert!(ours >= theirs, "{budget}: run-fit keeps {ours} non-expert bytes on the device, llama.cpp {theirs}");
    }
}

#[test]
fn an_out_of_memory_moves_more_experts_to_ram_before_any_attention_leaves_the_device() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let model = generated(dir.path(), "moe-qwen-mini");
    let once = dir.path().join("fired");
    // The worker is killed as the OOM killer would while loading the planner's choice (every layer on
    // RPC0, as -ngl 99 asks); the next plan keeps them there and more layers' experts in RAM.
    let o = run_fit_command()
        .args([model.to_str().unwrap(), "--rpc", &server.endpoint, "--rpc-link", "1Gbit/0.2ms"])
        .args(["--vram-budget", "60MiB", "-c", "1024", "-ngl", "99", "-p", "hi", "-n", "4"])
        .env("RUN_FIT_FAULT", "sigkill@load")
        .env("RUN_FIT_FAULT_ONCE", &once)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let retry = err.lines().find(|l| l.contains("out of memory")).unwrap_or_else(|| panic!("no backoff: {err}"));
    assert!(retry.contains("retrying with routed experts of"), "{retry}");
    let plans: Vec<&str> = err.lines().filter(|l| l.contains("layers on GPU")).collect();
    assert_eq!(plans.len(), 2, "{err}");
    let moe = |line: &str| line.split("--n-cpu-moe ").nth(1).and_then(|r| r.split(')').next()?.parse::<u32>().ok());
    assert!(plans.iter().all(|l| l.contains("7/7 layers on GPU")), "attention left the device: {plans:?}");
    assert!(moe(plans[1]) > moe(plans[0]), "{plans:?}");
    assert!(!stdout(&o).trim().is_empty());
}
