//! Failure classes and their exit codes (documented in README.md). Callers branch on these; anything
//! else is an internal error with context.

use std::process::ExitCode;

use crate::facts::FactsError;
use crate::gguf::GgufError;
use crate::hardware::ProfileError;
use crate::plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Model(#[from] GgufError),
    /// Neither a file nor a model name run-fit can read.
    #[error("{0}")]
    NotAModel(String),
    #[error(transparent)]
    Unsupported(#[from] FactsError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("{}", plan_message(.0))]
    DoesNotFit(PlanError),
    /// A real out-of-memory that backoff could not get around.
    #[error("{0}")]
    OutOfMemory(String),
    /// llama.cpp failed for a reason other than memory.
    #[error("{0}")]
    Engine(String),
    #[error("interrupted")]
    Interrupted,
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

/// A malformed pin is a usage error (exit 2); everything else the planner refuses does not fit (exit 5).
impl From<PlanError> for Failure {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::BadPin(message) => Failure::Usage(message),
            other => Failure::DoesNotFit(other),
        }
    }
}

fn plan_message(e: &PlanError) -> String {
    match e.suggestions() {
        [] => e.to_string(),
        s => format!("{e}; what would fit: {}", s.join("; ")),
    }
}

impl Failure {
    /// 1 internal, 2 usage, 3 unreadable or broken model file, 4 unsupported model, 5 does not fit
    /// (planned, or a real out-of-memory with nothing smaller left), 6 bad hardware profile, 7 llama.cpp
    /// failed for another reason, 130 interrupted (Ctrl-C).
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Internal(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Model(_) | Failure::NotAModel(_) => 3,
            Failure::Unsupported(_) => 4,
            Failure::DoesNotFit(_) | Failure::OutOfMemory(_) => 5,
            Failure::Profile(_) => 6,
            Failure::Engine(_) => 7,
            Failure::Interrupted => 130,
        }
    }

    /// One line: a message that says what is wrong and what to do.
    pub fn report(&self) -> ExitCode {
        let message = self.to_string().replace('\n', " ");
        eprintln!("run-fit: error: {message}");
        ExitCode::from(self.exit_code())
    }
}
