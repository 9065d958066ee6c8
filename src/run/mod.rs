//! Processes: the launcher and its backoff loop, the supervisor's handle on a worker, the worker, the
//! protocol between them, the conversation and the bench sweep.

#[cfg(feature = "llama")]
pub mod bench;
#[cfg(feature = "llama")]
pub mod chat;
#[cfg(feature = "fault-injection")]
pub mod fault;
/// Without the `fault-injection` feature there are no faults to inject.
#[cfg(all(feature = "llama", not(feature = "fault-injection")))]
pub mod fault {
    pub fn at(_: crate::run::protocol::Stage) {}
}
#[cfg(feature = "llama")]
pub mod launch;
pub mod protocol;
#[cfg(feature = "llama")]
pub mod session;
#[cfg(feature = "llama")]
pub mod signals;
#[cfg(feature = "llama")]
pub mod supervisor;
#[cfg(feature = "llama")]
pub mod worker;
