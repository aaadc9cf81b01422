//! `regops-dist image` and `regops-dist sbom`: the steps of a release that are not `cargo
//! build`, as the `dist/` scripts and `.github/workflows/release.yml` call them.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use regops_dist::{image, sbom};

#[derive(Debug, Parser)]
#[command(name = "regops-dist", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write the image as an OCI layout into a new directory and print the index's digest.
    ///
    /// Example: regops-dist image --out target/image --binary amd64=target/x86_64-unknown-linux-musl/dist/regops --tag 0.1.0
    Image {
        /// The directory to write (absent or empty).
        #[arg(long)]
        out: PathBuf,
        /// ARCH=PATH: a static binary for `amd64` or `arm64`; repeat for a multi-arch index.
        #[arg(long = "binary", value_name = "ARCH=PATH", required = true)]
        binaries: Vec<String>,
        /// The CA bundle put into the image (Debian's ca-certificates by default).
        #[arg(long, default_value = "/etc/ssl/certs/ca-certificates.crt")]
        ca_bundle: PathBuf,
        /// The tag the layout names the image by.
        #[arg(long)]
        tag: String,
        /// org.opencontainers.image.source.
        #[arg(long, default_value = "https://github.com/regops/regops")]
        source: String,
        /// org.opencontainers.image.revision: the commit.
        #[arg(long)]
        revision: String,
        /// org.opencontainers.image.version (the tag's default).
        #[arg(long)]
        version: Option<String>,
        /// org.opencontainers.image.licenses.
        #[arg(long, default_value = "Apache-2.0")]
        licenses: String,
        /// Every time in the image, in seconds since the epoch (the commit's time in dist/).
        #[arg(long, env = "SOURCE_DATE_EPOCH")]
        epoch: i64,
    },
    /// Write the CycloneDX SBOM of the `regops` binary for a target to stdout.
    Sbom {
        /// The Rust target triple the binary is built for.
        #[arg(long)]
        target: String,
        /// The workspace's Cargo.toml.
        #[arg(long, default_value = "Cargo.toml")]
        manifest_path: PathBuf,
        /// The SBOM's timestamp, in seconds since the epoch.
        #[arg(long, env = "SOURCE_DATE_EPOCH")]
        epoch: i64,
    },
}

fn run(cli: Cli) -> Result<String, String> {
    match cli.command {
        Cmd::Image {
            out,
            binaries,
            ca_bundle,
            tag,
            source,
            revision,
            version,
            licenses,
            epoch,
        } => {
            let platforms = binaries
                .iter()
                .map(|b| {
                    let (arch, path) = b
                        .split_once('=')
                        .ok_or_else(|| format!("--binary {b}: expected ARCH=PATH"))?;
                    Ok(image::Platform {
                        arch: arch.to_owned(),
                        binary: PathBuf::from(path),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let inputs = image::Inputs {
                platforms,
                ca_bundle,
                version: version.unwrap_or_else(|| tag.clone()),
                tag,
                source,
                revision,
                licenses,
                epoch,
            };
            let built = image::build(&inputs, &out).map_err(|e| e.to_string())?;
            Ok(format!("{}\n", built.index_digest))
        }
        Cmd::Sbom {
            target,
            manifest_path,
            epoch,
        } => {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = Command::new(cargo)
                .args([
                    "metadata",
                    "--format-version",
                    "1",
                    "--locked",
                    "--filter-platform",
                ])
                .arg(&target)
                .arg("--manifest-path")
                .arg(&manifest_path)
                .output()
                .map_err(|e| format!("running cargo metadata: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "cargo metadata failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let metadata: serde_json::Value =
                serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
            let lock_path = manifest_path.with_file_name("Cargo.lock");
            let lock = std::fs::read_to_string(&lock_path)
                .map_err(|e| format!("{}: {e}", lock_path.display()))?;
            let timestamp = jiff::Timestamp::from_second(epoch)
                .map_err(|e| e.to_string())?
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let bom = sbom::cyclonedx(&metadata, &lock, "regops", &target, &timestamp)
                .map_err(|e| e.to_string())?;
            let mut text = serde_json::to_string_pretty(&bom).map_err(|e| e.to_string())?;
            text.push('\n');
            Ok(text)
        }
    }
}

fn main() -> ExitCode {
    use std::io::Write;
    match run(Cli::parse()) {
        Ok(text) => {
            if std::io::stdout().write_all(text.as_bytes()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "regops-dist: {message}");
            ExitCode::FAILURE
        }
    }
}
