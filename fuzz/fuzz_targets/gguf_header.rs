//! Arbitrary bytes into the GGUF header reader and the facts extraction: any input must end in
//! Ok or a typed error, never a panic, an abort or an allocation larger than the input allows.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = run_fit::gguf::parse(data, data.len() as u64) {
        let model = run_fit::gguf::Model {
            path: "fuzz.gguf".into(),
            metadata: header.metadata,
            tensors: header.tensors,
            file_bytes: header.file_bytes,
            shards: 1,
        };
        if let Ok(facts) = run_fit::facts::from_model(&model) {
            let hw = run_fit::hardware::hypothetical(&[12 << 30], 32 << 30);
            let _ = run_fit::plan::plan(&facts, &hw, &run_fit::plan::Policy::default());
        }
    }
});
