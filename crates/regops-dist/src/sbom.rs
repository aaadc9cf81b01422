//! A CycloneDX 1.5 SBOM of what is linked into one build of `regops`, from `cargo metadata`
//! and `Cargo.lock`: every crate reached from the `regops` package through normal (not dev, not
//! build-script) dependencies on the target platform, with its version, licence, purl and the
//! SHA-256 that crates.io published (the lockfile's checksum).
//!
//! Written here rather than with `cargo cyclonedx` so that the tests build it offline with
//! nothing to install, and so that it is byte-for-byte the same for the same lockfile
//! (`serialNumber` is derived from the content; the timestamp is `SOURCE_DATE_EPOCH`'s).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cargo metadata: {0}")]
    Metadata(String),
    #[error("Cargo.lock: {0}")]
    Lock(String),
}

/// One crate in the build.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Package {
    name: String,
    version: String,
    license: Option<String>,
    from_crates_io: bool,
}

impl Package {
    fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, Error> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Metadata(format!("no {key:?} in {v}")))
}

/// The `checksum` of each crates.io package in the lockfile, by (name, version).
fn checksums(lock: &str) -> Result<BTreeMap<(String, String), String>, Error> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(lock).map_err(|e| Error::Lock(e.to_string()))?;
    let text = |t: &DeTable<'_>, key: &str| match t.get(key).map(|v| v.get_ref()) {
        Some(DeValue::String(s)) => Some(s.to_string()),
        _ => None,
    };
    let Some(DeValue::Array(list)) = doc.get_ref().get("package").map(|v| v.get_ref()) else {
        return Err(Error::Lock("no [[package]]".into()));
    };
    let mut out = BTreeMap::new();
    for p in list {
        let DeValue::Table(t) = p.get_ref() else {
            continue;
        };
        if let (Some(name), Some(version), Some(sum)) =
            (text(t, "name"), text(t, "version"), text(t, "checksum"))
        {
            out.insert((name, version), sum);
        }
    }
    Ok(out)
}

/// The SBOM for `root` (a package name) from `cargo metadata --format-version 1
/// --filter-platform <target>` output and the lockfile's text.
pub fn cyclonedx(
    metadata: &Value,
    lock: &str,
    root: &str,
    target: &str,
    timestamp: &str,
) -> Result<Value, Error> {
    let mut packages: BTreeMap<&str, Package> = BTreeMap::new();
    for p in metadata
        .get("packages")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Metadata("no packages".into()))?
    {
        let source = p.get("source").and_then(Value::as_str).unwrap_or("");
        packages.insert(
            str_field(p, "id")?,
            Package {
                name: str_field(p, "name")?.to_owned(),
                version: str_field(p, "version")?.to_owned(),
                license: p.get("license").and_then(Value::as_str).map(str::to_owned),
                from_crates_io: source.contains("crates.io-index"),
            },
        );
    }
    let nodes = metadata
        .pointer("/resolve/nodes")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Metadata("no resolve graph (was --no-deps given?)".into()))?;
    // Each package's normal dependencies (dev- and build-dependencies are not in the binary).
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in nodes {
        let id = str_field(node, "id")?;
        let mut deps = Vec::new();
        for dep in node
            .get("deps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let normal = dep
                .get("dep_kinds")
                .and_then(Value::as_array)
                .is_some_and(|kinds| {
                    kinds
                        .iter()
                        .any(|k| k.get("kind").is_none_or(Value::is_null))
                });
            if normal {
                deps.push(str_field(dep, "pkg")?);
            }
        }
        edges.insert(id, deps);
    }
    let root_id = packages
        .iter()
        .find(|(_, p)| p.name == root)
        .map(|(id, _)| *id)
        .ok_or_else(|| Error::Metadata(format!("no package {root:?} in the workspace")))?;

    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut stack = vec![root_id];
    while let Some(id) = stack.pop() {
        if reached.insert(id) {
            stack.extend(edges.get(id).into_iter().flatten().copied());
        }
    }

    let sums = checksums(lock)?;
    let component = |p: &Package| {
        let mut c = json!({
            "type": if p.name == root { "application" } else { "library" },
            "bom-ref": p.purl(),
            "name": p.name,
            "version": p.version,
            "purl": p.purl(),
        });
        if let Some(license) = &p.license {
            c["licenses"] = json!([{ "expression": license }]);
        }
        if p.from_crates_io
            && let Some(sum) = sums.get(&(p.name.clone(), p.version.clone()))
        {
            c["hashes"] = json!([{ "alg": "SHA-256", "content": sum }]);
        }
        c
    };
    let by_id = |id: &str| packages.get(id);
    let mut components: Vec<Value> = reached
        .iter()
        .filter(|id| **id != root_id)
        .filter_map(|id| by_id(id))
        .map(component)
        .collect();
    components.sort_by_key(|c| c["bom-ref"].as_str().map(str::to_owned));
    let mut dependencies: Vec<Value> = reached
        .iter()
        .filter_map(|id| {
            let p = by_id(id)?;
            let mut on: Vec<String> = edges
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|d| by_id(d).map(Package::purl))
                .collect();
            on.sort();
            on.dedup();
            Some(json!({ "ref": p.purl(), "dependsOn": on }))
        })
        .collect();
    dependencies.sort_by_key(|d| d["ref"].as_str().map(str::to_owned));
    let root_pkg = by_id(root_id).ok_or_else(|| Error::Metadata("root vanished".into()))?;

    let mut bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": { "components": [{ "type": "application", "name": "regops-dist", "version": env!("CARGO_PKG_VERSION") }] },
            "component": component(root_pkg),
            "properties": [{ "name": "cdx:rustc:sbom:target:triple", "value": target }],
        },
        "components": components,
        "dependencies": dependencies,
    });
    // A serial number that is a function of the content (a UUID in form, version 8: custom).
    let digest = Sha256::digest(serde_json::to_vec(&bom).unwrap_or_default());
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    bom["serialNumber"] = json!(format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ));
    Ok(bom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Value {
        json!({
            "packages": [
                {"id": "app", "name": "app", "version": "1.0.0", "license": "Apache-2.0", "source": null},
                {"id": "lib", "name": "lib", "version": "2.1.0", "license": "MIT OR Apache-2.0", "source": "registry+https://github.com/rust-lang/crates.io-index"},
                {"id": "deep", "name": "deep", "version": "0.3.0", "license": "MIT", "source": "registry+https://github.com/rust-lang/crates.io-index"},
                {"id": "testonly", "name": "testonly", "version": "1.0.0", "license": "MIT", "source": "registry+https://github.com/rust-lang/crates.io-index"},
                {"id": "builder", "name": "builder", "version": "1.0.0", "license": "MIT", "source": "registry+https://github.com/rust-lang/crates.io-index"},
                {"id": "unrelated", "name": "unrelated", "version": "1.0.0", "license": "MIT", "source": null},
            ],
            "resolve": {"nodes": [
                {"id": "app", "deps": [
                    {"name": "lib", "pkg": "lib", "dep_kinds": [{"kind": null, "target": null}]},
                    {"name": "testonly", "pkg": "testonly", "dep_kinds": [{"kind": "dev", "target": null}]},
                    {"name": "builder", "pkg": "builder", "dep_kinds": [{"kind": "build", "target": null}]},
                ]},
                {"id": "lib", "deps": [{"name": "deep", "pkg": "deep", "dep_kinds": [{"kind": null, "target": null}]}]},
                {"id": "deep", "deps": []},
                {"id": "testonly", "deps": []},
                {"id": "builder", "deps": []},
                {"id": "unrelated", "deps": [{"name": "lib", "pkg": "lib", "dep_kinds": [{"kind": null, "target": null}]}]},
            ]}
        })
    }

    const LOCK: &str = r#"
version = 4
[[package]]
name = "lib"
version = "2.1.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aaaa"
[[package]]
name = "deep"
version = "0.3.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bbbb"
"#;

    #[test]
    fn only_what_the_binary_links_is_listed_with_its_checksum_and_licence() {
        let bom = cyclonedx(
            &meta(),
            LOCK,
            "app",
            "x86_64-unknown-linux-musl",
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        let names: Vec<&str> = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["deep", "lib"]);
        assert_eq!(bom["components"][1]["hashes"][0]["content"], "aaaa");
        assert_eq!(
            bom["components"][1]["licenses"][0]["expression"],
            "MIT OR Apache-2.0"
        );
        assert_eq!(bom["components"][1]["purl"], "pkg:cargo/lib@2.1.0");
        assert_eq!(bom["metadata"]["component"]["name"], "app");
        let app_deps = bom["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["ref"] == "pkg:cargo/app@1.0.0")
            .unwrap();
        assert_eq!(app_deps["dependsOn"], json!(["pkg:cargo/lib@2.1.0"]));
        let again = cyclonedx(
            &meta(),
            LOCK,
            "app",
            "x86_64-unknown-linux-musl",
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(bom, again);
        assert!(
            bom["serialNumber"]
                .as_str()
                .unwrap()
                .starts_with("urn:uuid:")
        );
    }
}
