//! Serves a test API server on 127.0.0.1 and writes a kubeconfig for it, for trying regops
//! (or kubectl) by hand:
//!
//! ```text
//! kube-test-server --kubeconfig /tmp/kubeconfig [--port 6443] [--plain-http] [--no-auth]
//! (--plain-http serves without a token too: kubectl sends one only over TLS)
//! kubectl --kubeconfig /tmp/kubeconfig get ns
//! ```
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut kubeconfig = PathBuf::from("kubeconfig");
    // By hand, serve it as a cluster would be: TLS and a bearer token.
    let mut config = kube_test_server::Config {
        tls: true,
        ..kube_test_server::Config::default()
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--kubeconfig" => kubeconfig = args.next().map(PathBuf::from).unwrap_or(kubeconfig),
            "--port" => config.port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            "--no-auth" => config.token = None,
            // kubectl (client-go) sends a bearer token only over TLS, so a plain-HTTP server
            // that asked for one would refuse the kubeconfig it writes: it asks for none.
            "--plain-http" => {
                config.tls = false;
                config.token = None;
            }
            "-h" | "--help" => {
                println!(
                    "usage: kube-test-server [--kubeconfig PATH] [--port N] [--plain-http] [--no-auth]"
                );
                return std::process::ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument `{other}`; see --help");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let server = match kube_test_server::TestServer::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(e) = server.write_kubeconfig(&kubeconfig) {
        eprintln!("cannot write {}: {e}", kubeconfig.display());
        return std::process::ExitCode::FAILURE;
    }
    eprintln!(
        "serving {} ; kubeconfig written to {} ; Ctrl-C to stop",
        server.url(),
        kubeconfig.display()
    );
    loop {
        std::thread::park();
    }
}
