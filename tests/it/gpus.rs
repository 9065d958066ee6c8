//! A GPU the system shows but this build cannot use is said, with what to install.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;

#[test]
fn a_visible_nvidia_gpu_without_a_backend_is_said_in_devices_and_plan() {
    // Nothing here shows a GPU by itself: the CPU-only build is quiet.
    let quiet = run_fit(&["devices"]);
    assert!(quiet.status.success());
    assert!(!stderr(&quiet).contains("a GPU is visible"), "{}", stderr(&quiet));
    assert!(stdout(&quiet).contains("backends: CPU, RPC (compiled in)"), "{}", stdout(&quiet));
    // A fake `nvidia-smi` on PATH, as a machine with the driver but no toolkit has.
    let dir = tempfile::tempdir().unwrap();
    let smi = dir.path().join("nvidia-smi");
    std::fs::write(&smi, "#!/bin/sh\necho 'NVIDIA-SMI 550.54'\n").unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    let o = run_fit_command().arg("devices").env("PATH", &path).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("a GPU is visible — NVIDIA") && err.contains("run `bash scripts/setup.sh` again"), "{err}");
    let o = run_fit_command().args(["plan", smollm2().to_str().unwrap()]).env("PATH", &path).output().unwrap();
    let out = stdout(&o);
    assert!(out.contains("warning  a GPU is visible — NVIDIA"), "{out}");
}
