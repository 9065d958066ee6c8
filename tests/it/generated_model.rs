//! The synthetic-model generator (`run-fit-dev synth … --random SEED`): a real architecture's shape with
//! random but valid weights, quantized by ggml. llama.cpp must load it and run it — the GPU kit makes its
//! models this way on a machine no model file can reach.

use std::process::Command;

use crate::common::*;

fn synth(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_run-fit-dev")).arg("synth").args(args).output().unwrap()
}

#[test]
fn a_generated_model_loads_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    for quant in ["Q4_K_M", "Q8_0", "F16"] {
        let path = dir.path().join(format!("tiny-{quant}.gguf"));
        let made = synth(&["tiny", quant, path.to_str().unwrap(), "--random", "7"]);
        assert!(made.status.success(), "{quant}: {}", stderr(&made));
        // the data region is really written (not a hole): every byte of the file is on disk
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len > 1_000_000, "{quant}: {len} bytes");
        let out =
            run_fit(&[path.to_str().unwrap(), "-p", "Hello", "-n", "16", "--ignore-eos", "--temp", "0", "--json"]);
        assert!(out.status.success(), "{quant}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert_eq!(v["stats"]["generated_tokens"], 16, "{quant}");
        assert!(v["generation_tok_per_s"].as_f64().unwrap() > 0.0);
    }
    // the same seed gives the same file
    let a = dir.path().join("a.gguf");
    let b = dir.path().join("b.gguf");
    synth(&["tiny", "Q4_0", a.to_str().unwrap(), "--random", "3"]);
    synth(&["tiny", "Q4_0", b.to_str().unwrap(), "--random", "3"]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn a_quantization_that_needs_an_importance_matrix_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gguf");
    let out = synth(&["tiny", "IQ2_XS", path.to_str().unwrap(), "--random", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs an importance matrix"), "{}", stderr(&out));
    assert!(!path.exists(), "a half-written model was left behind");
}

#[test]
fn a_generated_sliding_window_model_runs_with_a_window_sized_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swa.gguf");
    assert!(synth(&["swa-tiny", "Q8_0", path.to_str().unwrap(), "--random", "3"]).status.success());
    let out = run_fit(&[path.to_str().unwrap(), "-p", "Hello", "-n", "16", "--ignore-eos", "-c", "1024", "-v"]);
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    // gemma3 architecture; the window layers hold pad256(window 128 + micro-batch 512) cells, as planned
    assert!(e.contains("print_info: arch                  = gemma3"), "{e}");
    assert!(e.contains("creating     SWA KV cache, size = 768 cells"), "{e}");
    assert!(e.contains("reply 16 tokens"), "{e}");
}
