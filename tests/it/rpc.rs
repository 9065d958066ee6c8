//! llama.cpp's RPC backend on loopback: real `run-fit rpc-server` processes on free ports, real
//! clients. Two servers make a real three-device machine (RPC0, RPC1 and the host) on a CPU-only box.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A `run-fit rpc-server` on a free loopback port, stopped (with its server process) when dropped.
pub struct Server {
    pub endpoint: String,
    child: Child,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[], None)
    }

    /// `ulimit_v_kib`: start it under `ulimit -v` so that its allocations really fail.
    pub fn start_with(args: &[&str], ulimit_v_kib: Option<u64>) -> Server {
        let port = free_port();
        let exe = env!("CARGO_BIN_EXE_run-fit");
        let mut cmd = match ulimit_v_kib {
            Some(kib) => {
                let mut c = Command::new("bash");
                c.args(["-c", &format!("ulimit -v {kib}; exec \"$0\" \"$@\"", kib = kib), exe]);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(["rpc-server", "--port", &port.to_string()]).args(args);
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("rpc-server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(first.starts_with("serving on 127.0.0.1:"), "rpc-server said: {first}");
        // Keep reading its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Server { endpoint: format!("127.0.0.1:{port}"), child }
    }

    /// SIGKILL the server (its llama.cpp process dies with it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn two() -> (Server, Server, String) {
    let (a, b) = (Server::start(), Server::start());
    let list = format!("{},{}", a.endpoint, b.endpoint);
    (a, b, list)
}

#[test]
fn devices_lists_both_remote_devices_first() {
    let (a, b, list) = two();
    let o = run_fit(&["devices", "--rpc", &list, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let hw: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let devices = hw["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{hw}");
    for (d, server) in devices.iter().zip([&a, &b]) {
        assert_eq!(d["backend"], "RPC");
        assert_eq!(d["endpoint"], server.endpoint.as_str());
        // A CPU-backed server reports its whole RAM as free: planned at half, and said so.
        assert_eq!(d["free_bytes"].as_u64().unwrap() * 2, d["total_bytes"].as_u64().unwrap() / 2 * 2);
    }
    assert_eq!(devices[0]["name"], "RPC0");
    assert!(hw["warnings"][0].as_str().unwrap().contains("--vram-budget"), "{hw}");
    let text = run_fit(&["devices", "--rpc", &list]);
    let out = stdout(&text);
    assert!(out.contains("RPC0") && out.contains("RPC1") && out.contains(&b.endpoint), "{out}");
}

#[test]
fn plan_splits_across_two_remote_devices_and_the_host_within_budgets() {
    let (_a, _b, list) = two();
    let budgets = [40u64 << 20, 140 << 20];
    let o = run_fit(&[
        "plan",
        smollm2().to_str().unwrap(),
        "--rpc",
        &list,
        "--vram-budget",
        "40MiB,140MiB",
        "-c",
        "2048",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plan = &report["plan"];
    let layers: Vec<u64> = plan["devices"].as_array().unwrap().iter().map(|d| d["layers"].as_u64().unwrap()).collect();
    let host_layers = plan["host"]["layers"].as_u64().unwrap();
    assert!(
        layers.iter().all(|&l| l > 0) && host_layers > 0,
        "RPC0, RPC1 and the host each hold layers: {layers:?} + {host_layers}"
    );
    for (d, budget) in plan["devices"].as_array().unwrap().iter().zip(budgets) {
        let b = &d["bytes"];
        let total: u64 = ["weights", "kv", "compute"].iter().map(|k| b[k].as_u64().unwrap()).sum();
        assert!(total <= budget, "{} uses {total} of {budget}", d["name"]);
    }
    // Op offload does not exist on RPC devices: nothing says --no-op-offload was chosen for lack of room.
    let reasons = plan["reasons"].to_string();
    assert!(!reasons.contains("prompt-processing buffers"), "{reasons}");
}

#[test]
fn a_model_answers_from_two_remote_devices_whose_buffers_llama_cpp_logs() {
    let (a, b, list) = two();
    let o = run_fit(&[
        smollm2().to_str().unwrap(),
        "--rpc",
        &list,
        "--vram-budget",
        "150MiB,150MiB",
        "-p",
        "What is the capital of France?",
        "--temp",
        "0",
        "-v",
    ]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(stdout(&o).contains("Paris"), "{}", stdout(&o));
    for server in [&a, &b] {
        for kind in ["model", "KV", "compute"] {
            let line = format!("RPC0[{}] {kind} buffer size", server.endpoint);
            assert!(log.contains(&line), "no `{line}` in llama.cpp's log:\n{log}");
        }
    }
}

/// Predicted vs logged bytes per device (`run-fit-dev rpc-accuracy`): weights and KV within 0.5 %,
/// compute within 10 %, total within 2 % — on the remote devices and on the host beside them.
pub fn assert_accurate(model: &std::path::Path, rpc: &str, configs: &[&str]) -> usize {
    let o = Command::new(env!("CARGO_BIN_EXE_run-fit-dev"))
        .arg("rpc-accuracy")
        .arg(model)
        .arg(rpc)
        .args(configs)
        .env("RUN_FIT_CACHE_DIR", fresh_cache())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut rows = 0;
    for line in stdout(&o).lines().filter(|l| l.starts_with('{')) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let p: Vec<f64> = row["predicted"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let r: Vec<f64> = row["logged"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let err = |p: f64, r: f64| if r == 0.0 { p } else { ((p - r) / r).abs() };
        let what = format!("{} {} {}: predicted {p:?}, llama.cpp {r:?}", row["model"], row["config"], row["device"]);
        assert!(err(p[0], r[0]) <= 0.005, "weights: {what}");
        assert!(err(p[1], r[1]) <= 0.005, "KV: {what}");
        assert!(err(p[2], r[2]) <= 0.10, "compute: {what}");
        assert!(err(p.iter().sum(), r.iter().sum()) <= 0.02, "total: {what}");
        rows += 1;
    }
    rows
}

#[test]
fn memory_predictions_hold_on_devices_that_are_not_the_host() {
    let (a, _b, list) = two();
    // ngl:ctx[:ts] — full and partial offload, two contexts; one and two devices.
    let two_devices = ["31:1024:25,6", "31:4096:25,6", "20:1024:10,10", "20:4096:10,10"];
    let one_device = ["31:1024", "31:4096", "12:1024", "12:4096"];
    let mut rows = assert_accurate(&smollm2(), &list, &two_devices);
    rows += assert_accurate(&smollm2(), &a.endpoint, &one_device);
    let gemma_two = ["19:1024:10,9", "19:4096:10,9", "12:1024:6,6", "12:4096:6,6"];
    let gemma_one = ["19:1024", "19:4096", "10:1024", "10:4096"];
    rows += assert_accurate(&gemma3(), &list, &gemma_two);
    rows += assert_accurate(&gemma3(), &a.endpoint, &gemma_one);
    // 16 configurations, each a row per remote device holding something and one for the host.
    assert!(rows >= 40, "{rows} rows");
}

#[test]
fn an_unreachable_endpoint_is_one_line_within_seconds() {
    let port = free_port(); // nothing listens there once the probe socket closed
    let started = Instant::now();
    let o = run_fit(&["devices", "--rpc", &format!("127.0.0.1:{port}")]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.contains("rpc-server"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The same for a run: nothing is loaded, nothing aborts.
    let o = run_fit(&[smollm2().to_str().unwrap(), "--rpc", &format!("127.0.0.1:{port}"), "-p", "hi"]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
}

#[test]
fn a_port_that_is_not_an_rpc_server_is_refused_not_hung_on() {
    // One listener that closes every connection at once, one that accepts and never answers.
    let closing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (closing_addr, silent_addr) = (closing.local_addr().unwrap(), silent.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in closing.incoming() {
            drop(s);
        }
    });
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming() {
            held.push(s);
        }
    });
    for (addr, within) in [(closing_addr, 5), (silent_addr, 18)] {
        let started = Instant::now();
        let o = run_fit(&["plan", smollm2().to_str().unwrap(), "--rpc", &addr.to_string()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(8), "{addr}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(started.elapsed() < Duration::from_secs(within), "{addr}: {:?}", started.elapsed());
    }
}

#[test]
fn a_server_killed_mid_reply_leaves_an_answer_from_the_devices_that_remain() {
    let (a, mut b, list) = two();
    let mut child = run_fit_command()
        .args([smollm2().to_str().unwrap(), "--rpc", &list, "--vram-budget", "150MiB,150MiB"])
        .args(["-p", "Count from one to one hundred in words.", "-n", "400", "--ignore-eos", "--temp", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the second server while the reply is generated (a one-shot answer is printed whole, so the
    // sign is the load summary on stderr, then a moment of generating).
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all += &line;
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default().contains("layers on GPU") {
        assert!(Instant::now() < deadline, "the model did not load");
    }
    std::thread::sleep(Duration::from_millis(1500));
    b.kill();
    let mut rest = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut rest).unwrap();
    let err = reader.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains(&format!("{} no longer answers", b.endpoint)), "{err}");
    assert!(!err.contains(&format!("{} no longer answers", a.endpoint)), "{err}");
    assert!(rest.len() > 100, "a whole answer after the restart: {rest}");
}

#[test]
fn an_allocation_that_fails_on_a_remote_device_shrinks_the_plan() {
    // The server's process may map only a little more than llama.cpp and run-fit need to start: the
    // model's buffers on it fail for real, and the client backs off until they fit.
    let limited = Server::start_with(&[], Some(300 << 10));
    let o = run_fit(&[
        smollm2().to_str().unwrap(),
        "--rpc",
        &limited.endpoint,
        "--vram-budget",
        "1GiB",
        "-p",
        "What is the capital of France?",
        "--temp",
        "0",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("out of memory") && err.contains("retrying with RPC0 layers"), "{err}");
    assert!(stdout(&o).contains("Paris"), "{}", stdout(&o));
}

#[test]
fn rpc_server_refuses_an_open_address_without_allow_remote_and_stops_on_sigterm() {
    let o = run_fit(&["rpc-server", "--host", "0.0.0.0", "--port", &free_port().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--allow-remote"), "{}", stderr(&o));
    let mut server = Server::start();
    let pid = rustix::process::Pid::from_child(&server.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "rpc-server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    // Its server process went with it: the port is free again.
    let port: u16 = server.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[test]
fn placement_follows_the_link_and_plan_shows_what_loading_sends() {
    let (a, _b, list) = two();
    let model = smollm2();
    let model = model.to_str().unwrap();
    // Measured loopback links: the servers are used, and loading's traffic to each is shown.
    let o = run_fit(&["plan", model, "--rpc", &list, "--vram-budget", "150MiB,150MiB", "-c", "2048"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("network  loading sends") && out.contains(&a.endpoint), "{out}");
    assert!(out.contains("ms round trip"), "{out}");
    // Over a slow link (given, not measured) the remote device costs more per token than it saves.
    let o =
        run_fit(&["plan", model, "--rpc", &a.endpoint, "--rpc-link", "10Mbit/80ms", "--vram-budget", "1GiB", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["plan"]["devices"][0]["layers"], 0, "{report}");
    let reasons = report["plan"]["reasons"].to_string();
    assert!(reasons.contains("no layers on RPC0") && reasons.contains("80.0 ms round trip"), "{reasons}");
    let bad = run_fit(&["plan", model, "--rpc", &a.endpoint, "--rpc-link", "fast"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn rpc_server_names_a_device_it_does_not_have() {
    let o = run_fit(&["rpc-server", "--port", &free_port().to_string(), "--device", "CUDA7"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("--device CUDA7") && err.contains("CPU"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bench_sweeps_offload_onto_a_remote_device() {
    let a = Server::start();
    let o = run_fit(&[
        "bench",
        smollm2().to_str().unwrap(),
        "--rpc",
        &a.endpoint,
        "-ngl",
        "0,31",
        "-p",
        "64",
        "-n",
        "16",
        "-r",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = rows.to_string();
    assert!(text.contains("generation_tok_per_s") && !text.contains("failed"), "{text}");
}

#[test]
fn bad_endpoints_are_usage_errors_before_anything_connects() {
    for (list, says) in [("127.0.0.1", "no port"), ("a:1,a:1", "given twice"), ("h:70000", "not a port")] {
        let o = run_fit(&["devices", "--rpc", list]);
        assert_eq!(o.status.code(), Some(2), "{list}: {}", stderr(&o));
        assert!(stderr(&o).contains(says) && stderr(&o).lines().count() == 1, "{list}: {}", stderr(&o));
    }
}

#[test]
fn a_servers_link_and_rates_are_measured_once_and_remembered() {
    let a = Server::start();
    let cache = fresh_cache();
    let plan = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_run-fit"));
        cmd.env("RUN_FIT_CACHE_DIR", &cache);
        cmd.args(["plan", smollm2().to_str().unwrap(), "--rpc", &a.endpoint, "--json"]).args(extra);
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let device = &report["hardware"]["devices"][0];
        (device["link"].clone(), device["measured"].clone())
    };
    let (link, rates) = plan(&[]);
    assert!(link["round_trip_s"].as_f64().unwrap() > 0.0, "{link}");
    // The device itself, measured through ggml on it: a CPU behind the server.
    assert!(rates["bandwidth_gb_per_s"].as_f64().unwrap() > 1.0, "{rates}");
    assert!(rates["matmul_tflops"].as_f64().unwrap() > 0.005, "{rates}");
    let file = std::fs::read_to_string(cache.join("calibration.json")).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(saved["rpc_links"][&a.endpoint], link, "{saved}");
    assert_eq!(saved["device_rates"][format!("{}#0", a.endpoint)], rates, "{saved}");
    assert_eq!(plan(&[]), (link, rates.clone()), "the second plan takes what was remembered");
    // --fresh measures again; without it a lower reading never replaces a higher one.
    let (fresh_link, fresh_rates) = plan(&["--fresh"]);
    assert!(fresh_link["bytes_per_s"].as_f64().unwrap() > 0.0 && fresh_rates["matmul_tflops"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_cpu_backend_is_measured_through_ggml() {
    let o = Command::new(env!("CARGO_BIN_EXE_run-fit-dev")).args(["rates", "CPU", "2"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rates: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // A copy of 256 MiB past the caches and a Q4_0 product of 512 tokens: plausible for any CPU.
    let bw = rates["bandwidth_gb_per_s"].as_f64().unwrap();
    let tflops = rates["matmul_tflops"].as_f64().unwrap();
    assert!((1.0..2000.0).contains(&bw) && (0.005..100.0).contains(&tflops), "{rates}");
}
