use clap::Parser;
use regops::cli::Cli;
use regops::output::Term;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let term = Term::new(cli.color, no_color);
    regops::commands::run(cli.command, term).into()
}
