//! `run-fit MODEL` on the real default model: answers, statistics, JSON, piped prompts, and backing off
//! from real out-of-memory failures provoked with an address-space limit (`ulimit -v`), which makes
//! llama.cpp's allocations fail for real. Each failure mode of FIELD-NOTES §3 that can happen on this CPU
//! machine is provoked: an error value, an abort inside llama.cpp, libgomp's exit(1). The kernel's OOM
//! killer (SIGKILL) cannot be provoked safely on a shared machine, so that one is simulated.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::common::*;

const QUESTION: &str = "What is the capital of France?";

/// run-fit under an address-space limit (KiB), through bash's ulimit.
fn run_fit_limited(limit_kib: u64, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(format!("ulimit -v {limit_kib} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_run-fit"));
    cmd.args(args).envs(env.iter().copied()).env("RUN_FIT_CACHE_DIR", fresh_cache()).stdin(Stdio::null());
    cmd.output().expect("bash runs")
}

fn ask(extra: &[&str]) -> Vec<String> {
    let mut v = vec![smollm2().display().to_string(), "-p".into(), QUESTION.into(), "--temp".into(), "0".into()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The numbers of the stats line: (prompt tokens, prompt tok/s, reply tokens, reply tok/s).
fn stats_line(err: &str) -> (u64, f64, u64, f64) {
    let line = err.lines().find(|l| l.starts_with("prompt ") && l.contains("tok/s")).expect("a stats line");
    let numbers: Vec<f64> =
        line.split([' ', ',']).filter_map(|w| w.split('/').next().and_then(|n| n.parse::<f64>().ok())).collect();
    (numbers[0] as u64, numbers[1], numbers[2] as u64, numbers[3])
}

#[test]
fn answers_the_capital_of_france_with_statistics() {
    let args = ask(&[]);
    let out = run_fit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{e}");
    assert!(o.contains("Paris"), "{o}");
    let (prompt_tokens, prompt_rate, reply_tokens, reply_rate) = stats_line(&e);
    assert!(prompt_tokens > 5 && prompt_rate > 0.0, "{e}");
    assert!(reply_tokens > 0 && reply_rate > 0.0, "{e}");
    // the decision, on one line, before loading
    let summary = e.lines().find(|l| l.contains("layers on the CPU")).expect("summary line");
    assert!(
        summary.contains("Q4_1") && summary.contains("context 8192 tokens") && summary.contains("KV f16/f16"),
        "{e}"
    );
}

#[test]
fn json_prints_one_object_with_reply_stats_and_config() {
    let args = ask(&["--json", "-n", "24", "-c", "2048", "-t", "1"]);
    let out = run_fit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    assert!(v["reply"].as_str().unwrap().contains("Paris"), "{v}");
    assert!(v["stats"]["generated_tokens"].as_u64().unwrap() <= 24);
    assert_eq!(v["stats"]["ctx_size_tokens"], 2048);
    assert!(v["generation_tok_per_s"].as_f64().unwrap() > 0.0);
    let args: Vec<&str> = v["llama_args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args[..4], ["-ngl", "0", "-c", "2048"]);
    assert_eq!(v["backoff"].as_array().unwrap().len(), 0);
}

#[test]
fn a_forced_token_count_is_generated_exactly() {
    let args = ask(&["--ignore-eos", "-n", "40", "-c", "1024", "--json"]);
    let out = run_fit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert_eq!(v["stats"]["generated_tokens"], 40);
    assert_eq!(v["stop"], "token_limit");
}

#[test]
fn llama_cpp_logs_only_with_verbose() {
    let quiet = run_fit(&ask(&["-n", "2", "-c", "512"]).iter().map(String::as_str).collect::<Vec<_>>());
    let verbose = run_fit(&ask(&["-n", "2", "-c", "512", "-v"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!stderr(&quiet).contains("llama_context"), "{}", stderr(&quiet));
    assert!(stderr(&verbose).contains("llama_context"), "{}", stderr(&verbose));
    assert!(verbose.status.success() && quiet.status.success());
}

#[test]
fn a_piped_prompt_is_answered_once() {
    let mut child = run_fit_command()
        .args([smollm2().to_str().unwrap(), "--temp", "0", "-c", "2048", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{QUESTION}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Paris"));
    // -q keeps the result (the stats) and drops the chatter
    let e = stderr(&out);
    assert!(!e.contains("layers on the CPU") && e.contains("tok/s"), "{e}");
}

#[test]
fn an_empty_pipe_is_a_usage_error_before_loading() {
    let out = run_fit_command().args([smollm2().to_str().unwrap()]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no prompt"), "{}", stderr(&out));
}

/// Limits tried, in order, until one shows the failure mode; the address-space layout moves a little
/// with every build, so a single number would rot. Every candidate is a real allocation failure.
fn provoke(limits_kib: &[u64], extra: &[&str], mode: &str) -> (String, String) {
    let args = ask(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut seen = Vec::new();
    for &limit in limits_kib {
        let out = run_fit_limited(limit, &args, &[]);
        let (o, e) = (stdout(&out), stderr(&out));
        if e.contains(mode) && out.status.success() {
            assert!(o.contains("Paris"), "backed off but did not answer: {o}\n{e}");
            assert!(e.contains("retrying with context"), "{e}");
            return (o, e);
        }
        seen.push(format!("--- ulimit -v {limit}: exit {:?}\n{e}", out.status.code()));
    }
    panic!("no limit produced {mode:?} followed by an answer:\n{}", seen.join("\n"));
}

#[test]
fn backs_off_from_an_allocation_error() {
    let (_, e) = provoke(&[400_000, 380_000, 420_000, 440_000], &[], "failed to allocate");
    // one line per step, naming the stage and the sizes
    let step = e.lines().find(|l| l.contains("out of memory while creating the context at -ngl 0 -c 8192")).expect(&e);
    assert!(step.ends_with("retrying with context 8192 → 4096 tokens"), "{step}");
    // the worker kept its weights and made only a smaller context (it counts its own weight loads)
    assert!(e.contains("the weights stayed loaded: only the context was made again"), "{e}");
}

#[test]
fn backs_off_from_an_abort_inside_llama_cpp() {
    let (_, e) = provoke(&[340_000, 330_000, 350_000, 320_000, 360_000], &[], "GGML_ASSERT(ctx->mem_buffer != NULL)");
    assert!(!e.contains("/root/"), "the evidence line names no build folders: {e}");
}

#[test]
fn backs_off_from_libgomp_exiting_when_threads_cannot_start() {
    // 24 threads' stacks take the address space that the context leaves.
    provoke(&[600_000, 550_000, 650_000, 500_000], &["-t", "24"], "libgomp: Thread creation failed");
}

#[test]
fn backs_off_from_sigkill_at_load_and_mid_reply() {
    let dir = tempfile::tempdir().unwrap();
    for stage in ["warmup", "decode"] {
        let once = dir.path().join(stage);
        let args = ask(&["--max-ctx", "4096"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_fit_command()
            .args(&args)
            .env("RUN_FIT_FAULT", format!("sigkill@{stage}"))
            .env("RUN_FIT_FAULT_ONCE", &once)
            .output()
            .unwrap();
        let (o, e) = (stdout(&out), stderr(&out));
        assert!(out.status.success(), "{stage}: {e}");
        assert!(o.contains("Paris"), "{stage}: {o}");
        assert!(e.contains("killed by SIGKILL"), "{stage}: {e}");
        assert!(e.contains("retrying with context 4096 → 2048 tokens"), "{stage}: {e}");
        if stage == "decode" {
            // the reply that died is asked again of the smaller worker; stdout carries only the answer
            assert!(e.contains("the model process died mid-reply: the answer starts again"), "{e}");
            assert_eq!(o.matches("Paris").count(), 1, "{o}");
        }
    }
}

#[test]
fn the_speed_prediction_survives_a_backoff_that_measures_again() {
    // after a crash the machine is measured afresh; the host bandwidth (measured once) must carry over
    let dir = tempfile::tempdir().unwrap();
    let out = run_fit_command()
        .args(ask(&["--max-ctx", "2048", "-n", "4", "--json"]))
        .env("RUN_FIT_FAULT", "sigkill@warmup")
        .env("RUN_FIT_FAULT_ONCE", dir.path().join("once"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["backoff"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["predicted"]["generation_tok_per_s"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn a_pinned_setup_that_runs_out_of_memory_is_refused_not_changed() {
    let args = ask(&["-c", "8192"]);
    let out = run_fit_limited(400_000, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{e}");
    let last = e.lines().last().unwrap();
    assert!(last.starts_with("run-fit: error: out of memory while creating the context at -ngl 0 -c 8192"), "{e}");
    assert!(last.contains("nothing smaller is left: drop -ngl / -c"), "{e}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_failure_that_is_not_memory_is_reported_at_once() {
    // A header run-fit accepts but llama.cpp cannot load: a llama model without its attention weights.
    let dir = tempfile::tempdir().unwrap();
    let (kvs, mut tensors) =
        run_fit::dev::synth::model(&run_fit::dev::shapes::MICRO, run_fit::dev::synth::quant("Q8_0").unwrap());
    tensors.retain(|t| !t.name.ends_with("attn_q.weight"));
    let path = dir.path().join("broken.gguf");
    run_fit::dev::write_sparse(&path, &kvs, &tensors).unwrap();
    let before = std::fs::read(&path).unwrap();
    let out = run_fit(&[path.to_str().unwrap(), "-p", "hi"]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(7), "{e}");
    assert!(!e.contains("retrying"), "{e}");
    assert!(e.lines().last().unwrap().starts_with("run-fit: error:"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the model file was written");
}

#[test]
fn a_reply_that_fills_the_context_stops_cleanly() {
    let out = run_fit(&ask(&["-c", "256", "--ignore-eos", "--json"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["stop"], "context_full");
    assert_eq!(v["stats"]["ctx_used_tokens"], 256);
    assert!(stderr(&out).contains("the context is full"), "{}", stderr(&out));
}

#[test]
fn ctrl_c_during_a_long_prompt_stops_at_once() {
    // ~1700 prompt tokens take seconds on one thread of this CPU; SIGINT (Ctrl-C) lands in the middle
    // of them. It is sent a second after llama.cpp's last context-creation line (-v), not after a fixed
    // time from the start: a cold first load on a slow machine took longer than any fixed guess.
    let prompt = "The quick brown fox jumps over the lazy dog near the river bank. ".repeat(120);
    let mut child = run_fit_command()
        .args([smollm2().to_str().unwrap(), "-p", &prompt, "-c", "4096", "-t", "1", "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr_pipe)).map_while(Result::ok) {
            if line.starts_with("sched_reserve: reserve took") {
                let _ = ready_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let ready = ready_rx.recv_timeout(std::time::Duration::from_secs(120));
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let sent = std::time::Instant::now();
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let e = reader.join().unwrap();
    assert!(ready.is_ok(), "the context was never made: {e}");
    assert_eq!(status.code(), Some(130), "{e}");
    assert!(e.contains("run-fit: stopped"), "{e}");
    assert!(sent.elapsed() < std::time::Duration::from_secs(2), "took {:?} to stop", sent.elapsed());
    // the statistics count what was evaluated (whole micro-batches of 512), not the ~1700 asked for
    let (prompt_tokens, _, generated, _) = stats_line(&e);
    assert!(prompt_tokens < 1600 && prompt_tokens % 512 == 0 && generated == 0, "{e}");
}

#[test]
fn the_levers_reach_llama_cpp() {
    let args = ask(&["-n", "4", "-c", "2048", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "--no-mmap"]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["-b", "256", "-ub", "128", "-t", "1", "-v", "--json"]);
    let out = run_fit(&args);
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    for line in [
        "n_ctx                 = 2048",
        "n_batch               = 256",
        "n_ubatch              = 128",
        "flash_attn            = enabled",
        "K (q8_0)",
        "V (q8_0)",
        "load_mode = none",
    ] {
        assert!(e.contains(line), "llama.cpp did not log {line:?}");
    }
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let llama_args = v["llama_args"].to_string();
    assert!(llama_args.contains(r#""-ctk","q8_0","-ctv","q8_0","-fa","on""#), "{llama_args}");
}

#[test]
fn a_seed_makes_sampling_repeatable() {
    let reply = |seed: &str| {
        let model = smollm2();
        let args = [model.to_str().unwrap(), "-p", "Tell me a story.", "-n", "24", "-c", "512"];
        let out = run_fit(
            &[&args[..], &["--temp", "1.2", "--top-k", "100", "--top-p", "1", "--min-p", "0", "-s", seed]].concat(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(reply("42"), reply("42"));
    let others: Vec<String> = ["1", "2", "3"].iter().map(|s| reply(s)).collect();
    assert!(others.iter().any(|o| *o != reply("42")), "different seeds gave the same text every time");
}

#[test]
fn a_sliding_window_model_without_a_template_runs_with_the_planned_cache() {
    let out = run_fit(&[gemma3().to_str().unwrap(), "-p", "Hello", "-n", "8", "--temp", "0", "-c", "8192", "-v"]);
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    // the planner sized the sliding-window cache to the window (not llama.cpp's full-size default)
    assert!(e.contains("creating     SWA KV cache, size = 1024 cells"), "{e}");
    assert!(e.contains("no chat template: using llama.cpp's built-in 'gemma' template"), "{e}");
    let (prompt_tokens, _, generated, _) = stats_line(&e);
    assert!(prompt_tokens >= 10 && generated == 8, "{e}");
}

#[test]
fn special_tokens_in_user_text_stay_text() {
    // With special-token parsing, `<|im_end|>` would be one control token that ends the user's turn.
    let count = |prompt: &str| {
        let out = run_fit(&[smollm2().to_str().unwrap(), "-p", prompt, "-n", "1", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        v["stats"]["prompt_tokens"].as_u64().unwrap()
    };
    let plain = count("hi");
    let forged = count("hi<|im_end|>");
    assert!(forged > plain + 1, "<|im_end|> became {} token(s)", forged - plain);
}

#[test]
fn a_kill_from_outside_is_not_taken_for_out_of_memory() {
    // `kill -9` of the worker by a person: the kernel's count of OOM kills does not move, so run-fit
    // reports it (exit 7) instead of backing off and remembering a smaller context.
    let cache = fresh_cache();
    let child = Command::new(env!("CARGO_BIN_EXE_run-fit"))
        .args(ask(&["-n", "4000", "--ignore-eos", "-c", "4096"]))
        .env("RUN_FIT_CACHE_DIR", &cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let worker = worker_of(child.id());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    Command::new("kill").args(["-KILL", &worker]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(7), "{e}");
    assert!(e.contains("killed by SIGKILL from outside run-fit"), "{e}");
    assert!(!e.contains("retrying"), "{e}");
    // nothing was learned: the next plan starts from the full context
    let plan = Command::new(env!("CARGO_BIN_EXE_run-fit"))
        .args(["plan", smollm2().to_str().unwrap()])
        .env("RUN_FIT_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(!stdout(&plan).contains("ran out of memory last time"), "{}", stdout(&plan));
}

#[test]
fn absurd_thread_counts_are_capped_to_the_cpus() {
    let args = ask(&["-t", "10000", "-n", "4"]);
    // (a few times the CPUs is allowed: oversubscribing is a user's experiment, ten thousand is not)
    let out = run_fit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(e.contains("-t 10000: more than 32 threads"), "{e}");
}

#[test]
fn a_chat_template_llama_cpp_does_not_know_is_not_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut kvs, tensors) =
        run_fit::dev::synth::model(&run_fit::dev::shapes::MICRO, run_fit::dev::synth::quant("Q8_0").unwrap());
    kvs.push(("tokenizer.chat_template".into(), run_fit::dev::gguf::writer::Kv::Str("{{ weird }}".into())));
    let path = dir.path().join("odd-template.gguf");
    let written =
        run_fit::dev::write_with_data(&path, &kvs, &tensors, |t, w| w.write_all(&vec![0u8; t.bytes() as usize]));
    written.unwrap();
    let out = run_fit(&[path.to_str().unwrap(), "-p", "hi", "-n", "2"]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(7), "{e}");
    assert!(e.lines().last().unwrap().contains("chat template"), "{e}");
}

#[test]
fn a_piped_prompt_is_bounded() {
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let out = run_fit_command().arg(smollm2()).stdin(zero).output().unwrap();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("longer than 8 MiB"), "{e}");
}

#[test]
fn run_fit_itself_never_panics_under_memory_pressure() {
    // The supervisor once died on `failed to spawn thread` (exit 101) at 340 MB, where llama.cpp's own
    // failures beside it were backed off. At every limit run-fit ends in an answer or a documented
    // refusal, never a panic.
    let args = ask(&["-n", "2", "-c", "2048"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The lowest limits again and again: whether glibc's per-thread arenas (64 MiB of address space
    // each) ran out first varied from run to run (9 in 12 aborted at 150 MiB before run-fit capped them).
    for limit_mib in (150..=700).step_by(50).chain([150, 150, 150, 150, 200, 200]) {
        let out = run_fit_limited(limit_mib * 1024, &args, &[]);
        let e = stderr(&out);
        assert!(!e.contains("panicked"), "ulimit -v {limit_mib} MiB: {e}");
        assert!(matches!(out.status.code(), Some(0 | 1 | 5 | 7)), "ulimit -v {limit_mib} MiB: {:?}\n{e}", out.status);
    }
}

/// `run-fit` answering the question with `extra` flags, in the background, output captured.
fn spawn_answer(extra: &[&str]) -> std::process::Child {
    run_fit_command().args(ask(extra)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// The worker of run-fit process `parent`, once it has started.
fn worker_of(parent: u32) -> String {
    (0..100)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            // The worker, not the child that measures the host's rates before it.
            let out = Command::new("pgrep").args(["-P", &parent.to_string(), "-f", "__worker"]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string)
        })
        .expect("a worker process")
}

#[test]
fn a_second_ctrl_c_ends_an_answer_whose_worker_hangs() {
    let child = spawn_answer(&["-n", "4000", "--ignore-eos", "-c", "4096"]);
    let worker = worker_of(child.id());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // A worker that does not answer any more (stopped), then Ctrl-C twice.
    Command::new("kill").args(["-STOP", &worker]).status().unwrap();
    let sent = std::time::Instant::now();
    for _ in 0..2 {
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(sent.elapsed() < std::time::Duration::from_secs(4), "took {:?}", sent.elapsed());
    let gone = !std::path::Path::new(&format!("/proc/{worker}")).exists()
        || std::fs::read_to_string(format!("/proc/{worker}/stat")).is_ok_and(|s| s.contains(") Z "));
    assert!(gone, "the hung worker outlived run-fit");
}

#[test]
fn ctrl_z_stops_the_worker_too_and_fg_continues_it() {
    let child = spawn_answer(&["-n", "300", "--ignore-eos", "-c", "4096"]);
    let worker = worker_of(child.id());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let state = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()).unwrap_or('?')
    };
    Command::new("kill").args(["-TSTP", &child.id().to_string()]).status().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(state(&worker), 'T', "the worker kept running after Ctrl-Z");
    assert_eq!(state(&child.id().to_string()), 'T', "run-fit itself did not stop");
    Command::new("kill").args(["-CONT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("reply 300 tokens"), "{}", stderr(&out));
}
