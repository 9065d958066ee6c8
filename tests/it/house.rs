//! The house rules that a compiler alone would not keep: llama.cpp is called from `src/engine` only, and
//! every pure part of the tree carries the lints that forbid I/O, the clock, processes and printing
//! (clippy.toml lists them; `scripts/test.sh` runs clippy with -D warnings).

use std::path::{Path, PathBuf};

use crate::common::repo;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_engine_calls_llama_cpp() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    assert!(files.len() > 30, "the source tree was not found");
    let engine = repo().join("src/engine");
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(&engine))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.contains("llama_cpp_2") || text.contains("llama_cpp_sys_2")
        })
        .map(|f| f.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    assert!(offenders.is_empty(), "llama.cpp used outside src/engine: {offenders:?}");
}

#[test]
fn the_pure_parts_deny_io_the_clock_and_printing() {
    const LINT: &str =
        "#![deny(clippy::disallowed_methods, clippy::disallowed_types, clippy::print_stdout, clippy::print_stderr)]";
    for pure in ["src/model/mod.rs", "src/fit/mod.rs", "src/output/mod.rs", "src/cli/mod.rs", "src/run/protocol.rs"] {
        let text = std::fs::read_to_string(repo().join(pure)).unwrap();
        assert!(text.lines().any(|l| l.trim() == LINT), "{pure} lost its purity lint");
    }
    let clippy = std::fs::read_to_string(repo().join("clippy.toml")).unwrap();
    for banned in ["std::fs::read", "std::time::Instant::now", "std::process::Command", "std::io::stdout"] {
        assert!(clippy.contains(&format!("\"{banned}\"")), "clippy.toml no longer bans {banned}");
    }
    // Only the printer may write to the terminal inside output/; it is the one module let off.
    let output = std::fs::read_to_string(repo().join("src/output/mod.rs")).unwrap();
    let allowed: Vec<&str> = output.lines().filter(|l| l.contains("#[allow(")).collect();
    assert_eq!(allowed, ["#[allow(clippy::disallowed_methods)]"], "src/output/mod.rs lets off more than the printer");
}

#[test]
fn the_fault_hook_is_compiled_only_for_tests() {
    // RUN_FIT_FAULT makes the worker kill itself: only the `fault-injection` build (the test suite's)
    // may have it.
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if text.contains("\"RUN_FIT_FAULT") {
            assert!(f.ends_with("src/run/fault.rs"), "{} reads RUN_FIT_FAULT", f.display());
        }
    }
    let run = std::fs::read_to_string(repo().join("src/run/mod.rs")).unwrap();
    assert!(
        run.contains("#[cfg(feature = \"fault-injection\")]\npub mod fault;"),
        "src/run/fault.rs is not feature-gated"
    );
}
