//! One module per subcommand, and nothing but argument handling: each turns its flags into
//! calls on the modules that own the work (loading the spec is [`crate::ops::load`]'s, connecting
//! [`crate::cluster::client`]'s, reading [`crate::cluster::read`]'s, running over a fleet [`crate::ops::fleet`]'s,
//! writing [`crate::ops::session`]'s, the controller [`crate::controller`]'s) and hands the results
//! to [`Term`]. Failing is [`crate::failure`]'s.

pub(crate) mod apply;
mod check;
mod cluster_info;
mod drift;
mod encrypt;
mod import;
mod keygen;
mod node_sync;
mod plan;
mod plan_file;
mod rekey;
mod render;
mod validate;
mod watch;

use crate::ExitStatus;
use crate::cli::Command;
use crate::failure::Failure;
use crate::output::Term;

/// `regops alive FILE`: the controller's last progress, written to FILE, is recent enough.
fn alive(a: &crate::cli::AliveArgs, term: &Term) -> crate::failure::Outcome {
    let text = std::fs::read_to_string(&a.file)
        .map_err(|e| Failure::caused(format!("cannot read {}", a.file.display()), e))?;
    let at: f64 = text
        .trim()
        .parse()
        .map_err(|_| Failure::msg(format!("{} holds no time", a.file.display())))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let quiet = (now - at).max(0.0);
    if quiet <= a.stall.as_secs_f64() {
        Ok(ExitStatus::Success)
    } else {
        term.note(&format!(
            "the work loop has made no progress for {quiet:.0} s (--stall {} s)",
            a.stall.as_secs()
        ));
        Ok(ExitStatus::Failure)
    }
}

/// The spec files a command reads, when it reads a spec.
fn spec_args(command: &mut Command) -> Option<&mut crate::cli::SpecArgs> {
    match command {
        Command::Check(a) => Some(&mut a.spec),
        Command::Render(a) => Some(&mut a.spec),
        Command::Encrypt(a) => Some(&mut a.spec),
        Command::Rekey(a) => Some(&mut a.spec),
        Command::Validate(a) => Some(&mut a.spec),
        Command::Plan(a) => Some(&mut a.run.spec),
        Command::Drift(a) => Some(&mut a.run.spec),
        // A saved plan names its spec files.
        Command::Apply(a) if a.plan_file.is_none() => Some(&mut a.run.spec),
        _ => None,
    }
}

/// The spec of the current directory, when `-f` is not given: `regops.yaml`, `regops.yml`,
/// `regops.toml` or `regops/`, as kustomize finds `kustomization.yaml`; more than one is an
/// error that names them, as is none.
pub(crate) fn default_spec(dir: &std::path::Path) -> Result<std::path::PathBuf, Failure> {
    let found: Vec<&str> = ["regops.yaml", "regops.yml", "regops.toml", "regops"]
        .into_iter()
        .filter(|name| {
            let p = dir.join(name);
            if *name == "regops" {
                p.is_dir()
            } else {
                p.is_file()
            }
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(std::path::PathBuf::from(one)),
        [] => Err(Failure::Message {
            message: "no spec: -f was not given, and there is no regops.yaml, regops.yml, regops.toml or regops/ here".into(),
            help: Some("pass -f FILE (or a directory of spec files)".into()),
        }),
        many => Err(Failure::Message {
            message: format!(
                "-f was not given, and more than one spec is here: {}",
                many.join(", ")
            ),
            help: Some("pass -f with the one to use".into()),
        }),
    }
}

/// The command as it runs: the spec found when `-f` is not given, `--dry-run=none` as no dry
/// run, and a warning for each old spelling still accepted.
fn prepare_command(mut command: Command, term: &Term) -> Result<Command, Failure> {
    if let Some(spec) = spec_args(&mut command)
        && spec.files.is_empty()
    {
        let dir = std::env::current_dir()
            .map_err(|e| Failure::caused("cannot read the current directory", e))?;
        spec.files.push(default_spec(&dir)?);
    }
    if let Command::Apply(a) = &mut command
        && a.dry_run == Some(crate::cli::DryRun::None)
    {
        a.dry_run = None;
    }
    for (flag, instead) in deprecated_spellings(&command) {
        term.note(&format!(
            "warning: {flag} is now {instead} (-o is a format elsewhere); the old spelling will go"
        ));
    }
    Ok(command)
}

/// The old spellings on this command line that still work: keygen's and import's `-o FILE` and
/// `--output FILE` (now `--out`), render's `--namespaces` (now `-n/--namespace`).
fn deprecated_spellings(command: &Command) -> Vec<(&'static str, &'static str)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let used = |spelling: &str| {
        args.iter()
            .any(|a| a == spelling || a.starts_with(&format!("{spelling}=")))
    };
    let mut out = Vec::new();
    match command {
        Command::Keygen(_) | Command::Import(_) => {
            for old in ["-o", "--output"] {
                if used(old) {
                    out.push((old, "--out"));
                }
            }
        }
        Command::Render(_) if used("--namespaces") => out.push(("--namespaces", "--namespace")),
        _ => {}
    }
    out
}

pub fn run(command: Command, term: Term) -> ExitStatus {
    // The controller run with `--output json` logs JSON lines; its failure to start is one too.
    let json_log = matches!(&command, Command::Apply(a) if a.watch && a.output == regops_core::format::Format::Json);
    let command = match prepare_command(command, &term) {
        Ok(c) => c,
        Err(f) => {
            f.report(&term);
            return ExitStatus::Failure;
        }
    };
    let result = match command {
        Command::Check(a) => check::check(a, &term),
        Command::Render(a) => render::render(a, &term),
        Command::NodeSync(a) => node_sync::node_sync(a, &term),
        Command::Keygen(a) => keygen::keygen(a, &term),
        Command::Encrypt(a) => encrypt::encrypt(a, &term),
        Command::Rekey(a) => rekey::rekey(a, &term),
        Command::Import(a) => import::import(a, &term),
        Command::ClusterInfo(a) => cluster_info::cluster_info(a, &term),
        Command::Plan(a) => plan::plan(a, &term),
        Command::Apply(a) if a.dry_run == Some(crate::cli::DryRun::Client) => {
            plan::plan(apply::as_plan(*a), &term)
        }
        Command::Apply(a) if a.watch => watch::watch(*a, &term),
        Command::Apply(a) if a.plan_file.is_some() => plan_file::apply_saved(*a, &term),
        Command::Show(a) => plan_file::show(a, &term),
        Command::Apply(a) => apply::apply(*a, &term),
        Command::Drift(a) => drift::drift(a, &term),
        Command::Validate(a) => validate::validate(a, &term),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut crate::cli::Cli::command(), "regops", &mut out);
            term.stdout(&String::from_utf8_lossy(&out));
            Ok(ExitStatus::Success)
        }
        Command::Alive(a) => alive(&a, &term),
        Command::Man => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            match clap_mangen::Man::new(crate::cli::Cli::command()).render(&mut out) {
                Ok(()) => {
                    term.stdout(&String::from_utf8_lossy(&out));
                    Ok(ExitStatus::Success)
                }
                Err(e) => Err(Failure::caused("cannot render the man page", e)),
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
