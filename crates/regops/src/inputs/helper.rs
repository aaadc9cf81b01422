//! The docker credential-helper protocol: `docker-credential-NAME get` with the server on
//! standard input answers `{"ServerURL", "Username", "Secret"}` on standard output, as docker
//! itself asks it (docker-credential-helpers' `client.Get`). The secret goes straight into a
//! `SecretString`; the helper's standard output is never shown (not even when it fails), its
//! error output only on failure, and it runs with an allowlist of regops' environment
//! ([`crate::inputs::child_env`]).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use zeroize::Zeroizing;

/// How long a helper may take (one that prompts, or hangs on a locked keychain, is stopped).
pub const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("`{program}` is not on PATH")]
    NotFound { program: String },
    #[error("`{program} get` could not be run: {detail}")]
    Spawn { program: String, detail: String },
    #[error("`{program} get` failed ({status}): {message}")]
    Failed {
        program: String,
        status: String,
        message: String,
    },
    #[error("`{program} get` answered more than the {} KiB an answer may hold", .limit >> 10)]
    TooLarge { program: String, limit: usize },
    #[error("`{program} get` did not answer within {} s", TIMEOUT.as_secs())]
    Timeout { program: String },
    /// `at` is where its answer stopped being the protocol's (`: line 1, column 9: malformed
    /// JSON`), never what it said (its answer is where the secret is).
    #[error(
        "`{program} get` did not answer with the helper protocol's JSON ({{\"Username\", \"Secret\"}}){at}"
    )]
    Protocol { program: String, at: String },
}

/// A login a helper gave.
pub struct HelperLogin {
    pub username: String,
    pub secret: SecretString,
}

#[derive(serde::Deserialize)]
struct Answer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default, deserialize_with = "zeroizing")]
    secret: Zeroizing<String>,
}

/// The secret, moved (not copied) into a buffer zeroed on drop.
fn zeroizing<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    <String as serde::Deserialize>::deserialize(d).map(Zeroizing::new)
}

/// The first line of what a failed helper said, short, for the message.
fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut short: String = line.chars().take(200).collect();
    if short.is_empty() {
        short = "nothing on stderr (its standard output is never shown)".into();
    }
    short
}

/// Asks helper `name` for `server`'s login.
pub fn get(name: &str, server: &str) -> Result<HelperLogin, HelperError> {
    ask(&format!("docker-credential-{name}"), server, TIMEOUT)
}

/// Runs `program get` for `server`, all of it (its output included) within `timeout`.
fn ask(program: &str, server: &str, timeout: Duration) -> Result<HelperLogin, HelperError> {
    let program = program.to_string();
    let Ran {
        status,
        stdout,
        stderr,
    } = run(&program, &["get".to_string()], server.as_bytes(), timeout).map_err(|e| match e {
        RunError::NotFound => HelperError::NotFound {
            program: program.clone(),
        },
        RunError::Spawn(detail) => HelperError::Spawn {
            program: program.clone(),
            detail,
        },
        RunError::Timeout => HelperError::Timeout {
            program: program.clone(),
        },
        RunError::TooLarge(limit) => HelperError::TooLarge {
            program: program.clone(),
            limit,
        },
    })?;
    if !status.success() {
        // Only what it said on stderr: its stdout is where a secret would be, and a helper
        // that printed its answer and then failed must not have it quoted in the error.
        // (docker-credential-helpers print their own errors on stdout; those are lost here.)
        drop(stdout);
        let said = first_line(&stderr);
        return Err(HelperError::Failed {
            program,
            status: status.to_string(),
            message: said,
        });
    }
    let mut answer: Answer =
        serde_json::from_slice(&stdout).map_err(|e| HelperError::Protocol {
            program: program.clone(),
            at: format!(": {}", regops_spec::masked::json(&e)),
        })?;
    if answer.secret.is_empty() {
        return Err(HelperError::Protocol {
            program,
            at: ": its `Secret` is empty".into(),
        });
    }
    Ok(HelperLogin {
        username: answer.username,
        secret: SecretString::from(std::mem::take(&mut *answer.secret)),
    })
}

/// What a program regops ran left: its exit status, and its output (each capped).
pub(crate) struct Ran {
    pub(crate) status: std::process::ExitStatus,
    pub(crate) stdout: Zeroizing<Vec<u8>>,
    pub(crate) stderr: Zeroizing<Vec<u8>>,
}

#[derive(Debug)]
pub(crate) enum RunError {
    NotFound,
    Spawn(String),
    Timeout,
    TooLarge(usize),
}

/// Runs `program` with `args`, `input` on its standard input and only the allowlist of
/// regops' environment ([`crate::inputs::child_env`]), all of it (its output included) within
/// `timeout`, each of its outputs capped.
pub(crate) fn run(
    program: &str,
    args: &[String],
    input: &[u8],
    timeout: Duration,
) -> Result<Ran, RunError> {
    let mut command = Command::new(program);
    command
        .env_clear()
        .envs(crate::inputs::child_env::passed_vars(program));
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RunError::NotFound,
            _ => RunError::Spawn(e.to_string()),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading is reported by its status.
        let _ = stdin.write_all(input);
    }
    // Read both pipes on threads so a chatty program cannot block on a full pipe.
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    // Each capped: past the cap the program blocks on a full pipe, and its timeout ends it.
    let limit = crate::bounded::HELPER_OUTPUT_LIMIT;
    // The readers hand back what they read through channels, waited on within the program's
    // time: a process it left behind holding its pipes (`sleep &`) must not hang regops past
    // it (the reader thread then ends when that process does).
    let (out_tx, out) = std::sync::mpsc::channel();
    let (err_tx, err) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = out_tx.send(out_pipe.take().map(|p| crate::bounded::read_pipe(p, limit)));
    });
    std::thread::spawn(move || {
        let _ = err_tx.send(err_pipe.take().map(|p| crate::bounded::read_pipe(p, limit)));
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::Timeout);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(RunError::Spawn(e.to_string())),
        }
    };
    // A reader thread that panicked, or a pipe that was not there, read nothing.
    let left = || timeout.saturating_sub(started.elapsed());
    let stdout = match out.recv_timeout(left()) {
        Ok(read) => read,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Err(RunError::Timeout),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
    };
    let stderr = match err.recv_timeout(left()) {
        Ok(read) => read.and_then(Result::ok).unwrap_or_default(),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Err(RunError::Timeout),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Zeroizing::new(Vec::new()),
    };
    // Past the cap its pipe was closed, so it may have died of SIGPIPE: the cap is the cause.
    let stdout = match stdout {
        Some(Err(crate::bounded::BoundError::TooLarge(limit))) => {
            return Err(RunError::TooLarge(limit));
        }
        Some(Ok(bytes)) => bytes,
        _ => Zeroizing::new(Vec::new()),
    };
    Ok(Ran {
        status,
        stdout,
        stderr,
    })
}

/// The first line of what a failed program said on stderr, short, for a message.
pub(crate) fn said(stderr: &[u8]) -> String {
    first_line(stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A helper that answers and exits, but leaves a process holding its output pipe open, is
    /// given up on at its timeout, not waited on until that process ends.
    #[test]
    fn a_helper_that_leaves_its_pipes_held_is_given_up_on_in_time() {
        let dir = std::env::temp_dir().join(format!("regops-helper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let script = dir.join("docker-credential-lingers");
        std::fs::write(
            &script,
            "#!/bin/sh\n(sleep 20 &)\nprintf '{\"Username\":\"u\",\"Secret\":\"s\"}'\n",
        )
        .unwrap_or_default();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_default();
        let started = Instant::now();
        let r = ask(
            &script.display().to_string(),
            "r.example.com",
            Duration::from_secs(1),
        );
        assert!(
            matches!(r, Err(HelperError::Timeout { .. })),
            "{:?}",
            r.err()
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
