//! The flags of llama.cpp's RPC backend: `--rpc HOST:PORT,…` (the client side, on run, plan, bench and
//! devices) and `run-fit rpc-server` (the server side). Checked here, before anything connects.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::Args;

use crate::fit::hardware::Link;
use serde::{Deserialize, Serialize};

/// llama.cpp's `GGML_RPC_MAX_SERVERS`.
pub const MAX_SERVERS: usize = 16;

/// llama.cpp's rpc-server port.
pub const DEFAULT_PORT: u16 = 50052;

#[derive(Debug, Args, Default)]
pub struct RpcArgs {
    /// Pool the devices of llama.cpp RPC servers (`run-fit rpc-server` or llama.cpp's) with this
    /// machine's, e.g. 192.168.1.5:50052,192.168.1.6:50052.
    #[arg(long, value_name = "HOST:PORT[,…]", value_delimiter = ',')]
    pub rpc: Vec<String>,
    /// The network to the RPC servers, instead of measuring it: rate/round trip, e.g. 1Gbit/0.5ms,
    /// 10Gbit/0.1ms, 100Mbit/20ms.
    #[arg(long, value_name = "RATE/LATENCY", requires = "rpc", value_parser = link)]
    pub rpc_link: Option<Link>,
}

/// `1Gbit/0.5ms` → a link: bits (Gbit, Mbit, kbit) or bytes (GB/s, MB/s) per second, and a round
/// trip in s, ms or us.
fn link(text: &str) -> Result<Link, String> {
    let bad = || format!("'{text}': write the link as RATE/ROUND-TRIP, e.g. 1Gbit/0.5ms or 10Gbit/100us");
    let (rate, latency) = text.trim().rsplit_once('/').ok_or_else(bad)?;
    let number = |s: &str, units: &[(&str, f64)]| -> Option<f64> {
        let lower = s.trim().to_ascii_lowercase();
        units.iter().find_map(|(unit, scale)| {
            lower
                .strip_suffix(unit)?
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .map(|v| v * scale)
        })
    };
    let bytes_per_s =
        number(rate, &[("gbit", 1e9 / 8.0), ("mbit", 1e6 / 8.0), ("kbit", 1e3 / 8.0), ("gb/s", 1e9), ("mb/s", 1e6)])
            .ok_or_else(bad)?;
    let round_trip_s = number(latency, &[("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("s", 1.0)]).ok_or_else(bad)?;
    Ok(Link { round_trip_s, bytes_per_s })
}

impl RpcArgs {
    pub fn endpoints(&self) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        for text in &self.rpc {
            let endpoint = endpoint(text)?;
            if out.contains(&endpoint) {
                return Err(format!("--rpc {endpoint} is given twice; name each server once"));
            }
            out.push(endpoint);
        }
        if out.len() > MAX_SERVERS {
            return Err(format!("--rpc: {} servers; llama.cpp's RPC backend takes at most {MAX_SERVERS}", out.len()));
        }
        Ok(out)
    }
}

/// `host:port` as llama.cpp's client parses it (the first ':' splits; an IPv4 address or a name).
fn endpoint(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bad = |why: &str| format!("--rpc {text}: {why}; write HOST:PORT, e.g. 192.168.1.5:{DEFAULT_PORT}");
    let (host, port) = text.split_once(':').ok_or_else(|| bad("no port"))?;
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '[') {
        return Err(bad("not a host name or IPv4 address (llama.cpp's RPC backend speaks IPv4 only)"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(format!("{host}:{p}")),
        _ => Err(bad(&format!("'{port}' is not a port (1 to 65535)"))),
    }
}

#[derive(Debug, Args)]
pub struct RpcServerArgs {
    /// The IPv4 address to listen on. Anything but loopback needs --allow-remote.
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
    pub host: String,
    /// The port to listen on.
    #[arg(short = 'p', long, value_name = "PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Serve only these devices (names as `run-fit devices` shows them) [default: every GPU, else the CPU].
    #[arg(short = 'd', long = "device", value_name = "NAME[,…]", value_delimiter = ',')]
    pub device: Vec<String>,
    /// CPU threads for a CPU device [default: physical cores].
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<u32>,
    /// Keep large tensors in a local cache so a second load sends less over the network
    /// ($LLAMA_CACHE/rpc, or ~/.cache/llama.cpp/rpc, as llama.cpp's server does).
    #[arg(short = 'c', long)]
    pub cache: bool,
    /// Listen on an address other machines can reach. llama.cpp's RPC server has no authentication and
    /// no encryption: only on a network you trust.
    #[arg(long)]
    pub allow_remote: bool,
}

/// What `run-fit rpc-server` serves; also the JSON the server process is started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcServerRequest {
    pub endpoint: String,
    pub devices: Vec<String>,
    pub threads: Option<u32>,
    /// Set by the launcher from `--cache` (the folder comes from the environment, read there).
    pub cache_dir: Option<PathBuf>,
    pub cache: bool,
    pub remote: bool,
}

impl RpcServerArgs {
    pub fn request(&self) -> Result<RpcServerRequest, String> {
        let ip: Ipv4Addr = self.host.trim().parse().map_err(|_| {
            format!(
                "--host {}: give an IPv4 address to listen on, e.g. 127.0.0.1 or 0.0.0.0 (llama.cpp's RPC server binds IPv4 only)",
                self.host
            )
        })?;
        if !ip.is_loopback() && !self.allow_remote {
            return Err(format!(
                "--host {ip}: other machines could reach this server, and llama.cpp's RPC server has no authentication or encryption; add --allow-remote to serve a network you trust"
            ));
        }
        if self.port == 0 {
            return Err("--port 0: give a port to listen on, e.g. --port 50052".into());
        }
        if self.threads == Some(0) {
            return Err("-t 0: give a number of threads, e.g. -t 4".into());
        }
        Ok(RpcServerRequest {
            endpoint: format!("{ip}:{}", self.port),
            devices: self.device.iter().map(|d| d.trim().to_string()).filter(|d| !d.is_empty()).collect(),
            threads: self.threads,
            cache_dir: None,
            cache: self.cache,
            remote: !ip.is_loopback(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(list: &[&str]) -> Result<Vec<String>, String> {
        RpcArgs { rpc: list.iter().map(|s| s.to_string()).collect(), rpc_link: None }.endpoints()
    }

    #[test]
    fn endpoints_are_host_and_port_once_each() {
        assert_eq!(rpc(&["127.0.0.1:50052", " gpu-box:1 "]).unwrap(), ["127.0.0.1:50052", "gpu-box:1"]);
        for bad in ["127.0.0.1", ":50052", "host:0", "host:70000", "host:x", "[::1]:50052"] {
            let e = rpc(&[bad]).unwrap_err();
            assert!(e.starts_with(&format!("--rpc {bad}")) && e.contains("HOST:PORT"), "{e}");
        }
        assert!(rpc(&["a:1", "a:1"]).unwrap_err().contains("given twice"));
        let many: Vec<String> = (1..=17).map(|p| format!("h:{p}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(rpc(&many).unwrap_err().contains("at most 16"));
    }

    fn server(host: &str, allow_remote: bool) -> Result<RpcServerRequest, String> {
        RpcServerArgs { host: host.into(), port: 50052, device: vec![], threads: None, cache: false, allow_remote }
            .request()
    }

    #[test]
    fn links_are_rate_and_round_trip() {
        assert_eq!(link("1Gbit/0.5ms").unwrap(), Link { round_trip_s: 0.5e-3, bytes_per_s: 125e6 });
        let l = link("100MB/s/100us").unwrap();
        assert!((l.round_trip_s - 100e-6).abs() < 1e-12 && l.bytes_per_s == 100e6, "{l:?}");
        for bad in ["1Gbit", "fast/1ms", "1Gbit/-1ms", "0Gbit/1ms", "1Gbit/1parsec"] {
            assert!(link(bad).unwrap_err().contains("1Gbit/0.5ms"), "{bad}");
        }
    }

    #[test]
    fn a_server_other_machines_can_reach_needs_allow_remote() {
        assert_eq!(server("127.0.0.1", false).unwrap().endpoint, "127.0.0.1:50052");
        let e = server("0.0.0.0", false).unwrap_err();
        assert!(e.contains("no authentication") && e.contains("--allow-remote"), "{e}");
        let r = server("0.0.0.0", true).unwrap();
        assert!(r.remote);
        assert!(server("localhost", false).unwrap_err().contains("IPv4 address"));
    }
}
