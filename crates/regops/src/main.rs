use clap::Parser;
use regops::cli::Cli;
use regops::output::Term;

fn main() -> std::process::ExitCode {
    // One TLS crypto provider for the whole process, chosen here: should a dependency ever
    // enable a second rustls provider, the client would otherwise panic when it is built.
    // An error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Not `Cli::parse()`: clap exits 2 on a usage error, regops' code for "changes pending".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and the version on stdout, a usage error (and a bare `regops`'s help) on
            // stderr. Nothing more can be said if that write fails.
            let _ = e.print();
            return regops::cli::usage_status(&e).into();
        }
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let term = Term::new(cli.color.forced(), no_color);
    regops::cluster::request_log::set_level(regops::cluster::request_log::level_from(
        cli.verbose,
        std::env::var("RUST_LOG").ok().as_deref(),
    ));
    regops::cli::commands::run(cli.command, term).into()
}
