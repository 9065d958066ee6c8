//! Every kind of bad input ends in one line on stderr that says what is wrong and what to do, the
//! documented exit code, and nothing written — never a panic or an abort.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use run_fit::dev::gguf::writer::Kv;
use run_fit::dev::write_sparse;

struct Case {
    what: &'static str,
    args: Vec<String>,
    exit_code: i32,
    message: &'static str,
}

fn check(case: &Case) {
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let out = run_fit(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(case.exit_code), "{}: {err}", case.what);
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{}: {err}", case.what);
    // A machine that other programs keep busy while run-fit measures it is said in a line of its own
    // (real load: the previous case's processes may still be exiting).
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("run-fit: warning: other programs used")).collect();
    assert_eq!(lines.len(), 1, "{}: not one line: {err}", case.what);
    assert!(lines[0].starts_with("run-fit: error: "), "{}: {err}", case.what);
    assert!(err.contains(case.message), "{}: expected {:?} in {err}", case.what, case.message);
    assert!(stdout(&out).is_empty(), "{}: printed a result", case.what);
}

fn plan(model: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["plan".to_string(), model.display().to_string()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// `run-fit MODEL -p hi …`: the same checks before anything is loaded.
fn ask(model: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec![model.display().to_string(), "-p".to_string(), "hi".to_string()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn bad_input_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty = d.join("empty.gguf");
    fs::write(&empty, b"").unwrap();
    let text = d.join("notes.gguf");
    fs::write(&text, b"this is a text file, not a model\n").unwrap();
    let smol = smollm2();
    let truncated = d.join("truncated.gguf");
    let bytes = fs::read(&smol).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let absurd = d.join("absurd.gguf");
    let mut header = bytes[..4096].to_vec();
    header[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    fs::write(&absurd, &header).unwrap();
    let unknown_arch = d.join("unknown-arch.gguf");
    write_sparse(&unknown_arch, &[("general.architecture".into(), Kv::Str("brainfart".into()))], &[]).unwrap();
    let no_layers = d.join("no-layers.gguf");
    write_sparse(&no_layers, &[("general.architecture".into(), Kv::Str("llama".into()))], &[]).unwrap();
    let bad_profile = d.join("bad.toml");
    fs::write(&bad_profile, "name = \"x\"\n[host]\nram = \"32GiB\"\nvram = \"12GiB\"\n").unwrap();
    let big = synthetic(d, &run_fit::dev::shapes::LLAMA2_70B, "Q4_K_M");
    let fifo = d.join("fifo.gguf");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let fifo_profile = d.join("fifo.toml");
    assert!(Command::new("mkfifo").arg(&fifo_profile).status().unwrap().success());
    let looping = d.join("loop.gguf");
    std::os::unix::fs::symlink(&looping, &looping).unwrap();
    // The hostile header of the hardening issue: an array of arrays as long as an 8 GiB sparse file.
    let nested = d.join("nested.gguf");
    let mut header = b"GGUF".to_vec();
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&0u64.to_le_bytes());
    header.extend_from_slice(&1u64.to_le_bytes());
    header.extend_from_slice(&1u64.to_le_bytes());
    header.push(b'x');
    header.extend_from_slice(&9u32.to_le_bytes());
    header.extend_from_slice(&9u32.to_le_bytes());
    header.extend_from_slice(&(((8u64 << 30) - 41) / 8).to_le_bytes());
    fs::write(&nested, &header).unwrap();
    fs::OpenOptions::new().write(true).open(&nested).unwrap().set_len(8 << 30).unwrap();
    let gpus = ["--vram", "8GiB,8GiB", "--ram", "8GiB"];

    let cases = [
        Case { what: "missing", args: plan(&d.join("nope.gguf"), &[]), exit_code: 3, message: "no such file" },
        Case { what: "a FIFO", args: plan(&fifo, &[]), exit_code: 3, message: "named pipe" },
        Case { what: "a device", args: plan(Path::new("/dev/zero"), &[]), exit_code: 3, message: "is a device" },
        Case {
            what: "a kernel file",
            args: plan(Path::new("/proc/self/status"), &[]),
            exit_code: 3,
            message: "kernel interface",
        },
        Case { what: "a looping symlink", args: plan(&looping, &[]), exit_code: 3, message: "symbolic links" },
        Case {
            what: "nested arrays, 8 GiB",
            args: plan(&nested, &[]),
            exit_code: 3,
            message: "cannot fit in the file",
        },
        Case {
            what: "a FIFO as profile",
            args: plan(&smol, &["--profile", fifo_profile.to_str().unwrap()]),
            exit_code: 6,
            message: "not a regular file",
        },
        Case {
            what: "watch interval beyond a day",
            args: vec!["devices".into(), "--watch".into(), "1e20".into()],
            exit_code: 2,
            message: "at most a day",
        },
        Case {
            what: "a context beyond 32 bits",
            args: plan(&smol, &["-c", "4294967296", "--allow-swap"]),
            exit_code: 2,
            message: "at most 4294967040",
        },
        Case {
            what: "minimum above maximum",
            args: plan(&smol, &["--min-ctx", "100000", "--max-ctx", "10"]),
            exit_code: 2,
            message: "is above --max-ctx",
        },
        Case { what: "zero max context", args: plan(&smol, &["--max-ctx", "0"]), exit_code: 2, message: "--max-ctx 0" },
        Case {
            what: "an overflowing split",
            args: plan(&smol, &[&gpus[..], &["-ts", "1e308,1e308"]].concat()),
            exit_code: 2,
            message: "--tensor-split",
        },
        Case {
            what: "a main GPU that is not there",
            args: plan(&smol, &["--vram", "8GiB", "--ram", "8GiB", "-sm", "none", "-mg", "3"]),
            exit_code: 2,
            message: "numbered from 0",
        },
        Case { what: "a split without GPUs", args: plan(&smol, &["-ts", "1,1"]), exit_code: 2, message: "no GPU" },
        Case {
            what: "a malformed -ot pattern",
            args: plan(&smol, &["-ot", r"blk\.(1=CPU"]),
            exit_code: 2,
            message: "is not a regular expression",
        },
        Case {
            what: "an -ot entry without a device",
            args: plan(&smol, &["-ot", "ffn_.*_exps"]),
            exit_code: 2,
            message: "PATTERN=DEVICE",
        },
        Case {
            what: "an -ot device the machine does not have",
            args: plan(&smol, &["-ot", "exps=CUDA3"]),
            exit_code: 2,
            message: "does not have; use one of CPU",
        },
        Case { what: "an all-zero split", args: plan(&smol, &["-ts", "0,0"]), exit_code: 2, message: "not all zero" },
        Case {
            what: "bench: a chart that cannot be written",
            args: vec!["bench".into(), smol.display().to_string(), "--chart".into(), "/nonexistent/x.svg".into()],
            exit_code: 2,
            message: "cannot write there",
        },
        Case { what: "directory", args: plan(d, &[]), exit_code: 3, message: "is a directory" },
        Case { what: "empty", args: plan(&empty, &[]), exit_code: 3, message: "empty" },
        Case { what: "not GGUF", args: plan(&text, &[]), exit_code: 3, message: "not a GGUF file" },
        Case { what: "truncated", args: plan(&truncated, &[]), exit_code: 3, message: "truncated" },
        Case { what: "absurd count", args: plan(&absurd, &[]), exit_code: 3, message: "cannot fit in the file" },
        Case {
            what: "unknown arch",
            args: plan(&unknown_arch, &[]),
            exit_code: 4,
            message: "'brainfart' is not supported",
        },
        Case { what: "missing keys", args: plan(&no_layers, &[]), exit_code: 4, message: "llama.block_count" },
        Case { what: "bad -ngl", args: plan(&smol, &["-ngl", "many"]), exit_code: 2, message: "invalid value 'many'" },
        Case {
            what: "bad size",
            args: plan(&smol, &["--vram-budget", "12 parsecs"]),
            exit_code: 2,
            message: "is not a size",
        },
        Case { what: "zero context", args: plan(&smol, &["-c", "0"]), exit_code: 2, message: "context size in tokens" },
        Case { what: "bad cache", args: plan(&smol, &["-ctk", "q4_k"]), exit_code: 2, message: "not a KV cache type" },
        Case { what: "bad split", args: plan(&smol, &["-ts", "3:1"]), exit_code: 2, message: "--tensor-split" },
        Case {
            what: "unknown profile",
            args: plan(&smol, &["--profile", "cray-1"]),
            exit_code: 6,
            message: "rtx3060-12g",
        },
        Case {
            what: "bad profile",
            args: plan(&smol, &["--profile", bad_profile.to_str().unwrap()]),
            exit_code: 6,
            message: "bad.toml:4: unknown field `vram`",
        },
        Case {
            what: "split for the wrong number of GPUs",
            args: plan(&smol, &["--vram", "8GiB,8GiB", "--ram", "8GiB", "-ts", "1,1,1"]),
            exit_code: 2,
            message: "2 non-negative proportions",
        },
        Case { what: "does not fit", args: plan(&big, &["--ram", "8GiB"]), exit_code: 5, message: "more RAM" },
        Case {
            what: "pin too large",
            args: plan(&big, &["--vram", "12GiB", "--ram", "64GiB", "-ngl", "81"]),
            exit_code: 5,
            message: "at most -ngl",
        },
        Case {
            what: "would swap",
            args: plan(&big, &["--vram", "12GiB", "--ram", "16GiB"]),
            exit_code: 5,
            message: "--allow-swap",
        },
        Case {
            what: "neither a file nor a name",
            args: vec!["plan".into(), "mystery-4k-instruct-q4".into()],
            exit_code: 3,
            message: "pass --params SIZE",
        },
        Case {
            what: "bad --params",
            args: vec!["plan".into(), "--params".into(), "seventy".into(), "--quant".into(), "Q4_K_M".into()],
            exit_code: 2,
            message: "e.g. 70B",
        },
        Case { what: "run: missing", args: ask(&d.join("nope.gguf"), &[]), exit_code: 3, message: "no such file" },
        Case { what: "run: truncated", args: ask(&truncated, &[]), exit_code: 3, message: "truncated" },
        Case {
            what: "run: unknown arch",
            args: ask(&unknown_arch, &[]),
            exit_code: 4,
            message: "'brainfart' is not supported",
        },
        Case { what: "run: does not fit", args: ask(&big, &[]), exit_code: 5, message: "more RAM" },
        Case { what: "run: -ngl without a GPU", args: ask(&smol, &["-ngl", "5"]), exit_code: 5, message: "use -ngl 0" },
        Case { what: "run: bad temperature", args: ask(&smol, &["--temp", "-1"]), exit_code: 2, message: "greedy" },
        Case { what: "run: bad -n", args: ask(&smol, &["-n", "-5"]), exit_code: 2, message: "-1 for no limit" },
        Case {
            what: "run: no prompt on an empty stdin",
            args: vec![smol.display().to_string()],
            exit_code: 2,
            message: "no prompt",
        },
    ];
    let before = fs::read(&smol).unwrap();
    for case in &cases {
        check(case);
    }
    assert_eq!(fs::read(&smol).unwrap(), before, "the model file was written");
}
