//! One module per subcommand: each reads its input, calls the pure parts (regops-core) and
//! hands the results to [`Term`]. What several share (loading the spec, the identities, the
//! credentials, the cluster) is in [`load`].

pub(crate) mod apply;
mod check;
mod cluster_info;
mod drift;
mod encrypt;
mod fleet;
mod import;
mod keygen;
pub(crate) mod load;
mod plan;
mod rekey;
mod render;
mod saved;
mod validate;
pub(crate) mod watch;

use regops_spec::{Diagnostic, Diagnostics, Sources};

use crate::ExitStatus;
use crate::cli::Command;
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
                let mut d = Diagnostics::default();
                d.push(Diagnostic::error("", message).with_help_opt(help));
                term.diagnostics(&d, &Sources::default());
            }
        }
    }
}

pub(crate) type Outcome = Result<ExitStatus, Failure>;

pub fn run(command: Command, term: Term) -> ExitStatus {
    let result = match command {
        Command::Check(a) => check::check(a, &term),
        Command::Render(a) => render::render(a, &term),
        Command::Keygen(a) => keygen::keygen(a, &term),
        Command::Encrypt(a) => encrypt::encrypt(a, &term),
        Command::Rekey(a) => rekey::rekey(a, &term),
        Command::Import(a) => import::import(a, &term),
        Command::ClusterInfo(a) => cluster_info::cluster_info(a, &term),
        Command::Plan(a) => plan::plan(a, &term),
        Command::Apply(a) if a.watch => watch::watch(a, &term),
        Command::Apply(a) if a.plan_file.is_some() => saved::apply_saved(a, &term),
        Command::Show(a) => saved::show(a, &term),
        Command::Apply(a) => apply::apply(a, &term),
        Command::Drift(a) => drift::drift(a, &term),
        Command::Validate(a) => validate::validate(a, &term),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut crate::cli::Cli::command(), "regops", &mut out);
            term.stdout(&String::from_utf8_lossy(&out));
            Ok(ExitStatus::Success)
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            match clap_mangen::Man::new(crate::cli::Cli::command()).render(&mut out) {
                Ok(()) => {
                    term.stdout(&String::from_utf8_lossy(&out));
                    Ok(ExitStatus::Success)
                }
                Err(e) => Err(Failure::msg(format!("cannot render the man page: {e}"))),
            }
        }
        Command::Schema { which } => {
            term.stdout(&match which {
                crate::cli::SchemaKind::Spec => regops_spec::schema::json_schema(),
                crate::cli::SchemaKind::Plan => regops_core::view::json_schema(),
                crate::cli::SchemaKind::FleetPlan => regops_core::fleet::plan_json_schema(),
            });
            Ok(ExitStatus::Success)
        }
    };
    result.unwrap_or_else(|f| {
        f.report(&term);
        ExitStatus::Failure
    })
}

impl From<crate::cluster::ClusterError> for Failure {
    fn from(e: crate::cluster::ClusterError) -> Self {
        Failure::Message {
            help: e.help(),
            message: e.to_string(),
        }
    }
}
