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
    /// An error, kept whole with its causes: what regops was doing when it happened (`cannot
    /// read FILE`), and what to do about it. Shown as one line, the context then each cause
    /// ([`crate::errors::sentence`]).
    Error {
        context: Option<String>,
        error: Box<dyn std::error::Error + Send + Sync + 'static>,
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

    /// A failure caused by `error`, said with each of its causes.
    pub(crate) fn error(
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Failure::Error {
            context: None,
            error: error.into(),
            help: None,
        }
    }

    /// A failure caused by `error` while doing what `context` says (`cannot read FILE`).
    pub(crate) fn caused(
        context: impl Into<String>,
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Failure::Error {
            context: Some(context.into()),
            error: error.into(),
            help: None,
        }
    }

    /// The same failure with what to do about it.
    pub(crate) fn with_help(self, h: impl Into<String>) -> Self {
        match self {
            Failure::Message { message, .. } => Failure::Message {
                message,
                help: Some(h.into()),
            },
            Failure::Error { context, error, .. } => Failure::Error {
                context,
                error,
                help: Some(h.into()),
            },
            spec @ Failure::Spec { .. } => spec,
        }
    }

    /// A message (and its help), with an error and its causes said on one line: what it
    /// quotes (a file's name, a server's reply) is escaped as `Failure::msg` escapes it.
    /// `None` for problems located in the spec.
    pub(crate) fn message(&self) -> Option<(String, Option<String>)> {
        match self {
            Failure::Spec { .. } => None,
            Failure::Message { message, help } => Some((message.clone(), help.clone())),
            Failure::Error {
                context,
                error,
                help,
            } => {
                let causes = crate::errors::sentence(&**error);
                let line = match context {
                    Some(c) => format!("{c}: {causes}"),
                    None => causes,
                };
                Some((
                    regops_spec::untrusted::terminal(&line).into_owned(),
                    help.clone(),
                ))
            }
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
            Failure::Message { .. } | Failure::Error { .. } => match self.message() {
                Some((message, Some(h))) => format!("{message} (help: {h})"),
                Some((message, None)) => message,
                None => String::new(),
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
            Failure::Message { .. } | Failure::Error { .. } => {
                let (message, help) = self.message().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the credentials file is unreadable")]
    struct Unreadable(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot load the credentials")]
    struct Load(#[source] Unreadable);

    fn nested() -> Load {
        Load(Unreadable(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        )))
    }

    #[test]
    fn a_failure_from_a_nested_error_reports_every_cause() {
        let f = Failure::caused("cannot read creds.yaml", nested()).with_help("check the path");
        let Failure::Error { error, .. } = &f else {
            panic!("a failure made from an error keeps it");
        };
        let chain = crate::errors::chain(&**error);
        assert_eq!(
            chain,
            [
                "cannot load the credentials",
                "the credentials file is unreadable",
                "No such file or directory (os error 2)",
            ]
        );
        assert_eq!(
            f.text(),
            "cannot read creds.yaml: cannot load the credentials: the credentials file is \
             unreadable: No such file or directory (os error 2) (help: check the path)"
        );
    }

    #[test]
    fn a_cause_the_error_already_says_is_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x: {0}")]
        struct Says(#[source] std::io::Error);
        let f = Failure::error(Says(std::io::Error::other("denied")));
        assert_eq!(f.text(), "cannot read x: denied");
    }

    #[test]
    fn what_an_error_quotes_stays_on_one_line() {
        let f = Failure::caused(
            "cannot read a\nb",
            std::io::Error::other("evil\u{1b}[2J\nREGOPS: fake line"),
        );
        let text = f.text();
        assert!(!text.contains('\n'), "{text:?}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("fake line"), "{text:?}");
    }
}
