//! Why a command failed, ready to be shown: problems located in the spec (shown against its
//! source, with miette), or a message with what to do about it. Every command, the loaders and
//! the controller return it; `Failure::report` is the one place it is shown.

use regops_spec::{Diagnostic, Diagnostics, Sources};

use crate::ExitStatus;
use crate::output::Term;

/// Why a command failed, ready to be shown.
pub enum Failure {
    /// Problems located in the spec.
    Spec {
        sources: Sources,
        diagnostics: Diagnostics,
    },
    /// Anything else: a message and what to do about it.
    Message {
        message: String,
        help: Option<String>,
    },
}

impl Failure {
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        Failure::Message {
            message: message.into(),
            help: None,
        }
    }

    pub(crate) fn report(self, term: &Term) {
        match self {
            Failure::Spec {
                sources,
                diagnostics,
            } => {
                term.diagnostics(&diagnostics, &sources);
                let n = diagnostics.error_count();
                term.note(&format!(
                    "regops: {n} error{} in the spec; nothing was done",
                    if n == 1 { "" } else { "s" }
                ));
            }
            Failure::Message { message, help } => {
                // The message is one sentence, often quoting a cluster's or a file's text: a
                // line break in it is data and is shown escaped, as the render escapes the
                // rest (`regops_spec::untrusted`).
                let message = regops_spec::untrusted::terminal(&message).into_owned();
                let mut d = Diagnostics::default();
                d.push(Diagnostic::error("", message).with_help_opt(help));
                term.diagnostics(&d, &Sources::default());
            }
        }
    }
}

/// What a command ends with: its exit status, or why it failed.
pub(crate) type Outcome = Result<ExitStatus, Failure>;

impl From<crate::cluster::ClusterError> for Failure {
    fn from(e: crate::cluster::ClusterError) -> Self {
        Failure::Message {
            help: e.help(),
            message: e.to_string(),
        }
    }
}
