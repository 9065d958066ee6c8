//! The client side of llama.cpp's RPC servers, from the parent process that must never talk RPC
//! itself (llama.cpp's client aborts the process when a server is missing or dies): a plain TCP check
//! that names an unreachable endpoint within seconds, and the classification of a child's death as a
//! lost server.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::Failure;

/// How long a connection attempt may take before the endpoint counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a child that lists remote devices may take: connect, handshake and one memory query per
/// server. A port that accepts but never answers (not an RPC server, or a server busy with another
/// client: llama.cpp's serves one at a time) is cut off here.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// What measuring one server's devices and link may add to that.
pub const MEASURE_TIME_PER_SERVER: Duration = Duration::from_secs(3);
/// What measuring this machine's GPUs may add (see `probe::fill_local_rates`).
pub const LOCAL_MEASURE_TIME: Duration = Duration::from_secs(30);

/// Each endpoint accepts a TCP connection, or the first that does not is an error naming it.
pub fn check_reachable(endpoints: &[String]) -> Result<(), Failure> {
    for endpoint in endpoints {
        reachable(endpoint).map_err(|why| {
            Failure::Rpc(format!(
                "cannot reach the RPC server at {endpoint} ({why}); start `run-fit rpc-server` there, or check the address, the port and the firewall"
            ))
        })?;
    }
    Ok(())
}

/// The endpoints that no longer accept a connection.
pub fn unreachable(endpoints: &[String]) -> Vec<String> {
    endpoints.iter().filter(|e| reachable(e).is_err()).cloned().collect()
}

fn reachable(endpoint: &str) -> Result<(), String> {
    let addrs: Vec<_> = endpoint.to_socket_addrs().map_err(|e| format!("cannot resolve it: {e}"))?.collect();
    let mut last = String::from("no address");
    for addr in addrs.iter().filter(|a| a.is_ipv4()) {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            // Closing at once: the server reads end-of-file instead of a handshake and waits for the
            // next client.
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!("no answer within {} s", CONNECT_TIMEOUT.as_secs());
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Run `run-fit ARGS` (a child that may talk to the servers `rpc`) to its end within [`PROBE_TIMEOUT`];
/// its stdout. A child that hangs (a port that accepts but is no RPC server, or a busy one) is killed,
/// and one that llama.cpp ended is read as a lost server where its last words say so.
pub fn run_child(args: &[String], rpc: &[String], what: &str) -> Result<Vec<u8>, Failure> {
    use anyhow::Context;
    let exe = std::env::current_exe().context("finding run-fit's own executable")?;
    let mut child = std::process::Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let read_all = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::Builder::new().spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = read_all(child.stdout.take().map(|p| Box::new(p) as _)).context("starting a thread to read a child")?;
    let err = read_all(child.stderr.take().map(|p| Box::new(p) as _)).context("starting a thread to read a child")?;
    // Measuring a device through ggml takes about a second: each server adds its time.
    // This machine's own GPUs: a second or two each, more on a software device (llvmpipe: ~10 s).
    let local = if args.iter().any(|a| a == "--measure-local") { LOCAL_MEASURE_TIME } else { Duration::ZERO };
    let allowed = PROBE_TIMEOUT + MEASURE_TIME_PER_SERVER * rpc.len() as u32 + local;
    let deadline = std::time::Instant::now() + allowed;
    let status = loop {
        if let Some(status) = child.try_wait().with_context(|| format!("waiting for {what}"))? {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let lines: Vec<String> = String::from_utf8_lossy(&stderr).lines().map(str::to_string).collect();
    let Some(status) = status else {
        return Err(Failure::Rpc(format!(
            "{} accepted a connection but did not answer within {} s: not an RPC server, or one busy with another client (llama.cpp's server serves one at a time)",
            rpc.join(", "),
            allowed.as_secs()
        )));
    };
    if status.success() {
        return Ok(stdout);
    }
    if let Some(why) = lost_server(&lines) {
        return Err(Failure::Rpc(format!(
            "{why}: is it a `run-fit rpc-server` (or llama.cpp rpc-server) of the same version?"
        )));
    }
    // The child's own one-line error is the user's.
    if let Some(e) = lines.iter().find_map(|l| l.strip_prefix("run-fit: error: ")) {
        return Err(Failure::Internal(anyhow::anyhow!("{e}")));
    }
    let last = lines.iter().rev().find(|l| !l.trim().is_empty()).cloned().unwrap_or_default();
    Err(Failure::Internal(anyhow::anyhow!("{what} failed ({status}): {last}")))
}

/// What llama.cpp's RPC client printed before it ended the process, as one sentence naming the server
/// where it can; None when the lines show no RPC trouble.
pub fn lost_server(log_tail: &[String]) -> Option<String> {
    for line in log_tail.iter().rev() {
        for (marker, what) in [
            ("Failed to connect to ", "cannot connect to the RPC server at"),
            ("RPC handshake failed for ", "no RPC handshake from"),
        ] {
            if let Some(rest) = line.split_once(marker).map(|(_, r)| r.trim()) {
                return Some(format!("{what} {rest}"));
            }
        }
        if line.contains("RPC server version mismatch") {
            let version = line.rsplit(':').next().unwrap_or("").trim();
            return Some(format!(
                "an RPC server speaks protocol {version}, this run-fit's llama.cpp speaks {}; run the same run-fit (or llama.cpp) version on every machine",
                crate::engine::rpc::PROTOCOL
            ));
        }
        if line.contains("Remote RPC server crashed or returned malformed response") {
            return Some("an RPC server crashed, disconnected or answered something malformed".into());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_port_is_named_quickly() {
        // Bind, note the port, close: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let started = std::time::Instant::now();
        let e = check_reachable(&[format!("127.0.0.1:{port}")]).unwrap_err().to_string();
        assert!(e.contains(&format!("127.0.0.1:{port}")) && e.contains("rpc-server"), "{e}");
        assert!(started.elapsed() < CONNECT_TIMEOUT);
        assert_eq!(unreachable(&[format!("127.0.0.1:{port}")]).len(), 1);
    }

    #[test]
    fn the_clients_last_words_name_the_server() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let said = lost_server(&lines(&["x", "/ggml-rpc.cpp:547: Failed to connect to 127.0.0.1:9"])).unwrap();
        assert_eq!(said, "cannot connect to the RPC server at 127.0.0.1:9");
        assert!(lost_server(&lines(&["RPC handshake failed for h:1"])).unwrap().contains("h:1"));
        assert!(
            lost_server(&lines(&["ggml-rpc.cpp:612: Remote RPC server crashed or returned malformed response"]))
                .is_some()
        );
        assert_eq!(lost_server(&lines(&["llama_model_load: error loading model"])), None);
    }
}
