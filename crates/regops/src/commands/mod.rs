//! One module per subcommand, and nothing but argument handling: each turns its flags into
//! calls on the modules that own the work (loading the spec is [`crate::load`]'s, connecting
//! [`crate::cluster`]'s, reading [`crate::observe`]'s, running over a fleet [`crate::fleet`]'s,
//! writing [`crate::session`]'s, the controller [`crate::controller`]'s) and hands the results
//! to [`Term`]. Failing is [`crate::failure`]'s.

pub(crate) mod apply;
mod check;
mod cluster_info;
mod drift;
mod encrypt;
mod import;
mod keygen;
mod plan;
mod rekey;
mod render;
mod saved;
mod validate;
mod watch;

use crate::ExitStatus;
use crate::cli::Command;
use crate::failure::Failure;
use crate::output::Term;

pub fn run(command: Command, term: Term) -> ExitStatus {
    // Every LIST and watch of the run keeps to the limits its cluster flags set.
    let cluster = match &command {
        Command::Plan(a) => Some(&a.run.cluster),
        Command::Apply(a) => Some(&a.run.cluster),
        Command::Drift(a) => Some(&a.run.cluster),
        Command::Import(a) => Some(&a.cluster),
        Command::ClusterInfo(a) => Some(a),
        _ => None,
    };
    if let Some(flags) = cluster {
        crate::observe::set_list_limits(flags.list_limits());
    }
    // The controller run with `--output json` logs JSON lines; its failure to start is one too.
    let json_log = matches!(&command, Command::Apply(a) if a.watch && a.output == regops_core::format::Format::Json);
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
        if json_log {
            crate::output::Log { json: true }.error(&f.text());
        } else {
            f.report(&term);
        }
        ExitStatus::Failure
    })
}
