//! Names the commit and date of this build for `regops --version`, as `cargo --version` does:
//! `regops 0.1.0 (1a2b3c4d5e6f 2026-12-04)`.
//!
//! The date is the commit's, or `SOURCE_DATE_EPOCH` where the builder sets one (the
//! reproducible-builds.org convention), never the clock: two builds of one commit are the same
//! bytes, which the image's digest test relies on. `REGOPS_BUILD_COMMIT` and `REGOPS_BUILD_DATE`
//! override both, for a build from a source tarball with no `.git`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// A Unix time as a civil date (UTC), without a date crate in the build script.
fn civil_date(secs: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn main() {
    for var in [
        "REGOPS_BUILD_COMMIT",
        "REGOPS_BUILD_DATE",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // Rebuild when HEAD moves: HEAD itself, the ref it points at, and packed-refs. Each is
    // found with `git rev-parse --git-path`, which knows a worktree's layout (its HEAD is its
    // own, its branches and packed-refs are the main repository's). Only files that exist are
    // named: cargo takes a missing one as changed, and would rebuild regops on every build.
    let mut names = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        names.push(reference);
    }
    for name in &names {
        if let Some(path) = git(&["rev-parse", "--git-path", name])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }

    let commit = std::env::var("REGOPS_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown commit".to_owned());
    let date = std::env::var("REGOPS_BUILD_DATE")
        .ok()
        .filter(|d| !d.is_empty())
        .or_else(|| {
            std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .map(civil_date)
        })
        .or_else(|| {
            git(&["log", "-1", "--format=%ct", "HEAD"])
                .and_then(|s| s.parse::<i64>().ok())
                .map(civil_date)
        })
        .unwrap_or_else(|| "unknown date".to_owned());
    println!("cargo:rustc-env=REGOPS_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=REGOPS_BUILD_DATE={date}");
}
