use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use run_fit::app;
use run_fit::cli::{Cli, Command, normalize_args};
use run_fit::error::Failure;
use run_fit::launch::Ui;

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(normalize_args(std::env::args())) {
        Ok(cli) => cli,
        // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match &cli.command {
        Command::Worker => return run_fit::worker::run(),
        Command::Run(args) => args.request(std::io::stdin().is_terminal()).map_err(Failure::Usage).and_then(|req| {
            let ui = Ui { quiet: cli.quiet, verbose: cli.verbose };
            app::run_model(&req, &ui)
        }),
        Command::Plan(args) => args
            .request()
            .map_err(Failure::Usage)
            .and_then(|req| app::run_plan(&req, cli.verbose, &mut std::io::stdout().lock())),
        Command::Bench(args) => args.request().map_err(Failure::Usage).and_then(|req| {
            let ui = Ui { quiet: cli.quiet, verbose: cli.verbose };
            app::run_bench(&req, &ui, &mut std::io::stdout().lock())
        }),
        Command::Devices(args) => match args.watch {
            Some(seconds) if !(seconds > 0.0 && seconds.is_finite()) => {
                Err(Failure::Usage(format!("--watch {seconds}: give a number of seconds above 0, e.g. --watch 2")))
            }
            Some(seconds) => app::watch_devices(seconds, args.count, cli.verbose, &mut std::io::stdout().lock()),
            None => app::run_devices(args.json, cli.verbose, &mut std::io::stdout().lock()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
