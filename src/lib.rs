//! run-fit: plan and launch llama.cpp models so they fit the machine.
//!
//! Data flows one way: `cli` (flags → typed requests) → `app` (one file per command, the only place
//! where I/O steps are chained) → `model` (what the file says) → `machine` (what this machine has) or a
//! profile → `fit` (footprint, plan, backoff rules, speed, advice) → `run` (worker processes, chat,
//! bench) → `output` (renderers and the one printer). `model` and `fit` are pure, enforced by lints;
//! `engine` owns every llama.cpp call and all `unsafe`.

// Without llama.cpp only the pure core builds (for its tests and the fuzzer); its consumers are gone.
#![cfg_attr(not(feature = "llama"), allow(dead_code, unused_imports))]

#[cfg(feature = "llama")]
pub(crate) mod app;
pub(crate) mod cli;
#[cfg(feature = "llama")]
pub(crate) mod engine;
#[cfg(feature = "llama")]
pub(crate) mod error;
pub(crate) mod fit;
pub(crate) mod machine;
pub(crate) mod model;
#[cfg(feature = "llama")]
pub(crate) mod output;
pub(crate) mod run;

#[cfg(feature = "llama")]
pub use app::{execute, finish_early};
pub use cli::parse;

use fit::{hardware, plan};
use model::{facts, gguf};

/// What the developer tool (`run-fit-dev`), the integration tests and the fuzz target reach inside
/// run-fit for. Not an API: it changes with the code.
#[doc(hidden)]
pub mod dev {
    #[cfg(feature = "llama")]
    pub use crate::app::read_facts;
    #[cfg(feature = "llama")]
    pub use crate::engine::{Engine, quantize_rows};
    pub use crate::fit::{footprint, plan, speed};
    pub use crate::machine::model_file::{write_sparse, write_with_data};
    pub use crate::machine::profiles::BUILTIN_PROFILES;
    pub use crate::model::{gguf, shapes, synth};
}

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
