//! What run-fit shows: pure renderers (text, JSON, CSV, SVG) and the one printer that writes them.

#![deny(clippy::disallowed_methods, clippy::disallowed_types, clippy::print_stdout, clippy::print_stderr)]

pub mod bench;
#[allow(clippy::disallowed_methods)]
pub mod printer;
pub mod report;
