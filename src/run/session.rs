//! The one owner of recovery: a loaded model that answers and measures, and that starts a smaller
//! worker by itself when the one it has dies of memory (backoff, a fresh start, the same turn asked
//! again, one line printed per step). The conversation only converses and bench only measures.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::error::Failure;
use crate::fit::backoff::{self, Verdict};
use crate::fit::plan::Plan;
use crate::fit::speed::Speed;
use crate::run::launch::{Launcher, Running};
use crate::run::protocol::{Generation, Message, Stats};
use crate::run::supervisor::{Interrupted, Reply};

/// What a streaming reply shows its reader.
pub enum Streamed<'t> {
    Text(&'t str),
    /// The worker died mid-reply and a smaller one answers again from the start.
    Restarted,
}

pub struct ModelSession<'a> {
    launcher: Launcher<'a>,
    running: Running,
    interrupt: Arc<AtomicBool>,
}

impl<'a> ModelSession<'a> {
    /// Plan and start workers until one is ready (backing off on out-of-memory), or say why none can be.
    pub fn start(mut launcher: Launcher<'a>, interrupt: Arc<AtomicBool>) -> Result<ModelSession<'a>, Failure> {
        let running = launcher.start()?;
        Ok(ModelSession { launcher, running, interrupt })
    }

    /// A reply to the last message of `messages`. If the worker dies, back off, start a smaller one and
    /// ask again; `on_text` sees the reply as it streams (and `Restarted` before a second try) and
    /// returns false when nobody reads it any more, which stops the reply.
    pub fn reply(
        &mut self,
        messages: &[Message],
        generation: &Generation,
        on_text: &mut dyn FnMut(Streamed) -> bool,
    ) -> Result<Reply, Failure> {
        loop {
            let reply =
                self.running.worker.reply(messages, generation, &self.interrupt, &mut |t| on_text(Streamed::Text(t)));
            match reply {
                Ok(reply) => return Ok(reply),
                Err(Interrupted::ByUser) => return Err(Failure::Interrupted),
                Err(Interrupted::Died(death)) => {
                    self.launcher.shrink(&self.running.plan, &death)?;
                    self.running = self.launcher.start()?;
                    on_text(Streamed::Restarted);
                }
            }
        }
    }

    /// One llama-bench style measurement. A death here is the setting's result (a sweep measures
    /// settings as pinned, so there is nothing to back off to): the sentence that says what happened.
    pub fn measure(&mut self, prompt_tokens: u32, gen_tokens: u32) -> Result<Stats, String> {
        match self.running.worker.bench(prompt_tokens, gen_tokens, &self.interrupt) {
            Ok(stats) => Ok(stats),
            Err(Interrupted::ByUser) => Err("stopped".into()),
            Err(Interrupted::Died(death)) => Err(match backoff::classify(&death) {
                Verdict::Memory { evidence, .. } => format!("out of memory while measuring ({evidence})"),
                Verdict::Other(why) => format!("failed while measuring: {why}"),
            }),
        }
    }

    /// The plan the running worker was started with.
    pub fn plan(&self) -> &Plan {
        &self.running.plan
    }

    /// The context llama.cpp made.
    pub fn n_ctx_tokens(&self) -> u32 {
        self.running.n_ctx_tokens
    }

    /// The speed the running plan predicts, when bandwidths are known.
    pub fn predicted(&self) -> Option<&Speed> {
        self.running.predicted.as_ref()
    }

    /// The backoff steps taken so far, as printed.
    pub fn steps(&self) -> &[String] {
        &self.launcher.steps
    }

    /// The model process's resident memory in bytes.
    pub fn resident_bytes(&self) -> Option<u64> {
        self.running.worker.resident_bytes()
    }
}
