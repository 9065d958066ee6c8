//! llama.cpp's RPC backend, reached through ggml's backend registry as llama.cpp's own `--rpc` and
//! `rpc-server` do: the client side registers each server's devices (RPC0, RPC1, … in the order the
//! servers are given), the server side serves this machine's devices.
//!
//! The client ends the process when a server cannot be reached or dies (`GGML_ABORT`,
//! `RPC_STATUS_ASSERT`), so only child processes call [`add_servers`]; the parent checks endpoints
//! with `machine::rpc` first and reads an abort as a lost server.

use std::collections::BTreeMap;
use std::ffi::{CString, c_char};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail, ensure};
use llama_cpp_sys_2 as sys;

use super::Engine;
use crate::fit::hardware::Link;

/// The RPC protocol version of the vendored ggml (`RPC_PROTO_*_VERSION` in ggml-rpc.h, which the sys
/// crate does not bind): client and server must agree on the major version.
pub const PROTOCOL: &str = "7.0.0";

/// Buffer names llama.cpp logs for a remote device ("RPC0[127.0.0.1:50052]": the server's own device
/// index and its endpoint) → the device name the client gave it (RPC0, RPC1…).
static BUFFER_NAMES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// The client device's name for a logged buffer name, when it is a remote device's.
pub(super) fn device_of_buffer(buffer: &str) -> Option<String> {
    BUFFER_NAMES.lock().unwrap_or_else(|e| e.into_inner()).get(buffer).cloned()
}

type AddServer = unsafe extern "C" fn(*const c_char) -> sys::ggml_backend_reg_t;
type StartServer = unsafe extern "C" fn(*const c_char, *const c_char, usize, usize, *mut sys::ggml_backend_dev_t);

fn rpc_proc(name: &std::ffi::CStr) -> Result<*mut std::ffi::c_void> {
    // SAFETY: registry lookups by NUL-terminated names; null results are checked.
    unsafe {
        let reg = sys::ggml_backend_reg_by_name(c"RPC".as_ptr());
        ensure!(!reg.is_null(), "this build of llama.cpp has no RPC backend (it is built with GGML_RPC=ON)");
        let f = sys::ggml_backend_reg_get_proc_address(reg, name.as_ptr());
        ensure!(!f.is_null(), "llama.cpp's RPC backend has no {}", name.to_string_lossy());
        Ok(f)
    }
}

impl Engine {
    /// Register the devices of each server (`host:port`), in order, so that device listing and model
    /// loading see them. Aborts the process if a server does not answer: call it in a child.
    pub fn add_rpc_servers(&self, endpoints: &[String]) -> Result<()> {
        if endpoints.is_empty() {
            return Ok(());
        }
        let add = rpc_proc(c"ggml_backend_rpc_add_server")?;
        // SAFETY: the registry returns this function under this name (ggml-rpc.cpp).
        let add: AddServer = unsafe { std::mem::transmute::<*mut std::ffi::c_void, AddServer>(add) };
        let mut next_device = self.rpc_device_count();
        for endpoint in endpoints {
            let c = CString::new(endpoint.as_str()).context("an endpoint contains a NUL byte")?;
            // SAFETY: a valid C string; the returned registry lives for the process (ggml keeps it).
            let reg = unsafe { add(c.as_ptr()) };
            if reg.is_null() {
                bail!("the RPC server at {endpoint} serves no devices");
            }
            // SAFETY: a registry from ggml_backend_rpc_add_server, registered once (ggml caches it per
            // endpoint, and run-fit refuses an endpoint given twice).
            let n = unsafe {
                sys::ggml_backend_register(reg);
                sys::ggml_backend_reg_dev_count(reg)
            };
            let mut names = BUFFER_NAMES.lock().unwrap_or_else(|e| e.into_inner());
            for local in 0..n {
                names.insert(format!("RPC{local}[{endpoint}]"), format!("RPC{next_device}"));
                next_device += 1;
            }
        }
        Ok(())
    }

    fn rpc_device_count(&self) -> usize {
        BUFFER_NAMES.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Serve `devices` (ggml device names; empty: every GPU, else the CPU, as llama.cpp's rpc-server
    /// does) on `endpoint` until the process ends. `ready` is called with the devices served, just
    /// before llama.cpp starts listening. Returns only when llama.cpp gives up (it cannot listen).
    pub fn serve_rpc(
        &self,
        endpoint: &str,
        cache_dir: Option<&Path>,
        n_threads: u32,
        devices: &[String],
        ready: &mut dyn FnMut(&[ServedDevice]),
    ) -> Result<()> {
        let start = rpc_proc(c"ggml_backend_rpc_start_server")?;
        // SAFETY: the registry returns this function under this name (ggml-rpc.cpp).
        let start: StartServer = unsafe { std::mem::transmute::<*mut std::ffi::c_void, StartServer>(start) };
        let mut devs = pick_devices(devices)?;
        let served: Vec<ServedDevice> = devs.iter().map(|&d| served_device(d)).collect();
        ready(&served);
        let ep = CString::new(endpoint).context("the endpoint contains a NUL byte")?;
        let cache = cache_dir.map(super::path_cstring).transpose()?;
        // SAFETY: valid C strings and an array of `devs.len()` devices from ggml's registry, all alive
        // for the call (which blocks while serving).
        unsafe {
            start(
                ep.as_ptr(),
                cache.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                n_threads.max(1) as usize,
                devs.len(),
                devs.as_mut_ptr(),
            );
        }
        Err(anyhow!("llama.cpp's RPC server stopped: it could not listen on {endpoint} (is the port in use?)"))
    }
}

/// A device an RPC server serves, as ggml reports it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServedDevice {
    pub name: String,
    pub description: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

fn served_device(dev: sys::ggml_backend_dev_t) -> ServedDevice {
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: a device from ggml's registry; name and description are static C strings it owns.
    unsafe {
        sys::ggml_backend_dev_memory(dev, &mut free, &mut total);
        ServedDevice {
            name: std::ffi::CStr::from_ptr(sys::ggml_backend_dev_name(dev)).to_string_lossy().into_owned(),
            description: std::ffi::CStr::from_ptr(sys::ggml_backend_dev_description(dev))
                .to_string_lossy()
                .into_owned(),
            free_bytes: free as u64,
            total_bytes: total as u64,
        }
    }
}

/// The named devices, or llama.cpp's default: every GPU (discrete or integrated), else the CPU.
fn pick_devices(names: &[String]) -> Result<Vec<sys::ggml_backend_dev_t>> {
    // SAFETY: registry enumeration; every pointer comes from ggml and stays valid for the process.
    unsafe {
        let all: Vec<sys::ggml_backend_dev_t> =
            (0..sys::ggml_backend_dev_count()).map(|i| sys::ggml_backend_dev_get(i)).collect();
        let name_of = |d: sys::ggml_backend_dev_t| {
            std::ffi::CStr::from_ptr(sys::ggml_backend_dev_name(d)).to_string_lossy().into_owned()
        };
        if !names.is_empty() {
            let known: Vec<String> = all.iter().map(|&d| name_of(d)).collect();
            return names
                .iter()
                .map(|n| {
                    all.iter().copied().find(|&d| name_of(d).eq_ignore_ascii_case(n)).ok_or_else(|| {
                        anyhow!("--device {n}: this machine has no such device; it has {}", known.join(", "))
                    })
                })
                .collect();
        }
        let gpus: Vec<_> = all
            .iter()
            .copied()
            .filter(|&d| {
                let t = sys::ggml_backend_dev_type(d);
                t == sys::GGML_BACKEND_DEVICE_TYPE_GPU || t == sys::GGML_BACKEND_DEVICE_TYPE_IGPU
            })
            .collect();
        if !gpus.is_empty() {
            return Ok(gpus);
        }
        let cpu = sys::ggml_backend_dev_by_type(sys::GGML_BACKEND_DEVICE_TYPE_CPU);
        ensure!(!cpu.is_null(), "llama.cpp found no device to serve");
        Ok(vec![cpu])
    }
}

/// Bytes sent per throughput sample, and the samples (the best counts): small enough for a slow link
/// to cost well under a second, large enough to leave TCP's slow start behind.
const LINK_SAMPLE_BYTES: usize = 4 << 20;
const LINK_SAMPLES: usize = 2;
const ROUND_TRIPS: usize = 10;

impl Engine {
    /// The link to the server of the registered remote device `device` (RPC0…): the round trip of a
    /// memory query (one request, one answer) and the rate of a tensor upload, as llama.cpp's own client
    /// sends them. Best of a few tries each; aborts the process if the server is gone (a child only).
    pub fn measure_link(&self, device: &str) -> Result<Link> {
        let name = CString::new(device).context("a device name contains a NUL byte")?;
        // SAFETY: registry lookups; every object made here is freed before returning, in reverse order.
        unsafe {
            let dev = sys::ggml_backend_dev_by_name(name.as_ptr());
            ensure!(!dev.is_null(), "no device {device}");
            let (mut free, mut total) = (0usize, 0usize);
            let mut round_trip_s = f64::INFINITY;
            for _ in 0..ROUND_TRIPS {
                let started = std::time::Instant::now();
                sys::ggml_backend_dev_memory(dev, &mut free, &mut total);
                round_trip_s = round_trip_s.min(started.elapsed().as_secs_f64());
            }
            let buft = sys::ggml_backend_dev_buffer_type(dev);
            let buffer = sys::ggml_backend_buft_alloc_buffer(buft, LINK_SAMPLE_BYTES + 4096);
            ensure!(
                !buffer.is_null(),
                "{device} could not allocate {} MiB to measure its link",
                LINK_SAMPLE_BYTES >> 20
            );
            let params = sys::ggml_init_params { mem_size: 1 << 12, mem_buffer: std::ptr::null_mut(), no_alloc: true };
            let ctx = sys::ggml_init(params);
            let result = if ctx.is_null() {
                Err(anyhow!("ggml could not make a context"))
            } else {
                let t = sys::ggml_new_tensor_1d(ctx, sys::GGML_TYPE_I8, LINK_SAMPLE_BYTES as i64);
                let status = sys::ggml_backend_tensor_alloc(buffer, t, sys::ggml_backend_buffer_get_base(buffer));
                let data = vec![0x5au8; LINK_SAMPLE_BYTES];
                let mut best = f64::INFINITY;
                if status == sys::GGML_STATUS_SUCCESS {
                    for _ in 0..LINK_SAMPLES {
                        let started = std::time::Instant::now();
                        sys::ggml_backend_tensor_set(t, data.as_ptr().cast(), 0, LINK_SAMPLE_BYTES);
                        // A query after the upload: the upload has been received when its answer comes.
                        sys::ggml_backend_dev_memory(dev, &mut free, &mut total);
                        best = best.min(started.elapsed().as_secs_f64() - round_trip_s);
                    }
                }
                sys::ggml_free(ctx);
                if best.is_finite() && best > 0.0 {
                    Ok(Link { round_trip_s, bytes_per_s: LINK_SAMPLE_BYTES as f64 / best })
                } else {
                    Err(anyhow!("the upload to {device} could not be timed"))
                }
            };
            sys::ggml_backend_buffer_free(buffer);
            result
        }
    }
}
