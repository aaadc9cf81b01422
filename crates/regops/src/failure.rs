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
    /// A failure said in one sentence, which may quote a file, a cluster or a helper: shown on
    /// one line whatever it quotes (`regops_spec::untrusted::terminal`).
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        Failure::Message {
            message: regops_spec::untrusted::terminal(&message.into()).into_owned(),
            help: None,
        }
    }

    /// Why it failed, as plain text (no colour): for a log line.
    pub(crate) fn text(&self) -> String {
        let opts = regops_spec::RenderOptions {
            color: false,
            width: 100,
        };
        match self {
            Failure::Spec {
                sources,
                diagnostics,
            } => regops_spec::diagnostic::render(diagnostics, sources, opts)
                .trim_end()
                .to_string(),
            Failure::Message { message, help } => match help {
                Some(h) => format!("{message} (help: {h})"),
                None => message.clone(),
            },
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
                // Its line breaks are regops' own (a refusal lists what moved, one line each);
                // what it quotes was escaped where it was made (`Failure::msg`, the cluster's
                // errors, the saved plan's refusals), and the render escapes any control left.
                let mut d = Diagnostics::default();
                d.push(Diagnostic::error("", message).with_help_opt(help));
                term.diagnostics(&d, &Sources::default());
            }
        }
    }
}

/// What a command ends with: its exit status, or why it failed.
pub(crate) type Outcome = Result<ExitStatus, Failure>;

impl From<crate::cluster::client::ClusterError> for Failure {
    fn from(e: crate::cluster::client::ClusterError) -> Self {
        // One sentence, quoting the cluster (an API server's message): shown on one line.
        Failure::Message {
            help: e.help(),
            message: regops_spec::untrusted::terminal(&e.to_string()).into_owned(),
        }
    }
}
