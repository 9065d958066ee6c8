//! The calibration cache file (`fit::calibration` holds what is in it): `$RUN_FIT_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/run-fit`, else `~/.cache/run-fit`. A missing, corrupt or stale file is ignored with
//! a warning — never fatal. `--fresh` ignores it.

use std::path::{Path, PathBuf};

use crate::fit::calibration::{Cache, VERSION};

const FILE_NAME: &str = "calibration.json";

/// Where the cache lives.
pub fn dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("RUN_FIT_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("run-fit"))
}

/// Read the cache; a problem is a warning (returned) and an empty cache.
pub fn load() -> (Cache, Option<String>) {
    let Some(path) = dir().map(|d| d.join(FILE_NAME)) else { return (Cache::default(), None) };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Cache::default(), None),
        Err(e) => return (Cache::default(), Some(format!("ignoring {}: {e}", path.display()))),
    };
    match serde_json::from_str::<Cache>(&text) {
        Ok(c) if c.version == VERSION => (c, None),
        Ok(c) => {
            (Cache::default(), Some(format!("ignoring {} (version {}, not {VERSION})", path.display(), c.version)))
        }
        Err(e) => (Cache::default(), Some(format!("ignoring {}: not a calibration file ({e})", path.display()))),
    }
}

/// Write the cache atomically (a temp file, then rename); failures are returned as a warning.
pub fn save(cache: &Cache) -> Option<String> {
    let dir = dir()?;
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("{FILE_NAME}.{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_string_pretty(cache).unwrap_or_default())?;
        std::fs::rename(&tmp, dir.join(FILE_NAME))
    };
    write().err().map(|e| format!("could not write the calibration cache in {}: {e}", dir.display()))
}

/// A model file's identity: path, size and modification time (a changed file is a different model).
pub fn model_key(path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("{}|{size}|{mtime}", canonical.display())
}
