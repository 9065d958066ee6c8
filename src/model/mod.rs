//! What a model file says: the GGUF reader (fuzzed), the facts the memory model needs, known
//! architectures, typical shapes, and estimates for names. Pure: no I/O, clock, printing or FFI.

#![deny(clippy::disallowed_methods, clippy::disallowed_types, clippy::print_stdout, clippy::print_stderr)]

pub mod archs;
pub mod facts;
pub mod gguf;
pub mod names;
pub mod shapes;
pub mod synth;
