use std::process::ExitCode;

use clap::Parser;
use run_fit::app;
use run_fit::cli::{Cli, Command, normalize_args};
use run_fit::error::Failure;

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(normalize_args(std::env::args())) {
        Ok(cli) => cli,
        // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let mut stdout = std::io::stdout().lock();
    let result = match &cli.command {
        Command::Plan(args) => {
            args.request().map_err(Failure::Usage).and_then(|req| app::run_plan(&req, cli.verbose, &mut stdout))
        }
        Command::Devices(args) => app::run_devices(args.json, cli.verbose, &mut stdout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
