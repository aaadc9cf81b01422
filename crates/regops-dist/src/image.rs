//! The regops image as an OCI image layout, written without a container engine.
//!
//! One layer holds the static binary, the CA bundle and a non-root user (65532, as distroless
//! names it `nonroot`): no shell, no package manager, no libc. Every byte is a function of the
//! inputs: entries in a fixed order, owners and modes set here, every time the one given
//! (`SOURCE_DATE_EPOCH`), gzip without a name or time. Two builds of the same inputs have the
//! same digest, which the tests check.
//!
//! Layout (OCI image-layout spec): `oci-layout`, `index.json` naming one image index by its tag
//! (`org.opencontainers.image.ref.name`), and `blobs/sha256/`. The image index has a manifest
//! per platform, so one build serves amd64 and arm64 (`skopeo copy --all` pushes it whole).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::elf;

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Where the binary sits in the image, and the image's entrypoint.
pub const ENTRYPOINT: &str = "/usr/local/bin/regops";
/// The CA bundle, where rustls-native-certs (through openssl-probe) and Go programs look first.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The user the image runs as: distroless's `nonroot`, which the examples' securityContext names.
pub const USER: u32 = 65532;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Binary { path: PathBuf, problem: String },
    #[error("{0}")]
    Usage(String),
}

/// One platform's binary.
#[derive(Clone, Debug)]
pub struct Platform {
    /// The OCI architecture: `amd64` or `arm64`.
    pub arch: String,
    pub binary: PathBuf,
}

/// What goes into the image besides the binaries.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub platforms: Vec<Platform>,
    pub ca_bundle: PathBuf,
    /// The tag `index.json` names the image by (the release, e.g. `0.1.0`).
    pub tag: String,
    /// The OCI annotations and labels: source, revision, version, licenses.
    pub source: String,
    pub revision: String,
    pub version: String,
    pub licenses: String,
    /// Seconds since the epoch: every file's mtime and the `created` time.
    pub epoch: i64,
}

/// What a build wrote: the digest of the image index (what a registry serves under the tag)
/// and of each platform's manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    pub index_digest: String,
    pub manifests: Vec<(String, String)>,
}

fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// A blob store being written: `blobs/sha256/<hex>`.
struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    fn put(&self, bytes: &[u8]) -> Result<(String, usize), Error> {
        let digest = sha256(bytes);
        let path = self.dir.join(&digest["sha256:".len()..]);
        std::fs::write(&path, bytes).map_err(|source| Error::Write { path, source })?;
        Ok((digest, bytes.len()))
    }

    fn put_json(&self, value: &Value) -> Result<(String, usize), Error> {
        // serde_json writes an object's keys in one order for one input: the digest is stable.
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Usage(e.to_string()))?;
        self.put(&bytes)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// One entry of the layer.
enum Entry<'a> {
    Dir { mode: u32, owner: u32 },
    File { mode: u32, data: &'a [u8] },
}

/// The layer's tar: directories before what they hold, paths in byte order, root-owned but for
/// the user's home, every mtime `epoch`, no user or group names.
fn layer_tar(binary: &[u8], ca_bundle: &[u8], epoch: i64) -> Result<Vec<u8>, Error> {
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{USER}:{USER}:nonroot:/home/nonroot:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\nnonroot:x:{USER}:\n");
    let mut entries: BTreeMap<&str, Entry<'_>> = BTreeMap::new();
    for dir in [
        "etc/",
        "etc/ssl/",
        "etc/ssl/certs/",
        "home/",
        "usr/",
        "usr/local/",
    ] {
        entries.insert(
            dir,
            Entry::Dir {
                mode: 0o755,
                owner: 0,
            },
        );
    }
    entries.insert(
        "usr/local/bin/",
        Entry::Dir {
            mode: 0o755,
            owner: 0,
        },
    );
    entries.insert(
        "home/nonroot/",
        Entry::Dir {
            mode: 0o700,
            owner: USER,
        },
    );
    // A writable /tmp, as every base image has; regops itself writes only where it is told to.
    entries.insert(
        "tmp/",
        Entry::Dir {
            mode: 0o1777,
            owner: 0,
        },
    );
    entries.insert(
        "etc/passwd",
        Entry::File {
            mode: 0o644,
            data: passwd.as_bytes(),
        },
    );
    entries.insert(
        "etc/group",
        Entry::File {
            mode: 0o644,
            data: group.as_bytes(),
        },
    );
    entries.insert(
        "etc/ssl/certs/ca-certificates.crt",
        Entry::File {
            mode: 0o644,
            data: ca_bundle,
        },
    );
    entries.insert(
        "usr/local/bin/regops",
        Entry::File {
            mode: 0o755,
            data: binary,
        },
    );

    let mtime = u64::try_from(epoch).map_err(|_| Error::Usage("a negative epoch".into()))?;
    let mut tar = tar::Builder::new(Vec::new());
    for (path, entry) in &entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(mtime);
        let (data, owner): (&[u8], u32) = match entry {
            Entry::Dir { mode, owner } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                (&[], *owner)
            }
            Entry::File { mode, data } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                (data, 0)
            }
        };
        header.set_uid(u64::from(owner));
        header.set_gid(u64::from(owner));
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, path, data)
            .map_err(|e| Error::Usage(format!("building the layer: {e}")))?;
    }
    tar.into_inner()
        .map_err(|e| Error::Usage(format!("building the layer: {e}")))
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    // No file name and mtime 0 in the gzip header: the same tar gives the same bytes.
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes)
        .and_then(|()| gz.finish())
        .map_err(|e| Error::Usage(format!("compressing the layer: {e}")))
}

fn rfc3339(epoch: i64) -> Result<String, Error> {
    let ts = jiff::Timestamp::from_second(epoch)
        .map_err(|e| Error::Usage(format!("the epoch {epoch}: {e}")))?;
    Ok(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The OCI annotations (image-spec `annotations.md`), also the config's labels.
fn annotations(inputs: &Inputs, created: &str) -> Value {
    json!({
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.source": inputs.source,
        "org.opencontainers.image.revision": inputs.revision,
        "org.opencontainers.image.version": inputs.version,
        "org.opencontainers.image.licenses": inputs.licenses,
        "org.opencontainers.image.title": "regops",
        "org.opencontainers.image.description": "Keeps Kubernetes image-pull credentials in git, encrypted, and in step with the clusters.",
    })
}

/// Writes the layout into `out` (created; must be empty or absent).
pub fn build(inputs: &Inputs, out: &Path) -> Result<Built, Error> {
    if inputs.platforms.is_empty() {
        return Err(Error::Usage("no --binary given".into()));
    }
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|source| Error::Read {
                path: out.to_owned(),
                source,
            })?
            .next()
            .is_some()
    {
        return Err(Error::Usage(format!(
            "{} is not empty: the layout is written into a new directory",
            out.display()
        )));
    }
    let blobs = Blobs {
        dir: out.join("blobs/sha256"),
    };
    std::fs::create_dir_all(&blobs.dir).map_err(|source| Error::Write {
        path: blobs.dir.clone(),
        source,
    })?;
    let ca_bundle = read(&inputs.ca_bundle)?;
    let created = rfc3339(inputs.epoch)?;
    let labels = annotations(inputs, &created);

    let mut manifests = Vec::new();
    let mut index_entries = Vec::new();
    for platform in &inputs.platforms {
        let binary = read(&platform.binary)?;
        elf::check_static(&binary, &platform.arch).map_err(|problem| Error::Binary {
            path: platform.binary.clone(),
            problem,
        })?;
        let tar = layer_tar(&binary, &ca_bundle, inputs.epoch)?;
        let diff_id = sha256(&tar);
        let (layer_digest, layer_size) = blobs.put(&gzip(&tar)?)?;
        let config = json!({
            "created": created,
            "architecture": platform.arch,
            "os": "linux",
            "config": {
                "User": format!("{USER}:{USER}"),
                "Entrypoint": [ENTRYPOINT],
                "Env": [
                    "PATH=/usr/local/bin",
                    format!("SSL_CERT_FILE={CA_BUNDLE}"),
                    "HOME=/home/nonroot",
                ],
                "WorkingDir": "/home/nonroot",
                "Labels": labels,
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": created, "created_by": "regops-dist image" }],
        });
        let (config_digest, config_size) = blobs.put_json(&config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": { "mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size },
            "layers": [{ "mediaType": MEDIA_LAYER, "digest": layer_digest, "size": layer_size }],
            "annotations": labels,
        });
        let (manifest_digest, manifest_size) = blobs.put_json(&manifest)?;
        index_entries.push(json!({
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": { "architecture": platform.arch, "os": "linux" },
        }));
        manifests.push((platform.arch.clone(), manifest_digest));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": index_entries,
        "annotations": labels,
    });
    let (index_digest, index_size) = blobs.put_json(&index)?;
    let top = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_INDEX,
            "digest": index_digest,
            "size": index_size,
            "annotations": { "org.opencontainers.image.ref.name": inputs.tag },
        }],
    });
    for (name, bytes) in [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        (
            "index.json",
            serde_json::to_vec(&top).map_err(|e| Error::Usage(e.to_string()))?,
        ),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(|source| Error::Write { path, source })?;
    }
    Ok(Built {
        index_digest,
        manifests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_lists_directories_before_their_files_with_fixed_owners_and_times() {
        let tar = layer_tar(b"\x7fELF", b"CA", 1_700_000_000).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!(h.mtime().unwrap(), 1_700_000_000);
            seen.push((
                entry.path().unwrap().display().to_string(),
                h.mode().unwrap(),
                h.uid().unwrap(),
            ));
        }
        let names: Vec<&str> = seen.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/group",
                "etc/passwd",
                "etc/ssl/",
                "etc/ssl/certs/",
                "etc/ssl/certs/ca-certificates.crt",
                "home/",
                "home/nonroot/",
                "tmp/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/regops",
            ]
        );
        assert!(seen.contains(&("home/nonroot/".into(), 0o700, u64::from(USER))));
        assert!(seen.contains(&("usr/local/bin/regops".into(), 0o755, 0)));
        assert!(seen.contains(&("tmp/".into(), 0o1777, 0)));
    }

    #[test]
    fn gzip_is_the_same_bytes_each_time() {
        let tar = layer_tar(b"binary", b"ca", 0).unwrap();
        assert_eq!(gzip(&tar).unwrap(), gzip(&tar).unwrap());
        // No mtime in the header (bytes 4..8) and no name flag (FNAME, bit 3 of byte 3).
        let gz = gzip(&tar).unwrap();
        assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
        assert_eq!(gz[3] & 0x08, 0);
    }
}
