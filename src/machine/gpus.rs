//! GPUs the system shows, whether or not this run-fit has a backend for them: a user with an NVIDIA
//! card and a CPU-only build must hear it, not find every layer on the CPU.

use std::path::Path;

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

/// The warning for GPUs this build cannot use (`backends`: the GPU backends compiled in or
/// loadable), with what to install and run; None when every visible GPU has a backend.
pub fn unused_warning(visible: &[Visible], backends: &[&str]) -> Option<String> {
    let usable = |vendor: &str| match vendor {
        "NVIDIA" => backends.iter().any(|b| matches!(*b, "cuda" | "vulkan" | "dynamic")),
        _ => backends.iter().any(|b| matches!(*b, "vulkan" | "dynamic")),
    };
    let unused: Vec<&Visible> = visible.iter().filter(|v| !usable(v.vendor)).collect();
    let first = unused.first()?;
    let what = unused.iter().map(|v| format!("{} ({})", v.vendor, v.evidence)).collect::<Vec<_>>().join(", ");
    let how = if first.vendor == "NVIDIA" {
        "install the CUDA toolkit (nvcc) and build with `cargo build --release --features cuda`"
    } else {
        "install the Vulkan SDK (glslc, Vulkan headers) and build with `cargo build --release --features vulkan`"
    };
    Some(format!(
        "a GPU is visible — {what} — but this run-fit has no backend for it, so every layer runs on the CPU: {how}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visible_gpu_without_its_backend_is_said_with_what_to_install() {
        let nvidia = [Visible { vendor: "NVIDIA", evidence: "/usr/bin/nvidia-smi".into() }];
        let w = unused_warning(&nvidia, &[]).unwrap();
        assert!(w.contains("NVIDIA (/usr/bin/nvidia-smi)") && w.contains("--features cuda"), "{w}");
        assert_eq!(unused_warning(&nvidia, &["cuda"]), None);
        assert_eq!(unused_warning(&nvidia, &["vulkan"]), None, "Vulkan drives NVIDIA cards too");
        let amd = [Visible { vendor: "AMD", evidence: "/dev/dri/renderD128".into() }];
        assert!(unused_warning(&amd, &["cuda"]).unwrap().contains("--features vulkan"));
        assert_eq!(unused_warning(&[], &[]), None);
    }
}
