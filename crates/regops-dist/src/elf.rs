//! Enough of ELF to refuse a binary that would not run in the image: one that asks for a
//! dynamic loader (an image with no libc cannot start it) or is built for another machine.

const PT_INTERP: u32 = 3;

/// `e_machine` of each architecture the image is built for.
fn machine(arch: &str) -> Option<u16> {
    match arch {
        "amd64" => Some(62),  // EM_X86_64
        "arm64" => Some(183), // EM_AARCH64
        _ => None,
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Whether `binary` is a 64-bit little-endian ELF executable for `arch` with no program
/// interpreter (statically linked, as the musl targets build it).
pub fn check_static(binary: &[u8], arch: &str) -> Result<(), String> {
    let want = machine(arch).ok_or_else(|| format!("unknown architecture {arch:?}"))?;
    if binary.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF executable".into());
    }
    if binary.get(4) != Some(&2) || binary.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let truncated = || "a truncated ELF header".to_string();
    let got = u16_at(binary, 0x12).ok_or_else(truncated)?;
    if got != want {
        return Err(format!(
            "built for ELF machine {got}, not {arch} ({want}): is --binary {arch}=... the right target?"
        ));
    }
    let phoff =
        usize::try_from(u64_at(binary, 0x20).ok_or_else(truncated)?).map_err(|_| truncated())?;
    let phentsize = usize::from(u16_at(binary, 0x36).ok_or_else(truncated)?);
    let phnum = usize::from(u16_at(binary, 0x38).ok_or_else(truncated)?);
    for i in 0..phnum {
        let at = phoff
            .checked_add(i.checked_mul(phentsize).ok_or_else(truncated)?)
            .ok_or_else(truncated)?;
        if u32_at(binary, at).ok_or_else(truncated)? == PT_INTERP {
            return Err(
                "dynamically linked (it names a program interpreter): build a musl target \
                 (dist/build-binary) so it runs with no libc in the image"
                    .into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself is a dynamically linked x86_64 (or aarch64) executable.
    #[test]
    fn a_dynamic_binary_is_refused_and_so_is_the_wrong_machine() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let arch = if cfg!(target_arch = "x86_64") {
            "amd64"
        } else {
            "arm64"
        };
        let other = if arch == "amd64" { "arm64" } else { "amd64" };
        let static_linked = cfg!(target_env = "musl");
        let err = check_static(&me, arch);
        assert_eq!(err.is_ok(), static_linked, "{err:?}");
        if !static_linked {
            assert!(err.unwrap_err().contains("dynamically linked"));
        }
        assert!(
            check_static(&me, other)
                .unwrap_err()
                .contains("ELF machine")
        );
        assert!(
            check_static(b"#!/bin/sh\n", arch)
                .unwrap_err()
                .contains("not an ELF")
        );
        assert!(
            check_static(b"\x7fELF\x02\x01", arch)
                .unwrap_err()
                .contains("truncated")
        );
    }
}
