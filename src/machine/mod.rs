//! The real machine: measuring it, the calibration cache, profile and model files.

pub mod cache;
pub mod gpus;
pub mod model_file;
#[cfg(feature = "llama")]
pub mod probe;
pub mod profiles;
#[cfg(feature = "llama")]
pub mod rpc;
