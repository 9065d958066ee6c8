//! Model files on disk: reading a GGUF header (and its shards) through the pure parser, and writing
//! generated models. The parser never sees anything but bytes; this is where paths become bytes.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::model::gguf::writer::{self, Kv, TensorSpec};
use crate::model::gguf::{GgufError, Header, Model, TensorInfo, Value, parse};

const ALIGNMENT_BYTES: u64 = 32;
/// llama-gguf-split numbers shards with five digits.
const MAX_SHARDS: u64 = 99_999;

/// Read the header of `path`, and of its sibling shards when it is a split file.
pub fn read_model(path: &Path) -> Result<Model, GgufError> {
    let first = read_header(path)?;
    let shard_count = first.get("split.count").and_then(Value::as_u64).unwrap_or(1);
    let mut model = Model {
        path: path.to_path_buf(),
        metadata: first.metadata,
        tensors: first.tensors,
        file_bytes: first.file_bytes,
        shards: 1,
    };
    if shard_count <= 1 {
        return Ok(model);
    }
    // llama-gguf-split numbers shards with five digits; more is corruption, not a model to enumerate.
    if shard_count > MAX_SHARDS {
        return Err(GgufError::Corrupt(format!("split.count is {shard_count}, more than {MAX_SHARDS} shards")));
    }
    let paths = shard_paths(path, shard_count)?;
    for (k, shard) in paths.iter().enumerate().skip(1) {
        let header = read_header(shard)?;
        model.tensors.extend(header.tensors.into_iter().map(|t| TensorInfo { shard: k as u32, ..t }));
        model.file_bytes += header.file_bytes;
        model.shards += 1;
    }
    if let Some(expected) = model.metadata.get("split.tensors.count").and_then(Value::as_u64)
        && expected != model.tensors.len() as u64
    {
        return Err(GgufError::Corrupt(format!(
            "the shards hold {} tensors, the first shard says {expected}",
            model.tensors.len()
        )));
    }
    Ok(model)
}

/// `x-00001-of-00003.gguf` → the three shard paths. The first shard must be the one given.
fn shard_paths(first: &Path, count: u64) -> Result<Vec<PathBuf>, GgufError> {
    let name = first.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let suffix = format!("-00001-of-{count:05}.gguf");
    let Some(stem) = name.strip_suffix(&suffix) else {
        return Err(GgufError::Corrupt(format!(
            "split.count is {count} but the file name does not end in {suffix}; pass the first shard, named as llama-gguf-split wrote it"
        )));
    };
    let paths: Vec<PathBuf> =
        (1..=count).map(|i| first.with_file_name(format!("{stem}-{i:05}-of-{count:05}.gguf"))).collect();
    if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
        return Err(GgufError::NotFound { path: missing.clone() });
    }
    Ok(paths)
}

/// Read one file's header; the data region is only checked against the file length, never read.
pub fn read_header(path: &Path) -> Result<Header, GgufError> {
    let meta = regular_file(path)?;
    // No BufReader: the parser reads in large chunks itself.
    let file = File::open(path).map_err(|e| open_error(path, e))?;
    parse(file, meta.len())
}

/// The file's metadata, when it is a regular file on disk: opening a FIFO blocks until a writer comes,
/// and a device or a kernel file never ends or lies about its length. Checked before anything opens it.
pub fn regular_file(path: &Path) -> Result<std::fs::Metadata, GgufError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path).map_err(|e| open_error(path, e))?;
    let t = meta.file_type();
    let kind = if t.is_dir() {
        return Err(GgufError::IsDirectory { path: path.to_path_buf() });
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else if is_kernel_file(path) {
        "a kernel interface file (/proc, /sys)"
    } else {
        return Ok(meta);
    };
    Err(GgufError::NotAFile { path: path.to_path_buf(), kind })
}

/// /proc and /sys files are "regular" with a length of 0 or 4096 that says nothing of their content.
fn is_kernel_file(path: &Path) -> bool {
    std::fs::canonicalize(path).is_ok_and(|p| p.starts_with("/proc") || p.starts_with("/sys"))
}

fn open_error(path: &Path, e: io::Error) -> GgufError {
    match e.kind() {
        io::ErrorKind::NotFound => GgufError::NotFound { path: path.to_path_buf() },
        _ => GgufError::Unreadable { path: path.to_path_buf(), source: e },
    }
}

/// Write the header and leave the data region as a hole (zeros that take no disk). Returns the file size.
pub fn write_sparse(path: &Path, kvs: &[(String, Kv)], tensors: &[TensorSpec]) -> io::Result<u64> {
    let (header, data_bytes) = writer::write_header(kvs, tensors);
    let mut file = File::create(path)?;
    file.write_all(&header)?;
    let len = header.len() as u64 + data_bytes;
    file.set_len(len)?;
    Ok(len)
}

/// Write the header, then each tensor's data as `data` produces it (exactly `TensorSpec::bytes()` bytes),
/// padded to the alignment. Returns the file size.
pub fn write_with_data(
    path: &Path,
    kvs: &[(String, Kv)],
    tensors: &[TensorSpec],
    mut data: impl FnMut(&TensorSpec, &mut dyn Write) -> io::Result<()>,
) -> io::Result<u64> {
    let (header, data_bytes) = writer::write_header(kvs, tensors);
    let mut file = io::BufWriter::with_capacity(1 << 20, File::create(path)?);
    file.write_all(&header)?;
    let mut written = 0u64;
    for t in tensors {
        let mut counter = CountingWriter { inner: &mut file, bytes: 0 };
        data(t, &mut counter)?;
        if counter.bytes != t.bytes() {
            return Err(io::Error::other(format!("{}: wrote {} bytes, expected {}", t.name, counter.bytes, t.bytes())));
        }
        let padded = (written + t.bytes()).next_multiple_of(ALIGNMENT_BYTES);
        file.write_all(&vec![0u8; (padded - written - t.bytes()) as usize])?;
        written = padded;
    }
    debug_assert_eq!(written, data_bytes);
    file.flush()?;
    Ok(header.len() as u64 + written)
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_models_are_summed_over_their_shards() {
        let dir = tempfile::tempdir().unwrap();
        let f32t = crate::model::gguf::types::F32;
        let shard = |no: u32, names: &[&str]| {
            let kvs = vec![
                ("general.architecture".to_string(), Kv::Str("llama".into())),
                ("split.no".to_string(), Kv::U32(no)),
                ("split.count".to_string(), Kv::U32(2)),
                ("split.tensors.count".to_string(), Kv::I32(3)),
            ];
            let tensors: Vec<TensorSpec> =
                names.iter().map(|n| TensorSpec { name: n.to_string(), dims: vec![8, 8], ggml_type: f32t }).collect();
            let path = dir.path().join(format!("m-{:05}-of-00002.gguf", no + 1));
            write_sparse(&path, &kvs, &tensors).unwrap();
            path
        };
        let first = shard(0, &["a", "b"]);
        let second = shard(1, &["c"]);
        let m = read_model(&first).unwrap();
        assert_eq!((m.shards, m.tensors.len()), (2, 3));
        assert_eq!(m.file_bytes, std::fs::metadata(&first).unwrap().len() + std::fs::metadata(&second).unwrap().len());
        std::fs::remove_file(&second).unwrap();
        assert!(matches!(read_model(&first), Err(GgufError::NotFound { .. })));
        // A split count beyond llama-gguf-split's five digits is refused before any path is built.
        let huge = dir.path().join("h-00001-of-100000000.gguf");
        let kvs = vec![("split.count".to_string(), Kv::U32(100_000_000))];
        write_sparse(&huge, &kvs, &[]).unwrap();
        assert!(matches!(read_model(&huge), Err(GgufError::Corrupt(_))));
    }
}
