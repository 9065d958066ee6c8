//! GPUs the system shows, whether or not this run-fit has a backend for them: a user with an NVIDIA
//! card and a CPU-only build must hear it, not find every layer on the CPU.

use std::path::Path;

use crate::fit::hardware::Backend;

/// A GPU the system shows, and how it showed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Visible {
    pub vendor: &'static str,
    pub evidence: String,
}

/// NVIDIA by its driver's device node or `nvidia-smi` on PATH; AMD, Intel and NVIDIA by the PCI
/// vendor of each DRM render node.
pub fn visible() -> Vec<Visible> {
    let mut out = Vec::new();
    if Path::new("/dev/nvidiactl").exists() {
        out.push(Visible { vendor: "NVIDIA", evidence: "/dev/nvidiactl".into() });
    } else if let Some(smi) = on_path("nvidia-smi") {
        out.push(Visible { vendor: "NVIDIA", evidence: smi });
    }
    let Ok(entries) = std::fs::read_dir("/sys/class/drm") else { return out };
    let mut nodes: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("renderD"))
        .collect();
    nodes.sort();
    for node in nodes {
        let vendor = std::fs::read_to_string(format!("/sys/class/drm/{node}/device/vendor")).unwrap_or_default();
        let vendor = match vendor.trim() {
            "0x10de" => "NVIDIA",
            "0x1002" => "AMD",
            "0x8086" => "Intel",
            _ => continue,
        };
        if !out.iter().any(|v| v.vendor == vendor) {
            out.push(Visible { vendor, evidence: format!("/dev/dri/{node}") });
        }
    }
    out
}

/// The first executable file `name` in a PATH folder.
fn on_path(name: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find_map(|p| {
        let meta = std::fs::metadata(&p).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then(|| p.display().to_string())
    })
}

/// The warning for GPUs no loaded backend drives (`backends`: this run-fit's, loaded or not), with
/// what to do: a module that is there but did not load says why; otherwise what to install and run.
pub fn unused_warning(visible: &[Visible], backends: &[Backend]) -> Option<String> {
    let drives = |vendor: &str, b: &Backend| match vendor {
        "NVIDIA" => matches!(b.name.as_str(), "CUDA" | "Vulkan"),
        "AMD" => matches!(b.name.as_str(), "Vulkan" | "ROCm"),
        _ => matches!(b.name.as_str(), "Vulkan" | "SYCL"),
    };
    let unused: Vec<&Visible> =
        visible.iter().filter(|v| !backends.iter().any(|b| b.loaded && b.devices > 0 && drives(v.vendor, b))).collect();
    let first = unused.first()?;
    let what = unused.iter().map(|v| format!("{} ({})", v.vendor, v.evidence)).collect::<Vec<_>>().join(", ");
    // A backend for it that loaded with no device, or a module for it that did not load.
    let module = backends.iter().find(|b| drives(first.vendor, b) && (b.loaded || b.module.is_some()));
    let how = match module {
        Some(b) if b.loaded => format!("its {} backend loaded but found no device: {}", b.name, no_device_hint(b)),
        Some(b) => {
            format!("{} {}", b.module.as_deref().unwrap_or_default(), b.why_not.as_deref().unwrap_or("did not load"))
        }
        None if first.vendor == "NVIDIA" => {
            "install the CUDA toolkit (nvcc) and run `bash scripts/setup.sh` again: it builds the CUDA backend".into()
        }
        None => "install glslc, libvulkan-dev and spirv-headers and run `bash scripts/setup.sh` again: it builds the \
                 Vulkan backend"
            .into(),
    };
    Some(format!(
        "a GPU is visible — {what} — but this run-fit has no backend for it, so every layer runs on the CPU: {how}"
    ))
}

/// A GPU backend that loaded and registered no device on a machine that shows no GPU either (a
/// container without the GPU passed in, no driver at all); [`unused_warning`] speaks when one shows.
pub fn deviceless_warning(backends: &[Backend]) -> Option<String> {
    let gpu = |b: &&Backend| b.loaded && !matches!(b.name.as_str(), "CPU" | "RPC");
    if backends.iter().filter(gpu).any(|b| b.devices > 0) {
        return None;
    }
    let b = backends.iter().find(gpu)?;
    Some(format!(
        "the {} backend loaded but found no device, so every layer runs on the CPU: {}",
        b.name,
        no_device_hint(b)
    ))
}

/// What to check when a GPU backend finds no device: the driver under it. CUDA's runtime also refuses
/// a driver older than itself ("CUDA driver version is insufficient for CUDA runtime version").
fn no_device_hint(b: &Backend) -> &'static str {
    match b.name.as_str() {
        "CUDA" => {
            "is the driver loaded? CUDA needs one at least as new as the toolkit run-fit was built with \
                   (`nvidia-smi` shows the CUDA version the driver supports)"
        }
        "Vulkan" => {
            "is the driver loaded? (ggml's Vulkan backend leaves out software devices such as Mesa's \
                     llvmpipe unless GGML_VK_VISIBLE_DEVICES names them)"
        }
        _ => "is the driver loaded?",
    }
}

/// The compute capabilities of this machine's NVIDIA cards (`8.6` → 86), from `nvidia-smi`; empty
/// without it.
pub fn nvidia_compute_caps() -> Vec<u32> {
    let Some(smi) = on_path("nvidia-smi") else { return vec![] };
    let Ok(out) = std::process::Command::new(smi)
        .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return vec![];
    };
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().replace('.', "").parse().ok()).collect()
}

/// A CUDA module built for architectures none of which runs on a card here: CUDA runs a kernel built
/// for the card's own architecture, or compiles the PTX of an older one at start, never a newer one
/// ("no kernel image is available for execution on the device" at the first product).
pub fn cuda_arch_warning(backends: &[Backend], caps: &[u32]) -> Option<String> {
    let built = backends.iter().find(|b| b.name == "CUDA" && b.loaded)?.built_for.as_deref()?;
    let archs: Vec<u32> = built
        .strip_prefix("cuda ")?
        .split(';')
        .filter_map(|a| a.split('-').next()?.trim().trim_end_matches(['a', 'f']).parse().ok())
        .collect();
    let lowest = *archs.iter().min()?;
    let card = caps.iter().copied().filter(|&c| c < lowest).min()?;
    let shown = |a: u32| format!("{}.{}", a / 10, a % 10);
    Some(format!(
        "the CUDA module was built for compute capability {} but a card here is {}: it cannot run there; \
         run `CMAKE_CUDA_ARCHITECTURES={card} bash scripts/setup.sh` to build it for this card",
        archs.iter().map(|&a| shown(a)).collect::<Vec<_>>().join(", "),
        shown(card)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visible_gpu_without_its_backend_is_said_with_what_to_install() {
        let nvidia = [Visible { vendor: "NVIDIA", evidence: "/usr/bin/nvidia-smi".into() }];
        let cpu = [Backend::compiled_in("CPU", 1)];
        let w = unused_warning(&nvidia, &cpu).unwrap();
        assert!(w.contains("NVIDIA (/usr/bin/nvidia-smi)") && w.contains("CUDA toolkit (nvcc)"), "{w}");
        assert!(w.contains("bash scripts/setup.sh"), "{w}");
        assert_eq!(unused_warning(&nvidia, &[Backend::compiled_in("CUDA", 1)]), None);
        assert_eq!(
            unused_warning(&nvidia, &[Backend::compiled_in("Vulkan", 1)]),
            None,
            "Vulkan drives NVIDIA cards too"
        );
        let idle = unused_warning(&nvidia, &[Backend::compiled_in("CUDA", 0)]).unwrap();
        assert!(idle.contains("is the driver loaded?"), "{idle}");
        let amd = [Visible { vendor: "AMD", evidence: "/dev/dri/renderD128".into() }];
        assert!(unused_warning(&amd, &[Backend::compiled_in("CUDA", 1)]).unwrap().contains("glslc"));
        assert_eq!(unused_warning(&[], &cpu), None);
    }

    #[test]
    fn a_gpu_module_without_devices_is_blamed_on_the_driver() {
        let plain = [Backend::compiled_in("RPC", 0), Backend::compiled_in("CPU", 1)];
        assert_eq!(deviceless_warning(&plain), None);
        let w = deviceless_warning(&[Backend::compiled_in("CUDA", 0), plain[0].clone(), plain[1].clone()]).unwrap();
        assert!(w.starts_with("the CUDA backend loaded but found no device, so every layer runs on the CPU"), "{w}");
        assert!(w.contains("as new as the toolkit run-fit was built with"), "{w}");
        let w = deviceless_warning(&[Backend::compiled_in("Vulkan", 0)]).unwrap();
        assert!(w.contains("Vulkan backend loaded but found no device") && w.contains("is the driver loaded?"), "{w}");
        // Another GPU backend that found a device: the layers do not all run on the CPU.
        assert_eq!(deviceless_warning(&[Backend::compiled_in("CUDA", 0), Backend::compiled_in("Vulkan", 1)]), None);
    }

    #[test]
    fn a_cuda_module_built_only_for_newer_cards_is_said_with_the_command_that_fixes_it() {
        let mut cuda = Backend::compiled_in("CUDA", 1);
        cuda.module = Some("/r/libggml-cuda.so".into());
        cuda.built_for = Some("cuda 86;89".into());
        let w = cuda_arch_warning(std::slice::from_ref(&cuda), &[75]).unwrap();
        assert!(w.contains("built for compute capability 8.6, 8.9 but a card here is 7.5"), "{w}");
        assert!(w.contains("CMAKE_CUDA_ARCHITECTURES=75 bash scripts/setup.sh"), "{w}");
        // A newer card runs the older architecture's PTX; the card's own runs as it is.
        assert_eq!(cuda_arch_warning(std::slice::from_ref(&cuda), &[86, 90]), None);
        cuda.built_for = Some("cuda default".into());
        assert_eq!(cuda_arch_warning(std::slice::from_ref(&cuda), &[50]), None, "llama.cpp's set covers them");
        cuda.built_for = Some("cuda 75-virtual;80-virtual;86-real".into());
        assert!(cuda_arch_warning(std::slice::from_ref(&cuda), &[61]).unwrap().contains("7.5, 8.0, 8.6"));
        assert_eq!(cuda_arch_warning(&[Backend::compiled_in("CPU", 1)], &[61]), None);
    }

    #[test]
    fn a_gpu_whose_module_did_not_load_is_told_why() {
        let nvidia = [Visible { vendor: "NVIDIA", evidence: "/dev/nvidiactl".into() }];
        let module = Backend {
            name: "CUDA".into(),
            module: Some("/opt/run-fit/libggml-cuda.so".into()),
            loaded: false,
            devices: 0,
            why_not: Some("needs the NVIDIA driver (libcuda.so.1), which is not installed".into()),
            built_for: None,
        };
        let w = unused_warning(&nvidia, &[Backend::compiled_in("CPU", 1), module]).unwrap();
        assert!(
            w.ends_with("/opt/run-fit/libggml-cuda.so needs the NVIDIA driver (libcuda.so.1), which is not installed"),
            "{w}"
        );
    }
}
