//! Every integration test in one binary: each file below was its own test crate, and one link of
//! llama.cpp's static libraries instead of eight saves minutes on a 2-core machine.

mod bad_input;
mod bench;
mod calibration;
mod chat_pty;
mod common;
mod fuzz_corpus;
mod generated_model;
mod gpu_build;
mod gpus;
mod house;
mod moe;
mod output;
mod plan_output;
mod rpc;
mod run_model;
mod setup_backends;
