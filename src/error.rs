//! Failure classes and their exit codes (documented in README.md). Callers branch on these; anything
//! else is an internal error with context.

use crate::fit::hardware::ProfileError;
use crate::fit::plan::PlanError;
use crate::model::facts::FactsError;
use crate::model::gguf::GgufError;

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
    /// An RPC server could not be reached, did not answer, or was lost with nothing left to run on.
    #[error("{0}")]
    Rpc(String),
    #[error("interrupted")]
    Interrupted,
    /// stdout was closed by its reader (`| head`): not an error, the command just ends.
    #[error("the output was closed")]
    OutputClosed,
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
    /// failed for another reason, 8 an RPC server cannot be reached or was lost, 130 interrupted (Ctrl-C); 0 when stdout was closed by its reader.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::OutputClosed => 0,
            Failure::Internal(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Model(_) | Failure::NotAModel(_) => 3,
            Failure::Unsupported(_) => 4,
            Failure::DoesNotFit(_) | Failure::OutOfMemory(_) => 5,
            Failure::Profile(_) => 6,
            Failure::Engine(_) => 7,
            Failure::Rpc(_) => 8,
            Failure::Interrupted => 130,
        }
    }
}
