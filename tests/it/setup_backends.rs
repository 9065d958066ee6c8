//! The set-up's choice of GPU backends (scripts/backends.sh), on fake machines: toolchains as scripts
//! on PATH (an `nvcc` that prints a version, an `nvidia-smi` that prints compute capabilities) and
//! /dev, /sys and /usr/include under a fake root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::*;

struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    /// A machine with the plain tools the script uses and nothing else on its PATH: a real `nvcc`
    /// or `glslc` of the machine running the tests must not count.
    fn new() -> Machine {
        let m = Machine { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(m.bin()).unwrap();
        std::fs::create_dir_all(m.root()).unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        for tool in ["bash", "cat", "dirname", "grep", "head", "ls", "paste", "sed", "sort", "tr", "uname"] {
            let real = std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file());
            let real = real.unwrap_or_else(|| panic!("{tool} is not on PATH"));
            std::os::unix::fs::symlink(real, m.bin().join(tool)).unwrap();
        }
        m
    }
    fn bin(&self) -> std::path::PathBuf {
        self.dir.path().join("bin")
    }
    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }
    /// A script `name` on the fake PATH that prints `output`.
    fn tool(&self, name: &str, output: &str) -> &Machine {
        let path = self.bin().join(name);
        std::fs::write(&path, format!("#!/bin/sh\ncat <<'END'\n{output}\nEND\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }
    fn file(&self, path: &str, text: &str) -> &Machine {
        let p = self.root().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }
    fn vulkan_headers(&self) -> &Machine {
        self.file("usr/include/vulkan/vulkan.hpp", "")
            .file("usr/share/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake", "")
    }
    /// scripts/backends.sh here: (its exit status, stdout, stderr).
    fn choose(&self, env: &[(&str, &str)]) -> (i32, String, String) {
        let mut cmd = Command::new(self.bin().join("bash"));
        cmd.arg(repo().join("scripts/backends.sh")).env("PATH", self.bin()).env("RUN_FIT_SYSROOT", self.root());
        for var in ["RUN_FIT_BACKENDS", "CMAKE_CUDA_ARCHITECTURES", "CUDAARCHS", "VULKAN_SDK"] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        let o = cmd.output().unwrap();
        (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
    }
}

const NVCC_12_4: &str = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 12.4, V12.4.131";

#[test]
fn a_machine_without_gpu_toolchains_builds_for_the_cpu_and_says_nothing() {
    let (code, out, err) = Machine::new().choose(&[]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
}

#[test]
fn nvcc_with_a_card_builds_cuda_for_that_cards_architecture_only() {
    let m = Machine::new();
    m.tool("nvcc", NVCC_12_4).tool("nvidia-smi", "8.6\n8.6\n8.9");
    let (code, out, err) = m.choose(&[]);
    assert_eq!((code, out.as_str()), (0, "cuda 86;89\n"), "{err}");
    assert!(err.contains("CUDA 12.4") && err.contains("compute capability 86, 89"), "{err}");
    // Given architectures win over the card's.
    let (_, out, _) = m.choose(&[("CMAKE_CUDA_ARCHITECTURES", "75")]);
    assert_eq!(out, "cuda 75\n");
}

#[test]
fn nvcc_without_a_card_builds_llama_cpps_default_architectures() {
    let m = Machine::new();
    m.tool("nvcc", NVCC_12_4);
    let (_, out, err) = m.choose(&[]);
    assert_eq!(out, "cuda default\n", "{err}");
    assert!(err.contains("default set of architectures"), "{err}");
}

#[test]
fn a_cuda_toolkit_too_old_for_llama_cpp_is_refused_with_what_to_do() {
    let m = Machine::new();
    m.tool("nvcc", "Cuda compilation tools, release 10.2, V10.2.89").tool("nvidia-smi", "7.5");
    let (code, out, err) = m.choose(&[]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("CUDA 10.2") && err.contains("needs 11.7 or newer"), "{err}");
    assert!(err.contains("bash scripts/setup.sh` again"), "{err}");
}

#[test]
fn an_nvidia_card_without_a_toolkit_gets_one_line_saying_what_to_install() {
    let m = Machine::new();
    m.tool("nvidia-smi", "8.6");
    let (code, out, err) = m.choose(&[]);
    assert_eq!((code, out.as_str()), (0, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("run-fit: an NVIDIA GPU is here") && err.contains("nvidia-cuda-toolkit"), "{err}");
    assert!(
        err.contains("then run `bash scripts/setup.sh` again") && err.contains("building for the CPU now"),
        "{err}"
    );
    // The driver's device node says it too, without nvidia-smi.
    let m = Machine::new();
    m.file("dev/nvidiactl", "");
    assert!(m.choose(&[]).2.contains("an NVIDIA GPU is here"));
}

#[test]
fn an_amd_card_gets_the_vulkan_backend_or_what_to_install_for_it() {
    let m = Machine::new();
    m.file("sys/class/drm/renderD128/device/vendor", "0x1002\n");
    let (_, out, err) = m.choose(&[]);
    assert_eq!(out, "");
    assert!(err.contains("a GPU is here (AMD") && err.contains("apt install glslc libvulkan-dev"), "{err}");
    m.tool("glslc", "shaderc v2023.2").vulkan_headers();
    let (_, out, err) = m.choose(&[]);
    assert_eq!(out, "vulkan\n", "{err}");
}

#[test]
fn a_vulkan_toolchain_without_a_gpu_builds_for_the_cpu_unless_asked() {
    let m = Machine::new();
    m.tool("glslc", "shaderc v2023.2").vulkan_headers();
    let (_, out, err) = m.choose(&[]);
    assert_eq!(out, "");
    assert!(err.contains("no render node") && err.contains("RUN_FIT_BACKENDS=vulkan"), "{err}");
    assert_eq!(m.choose(&[("RUN_FIT_BACKENDS", "vulkan")]).1, "vulkan\n");
}

#[test]
fn with_cuda_and_vulkan_both_present_only_cuda_is_built_unless_asked() {
    // Vulkan drives NVIDIA cards too: both backends would show each card twice.
    let m = Machine::new();
    m.tool("nvcc", NVCC_12_4).tool("nvidia-smi", "9.0").tool("glslc", "shaderc").vulkan_headers();
    m.file("sys/class/drm/renderD128/device/vendor", "0x10de\n");
    assert_eq!(m.choose(&[]).1, "cuda 90\n");
    assert_eq!(m.choose(&[("RUN_FIT_BACKENDS", "cuda,vulkan")]).1, "cuda 90\nvulkan\n");
    assert_eq!(m.choose(&[("RUN_FIT_BACKENDS", "cpu")]).1, "");
    let (code, _, err) = m.choose(&[("RUN_FIT_BACKENDS", "opencl")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("use cpu, cuda, vulkan or cuda,vulkan"), "{err}");
}

#[test]
fn asking_for_a_backend_whose_toolchain_is_missing_says_what_to_install() {
    let m = Machine::new();
    let (_, out, err) = m.choose(&[("RUN_FIT_BACKENDS", "vulkan")]);
    assert_eq!(out, "");
    assert!(err.contains("asks for Vulkan") && err.contains("spirv-headers"), "{err}");
    let (_, _, err) = m.choose(&[("RUN_FIT_BACKENDS", "cuda")]);
    assert!(err.contains("asks for CUDA but there is no nvcc"), "{err}");
}

#[test]
fn a_backend_build_refuses_an_unknown_backend_or_source() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = Command::new("bash").arg(repo().join("scripts/build-backend.sh")).args(args).output().unwrap();
        (o.status.code(), stderr(&o))
    };
    let d = dir.path().to_str().unwrap();
    let (code, err) = run(&["opencl", d, d]);
    assert_eq!(code, Some(2));
    assert!(err.contains("use cuda, vulkan, rpc or cpu"), "{err}");
    let (code, err) = run(&["rpc", d, d]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not ggml's source"), "{err}");
    assert!(!Path::new(d).join("libggml-rpc.so").exists());
}
