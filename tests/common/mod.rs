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

pub fn run_fit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_run-fit")).args(args).output().expect("run-fit runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Write a sparse synthetic model of `shape` into `dir`.
pub fn synthetic(dir: &Path, shape: &run_fit::synth::Shape, quant: &str) -> PathBuf {
    let path = dir.join(format!("{}.gguf", shape.name));
    let (kvs, tensors) = run_fit::synth::model(shape, run_fit::synth::quant(quant).unwrap());
    run_fit::gguf::writer::write_sparse(&path, &kvs, &tensors).unwrap();
    path
}
