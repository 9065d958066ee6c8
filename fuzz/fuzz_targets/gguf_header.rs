//! Arbitrary bytes into the GGUF header reader, the facts extraction and the planner: any input must
//! end in Ok or a typed error, never a panic, an abort, a huge allocation or a long stall.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| run_fit::fuzz_header(data));
