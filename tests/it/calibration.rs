//! The calibration cache: a run records what llama.cpp allocated (and any backoff), the next plan of the
//! same model on this machine starts from it and says so, `--fresh` ignores it, and a corrupt file is a
//! warning, never an error.

use std::process::Command;

use crate::common::*;

fn with_cache(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_run-fit")).args(args).env("RUN_FIT_CACHE_DIR", dir).output().unwrap()
}

#[test]
fn a_backoff_is_remembered_by_the_next_plan() {
    let dir = tempfile::tempdir().unwrap();
    let model = smollm2();
    let m = model.to_str().unwrap();
    // a real out-of-memory at 8192 tokens (address-space limit), answered at 4096
    let out = Command::new("bash")
        .arg("-c")
        .arg("ulimit -v 400000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_run-fit"))
        .args([m, "-p", "hi", "-n", "2"])
        .env("RUN_FIT_CACHE_DIR", dir.path())
        .output()
        .unwrap();
    let e = stderr(&out);
    assert!(out.status.success() && e.contains("retrying with context 8192 → 4096"), "{e}");
    let cache: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("calibration.json")).unwrap()).unwrap();
    let run = &cache["runs"][0];
    assert_eq!((run["n_ctx_tokens"].as_u64(), run["first_n_ctx_tokens"].as_u64()), (Some(4096), Some(8192)));
    assert!(run["measured_bytes"]["host"].as_u64().unwrap() > 90 << 20, "{run}");

    let plan = stdout(&with_cache(dir.path(), &["plan", m]));
    assert!(plan.contains("learned  calibrated from the last run here"), "{plan}");
    assert!(plan.contains("context 8192 ran out of memory last time: starting from 4096 tokens"), "{plan}");
    assert!(plan.contains("context 4096 tokens"), "{plan}");
    // --fresh plans as if nothing had been learned
    let fresh = stdout(&with_cache(dir.path(), &["plan", m, "--fresh"]));
    assert!(!fresh.contains("calibrated") && fresh.contains("context 8192 tokens"), "{fresh}");
    // a run without trouble replaces the record: the next plan is back at 8192
    assert!(with_cache(dir.path(), &[m, "-p", "hi", "-n", "2", "--fresh"]).status.success());
    let again = stdout(&with_cache(dir.path(), &["plan", m]));
    assert!(again.contains("used what was predicted") && again.contains("context 8192 tokens"), "{again}");
}

/// The number before " tok/s reading the prompt" in a plan's text.
fn prompt_rate(plan: &str) -> f64 {
    let at = plan.find(" tok/s reading the prompt").expect(plan);
    let start = plan[..at].rfind('~').expect(plan) + 1;
    plan[start..at].replace(',', "").parse().expect(plan)
}

#[test]
fn the_hosts_rates_are_measured_once_shown_by_devices_and_kept_at_their_best() {
    let dir = tempfile::tempdir().unwrap();
    let model = smollm2();
    let m = model.to_str().unwrap();
    let first = with_cache(dir.path(), &["plan", m]);
    assert!(first.status.success(), "{}", stderr(&first));
    let path = dir.path().join("calibration.json");
    let cache: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (host, tflops) = cache["host_matmul_tflops"].as_object().unwrap().iter().next().unwrap();
    let tflops = tflops.as_f64().unwrap();
    // ggml's Q4_0 product on this machine's CPU: a real measurement, not a default
    assert!((0.005..50.0).contains(&tflops), "{cache}");
    assert!(cache["host_bandwidth_gb_per_s"][host].as_f64().unwrap() > 0.5, "{cache}");
    let devices = stdout(&with_cache(dir.path(), &["devices"]));
    assert!(devices.contains(&format!("{tflops:.2} TFLOPS Q4_0")) && devices.contains("GB/s read"), "{devices}");

    // A better reading on file (far better than any this machine gives), taken on a busy machine: the next plan measures again, keeps the
    // better one, and predicts prompts from it.
    let mut edited = cache.clone();
    edited["host_matmul_tflops"][host] = (tflops * 1000.0).into();
    edited["host_busy"][host] = true.into();
    std::fs::write(&path, edited.to_string()).unwrap();
    let base = prompt_rate(&stdout(&first));
    let kept = prompt_rate(&stdout(&with_cache(dir.path(), &["plan", m])));
    assert!(kept > 5.0 * base, "{kept} vs {base}");
    let after: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // (JSON's decimal text need not give back the last bit of a float)
    let stored = after["host_matmul_tflops"][host].as_f64().unwrap();
    assert!((stored / (tflops * 1000.0) - 1.0).abs() < 1e-9, "{stored}");
    // --fresh takes the new reading (a real one, far below the edited)
    let fresh = prompt_rate(&stdout(&with_cache(dir.path(), &["plan", m, "--fresh"])));
    assert!(fresh < kept / 5.0, "{fresh} vs {kept}");
}

#[test]
fn a_corrupt_cache_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("calibration.json"), b"{\"version\": 1, \"runs\": [garbage").unwrap();
    let model = smollm2();
    let out = with_cache(dir.path(), &["plan", model.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("warning: ignoring") && stdout(&out).contains("not a calibration file"));
    // and the run rewrites it whole
    let out = with_cache(dir.path(), &[model.to_str().unwrap(), "-p", "hi", "-n", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("calibration.json")).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{text}");
}

#[test]
fn repacked_weights_leave_nothing_to_learn_with_or_without_mmap() {
    // A Q4_0 model: llama.cpp's CPU backend repacks nearly all its matrices (CPU_REPACK, ~600 MiB
    // here). The memory model counts that copy, so neither a default run nor a --no-mmap one records
    // an excess, and the next plan starts from the same place either way.
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let model = synthetic(dir.path(), run_fit::dev::shapes::by_name("Llama-3.2-1B").unwrap(), "Q4_0");
    let m = model.to_str().unwrap();
    for extra in [&[][..], &["--no-mmap"][..]] {
        let mut args = vec![m, "-p", "hi", "-n", "1", "-c", "512"];
        args.extend_from_slice(extra);
        let out = with_cache(cache.path(), &args);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        let plan = stdout(&with_cache(cache.path(), &["plan", m, "-c", "512"]));
        assert!(plan.contains("used what was predicted"), "{extra:?}: {plan}");
        assert!(!plan.contains("kept in reserve"), "{extra:?}: {plan}");
    }
}

#[test]
fn a_cache_run_fit_did_not_write_is_left_alone_or_ignored() {
    let model = smollm2();
    let m = model.to_str().unwrap();
    // a newer run-fit's file: read as nothing, and not overwritten
    let dir = tempfile::tempdir().unwrap();
    let newer = r#"{"version": 99, "runs": [], "host_bandwidth_gb_per_s": {}}"#;
    std::fs::write(dir.path().join("calibration.json"), newer).unwrap();
    let out = with_cache(dir.path(), &["plan", m]);
    assert!(out.status.success(), "{}", stderr(&out));
    // (plan shows what it learned, warnings included, among its lines)
    assert!(stdout(&out).contains("written by a newer run-fit: left as it is"), "{}", stdout(&out));
    assert_eq!(stdout(&out).matches("newer run-fit").count(), 1, "said once: {}", stdout(&out));
    assert_eq!(std::fs::read_to_string(dir.path().join("calibration.json")).unwrap(), newer);
    // a huge file is not read whole: a warning, then it is replaced
    let big = tempfile::tempdir().unwrap();
    std::fs::write(big.path().join("calibration.json"), vec![b' '; 5 << 20]).unwrap();
    let out = with_cache(big.path(), &["plan", m]);
    assert!(out.status.success() && stdout(&out).contains("not a calibration file"), "{}", stdout(&out));
    // no temporary file is left behind
    let left: Vec<_> = std::fs::read_dir(big.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().contains(".json.")), "{left:?}");
}

#[test]
fn a_relative_cache_variable_is_ignored() {
    // The XDG spec: a relative path in these variables is invalid. run-fit must not write into the
    // directory it happens to run in.
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_run-fit"))
        .args(["plan", smollm2().to_str().unwrap()])
        .current_dir(cwd.path())
        .env("RUN_FIT_CACHE_DIR", "cache")
        .env("XDG_CACHE_HOME", "")
        .env("HOME", "relative-home")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "run-fit wrote into the current directory");
}
