//! Which ggml backends this run-fit runs on: those compiled in, and — in a dynamic-backends build —
//! every module file ggml looks at when it starts (`libggml-*.so` beside the binary, in the build's
//! backend folder, in the current folder), each loaded or not and, when not, why. ggml itself loads
//! them silently in a release build, so a CUDA module without its driver would just be absent.

use std::ffi::{CStr, CString, c_void};
use std::path::{Path, PathBuf};

use llama_cpp_sys_2 as sys;

use super::Engine;
use crate::fit::hardware::Backend;

impl Engine {
    /// The backends ggml registered, then the module files it found and did not load.
    pub fn backends(&self) -> Vec<Backend> {
        let mut out = registered();
        if !cfg!(feature = "dynamic-backends") {
            return out;
        }
        for path in module_files() {
            let shown = path.display().to_string();
            if out.iter().any(|b| b.module.as_deref() == Some(shown.as_str())) {
                continue;
            }
            let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let name = backend_of_file(&file).to_string();
            let why = why_not_loaded(&path, &name, &out);
            out.push(Backend {
                name,
                module: Some(shown),
                loaded: false,
                devices: 0,
                why_not: Some(why),
                built_for: built_for(&path),
            });
        }
        out
    }
}

fn registered() -> Vec<Backend> {
    let exe = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
    // SAFETY: ggml's registry outlives these calls; names are NUL-terminated strings it owns.
    unsafe {
        (0..sys::ggml_backend_reg_count())
            .map(|i| {
                let reg = sys::ggml_backend_reg_get(i);
                let name = CStr::from_ptr(sys::ggml_backend_reg_name(reg)).to_string_lossy().into_owned();
                let mut b = Backend::compiled_in(&name, sys::ggml_backend_reg_dev_count(reg));
                // The registry object lives in the library that made it: its file is the module.
                b.module = file_of(reg as *const c_void).filter(|p| Some(p) != exe.as_ref()).map(|p| {
                    b.built_for = built_for(&p);
                    p.display().to_string()
                });
                b
            })
            .collect()
    }
}

/// The shared object (or executable) holding `address`, canonical.
fn file_of(address: *const c_void) -> Option<PathBuf> {
    // SAFETY: Dl_info is plain data (pointers and an address) for which all-zero is valid; dladdr only
    // reads the process's loaded-object list and fills it in.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the dynamic loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned();
    Path::new(&name).canonicalize().ok()
}

/// The folders ggml's `ggml_backend_load_all` searches, in its order, and the module files in them.
fn module_files() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = sys::BACKENDS_DIR.map(PathBuf::from).into_iter().collect();
    dirs.extend(std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)));
    dirs.extend(std::env::current_dir().ok());
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|f| is_module(&f.to_string_lossy())))
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        found.sort();
        for p in found {
            if !files.contains(&p) {
                files.push(p);
            }
        }
    }
    files
}

/// `libggml-cuda.so`, `libggml-cpu-haswell.so` — not ggml's own libraries (`libggml.so`, `-base`).
fn is_module(file: &str) -> bool {
    file.strip_prefix("libggml-").and_then(|r| r.strip_suffix(".so")).is_some_and(|b| b != "base" && !b.is_empty())
}

/// ggml's name for a module's backend: `libggml-cpu-haswell.so` → "CPU", `libggml-vulkan.so` → "Vulkan".
fn backend_of_file(file: &str) -> &'static str {
    let stem = file.strip_prefix("libggml-").and_then(|r| r.strip_suffix(".so")).unwrap_or(file);
    let base = stem.split('-').next().unwrap_or(stem);
    match base {
        "cpu" => "CPU",
        "cuda" => "CUDA",
        "vulkan" => "Vulkan",
        "rpc" => "RPC",
        "metal" => "Metal",
        "hip" => "ROCm",
        "sycl" => "SYCL",
        "blas" => "BLAS",
        "opencl" => "OpenCL",
        _ => "unknown",
    }
}

/// What scripts/build-backend.sh noted the module was built for ("cuda 86;89").
fn built_for(module: &Path) -> Option<String> {
    let note = format!("{}.built-for", module.display());
    std::fs::read_to_string(note).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Open the module again, as ggml did, to learn why it is not among the loaded ones.
fn why_not_loaded(path: &Path, name: &str, loaded: &[Backend]) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else { return "its path holds a NUL byte".into() };
    // SAFETY: dlopen/dlsym/dlclose on a module ggml itself opened (and ran the score of) at start;
    // RTLD_LOCAL keeps its symbols out of the process's namespace; the handle is closed before return.
    unsafe {
        let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if handle.is_null() {
            let error = libc::dlerror();
            let message = if error.is_null() { String::new() } else { CStr::from_ptr(error).to_string_lossy().into() };
            return why_it_did_not_open(&message);
        }
        let symbol = libc::dlsym(handle, c"ggml_backend_score".as_ptr());
        let score = (!symbol.is_null()).then(|| {
            let score = std::mem::transmute::<*mut c_void, extern "C" fn() -> i32>(symbol);
            score()
        });
        libc::dlclose(handle);
        let other = loaded.iter().find(|b| b.loaded && b.name == name);
        why_it_opened_but_not_loaded(score, other.and_then(|b| b.module.as_deref()))
    }
}

/// The loader's message, in words that say what to install.
fn why_it_did_not_open(message: &str) -> String {
    let missing = message.split(':').next().unwrap_or("").trim();
    let detail = if missing.starts_with("libcuda.so") {
        "needs the NVIDIA driver (libcuda.so.1), which is not installed".to_string()
    } else if missing.starts_with("libcudart") || missing.starts_with("libcublas") {
        format!("needs the CUDA runtime it was built with ({missing}): install that toolkit, or build it again")
    } else if missing.starts_with("libvulkan.so") {
        "needs the Vulkan loader (libvulkan.so.1): apt install libvulkan1 mesa-vulkan-drivers".to_string()
    } else if message.contains("cannot open shared object file") {
        format!("needs {missing}, which is not installed")
    } else if message.contains("undefined symbol") {
        "was built from another ggml than this run-fit's: build it again with scripts/setup.sh".to_string()
    } else if message.contains("ELF") || message.contains("file too short") {
        "is not a module for this machine (built for another architecture, or damaged)".to_string()
    } else {
        "could not be opened".to_string()
    };
    if message.is_empty() { detail } else { format!("{detail} ({message})") }
}

/// A module that opens but is not loaded: a CPU variant for other CPUs (score 0), one that lost to a
/// better variant, a second copy of a loaded backend, or one whose start found nothing to run on.
fn why_it_opened_but_not_loaded(score: Option<i32>, loaded_copy: Option<&str>) -> String {
    match (score, loaded_copy) {
        (Some(0), _) => "needs instructions this CPU lacks (wrong architecture)".into(),
        (Some(_), Some(other)) => format!("a variant that suits this CPU better was loaded ({other})"),
        (None, Some(other)) => format!("another copy was loaded first ({other})"),
        _ => "did not start: its backend found no device or driver it can use".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_files_are_named_by_their_backend() {
        assert!(is_module("libggml-cuda.so") && is_module("libggml-cpu-haswell.so"));
        assert!(!is_module("libggml-base.so") && !is_module("libggml.so") && !is_module("libllama.so"));
        assert_eq!(backend_of_file("libggml-cpu-sapphirerapids.so"), "CPU");
        assert_eq!(backend_of_file("libggml-vulkan.so"), "Vulkan");
        assert_eq!(backend_of_file("libggml-frobnicate.so"), "unknown");
    }

    #[test]
    fn a_module_that_does_not_open_says_what_to_install() {
        let cuda = why_it_did_not_open("libcuda.so.1: cannot open shared object file: No such file or directory");
        assert!(cuda.starts_with("needs the NVIDIA driver (libcuda.so.1)"), "{cuda}");
        let runtime = why_it_did_not_open("libcudart.so.12: cannot open shared object file: No such file or directory");
        assert!(runtime.contains("CUDA runtime it was built with (libcudart.so.12)"), "{runtime}");
        assert!(
            why_it_did_not_open("libvulkan.so.1: cannot open shared object file").contains("apt install libvulkan1")
        );
        assert!(why_it_did_not_open("/x/libggml-cuda.so: invalid ELF header").contains("another architecture"));
        assert!(
            why_it_did_not_open("/x/libggml-cuda.so: wrong ELF class: ELFCLASS32").contains("another architecture")
        );
        assert!(why_it_did_not_open("/x/libggml-cuda.so: undefined symbol: ggml_foo").contains("another ggml"));
    }

    #[test]
    fn a_module_that_opens_but_is_not_loaded_says_why() {
        assert!(why_it_opened_but_not_loaded(Some(0), None).contains("instructions this CPU lacks"));
        assert!(
            why_it_opened_but_not_loaded(Some(3), Some("/b/libggml-cpu-zen4.so")).contains("suits this CPU better")
        );
        assert!(why_it_opened_but_not_loaded(None, None).contains("found no device"));
    }
}
