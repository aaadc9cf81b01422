//! Specs made to be expensive to check, generated rather than committed: what a pull request
//! could send to a CI job. The check must stay linear in the file and show a screenful.

/// (file name, text) of each hostile spec: 50,000 unknown TOML tables, a YAML mapping with
/// 20,000 duplicate keys, a 5 MB `metadata.name`; and the same up to the 16 MiB a spec file
/// may hold: tiny TOML tables, duplicate YAML keys.
pub fn specs() -> Vec<(&'static str, String)> {
    let header = "apiVersion = \"regops.dev/v1\"\nkind = \"RegistryConfig\"\n";
    let mut tables = String::from(header);
    for i in 0..50_000 {
        tables.push_str(&format!("[unknown{i}]\na = 1\n"));
    }
    let mut duplicates =
        String::from("apiVersion: regops.dev/v1\nkind: RegistryConfig\nscopes:\n  s:\n");
    for _ in 0..20_000 {
        duplicates.push_str("    namespaces: [a]\n");
    }
    let long_name = format!(
        "apiVersion: regops.dev/v1\nkind: RegistryConfig\nmetadata:\n  name: {}\n",
        "a".repeat(5_000_000)
    );
    // Just under the 16 MiB limit on a spec file.
    let limit = 16 * 1024 * 1024 - 256;
    let mut full_tables = String::from(header);
    let mut i = 0;
    while full_tables.len() < limit {
        full_tables.push_str(&format!("[t{i}]\na = 1\n"));
        i += 1;
    }
    let mut full_duplicates =
        String::from("apiVersion: regops.dev/v1\nkind: RegistryConfig\nscopes:\n  s:\n");
    while full_duplicates.len() < limit {
        full_duplicates.push_str("    namespaces: [a]\n");
    }
    vec![
        ("50000-unknown-tables.toml", tables),
        ("20000-duplicate-keys.yaml", duplicates),
        ("5mb-name.yaml", long_name),
        ("16mib-tiny-tables.toml", full_tables),
        ("16mib-duplicate-keys.yaml", full_duplicates),
    ]
}
