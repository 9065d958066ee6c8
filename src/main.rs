use std::io::IsTerminal;
use std::process::ExitCode;

/// Flags become a typed request first; only then is the machine touched.
fn main() -> ExitCode {
    match run_fit::parse(std::env::args(), std::io::stdin().is_terminal()) {
        Ok(invocation) => run_fit::execute(invocation),
        Err(early) => run_fit::finish_early(early),
    }
}
