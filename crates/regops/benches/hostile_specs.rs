//! How long `regops check` takes on specs made to be expensive, and how much memory: `cargo
//! bench -p regops --bench hostile_specs` (a release build; `-- --check` fails past the bounds:
//! 1 s and 256 MB each). The specs are generated (`regops_bench::hostile`): 50,000 unknown
//! TOML tables, 20,000 duplicate YAML keys, a 5 MB `metadata.name`, and 16 MiB (the most a
//! spec file may hold) of tiny TOML tables and of duplicate YAML keys.

use std::io::Write;
use std::time::Duration;

const MAX_WALL: Duration = Duration::from_secs(1);
const MAX_RSS: u64 = 256 << 20;

fn main() {
    regops_bench::serve_if_asked();
    let check = std::env::args().any(|a| a == "--check");
    let regops = std::path::PathBuf::from(env!("CARGO_BIN_EXE_regops"));
    let dir = std::env::temp_dir().join(format!("regops-hostile-{}", std::process::id()));
    let mut out = std::io::stdout();
    let mut failed = false;
    if let Err(e) = std::fs::create_dir_all(&dir) {
        let _ = writeln!(std::io::stderr(), "cannot create {}: {e}", dir.display());
        std::process::exit(2);
    }
    let _ = writeln!(
        out,
        "{:<28} {:>8} {:>8} {:>10}  exit",
        "spec", "wall ms", "cpu ms", "peak MB"
    );
    for (name, text) in regops_bench::hostile::specs() {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            let _ = writeln!(std::io::stderr(), "cannot write {}: {e}", path.display());
            std::process::exit(2);
        }
        // The best of three runs: the bound is on the work, not on a noisy machine's worst.
        let mut best: Option<regops_bench::Usage> = None;
        for _ in 0..3 {
            let args = vec![
                "check".to_string(),
                "--no-decrypt".to_string(),
                "-f".to_string(),
                path.display().to_string(),
            ];
            match regops_bench::measure::measure(&regops, &args, &[], None) {
                Ok(u) if best.as_ref().is_none_or(|b| u.wall < b.wall) => best = Some(u),
                Ok(_) => {}
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "{name}: {e}");
                    std::process::exit(2);
                }
            }
        }
        let Some(u) = best else { continue };
        let over = u.wall > MAX_WALL || u.max_rss > MAX_RSS;
        failed |= over || u.exit_code != 1;
        let _ = writeln!(
            out,
            "{name:<28} {:>8} {:>8} {:>10.1}  {}{}",
            u.wall.as_millis(),
            u.cpu().as_millis(),
            u.max_rss as f64 / 1e6,
            u.exit_code,
            if over { "  OVER THE BOUND" } else { "" }
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    if check && failed {
        let _ = writeln!(
            std::io::stderr(),
            "a hostile spec took over {} ms or {} MB, or was not refused",
            MAX_WALL.as_millis(),
            MAX_RSS >> 20
        );
        std::process::exit(1);
    }
}
