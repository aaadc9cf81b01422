//! What regops ships, built here and by the release workflow through `dist/`: the OCI image of
//! the static binary (`image`), with `elf` refusing a binary that could not run in it, and the
//! SBOM (`sbom`).

pub mod elf;
pub mod image;
pub mod sbom;
