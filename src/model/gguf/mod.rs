//! A GGUF header reader in safe Rust.
//!
//! llama.cpp's own parser aborts the process on a malformed file (GGML_ASSERT) and has had memory-safety
//! bugs, so run-fit never hands it a file it has not read here first. Only the header is read: metadata,
//! tensor infos, and the size of the data region, which is checked against the file length. Every count
//! and length is bounded by the bytes that remain before anything is allocated, so a hostile header
//! cannot make us allocate more than the file is long. `fuzz/` drives [`parse`] with arbitrary bytes.

pub mod types;
pub mod writer;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;

pub use types::GgmlType;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT_BYTES: u64 = 32;
/// Real files have at most a few thousand tensors (DeepSeek-V3: ~1,100 per shard); this bounds a hostile count.
const MAX_TENSORS: u64 = 1 << 20;
const MAX_DIMS: u32 = 4;
/// String arrays longer than this (tokenizer vocabularies) are validated and skipped, not kept.
const MAX_KEPT_STRINGS: u64 = 256;
/// Numeric arrays longer than this (token types, scores) are skipped in one read: per-layer arrays,
/// the only ones the memory model reads, are far shorter.
const MAX_KEPT_NUMBERS: u64 = 1 << 13;
/// llama.cpp writes no arrays of arrays; other writers' are validated, never kept, and at most this long.
const MAX_NESTED_ITEMS: u64 = 1 << 16;
/// What the parsed metadata may take in memory, beyond which a header is corrupt: the file's length,
/// and at least this much for small files (a tiny test header still parses).
const MIN_KEEP_BUDGET_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: no such file; check the path, or pass a model name such as Llama-2-7b.Q4_K_M")]
    NotFound { path: PathBuf },
    #[error("{path}: is a directory; pass the .gguf file inside it")]
    IsDirectory { path: PathBuf },
    /// A FIFO, a device, a socket or a kernel file: reading it would block or never end.
    #[error("{path}: is {kind}, not a model file; pass the path of a .gguf file")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{path}: cannot read ({source}); check the file's permissions")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("the file is empty (0 bytes); the download or copy did not finish, fetch the model again")]
    Empty,
    #[error(
        "not a GGUF file (it starts with {found:?}, not \"GGUF\"); convert it with llama.cpp's convert_hf_to_gguf.py"
    )]
    NotGguf { found: String },
    #[error(
        "GGUF version {0} is not supported (run-fit reads versions 2 and 3); re-convert the model with a current llama.cpp"
    )]
    UnsupportedVersion(u32),
    #[error("the file is truncated: {detail}; the download did not finish, fetch the model again")]
    Truncated { detail: String },
    #[error("the GGUF header is corrupt: {0}; fetch the model again")]
    Corrupt(String),
}

/// A metadata value. Arrays longer than [`MAX_KEPT_STRINGS`] strings or [`MAX_KEPT_NUMBERS`] numbers
/// keep only their length.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array { len: u64, items: Vec<Value> },
}

impl Value {
    /// Any integer that fits in u64 (GGUF writers disagree on u32 vs i32 vs u64 for the same key).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            Value::Bool(v) => Some(v.into()),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: dims[0] is the row length.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset from the start of the data region.
    pub offset_bytes: u64,
    pub size_bytes: u64,
    /// Which file of a split model holds it (0 for the first, and for single files).
    pub shard: u32,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// What one GGUF file's header says.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub data_offset_bytes: u64,
    pub file_bytes: u64,
}

impl Header {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }
}

/// A model: one header, or several shards (`name-00001-of-00003.gguf`) merged into one.
#[derive(Debug, Clone)]
pub struct Model {
    pub path: PathBuf,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub file_bytes: u64,
    pub shards: usize,
}

/// Parse a GGUF header from `reader`, whose whole file is `file_bytes` long.
pub fn parse<R: Read>(reader: R, file_bytes: u64) -> Result<Header, GgufError> {
    if file_bytes == 0 {
        return Err(GgufError::Empty);
    }
    let budget = file_bytes.max(MIN_KEEP_BUDGET_BYTES);
    let mut r = Reader { inner: reader, buf: Vec::new(), at: 0, pos: 0, len: file_bytes, budget };
    let magic: [u8; 4] = r.array().map_err(|_| GgufError::NotGguf { found: "fewer than 4 bytes".into() })?;
    if &magic != MAGIC {
        return Err(GgufError::NotGguf { found: String::from_utf8_lossy(&magic).escape_debug().to_string() });
    }
    let version = r.u32()?;
    if version != 2 && version != 3 {
        // A big-endian file reads as a huge version number here.
        return Err(GgufError::UnsupportedVersion(version));
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    // Each key-value pair takes at least 13 bytes, each tensor info at least 28: no more can fit.
    if kv_count > r.remaining() / 13 {
        return Err(GgufError::Corrupt(format!("{kv_count} metadata entries cannot fit in the file")));
    }
    if tensor_count > MAX_TENSORS || tensor_count > r.remaining() / 28 {
        return Err(GgufError::Corrupt(format!("{tensor_count} tensors cannot fit in the file")));
    }

    let mut metadata = BTreeMap::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let value_type = r.u32()?;
        let value = r.value(value_type, 0)?;
        // A map entry: the key's bytes, the key and value themselves, the tree's share.
        r.charge(key.len() as u64 + (size_of::<String>() + size_of::<Value>() + 32) as u64)?;
        // llama.cpp refuses a repeated key too.
        if metadata.contains_key(&key) {
            return Err(GgufError::Corrupt(format!("the key {key:?} appears twice")));
        }
        metadata.insert(key, value);
    }

    let mut tensors = Vec::new();
    for _ in 0..tensor_count {
        let name = r.string()?;
        r.charge(name.len() as u64 + size_of::<TensorInfo>() as u64 + 4 * 8)?;
        let n_dims = r.u32()?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::Corrupt(format!("tensor {name} has {n_dims} dimensions")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64()?);
        }
        let type_id = r.u32()?;
        let ggml_type = GgmlType::from_id(type_id)
            .ok_or_else(|| GgufError::Corrupt(format!("tensor {name} has unknown ggml type {type_id}")))?;
        let offset_bytes = r.u64()?;
        let size_bytes = tensor_bytes(&name, &dims, ggml_type)?;
        tensors.push(TensorInfo { name, dims, ggml_type, offset_bytes, size_bytes, shard: 0 });
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT_BYTES,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() && a <= 1 << 20 => a,
            _ => {
                return Err(GgufError::Corrupt(format!("general.alignment is {v:?}, not a power of two")));
            }
        },
    };
    let data_offset_bytes = r.pos.next_multiple_of(alignment);
    check_data_region(&tensors, data_offset_bytes, alignment, file_bytes)?;
    Ok(Header { version, metadata, tensors, data_offset_bytes, file_bytes })
}

fn tensor_bytes(name: &str, dims: &[u64], ty: GgmlType) -> Result<u64, GgufError> {
    let corrupt = || GgufError::Corrupt(format!("tensor {name} has impossible shape {dims:?}"));
    if !dims[0].is_multiple_of(ty.block_elems) {
        return Err(GgufError::Corrupt(format!(
            "tensor {name} rows of {} values are not whole {} blocks of {}",
            dims[0], ty.name, ty.block_elems
        )));
    }
    let rows = dims[1..].iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).ok_or_else(corrupt)?;
    (dims[0] / ty.block_elems).checked_mul(ty.block_bytes).and_then(|row| row.checked_mul(rows)).ok_or_else(corrupt)
}

/// Every tensor must lie inside the file: this is how a truncated download shows.
fn check_data_region(
    tensors: &[TensorInfo],
    data_offset: u64,
    alignment: u64,
    file_bytes: u64,
) -> Result<(), GgufError> {
    let mut end = data_offset;
    for t in tensors {
        if !t.offset_bytes.is_multiple_of(alignment) {
            return Err(GgufError::Corrupt(format!("tensor {} is not aligned to {alignment} bytes", t.name)));
        }
        let tensor_end = data_offset
            .checked_add(t.offset_bytes)
            .and_then(|o| o.checked_add(t.size_bytes))
            .ok_or_else(|| GgufError::Corrupt(format!("tensor {} lies beyond any possible file", t.name)))?;
        end = end.max(tensor_end);
    }
    if end > file_bytes {
        return Err(GgufError::Truncated {
            detail: format!("the tensors need {end} bytes but the file has {file_bytes}"),
        });
    }
    Ok(())
}

/// A bounded little-endian reader that knows how many bytes the file has left. It reads the file in
/// large chunks into its own buffer: a vocabulary is 100,000+ short strings, and per-string reads
/// through `BufReader` cost more than the rest of planning together.
struct Reader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Next unread byte in `buf`.
    at: usize,
    /// File offset of `buf[at]`.
    pos: u64,
    len: u64,
    /// Bytes of memory the parsed values may still take (`charge`).
    budget: u64,
}

const CHUNK_BYTES: u64 = 256 << 10;

impl<R: Read> Reader<R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn truncated(&self) -> GgufError {
        GgufError::Truncated { detail: format!("the header ends early, at byte {} of {}", self.pos, self.len) }
    }

    /// Make at least `n` bytes available in `buf[at..]` (n is already checked against the file).
    fn fill(&mut self, n: usize) -> Result<(), GgufError> {
        let buffered = self.buf.len() - self.at;
        if buffered >= n {
            return Ok(());
        }
        self.buf.drain(..self.at);
        self.at = 0;
        // Read at least the `n` needed, up to a chunk: one read(2) per chunk on a file. A reader may end
        // before the declared length (a header parsed from memory); only a short `n` is an error.
        let want = ((n - buffered) as u64).max(CHUNK_BYTES).min(self.remaining() - buffered as u64) as usize;
        self.buf.resize(buffered + want, 0);
        let mut got = buffered;
        while got < n {
            match self.inner.read(&mut self.buf[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.buf.truncate(got);
        if got < n {
            return Err(self.truncated());
        }
        Ok(())
    }

    fn bytes(&mut self, n: u64) -> Result<&[u8], GgufError> {
        if n > self.remaining() {
            return Err(self.truncated());
        }
        self.fill(n as usize)?;
        let start = self.at;
        self.at += n as usize;
        self.pos += n;
        Ok(&self.buf[start..self.at])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        Ok(self.bytes(N as u64)?.try_into().expect("N bytes"))
    }

    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        if n > self.remaining() {
            return Err(self.truncated());
        }
        // Through the buffer, a chunk at a time: a long numeric array never lands in memory whole.
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK_BYTES);
            self.bytes(k)?;
            left -= k;
        }
        Ok(())
    }

    /// Skip `count` length-prefixed strings: the vocabulary, the bulk of every header.
    fn skip_strings(&mut self, count: u64) -> Result<(), GgufError> {
        for _ in 0..count {
            // Fast path: the whole string is already buffered (and so inside the file).
            let avail = &self.buf[self.at..];
            if let Some(len_bytes) = avail.get(..8) {
                let n = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
                if n <= (avail.len() - 8) as u64 {
                    self.at += 8 + n as usize;
                    self.pos += 8 + n;
                    continue;
                }
            }
            let n = self.string_len()?;
            self.skip(n)?;
        }
        Ok(())
    }

    /// Count `bytes` of memory that a kept value takes against the budget: a hostile header must not
    /// make the reader hold more than the file is long.
    fn charge(&mut self, bytes: u64) -> Result<(), GgufError> {
        self.budget = self.budget.checked_sub(bytes).ok_or_else(|| {
            GgufError::Corrupt(format!(
                "the metadata would take more memory than the file's {} bytes: not a model header",
                self.len
            ))
        })?;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string_len(&mut self) -> Result<u64, GgufError> {
        let len = self.u64()?;
        if len > self.remaining() {
            return Err(GgufError::Corrupt(format!(
                "a string of {len} bytes at byte {} is longer than the rest of the file",
                self.pos
            )));
        }
        Ok(len)
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let len = self.string_len()?;
        let pos = self.pos;
        let bytes = self.bytes(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| GgufError::Corrupt(format!("the string at byte {pos} is not UTF-8")))
    }

    fn value(&mut self, value_type: u32, depth: u32) -> Result<Value, GgufError> {
        Ok(match value_type {
            0 => Value::U8(u8::from_le_bytes(self.array()?)),
            1 => Value::I8(i8::from_le_bytes(self.array()?)),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => match self.array::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(GgufError::Corrupt(format!("a bool has value {b}"))),
            },
            8 => Value::String(self.string()?),
            9 => self.array_value(depth)?,
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            other => {
                return Err(GgufError::Corrupt(format!("unknown metadata value type {other}")));
            }
        })
    }

    fn array_value(&mut self, depth: u32) -> Result<Value, GgufError> {
        // llama.cpp itself allows no nested arrays; one level of nesting is tolerated for other writers.
        if depth > 1 {
            return Err(GgufError::Corrupt("arrays nested deeper than two levels".into()));
        }
        let elem_type = self.u32()?;
        let len = self.u64()?;
        let min_elem_bytes = match elem_type {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10..=12 => 8,
            // an array's element type and length
            9 => 12,
            other => {
                return Err(GgufError::Corrupt(format!("array of unknown value type {other}")));
            }
        };
        if len > self.remaining() / min_elem_bytes {
            return Err(GgufError::Corrupt(format!("an array of {len} items cannot fit in the file")));
        }
        let mut items = Vec::new();
        if elem_type == 9 {
            // Nothing reads arrays of arrays: validate them, keep none of it.
            if len > MAX_NESTED_ITEMS {
                return Err(GgufError::Corrupt(format!("an array of {len} arrays: no model header has one")));
            }
            for _ in 0..len {
                self.value(elem_type, depth + 1)?;
            }
        } else if elem_type == 8 && len > MAX_KEPT_STRINGS {
            self.skip_strings(len)?;
        } else if elem_type != 8 && len > MAX_KEPT_NUMBERS {
            self.skip(len * min_elem_bytes)?;
        } else {
            self.charge(len * size_of::<Value>() as u64)?;
            items.reserve(len as usize);
            for _ in 0..len {
                items.push(self.value(elem_type, depth + 1)?);
            }
        }
        Ok(Value::Array { len, items })
    }
}

#[cfg(test)]
mod tests {
    use super::writer::{Kv, TensorSpec, write_header};
    use super::*;

    fn small_header() -> Vec<u8> {
        let kvs = vec![
            ("general.architecture".to_string(), Kv::Str("llama".into())),
            ("llama.block_count".to_string(), Kv::U32(2)),
            ("llama.attention.head_count_kv".to_string(), Kv::ArrU32(vec![4, 8])),
            ("tokenizer.ggml.tokens".to_string(), Kv::ArrStr((0..300).map(|i| format!("t{i}")).collect())),
            ("x.f".to_string(), Kv::F32(0.5)),
            ("x.b".to_string(), Kv::Bool(true)),
        ];
        let tensors = vec![
            TensorSpec { name: "a".into(), dims: vec![64, 2], ggml_type: types::F32 },
            TensorSpec { name: "b".into(), dims: vec![256, 4], ggml_type: GgmlType::from_name("Q4_K").unwrap() },
        ];
        let (mut bytes, data_bytes) = write_header(&kvs, &tensors);
        bytes.resize(bytes.len() + data_bytes as usize, 0);
        bytes
    }

    #[test]
    fn round_trips_metadata_and_tensors() {
        let bytes = small_header();
        let h = parse(&bytes[..], bytes.len() as u64).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.get("general.architecture").unwrap().as_str(), Some("llama"));
        assert_eq!(h.get("llama.block_count").unwrap().as_u64(), Some(2));
        assert_eq!(h.get("x.f").unwrap().as_f64(), Some(0.5));
        assert_eq!(h.get("x.b"), Some(&Value::Bool(true)));
        match h.get("tokenizer.ggml.tokens").unwrap() {
            Value::Array { len, items } => assert_eq!((*len, items.len()), (300, 0)),
            v => panic!("{v:?}"),
        }
        match h.get("llama.attention.head_count_kv").unwrap() {
            Value::Array { items, .. } => assert_eq!(items, &vec![Value::U32(4), Value::U32(8)]),
            v => panic!("{v:?}"),
        }
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.tensors[0].size_bytes, 64 * 2 * 4);
        assert_eq!(h.tensors[1].size_bytes, 4 * 144);
        assert_eq!(h.tensors[1].offset_bytes % 32, 0);
        assert_eq!(h.data_offset_bytes % 32, 0);
    }

    #[test]
    fn every_strict_prefix_is_an_error_not_a_panic() {
        let bytes = small_header();
        for cut in 0..bytes.len() {
            let r = parse(&bytes[..cut], cut as u64);
            assert!(r.is_err(), "prefix of {cut} bytes parsed");
        }
    }

    #[test]
    fn truncated_data_region_is_reported_as_truncated() {
        let bytes = small_header();
        let cut = bytes.len() - 10;
        assert!(matches!(parse(&bytes[..cut], cut as u64), Err(GgufError::Truncated { .. })));
    }

    #[test]
    fn rejects_bad_magic_version_and_absurd_counts() {
        assert!(matches!(parse(&b"PK\x03\x04xxxxxxxx"[..], 12), Err(GgufError::NotGguf { .. })));
        assert!(matches!(parse(&[][..], 0), Err(GgufError::Empty)));
        let mut v1 = small_header();
        v1[4] = 1;
        assert!(matches!(parse(&v1[..], v1.len() as u64), Err(GgufError::UnsupportedVersion(1))));
        let mut huge = small_header();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&huge[..], huge.len() as u64), Err(GgufError::Corrupt(_))));
        let mut kvs = small_header();
        kvs[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(parse(&kvs[..], kvs.len() as u64), Err(GgufError::Corrupt(_))));
    }

    /// A file of `len` bytes: `head`, then zeros, as a sparse file reads.
    struct Sparse {
        head: Vec<u8>,
        at: u64,
    }

    impl Read for Sparse {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = self.head.get(self.at as usize + i).copied().unwrap_or(0);
            }
            self.at += buf.len() as u64;
            Ok(buf.len())
        }
    }

    fn one_key(value_type: u32, body: &[u8]) -> Vec<u8> {
        let mut h = b"GGUF".to_vec();
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes()); // tensors
        h.extend_from_slice(&1u64.to_le_bytes()); // keys
        h.extend_from_slice(&1u64.to_le_bytes());
        h.push(b'x');
        h.extend_from_slice(&value_type.to_le_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn nested_arrays_cannot_make_the_reader_allocate_the_file_s_length() {
        // The hostile header of the hardening issue: an array of arrays as long as an 8 GiB sparse file
        // allows. It once reserved ~40 bytes per declared item (34 GB) and aborted.
        let len = 8u64 << 30;
        let mut body = 9u32.to_le_bytes().to_vec();
        body.extend_from_slice(&((len - 40) / 8).to_le_bytes());
        let r = parse(Sparse { head: one_key(9, &body), at: 0 }, len);
        assert!(matches!(r, Err(GgufError::Corrupt(_))), "{r:?}");
        // Arrays of arrays within bounds are read, and nothing of them is kept.
        let mut ok = 9u32.to_le_bytes().to_vec();
        ok.extend_from_slice(&3u64.to_le_bytes());
        for _ in 0..3 {
            ok.extend_from_slice(&4u32.to_le_bytes());
            ok.extend_from_slice(&2u64.to_le_bytes());
            ok.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
        }
        let mut bytes = one_key(9, &ok);
        bytes.resize(bytes.len().next_multiple_of(32), 0);
        let h = parse(&bytes[..], bytes.len() as u64).unwrap();
        assert!(matches!(h.get("x"), Some(Value::Array { len: 3, items }) if items.is_empty()));
    }

    #[test]
    fn kept_metadata_is_bounded_by_the_file_length() {
        // 300 keys of 8192 one-byte numbers: 2.4 MB of file, ~100 MB once kept as values. The budget
        // (the file's length, at least 64 MiB) stops it.
        let mut h = b"GGUF".to_vec();
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&300u64.to_le_bytes());
        for i in 0..300 {
            let key = format!("k{i}");
            h.extend_from_slice(&(key.len() as u64).to_le_bytes());
            h.extend_from_slice(key.as_bytes());
            h.extend_from_slice(&9u32.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes());
            h.extend_from_slice(&8192u64.to_le_bytes());
            h.extend_from_slice(&[7u8; 8192]);
        }
        let r = parse(&h[..], h.len() as u64);
        assert!(matches!(r, Err(GgufError::Corrupt(ref m)) if m.contains("more memory")), "{r:?}");
    }

    #[test]
    fn a_key_that_appears_twice_is_corrupt() {
        let mut h = b"GGUF".to_vec();
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&2u64.to_le_bytes());
        for _ in 0..2 {
            h.extend_from_slice(&1u64.to_le_bytes());
            h.push(b'x');
            h.extend_from_slice(&0u32.to_le_bytes());
            h.push(1);
        }
        let r = parse(&h[..], h.len() as u64);
        assert!(matches!(r, Err(GgufError::Corrupt(ref m)) if m.contains("twice")), "{r:?}");
    }
}
