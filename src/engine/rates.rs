//! A device's own rates, measured through ggml on that device's backend (a GPU, the CPU, a remote
//! device behind an RPC server): memory bandwidth from a large copy, and the matrix rate from a
//! quantized matrix product of a prompt-sized batch. Best of a few short runs each.

use std::ffi::CString;

use anyhow::{Context, Result, anyhow, ensure};
use llama_cpp_sys_2 as sys;

use super::Engine;
use crate::fit::hardware::Rates;

/// Elements of each f32 tensor of the copy: 256 MiB read and 256 MiB written per run, past any CPU
/// cache (this machine's EPYC copies 64 MiB at 60+ GB/s, from its L3).
const COPY_ELEMENTS: i64 = 64 << 20;
/// The product: a 4096 × 4096 Q4_0 matrix (as a 7–8 B model's) times 512 tokens of activations.
const MATRIX_DIM: i64 = 4096;
const BATCH_TOKENS: i64 = 512;
const RUNS: usize = 3;
/// Seconds one measurement may take before it stops repeating runs (it always times at least one).
const BUDGET_S: f64 = 1.0;

type SetThreads = unsafe extern "C" fn(sys::ggml_backend_t, i32);

impl Engine {
    /// Measure the device named `device` (as llama.cpp names it: CPU, CUDA0, RPC0 …) with `threads`
    /// threads where the backend takes a thread count. A device that cannot hold the ~200 MiB the
    /// measurement needs, or a backend that fails, is an error (the device then stays unmeasured).
    pub fn measure_rates(&self, device: &str, threads: u32) -> Result<Rates> {
        // SAFETY: the backend is valid for the call (`on_device`).
        on_device(device, threads, |dev, backend| unsafe { measure_on(dev, backend) })
    }

    /// The matrix rate alone (TFLOPS of the Q4_0 product), for the host's CPU: its memory bandwidth is
    /// `probe`'s, the read-only sum the CPU constants were calibrated on.
    pub fn measure_matmul_tflops(&self, device: &str, threads: u32) -> Result<f64> {
        // SAFETY: as above.
        on_device(device, threads, |dev, backend| unsafe { product_tflops(dev, backend) })
    }
}

/// Start `device`'s backend with `threads` threads, run `f` on it, free it.
fn on_device<T>(
    device: &str,
    threads: u32,
    f: impl FnOnce(sys::ggml_backend_dev_t, sys::ggml_backend_t) -> Result<T>,
) -> Result<T> {
    let name = CString::new(device).context("a device name contains a NUL byte")?;
    // SAFETY: ggml objects made here are freed before returning, in reverse order; every pointer
    // is checked for null first.
    unsafe {
        let dev = sys::ggml_backend_dev_by_name(name.as_ptr());
        ensure!(!dev.is_null(), "no device {device}");
        let backend = sys::ggml_backend_dev_init(dev, std::ptr::null());
        ensure!(!backend.is_null(), "{device}: its backend did not start");
        set_threads(dev, backend, threads);
        let result = f(dev, backend);
        sys::ggml_backend_free(backend);
        result
    }
}

unsafe fn set_threads(dev: sys::ggml_backend_dev_t, backend: sys::ggml_backend_t, threads: u32) {
    // SAFETY: a registry lookup by a NUL-terminated name; the function has this signature in ggml.
    unsafe {
        let reg = sys::ggml_backend_dev_backend_reg(dev);
        if reg.is_null() {
            return;
        }
        let f = sys::ggml_backend_reg_get_proc_address(reg, c"ggml_backend_set_n_threads".as_ptr());
        if !f.is_null() {
            let f = std::mem::transmute::<*mut std::ffi::c_void, SetThreads>(f);
            f(backend, threads.max(1) as i32);
        }
    }
}

/// Both graphs, each in a context of its own whose tensors live in one buffer on the device.
unsafe fn measure_on(dev: sys::ggml_backend_dev_t, backend: sys::ggml_backend_t) -> Result<Rates> {
    // SAFETY: as in `measure_rates`.
    unsafe {
        let copy_seconds = time_graph(dev, backend, |ctx| {
            let a = sys::ggml_new_tensor_1d(ctx, sys::GGML_TYPE_F32, COPY_ELEMENTS);
            let b = sys::ggml_new_tensor_1d(ctx, sys::GGML_TYPE_F32, COPY_ELEMENTS);
            sys::ggml_cpy(ctx, a, b)
        })?;
        let moved_bytes = 2.0 * COPY_ELEMENTS as f64 * 4.0;
        Ok(Rates { bandwidth_gb_per_s: moved_bytes / copy_seconds / 1e9, matmul_tflops: product_tflops(dev, backend)? })
    }
}

/// The Q4_0 product's rate on the device, in TFLOPS.
unsafe fn product_tflops(dev: sys::ggml_backend_dev_t, backend: sys::ggml_backend_t) -> Result<f64> {
    // SAFETY: as in `measure_rates`.
    unsafe {
        let seconds = time_graph(dev, backend, |ctx| {
            let w = sys::ggml_new_tensor_2d(ctx, sys::GGML_TYPE_Q4_0, MATRIX_DIM, MATRIX_DIM);
            let x = sys::ggml_new_tensor_2d(ctx, sys::GGML_TYPE_F32, MATRIX_DIM, BATCH_TOKENS);
            sys::ggml_mul_mat(ctx, w, x)
        })?;
        Ok(2.0 * (MATRIX_DIM * MATRIX_DIM * BATCH_TOKENS) as f64 / seconds / 1e12)
    }
}

/// Build `op` in a fresh context, allocate its tensors on the device, and return the best of
/// [`RUNS`] computations (after one that warms caches and, for RPC, stores the graph).
unsafe fn time_graph(
    dev: sys::ggml_backend_dev_t,
    backend: sys::ggml_backend_t,
    op: impl Fn(*mut sys::ggml_context) -> *mut sys::ggml_tensor,
) -> Result<f64> {
    // SAFETY: as in `measure_rates`; the context owns the graph and the tensor metadata.
    unsafe {
        let mem_size = 8 * sys::ggml_tensor_overhead() + sys::ggml_graph_overhead();
        let params = sys::ggml_init_params { mem_size, mem_buffer: std::ptr::null_mut(), no_alloc: true };
        let ctx = sys::ggml_init(params);
        ensure!(!ctx.is_null(), "ggml could not make a context");
        let out = op(ctx);
        let graph = sys::ggml_new_graph(ctx);
        sys::ggml_build_forward_expand(graph, out);
        let buffer = sys::ggml_backend_alloc_ctx_tensors_from_buft(ctx, sys::ggml_backend_dev_buffer_type(dev));
        let result = if buffer.is_null() {
            Err(anyhow!("the device could not hold the measurement's tensors"))
        } else {
            // Fresh pages read as the shared zero page, from cache: write every byte first (a small
            // value: finite f32s and Q4_0 scales). On a remote device this is one command, no data.
            sys::ggml_backend_buffer_clear(buffer, 0x3c);
            // A remote device computes asynchronously and `synchronize` only flushes the client's
            // queue: a memory query after the graph is answered once the server is done with it. Its
            // own round trip is measured first and taken off.
            let (mut free, mut total) = (0usize, 0usize);
            let mut query = f64::INFINITY;
            for _ in 0..3 {
                let started = std::time::Instant::now();
                sys::ggml_backend_dev_memory(dev, &mut free, &mut total);
                query = query.min(started.elapsed().as_secs_f64());
            }
            let mut best = f64::INFINITY;
            let mut status = sys::GGML_STATUS_SUCCESS;
            let begun = std::time::Instant::now();
            for run in 0..=RUNS {
                let started = std::time::Instant::now();
                status = sys::ggml_backend_graph_compute(backend, graph);
                sys::ggml_backend_synchronize(backend);
                sys::ggml_backend_dev_memory(dev, &mut free, &mut total);
                if status != sys::GGML_STATUS_SUCCESS {
                    break;
                }
                let seconds = started.elapsed().as_secs_f64() - query;
                // A run as long as the whole budget warmed nothing that matters: it counts.
                if run > 0 || seconds > BUDGET_S {
                    best = best.min(seconds);
                }
                // A slow device (Mesa's software Vulkan takes seconds a product) gets fewer runs.
                if best.is_finite() && begun.elapsed().as_secs_f64() > BUDGET_S {
                    break;
                }
            }
            sys::ggml_backend_buffer_free(buffer);
            if status == sys::GGML_STATUS_SUCCESS && best > 0.0 {
                Ok(best)
            } else {
                Err(anyhow!("the measurement graph failed ({status})"))
            }
        };
        sys::ggml_free(ctx);
        result
    }
}
