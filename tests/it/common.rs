//! Helpers shared by the integration tests: the real binary, the real models.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A model fetched by scripts/fetch-models.sh. Missing models fail the test: a skipped test could not fail.
pub fn model(name: &str) -> PathBuf {
    let path = repo().join("models").join(name);
    assert!(path.is_file(), "{} is missing: run scripts/fetch-models.sh (scripts/test.sh does)", path.display());
    path
}

pub fn smollm2() -> PathBuf {
    model("SmolLM2-135M-Instruct.Q4_1.gguf")
}

pub fn gemma3() -> PathBuf {
    model("gemma-3-270m-q4_k_m.gguf")
}

/// A new, empty calibration cache folder: each run-fit a test starts learns nothing from the others
/// (a backoff recorded by one test would change the next one's plan).
pub fn fresh_cache() -> PathBuf {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("run-fit-test-cache-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The run-fit binary with its own empty calibration cache.
pub fn run_fit_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_run-fit"));
    cmd.env("RUN_FIT_CACHE_DIR", fresh_cache());
    cmd
}

pub fn run_fit(args: &[&str]) -> Output {
    run_fit_command().args(args).output().expect("run-fit runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Write a sparse synthetic model of `shape` into `dir`.
pub fn synthetic(dir: &Path, shape: &run_fit::dev::shapes::Shape, quant: &str) -> PathBuf {
    let path = dir.join(format!("{}.gguf", shape.name));
    let (kvs, tensors) = run_fit::dev::synth::model(shape, run_fit::dev::synth::quant(quant).unwrap());
    run_fit::dev::write_sparse(&path, &kvs, &tensors).unwrap();
    path
}
