//! run-fit: plan and launch llama.cpp models so they fit the machine.
//!
//! Data flows one way: `gguf` (read the header) → `facts` (what the memory model needs) → `footprint`
//! (bytes per device for one configuration) → `plan` (choose the configuration, given `hardware`).
//! Those are pure. `probe` measures the real machine, `engine` owns every llama.cpp call, `report`
//! turns results into text or JSON, `app` chains the steps for each command, `cli` parses flags.

pub mod advice;
#[cfg(feature = "llama")]
pub mod app;
pub mod archs;
pub mod backoff;
#[cfg(feature = "llama")]
pub mod bench;
#[cfg(feature = "llama")]
pub mod calibration;
#[cfg(feature = "llama")]
pub mod chat;
pub mod cli;
#[cfg(feature = "llama")]
pub mod engine;
#[cfg(feature = "llama")]
pub mod error;
pub mod facts;
pub mod footprint;
pub mod gguf;
pub mod hardware;
#[cfg(feature = "llama")]
pub mod launch;
pub mod names;
pub mod plan;
#[cfg(feature = "llama")]
pub mod probe;
pub mod protocol;
#[cfg(feature = "llama")]
pub mod report;
pub mod speed;
#[cfg(feature = "llama")]
pub mod supervisor;
pub mod synth;
#[cfg(feature = "llama")]
pub mod worker;

/// What the fuzz target runs on arbitrary bytes: parse a header, extract facts, plan for a 12 GB GPU.
/// Any input must end in Ok or a typed error. `tests/fuzz_corpus.rs` replays the committed corpus.
#[doc(hidden)]
pub fn fuzz_header(data: &[u8]) {
    let Ok(header) = gguf::parse(data, data.len() as u64) else { return };
    let model = gguf::Model {
        path: "fuzz.gguf".into(),
        metadata: header.metadata,
        tensors: header.tensors,
        file_bytes: header.file_bytes,
        shards: 1,
    };
    if let Ok(facts) = facts::from_model(&model) {
        let hw = hardware::hypothetical(&[12 << 30, 4 << 30], 32 << 30);
        let _ = plan::plan(&facts, &hw, &plan::Policy::default());
    }
}
