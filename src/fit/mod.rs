//! The decision: plain data about the hardware, the bytes a configuration needs, the planner, the
//! backoff rules, speed and advice. Pure: no I/O, clock, printing or FFI.

#![deny(clippy::disallowed_methods, clippy::disallowed_types, clippy::print_stdout, clippy::print_stderr)]

pub mod advice;
pub mod backoff;
pub mod calibration;
pub mod catalogue;
pub mod cpus;
pub mod fastest;
pub mod footprint;
pub mod hardware;
pub mod levers;
pub mod moe;
pub mod plan;
pub mod speed;
