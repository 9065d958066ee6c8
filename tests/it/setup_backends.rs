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
        for tool in ["bash", "cat", "dirname", "grep", "head", "ls", "paste", "sed", "sort", "tr", "uname"] {
            m.link(tool);
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
        self.script(name, &format!("#!/bin/sh\ncat <<'END'\n{output}\nEND\n"));
        self
    }
    /// A shell script `name` on the fake PATH.
    fn script(&self, name: &str, text: &str) {
        executable(&self.bin().join(name), text);
    }
    /// The machine's own `tool` on the fake PATH too.
    fn link(&self, tool: &str) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let real = std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file());
        let real = real.unwrap_or_else(|| panic!("{tool} is not on PATH"));
        std::os::unix::fs::symlink(real, self.bin().join(tool)).unwrap();
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

/// A file at `path` holding `text`, executable.
fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
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

/// scripts/build-backend.sh cuda on a fake machine whose `cmake` writes down what it was asked and
/// makes an empty module: the switches given to ggml's CMake, and what the script said.
fn cuda_build_switches(m: &Machine, toolkit_stub: bool) -> (String, String) {
    let toolkit = m.dir.path().join("cuda");
    std::fs::create_dir_all(toolkit.join("bin")).unwrap();
    std::fs::create_dir_all(toolkit.join("lib64/stubs")).unwrap();
    if toolkit_stub {
        std::fs::write(toolkit.join("lib64/stubs/libcuda.so"), "").unwrap();
    }
    // nvcc in its toolkit's bin, as /usr/local/cuda has it: the stub is looked for beside it.
    executable(&toolkit.join("bin/nvcc"), &format!("#!/bin/sh\ncat <<'END'\n{NVCC_12_4}\nEND\n"));
    let args = m.dir.path().join("cmake-args");
    let cmake = format!(
        "#!/bin/sh\necho \"$@\" >> {}\nif [ \"$1\" = --build ]; then mkdir -p \"$2\" && : > \"$2/libggml-cuda.so\"; fi\n",
        args.display()
    );
    let src = m.dir.path().join("ggml");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("CMakeLists.txt"), "").unwrap();
    std::fs::write(src.join("ggml.pc.in"), "").unwrap();
    m.script("cmake", &cmake);
    for tool in ["cp", "cut", "date", "du", "find", "mkdir", "nproc", "readlink", "rm", "tail"] {
        m.link(tool);
    }
    let dest = m.dir.path().join("out");
    let o = Command::new(m.bin().join("bash"))
        .arg(repo().join("scripts/build-backend.sh"))
        .args(["cuda".as_ref(), src.as_os_str(), dest.as_os_str(), "86".as_ref()])
        .env("PATH", format!("{}:{}", toolkit.join("bin").display(), m.bin().display()))
        .env("RUN_FIT_SYSROOT", m.root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dest.join("libggml-cuda.so").is_file());
    (std::fs::read_to_string(args).unwrap(), stderr(&o))
}

#[test]
fn a_cuda_toolkit_without_the_driver_stub_builds_ggml_without_its_vmm_pool() {
    // NVIDIA's PyPI wheels (scripts/cuda-from-pypi.sh) have no lib64/stubs/libcuda.so to link.
    let m = Machine::new();
    let (switches, err) = cuda_build_switches(&m, false);
    assert!(switches.contains("-DGGML_CUDA=ON") && switches.contains("-DCMAKE_CUDA_ARCHITECTURES=86"), "{switches}");
    assert!(switches.contains("-DGGML_CUDA_NO_VMM=ON"), "{switches}");
    // The module keeps its build RUNPATH beside run-fit: the toolkit's libcudart is found there.
    let lib = m.dir.path().join("cuda/lib64").canonicalize().unwrap();
    assert!(switches.contains(&format!("-DCMAKE_BUILD_RPATH={}", lib.display())), "{switches}");
    assert!(err.contains("no libcuda.so to link") && err.contains("built libggml-cuda.so"), "{err}");
}

#[test]
fn a_full_cuda_toolkit_builds_ggml_with_its_vmm_pool() {
    let m = Machine::new();
    let (switches, err) = cuda_build_switches(&m, true);
    assert!(switches.contains("-DGGML_CUDA=ON"), "{switches}");
    assert!(!switches.contains("NO_VMM") && !err.contains("no libcuda.so"), "{switches}\n{err}");
}

/// A `python3` whose `pip download` leaves one wheel laid out as NVIDIA's CUDA 13 wheels are
/// (nvidia/cu13/{bin,lib}, execute bits lost by the zip) and writes down what it was asked for;
/// everything else goes to the real python3 (the script unzips with `python3 -m zipfile`).
fn fake_pip(m: &Machine) -> std::path::PathBuf {
    let wheel = m.dir.path().join("wheel");
    std::fs::create_dir_all(wheel.join("nvidia/cu13/bin")).unwrap();
    std::fs::create_dir_all(wheel.join("nvidia/cu13/lib")).unwrap();
    std::fs::create_dir_all(wheel.join("nvidia/cu13/nvvm/bin")).unwrap();
    std::fs::write(wheel.join("nvidia/cu13/bin/nvcc"), format!("#!/bin/sh\ncat <<'END'\n{NVCC_12_4}\nEND\n")).unwrap();
    std::fs::write(wheel.join("nvidia/cu13/nvvm/bin/cicc"), "").unwrap();
    std::fs::write(wheel.join("nvidia/cu13/lib/libcudart.so.13"), "").unwrap();
    let asked = m.dir.path().join("pip-args");
    // The interpreter itself: the python3 on PATH may be a shim (pyenv) that needs more of PATH.
    let real = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    let script = format!(
        "#!/bin/sh\nif [ \"$1 $2 $3\" = '-m pip download' ]; then\n  echo \"$@\" > {asked}\n  \
         while [ \"$1\" != --dest ]; do shift; done\n  cd {wheel} && exec {real} -m zipfile -c \"$2/n.whl\" nvidia\nfi\n\
         exec {real} \"$@\"\n",
        asked = asked.display(),
        wheel = wheel.display(),
    );
    m.script("python3", &script);
    asked
}

#[test]
fn cuda_from_pypi_lays_the_wheels_out_as_usr_local_cuda() {
    let m = Machine::new();
    for tool in ["basename", "chmod", "cp", "ln", "mkdir", "realpath", "rm"] {
        m.link(tool);
    }
    let run = |m: &Machine| {
        Command::new(m.bin().join("bash"))
            .arg(repo().join("scripts/cuda-from-pypi.sh"))
            .arg(m.dir.path().join("cuda"))
            .env("PATH", m.bin())
            .output()
            .unwrap()
    };
    let o = run(&m);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("python3 (with pip) is needed"), "{}", stderr(&o));

    m.script("python3", "#!/bin/sh\nexit 1\n");
    let o = run(&m);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("pip could not fetch NVIDIA's CUDA 13.5.37 wheels"), "{}", stderr(&o));

    let asked = fake_pip(&m);
    let o = run(&m);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cuda = m.dir.path().join("cuda");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), cuda.join("bin").display().to_string());
    let asked = std::fs::read_to_string(asked).unwrap();
    assert!(asked.contains("nvidia-cuda-nvcc==13.5.37") && asked.contains("nvidia-cublas=="), "{asked}");
    assert!(std::fs::metadata(cuda.join("bin/nvcc")).unwrap().permissions().mode() & 0o111 != 0);
    // FindCUDAToolkit links the unversioned name in lib64.
    assert_eq!(std::fs::read_link(cuda.join("lib/libcudart.so")).unwrap(), Path::new("libcudart.so.13"));
    assert!(cuda.join("lib64/libcudart.so").exists());
    assert!(!m.dir.path().join("cuda.download").exists(), "the downloaded wheels are removed");
}
