//! run-fit: plan and launch llama.cpp models so they fit the machine.
//!
//! Data flows one way: `gguf` (read the header) → `facts` (what the memory model needs) → `footprint`
//! (bytes per device for one configuration) → `plan` (choose the configuration, given `hardware`).
//! Those are pure. `probe` measures the real machine, `engine` owns every llama.cpp call, `report`
//! turns results into text or JSON, `app` chains the steps for each command, `cli` parses flags.

#[cfg(feature = "llama")]
pub mod app;
pub mod archs;
pub mod cli;
#[cfg(feature = "llama")]
pub mod engine;
#[cfg(feature = "llama")]
pub mod error;
pub mod facts;
pub mod footprint;
pub mod gguf;
pub mod hardware;
pub mod plan;
#[cfg(feature = "llama")]
pub mod probe;
#[cfg(feature = "llama")]
pub mod report;
pub mod synth;
