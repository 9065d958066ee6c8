//! Writes GGUF headers: used by tests and by the synthetic real-shape models of `src/synth.rs`.
//!
//! The data region is left to the caller; `machine::model_file::write_sparse` makes it a hole so a 40 GB model shape costs
//! a few kilobytes of disk.

use super::GgmlType;

const ALIGNMENT_BYTES: u64 = 32;

/// A metadata value to write.
#[derive(Debug, Clone)]
pub enum Kv {
    U32(u32),
    I32(i32),
    U64(u64),
    F32(f32),
    Bool(bool),
    Str(String),
    ArrU32(Vec<u32>),
    ArrI32(Vec<i32>),
    ArrF32(Vec<f32>),
    ArrBool(Vec<bool>),
    ArrStr(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
}

impl TensorSpec {
    pub fn bytes(&self) -> u64 {
        let rows: u64 = self.dims[1..].iter().product();
        self.ggml_type.row_bytes(self.dims[0]) * rows
    }
}

/// The header bytes (padded to the data region) and the length of the data region that must follow.
pub fn write_header(kvs: &[(String, Kv)], tensors: &[TensorSpec]) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (key, value) in kvs {
        put_str(&mut out, key);
        put_kv(&mut out, value);
    }
    let mut offset = 0u64;
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.id.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offset = (offset + t.bytes()).next_multiple_of(ALIGNMENT_BYTES);
    }
    out.resize((out.len() as u64).next_multiple_of(ALIGNMENT_BYTES) as usize, 0);
    (out, offset)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_array<T>(out: &mut Vec<u8>, elem_type: u32, items: &[T], mut put: impl FnMut(&mut Vec<u8>, &T)) {
    out.extend_from_slice(&9u32.to_le_bytes());
    out.extend_from_slice(&elem_type.to_le_bytes());
    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
    for item in items {
        put(out, item);
    }
}

fn put_kv(out: &mut Vec<u8>, value: &Kv) {
    let mut scalar = |ty: u32, bytes: &[u8]| {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(bytes);
    };
    match value {
        Kv::U32(v) => scalar(4, &v.to_le_bytes()),
        Kv::I32(v) => scalar(5, &v.to_le_bytes()),
        Kv::F32(v) => scalar(6, &v.to_le_bytes()),
        Kv::Bool(v) => scalar(7, &[u8::from(*v)]),
        Kv::U64(v) => scalar(10, &v.to_le_bytes()),
        Kv::Str(s) => {
            out.extend_from_slice(&8u32.to_le_bytes());
            put_str(out, s);
        }
        Kv::ArrU32(v) => put_array(out, 4, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        Kv::ArrI32(v) => put_array(out, 5, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        Kv::ArrF32(v) => put_array(out, 6, v, |o, x| o.extend_from_slice(&x.to_le_bytes())),
        Kv::ArrBool(v) => put_array(out, 7, v, |o, x| o.push(u8::from(*x))),
        Kv::ArrStr(v) => put_array(out, 8, v, |o, x| put_str(o, x)),
    }
}
