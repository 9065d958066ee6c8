//! `run-fit MODEL`: plan, load in a worker (backing off on out-of-memory), then chat or answer once.

use std::io::Read;
use std::sync::Arc;

use crate::cli::{Mode, RunRequest};
use crate::error::Failure;
use crate::machine::probe;
use crate::output::printer::Printer;
use crate::run::chat;
use crate::run::launch::Launcher;
use crate::run::session::ModelSession;

use super::{learn_from_earlier_runs, read_facts};

pub(super) fn run_model(req: &RunRequest, printer: &Printer) -> Result<(), Failure> {
    let facts = read_facts(&req.load.model)?;
    // Read a piped prompt first: a missing prompt should fail before a model is loaded.
    let piped = match &req.mode {
        Mode::Once(None) => Some(read_piped_prompt()?),
        _ => None,
    };
    let interrupt = crate::run::signals::install(*printer)?;
    let mut hardware = probe::measure_isolated_with(&req.load.levers.rpc, req.load.levers.rpc_link, req.fresh)?;
    let mut policy = req.load.policy.clone();
    let mut learned = Vec::new();
    let learn = learn_from_earlier_runs(&mut hardware, Some(&req.load.model), &mut policy, req.fresh, &mut learned);
    for note in &learned {
        printer.note(note);
    }
    let load = super::cap_threads(&req.load, hardware.host.threads, printer);
    let launcher = Launcher::new(&load, &facts, hardware, policy, learn, *printer, Arc::clone(&interrupt));
    let session = ModelSession::start(launcher, interrupt)?;
    match (&req.mode, piped) {
        (Mode::Once(Some(prompt)), _) => chat::once(req, prompt.clone(), session, printer),
        (Mode::Once(None), Some(prompt)) => chat::once(req, prompt, session, printer),
        _ => chat::interactive(req, session, printer),
    }
}

/// A prompt on stdin is read up to this size: a larger one fits no context (even 131,072 tokens are
/// about 512 KiB of text), and `yes | run-fit …` must not fill the memory.
const MAX_PIPED_PROMPT_BYTES: u64 = 8 << 20;

fn read_piped_prompt() -> Result<String, Failure> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_PIPED_PROMPT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::Usage(format!("reading the prompt from stdin: {e}")))?;
    if bytes.len() as u64 > MAX_PIPED_PROMPT_BYTES {
        return Err(Failure::Usage(format!(
            "the prompt on stdin is longer than {} MiB, more than any context holds; pipe a shorter text",
            MAX_PIPED_PROMPT_BYTES >> 20
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::Usage("the prompt on stdin is not UTF-8 text; pipe text, not a binary file".into()))?;
    if text.contains('\0') {
        return Err(Failure::Usage("the prompt on stdin contains NUL bytes; pipe text, not a binary file".into()));
    }
    if text.trim().is_empty() {
        return Err(Failure::Usage(
            "no prompt: give -p TEXT, pipe a prompt on stdin, or run in a terminal to chat".into(),
        ));
    }
    Ok(text.trim_end().to_string())
}
