//! The calibration cache file (`fit::calibration` holds what is in it): `$RUN_FIT_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/run-fit`, else `~/.cache/run-fit` — absolute paths only: an empty or relative
//! variable is ignored, as the XDG spec says. A missing, corrupt, oversized or stale file is ignored
//! with a warning — never fatal. `--fresh` ignores it.
//!
//! Several run-fits may run at once: a save takes a lock, re-reads the file and merges (each record
//! keeps its newest version) before it replaces the file atomically.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::fit::calibration::{Cache, VERSION};

const FILE_NAME: &str = "calibration.json";
const LOCK_NAME: &str = "calibration.lock";
/// Sixty-four records and a bandwidth per machine take a few tens of KiB; anything much larger is not
/// ours, and is not read whole.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// An environment variable that names a directory: set, non-empty and absolute.
fn absolute_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute())
}

/// Where the cache lives, if anywhere.
pub fn dir() -> Option<PathBuf> {
    absolute_dir("RUN_FIT_CACHE_DIR").or_else(|| {
        absolute_dir("XDG_CACHE_HOME")
            .or_else(|| absolute_dir("HOME").map(|h| h.join(".cache")))
            .map(|d| d.join("run-fit"))
    })
}

/// Read the cache; a problem is a warning (returned) and an empty cache.
pub fn load() -> (Cache, Option<String>) {
    let Some(path) = dir().map(|d| d.join(FILE_NAME)) else { return (Cache::default(), None) };
    match read(&path) {
        Ok(cache) => (cache, None),
        Err(Unusable::Missing) => (Cache::default(), None),
        Err(Unusable::Warning(w) | Unusable::Newer(w)) => (Cache::default(), Some(w)),
    }
}

enum Unusable {
    Missing,
    Warning(String),
    /// A newer run-fit's file: ignored, and left as it is (saving would lose what that one knows).
    Newer(String),
}

fn read(path: &Path) -> Result<Cache, Unusable> {
    let ignoring = |why: String| Unusable::Warning(format!("ignoring {}: {why}", path.display()));
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unusable::Missing),
        Err(e) => return Err(ignoring(e.to_string())),
    };
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return Err(ignoring(format!("not a calibration file ({} bytes)", meta.len())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| ignoring(e.to_string()))?;
    let cache: Cache = serde_json::from_str(&text).map_err(|e| ignoring(format!("not a calibration file ({e})")))?;
    if cache.version > VERSION {
        let why = format!("version {}, written by a newer run-fit: left as it is", cache.version);
        return Err(Unusable::Newer(format!("ignoring {}: {why}", path.display())));
    }
    if cache.version != VERSION {
        return Err(ignoring(format!("version {}, not {VERSION}", cache.version)));
    }
    Ok(cache.validated())
}

/// Write the cache: under the lock, merged with what other runs wrote since it was read, into a
/// temporary file (mode 0600) renamed over the old one. Failures are returned as a warning.
pub fn save(cache: &Cache) -> Option<String> {
    let dir = dir()?;
    let failed = |e: std::io::Error| format!("could not write the calibration cache in {}: {e}", dir.display());
    if let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir) {
        return Some(failed(e));
    }
    let lock = match OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(dir.join(LOCK_NAME)) {
        Ok(f) => f,
        Err(e) => return Some(failed(e)),
    };
    if let Err(e) = lock.lock() {
        return Some(failed(e));
    }
    let path = dir.join(FILE_NAME);
    let mut merged = match read(&path) {
        Ok(on_disk) => on_disk,
        Err(Unusable::Missing) => Cache::default(),
        // Said when it was loaded; saving would lose what the newer run-fit knows.
        Err(Unusable::Newer(_)) => return None,
        Err(Unusable::Warning(_)) => Cache::default(),
    };
    merged.merge(cache.clone());
    let tmp = dir.join(format!("{FILE_NAME}.{}", std::process::id()));
    let written = write_new(&tmp, &serde_json::to_string_pretty(&merged).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, &path));
    written.err().map(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })
}

fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut file: File = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
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
