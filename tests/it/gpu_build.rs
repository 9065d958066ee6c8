//! The build scripts/setup.sh makes for a GPU — one run-fit with the dynamic-backends feature that
//! loads the backend modules beside it — as scripts/test.sh builds it with Debian's Vulkan toolchain
//! (target-gpu/release), run on Mesa's software Vulkan device (llvmpipe): no machine here has a GPU.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// The GPU build's folder. scripts/test.sh builds it and names it in RUN_FIT_TEST_GPU_BUILD, and then
/// a missing build fails the test; a plain `cargo test` without it skips these tests with a note.
fn gpu_build() -> Option<PathBuf> {
    let Ok(dir) = std::env::var("RUN_FIT_TEST_GPU_BUILD") else {
        eprintln!("skipped: RUN_FIT_TEST_GPU_BUILD is not set (scripts/test.sh builds and sets it)");
        return None;
    };
    let dir = repo().join(dir);
    assert!(dir.join("run-fit").is_file(), "{} has no run-fit: scripts/setup.sh did not build it", dir.display());
    Some(dir)
}

fn gpu_run_fit(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin).args(args).env("RUN_FIT_CACHE_DIR", fresh_cache()).output().expect("run-fit runs")
}

/// The GPU build's run-fit in a folder of its own, so a test can add modules beside it (ggml loads
/// from the executable's folder) without touching the build; its libraries and CPU variants stay in
/// the build folder, where its run path and compiled-in backend folder find them.
fn copy_of_build(from: &Path, to: &Path) -> PathBuf {
    std::fs::copy(from.join("run-fit"), to.join("run-fit")).unwrap();
    to.join("run-fit")
}

/// A shared object named like the CUDA module that needs the NVIDIA driver's libcuda.so.1, as a CUDA
/// module built on a machine with the toolkit does on a machine without the driver.
fn module_needing_libcuda(dir: &Path) -> PathBuf {
    let stub = tempfile::tempdir().unwrap();
    let c = stub.path().join("x.c");
    std::fs::write(&c, "int cuInit(unsigned flags) { return flags; }\n").unwrap();
    let cc = |args: &[&str]| assert!(Command::new("gcc").args(args).status().unwrap().success(), "gcc {args:?}");
    let lib = stub.path().join("libcuda.so.1");
    cc(&["-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", lib.to_str().unwrap(), c.to_str().unwrap()]);
    let module = dir.join("libggml-cuda.so");
    let m = stub.path().join("m.c");
    std::fs::write(&m, "int cuInit(unsigned); int ggml_backend_init(void) { return cuInit(0); }\n").unwrap();
    cc(&[
        "-shared",
        "-fPIC",
        "-o",
        module.to_str().unwrap(),
        m.to_str().unwrap(),
        "-Wl,--no-as-needed",
        lib.to_str().unwrap(),
    ]);
    module
}

#[test]
fn a_module_that_cannot_load_is_reported_with_why_and_run_fit_still_works() {
    let Some(build) = gpu_build() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bin = copy_of_build(&build, dir.path());
    module_needing_libcuda(dir.path());
    std::fs::write(dir.path().join("libggml-opencl.so"), "not a shared object ".repeat(200)).unwrap();
    let o = gpu_run_fit(&bin, &["devices"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("modules found, not loaded:"), "{out}");
    assert!(out.contains("libggml-cuda.so needs the NVIDIA driver (libcuda.so.1), which is not installed"), "{out}");
    assert!(out.contains("libggml-opencl.so is not a module for this machine"), "{out}");
    // The CPU backend still loads, as the variant for this CPU.
    let loaded = out.lines().find(|l| l.starts_with("backends: ")).unwrap_or_default();
    assert!(loaded.contains("CPU (libggml-cpu-") && !loaded.contains("CUDA"), "{out}");
    // The plan names the loaded backends and the GPU module that did not load; the model still plans.
    let o = gpu_run_fit(&bin, &["plan", smollm2().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let loaded = out.lines().find(|l| l.starts_with("backends ")).unwrap_or_default();
    assert!(loaded.contains("CPU (libggml-cpu-"), "{out}");
    assert!(out.contains("not loaded: libggml-cuda.so needs the NVIDIA driver"), "{out}");
    // With an NVIDIA card visible, the warning says why its module did not load, not "install a toolkit".
    let fake = tempfile::tempdir().unwrap();
    let smi = fake.path().join("nvidia-smi");
    std::fs::write(&smi, "#!/bin/sh\necho 8.6\n").unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake.path().display(), std::env::var("PATH").unwrap_or_default());
    let o =
        Command::new(&bin).arg("devices").env("PATH", path).env("RUN_FIT_CACHE_DIR", fresh_cache()).output().unwrap();
    let err = stderr(&o);
    assert!(
        err.contains("a GPU is visible — NVIDIA") && err.contains("libggml-cuda.so needs the NVIDIA driver"),
        "{err}"
    );
}

/// Mesa's llvmpipe is a Vulkan device of CPU type, which ggml's Vulkan backend leaves out unless
/// named: GGML_VK_VISIBLE_DEVICES=0 names it.
fn on_llvmpipe(bin: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("GGML_VK_VISIBLE_DEVICES", "0")
        .env("RUN_FIT_CACHE_DIR", cache)
        .output()
        .expect("run-fit runs")
}

#[test]
fn the_vulkan_build_measures_plans_and_answers_on_mesas_software_device() {
    let Some(build) = gpu_build() else { return };
    let bin = build.join("run-fit");
    assert!(
        build.join("libggml-vulkan.so").is_file(),
        "scripts/setup.sh built no Vulkan module in {}",
        build.display()
    );
    let cache = fresh_cache();
    let o = on_llvmpipe(&bin, &cache, &["devices"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Vulkan (1 device, libggml-vulkan.so)"), "{out}");
    // The device measured through ggml on it (a copy and a Q4_0 product), as it is not in the catalogue.
    let row = out.lines().find(|l| l.contains("Vulkan0")).unwrap_or_else(|| panic!("no Vulkan0: {out}"));
    assert!(row.contains("llvmpipe") && row.contains("GB/s copy") && row.contains("TFLOPS Q4_0"), "{out}");
    let model = smollm2();
    let o = on_llvmpipe(&bin, &cache, &["plan", model.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = stdout(&o);
    assert!(plan.contains("layers on Vulkan0"), "{plan}");
    assert!(plan.contains("(limited by Vulkan0 memory)"), "speed predicted from the measurement: {plan}");
    let o = on_llvmpipe(
        &bin,
        &cache,
        &[model.to_str().unwrap(), "-p", "What is the capital of France?", "-n", "8", "--temp", "0", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let run: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap_or("{}")).unwrap();
    let args: Vec<&str> = run["llama_args"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    let ngl = args.iter().position(|a| *a == "-ngl").and_then(|i| args.get(i + 1)).unwrap_or(&"0");
    assert!(ngl.parse::<u32>().unwrap_or(0) > 0, "no layer on the Vulkan device: {run}");
    assert!(!run["reply"].as_str().unwrap_or("").trim().is_empty(), "{run}");
}
