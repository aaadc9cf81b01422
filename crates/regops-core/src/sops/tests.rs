//! The decoder against files the real sops 3.11 wrote (`tests/fixtures/sops`, made by its
//! `regenerate` script from `plain/`): every value of every file decrypts to what was written,
//! and a file changed after sops wrote it is refused as `sops decrypt` refuses it.

use std::io::Read;
use std::path::PathBuf;
use std::str::FromStr;

use super::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sops")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap()
}

fn identity(file: &str) -> Box<dyn age::Identity> {
    let text = fixture(file);
    if file.starts_with("ssh") {
        Box::new(age::ssh::Identity::from_buffer(text.as_bytes(), Some(file.into())).unwrap())
    } else {
        let line = text
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap();
        Box::new(age::x25519::Identity::from_str(line).unwrap())
    }
}

/// The data key, unwrapped with `identity_file` from the file's first age recipient.
fn data_key(file: &SopsFile, identity_file: &str) -> Option<Zeroizing<Vec<u8>>> {
    let id = identity(identity_file);
    let enc = &file.age_keys()[0].enc;
    let reader = age::armor::ArmoredReader::new(enc.as_bytes());
    let decryptor = age::Decryptor::new(reader).unwrap();
    let mut stream = decryptor.decrypt(std::iter::once(id.as_ref())).ok()?;
    let mut key = Zeroizing::new(Vec::new());
    stream.read_to_end(&mut key).unwrap();
    Some(key)
}

fn open_text(text: &str, format: SopsFormat) -> Result<Decrypted, SopsError> {
    let file = SopsFile::parse(text.as_bytes(), format)?;
    let key = data_key(&file, "age-key.txt").unwrap();
    file.decrypt(&key)
}

fn open(name: &str) -> Decrypted {
    let format = SopsFormat::for_path(name);
    open_text(&fixture(name), format).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn get(d: &Decrypted, path: &str) -> String {
    d.extract(&ExtractPath::parse(path).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .to_string()
}

const PASSWORD: &str = "c0l:on $HOME 'single' \"double\" ünïcødé";

#[test]
fn yaml_and_json_files_decrypt_to_what_was_written() {
    for name in ["registry.enc.yaml", "registry.enc.json"] {
        let d = open(name);
        assert_eq!(get(&d, r#"["harbor"]["username"]"#), "robot$ci", "{name}");
        assert_eq!(get(&d, r#"["harbor"]["password"]"#), PASSWORD, "{name}");
        assert_eq!(
            get(&d, r#"["harbor"]["note"]"#),
            "first line\nsecond: line $x\n",
            "{name}"
        );
        assert_eq!(get(&d, r#"["harbor"]["port"]"#), "5000", "{name}");
        assert_eq!(get(&d, r#"["harbor"]["enabled"]"#), "true", "{name}");
        assert_eq!(get(&d, r#"["harbor"]["ratio"]"#), "1.5", "{name}");
        assert_eq!(get(&d, r#"["quay"][0]"#), "quay-bot", "{name}");
        // Single quotes, as sops also takes them.
        assert_eq!(get(&d, "['quay'][1]['token']"), "q:$tok\"en", "{name}");
    }
    assert_eq!(
        get(&open("registry.enc.yaml"), r#"["harbor"]["empty"]"#),
        ""
    );
}

#[test]
fn dotenv_ini_and_binary_files_decrypt_to_what_was_written() {
    let env = open("registry.enc.env");
    assert_eq!(get(&env, r#"["HARBOR_USERNAME"]"#), "robot$ci");
    assert_eq!(get(&env, r#"["HARBOR_PASSWORD"]"#), PASSWORD);
    assert_eq!(get(&env, r#"["NOTE"]"#), "first line\nsecond: line $x");
    let ini = open("registry.enc.ini");
    assert_eq!(get(&ini, r#"["harbor"]["username"]"#), "robot$ci");
    assert_eq!(get(&ini, r#"["harbor"]["password"]"#), PASSWORD);
    assert_eq!(get(&ini, r#"["quay"]["token"]"#), "q:$tok\"en");
    let bin = open("token.enc.bin");
    let whole = fixture("plain/token.bin");
    assert_eq!(get(&bin, ""), whole);
    assert_eq!(get(&bin, r#"["data"]"#), whole);
}

#[test]
fn files_with_plaintext_values_decrypt_and_keep_them() {
    for name in ["regex.enc.yaml", "mac-only.enc.yaml", "suffix.enc.yaml"] {
        let d = open(name);
        assert_eq!(get(&d, r#"["harbor"]["password"]"#), PASSWORD, "{name}");
        assert_eq!(
            get(&d, r#"["harbor"]["server"]"#),
            "harbor.example.com",
            "{name}"
        );
        assert_eq!(get(&d, r#"["harbor"]["username"]"#), "robot$ci", "{name}");
        assert_eq!(get(&d, r#"["harbor"]["port"]"#), "5000", "{name}");
        assert_eq!(get(&d, r#"["harbor"]["ratio"]"#), "1.5", "{name}");
        assert_eq!(get(&d, r#"["harbor"]["enabled"]"#), "true", "{name}");
    }
    // The rules chose what was encrypted: the file holds the other values in plaintext.
    let regex = fixture("regex.enc.yaml");
    assert!(regex.contains("server: harbor.example.com") && !regex.contains("c0l:on"));
    let suffix = fixture("suffix.enc.yaml");
    assert!(suffix.contains("port: 5000") && !suffix.contains("c0l:on"));
}

#[test]
fn a_file_encrypted_to_an_ssh_key_decrypts_with_it() {
    let file = SopsFile::parse(fixture("ssh.enc.yaml").as_bytes(), SopsFormat::Yaml).unwrap();
    assert!(file.age_keys()[0].recipient.starts_with("ssh-ed25519 "));
    assert!(data_key(&file, "age-key.txt").is_none());
    let key = data_key(&file, "ssh-key").unwrap();
    let d = file.decrypt(&key).unwrap();
    assert_eq!(get(&d, r#"["harbor"]["password"]"#), PASSWORD);
}

/// Changes `from` to `to` once in the fixture, and returns what opening it gives.
fn tampered(name: &str, from: &str, to: &str) -> SopsError {
    let text = fixture(name);
    assert!(text.contains(from), "{name} has no {from:?}");
    let text = text.replacen(from, to, 1);
    match open_text(&text, SopsFormat::for_path(name)) {
        Ok(_) => panic!("{name} with {from:?} changed to {to:?} was accepted"),
        Err(e) => e,
    }
}

/// The first ciphertext of the value under `key` in a YAML fixture.
fn data_of(name: &str, key: &str) -> String {
    let text = fixture(name);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}: ENC[")))
        .unwrap();
    let start = line.find("data:").unwrap() + 5;
    line[start..start + line[start..].find(',').unwrap()].to_string()
}

#[test]
fn a_value_changed_after_sops_wrote_it_is_refused_naming_its_path() {
    let data = data_of("registry.enc.yaml", "password");
    // Another value's ciphertext in its place: GCM's additional data is the path, so even a
    // value sops encrypted, moved, does not decrypt.
    let other = data_of("registry.enc.yaml", "username");
    let e = tampered("registry.enc.yaml", &data, &other);
    assert_eq!(
        e,
        SopsError::Decrypt {
            path: r#"["harbor"]["password"]"#.into()
        }
    );
    assert_eq!(
        e.to_string(),
        r#"the value at ["harbor"]["password"] does not decrypt: it was changed after sops wrote it, or the data key is not this file's"#
    );
    // A value sops left in plaintext is covered by the MAC.
    assert_eq!(
        tampered("regex.enc.yaml", "harbor.example.com", "evil.example.com"),
        SopsError::MacMismatch
    );
    // So is the order of the values, and their number.
    assert_eq!(
        tampered(
            "regex.enc.yaml",
            "    ratio: 1.5\n    enabled: true\n",
            "    enabled: true\n    ratio: 1.5\n"
        ),
        SopsError::MacMismatch
    );
    assert_eq!(
        tampered("regex.enc.yaml", "    enabled: true\n", ""),
        SopsError::MacMismatch
    );
    // Unless the file says the MAC covers only the encrypted values (mac_only_encrypted):
    // then, as in sops, a plaintext value may change.
    let text = fixture("mac-only.enc.yaml").replacen("harbor.example.com", "other.example.com", 1);
    let d = open_text(&text, SopsFormat::Yaml).unwrap();
    assert_eq!(get(&d, r#"["harbor"]["server"]"#), "other.example.com");
    // ... but not which values are encrypted: dropping the flag changes the MAC.
    assert_eq!(
        tampered("mac-only.enc.yaml", "    mac_only_encrypted: true\n", ""),
        SopsError::MacMismatch
    );
    // An encrypted value dropped from a dotenv or INI file.
    let env = fixture("registry.enc.env");
    let note = env.lines().find(|l| l.starts_with("NOTE=")).unwrap();
    assert_eq!(
        tampered("registry.enc.env", &format!("{note}\n"), ""),
        SopsError::MacMismatch
    );
    let ini = fixture("registry.enc.ini");
    let token = ini.lines().find(|l| l.starts_with("token = ")).unwrap();
    assert_eq!(
        tampered("registry.enc.ini", &format!("{token}\n"), ""),
        SopsError::MacMismatch
    );
}

#[test]
fn a_changed_mac_or_lastmodified_is_refused() {
    let text = fixture("registry.enc.yaml");
    let lastmodified = text
        .lines()
        .find(|l| l.contains("lastmodified:"))
        .unwrap()
        .to_string();
    let changed = lastmodified.replace("Z\"", "+01:00\"");
    assert_eq!(
        tampered("registry.enc.yaml", &lastmodified, &changed),
        SopsError::MacUndecryptable
    );
    let mac_line = text.lines().find(|l| l.contains("mac: ENC[")).unwrap();
    let start = mac_line.find("data:").unwrap() + 5;
    let flipped = if &mac_line[start..=start] == "A" {
        "B"
    } else {
        "A"
    };
    let changed = format!("{}{flipped}{}", &mac_line[..start], &mac_line[start + 1..]);
    assert_eq!(
        tampered("registry.enc.yaml", mac_line, &changed),
        SopsError::MacUndecryptable
    );
}

#[test]
fn another_data_key_is_refused() {
    let file = SopsFile::parse(fixture("registry.enc.yaml").as_bytes(), SopsFormat::Yaml).unwrap();
    // The wrong identity cannot unwrap the data key at all...
    assert!(data_key(&file, "other-age-key.txt").is_none());
    // ... and another data key decrypts nothing.
    let e = file.decrypt(&[7u8; 32]).unwrap_err();
    assert!(matches!(e, SopsError::Decrypt { .. }), "{e}");
    assert_eq!(file.decrypt(&[7u8; 16]).unwrap_err(), SopsError::BadDataKey);
}

#[test]
fn a_missing_path_or_a_path_to_a_mapping_is_a_clear_error() {
    let d = open("registry.enc.yaml");
    let err = |p: &str| d.extract(&ExtractPath::parse(p).unwrap()).unwrap_err();
    assert_eq!(
        err(r#"["harbor"]["pasword"]"#).to_string(),
        r#"["harbor"]["pasword"] is not in the file"#
    );
    assert_eq!(
        err(r#"["harbour"]["password"]"#).to_string(),
        r#"["harbour"] is not in the file"#
    );
    assert_eq!(
        err(r#"["quay"][2]"#).to_string(),
        r#"["quay"][2] is not in the file"#
    );
    assert_eq!(
        err(r#"["harbor"][0]"#).to_string(),
        r#"["harbor"][0] is not in the file"#
    );
    assert_eq!(
        err(r#"["harbor"]"#).to_string(),
        r#"["harbor"] is a mapping, not a single value"#
    );
    assert_eq!(
        err("").to_string(),
        "the document is a mapping, not a single value"
    );
}

/// `parseTreePath` (cmd/sops/main.go) and what it refuses.
#[test]
fn extract_paths_are_read_as_sops_reads_them() {
    assert_eq!(
        ExtractPath::parse(r#"["a"][0]['b c']"#).unwrap().0,
        [
            Step::Key("a".into()),
            Step::Index(0),
            Step::Key("b c".into())
        ]
    );
    assert_eq!(ExtractPath::parse("").unwrap().0, []);
    for bad in [r#"["a""#, "[x]", "[-1]", r#"["a"]b"#, "[']"] {
        assert!(
            matches!(ExtractPath::parse(bad), Err(SopsError::BadPath(_))),
            "{bad}"
        );
    }
    assert_eq!(
        ExtractPath::parse("['a\"b']['\u{1b}']")
            .unwrap()
            .to_string(),
        r#"["a\"b"]["\u{1b}"]"#
    );
}

#[test]
fn files_sops_encrypted_without_age_are_refused_naming_what_they_use() {
    let text = fixture("registry.enc.yaml");
    let age_at = text.find("    age:\n").unwrap();
    let after = text.find("    lastmodified:").unwrap();
    let with = |meta: &str| format!("{}{meta}{}", &text[..age_at], &text[after..]);
    let pgp = with(
        "    pgp:\n        - created_at: \"2026-01-01T00:00:00Z\"\n          enc: x\n          fp: ABCD\n    kms:\n        - arn: arn:aws:kms:eu-west-1:1:key/k\n          enc: x\n",
    );
    assert_eq!(
        SopsFile::parse(pgp.as_bytes(), SopsFormat::Yaml)
            .unwrap_err()
            .to_string(),
        "it uses only PGP keys (`pgp`), AWS KMS keys (`kms`) and no age recipient (regops reads sops files encrypted to age keys), which regops does not read; decrypt it with sops"
    );
    let groups = with(
        "    key_groups:\n        - age:\n            - recipient: age1x\n              enc: x\n    shamir_threshold: 1\n",
    );
    assert_eq!(
        SopsFile::parse(groups.as_bytes(), SopsFormat::Yaml).unwrap_err(),
        SopsError::Unsupported("key groups (Shamir secret sharing of the data key)".into())
    );
    let comments = text.replace(
        "    unencrypted_suffix: _unencrypted\n",
        "    encrypted_comment_regex: sops:enc\n",
    );
    assert_eq!(
        SopsFile::parse(comments.as_bytes(), SopsFormat::Yaml).unwrap_err(),
        SopsError::Unsupported("`encrypted_comment_regex`".into())
    );
    assert_eq!(
        SopsFile::parse(b"harbor:\n  password: x\n", SopsFormat::Yaml).unwrap_err(),
        SopsError::NoMetadata
    );
    assert_eq!(
        SopsFile::parse(b"a: b\nc: d: e\n", SopsFormat::Yaml).unwrap_err(),
        SopsError::Syntax {
            format: "yaml",
            line: 2
        }
    );
    assert_eq!(
        SopsFile::parse(b"{\n\"a\": }", SopsFormat::Json).unwrap_err(),
        SopsError::Syntax {
            format: "json",
            line: 2
        }
    );
}

/// No error of a tampered or mistaken file carries a value, encrypted or plain.
#[test]
fn errors_never_carry_a_value() {
    let secrets = [PASSWORD, "robot$ci", "c0l:on", "first line", "quay-bot"];
    let mut errors = vec![
        tampered("registry.enc.yaml", "type:str]", "type:nope]"),
        tampered(
            "registry.enc.yaml",
            "password: ENC[AES256_GCM,data:",
            "password: ENC[AES256_GCM,data:!",
        ),
        tampered("regex.enc.yaml", "robot$ci", "robot$cj"),
        SopsFile::parse(fixture("plain/registry.yaml").as_bytes(), SopsFormat::Yaml).unwrap_err(),
    ];
    let d = open("registry.enc.yaml");
    errors.push(
        d.extract(&ExtractPath::parse(r#"["harbor"]["password"][0]"#).unwrap())
            .unwrap_err(),
    );
    for e in errors {
        let shown = format!("{e} {e:?}");
        for s in secrets {
            assert!(!shown.contains(s), "{shown}");
        }
        assert!(!shown.contains(",iv:"), "{shown}");
    }
}

/// yaml.v3's resolution of plain scalars, as sops's YAML store decodes them.
#[test]
fn plain_yaml_scalars_are_typed_as_yaml_v3_types_them() {
    use super::formats::tests_resolve as r;
    assert_eq!(r("5000"), "int 5000");
    assert_eq!(r("0x1F"), "int 31");
    assert_eq!(r("0o17"), "int 15");
    assert_eq!(r("017"), "int 15");
    assert_eq!(r("1_000"), "int 1000");
    assert_eq!(r("-42"), "int -42");
    assert_eq!(r("1.50"), "float 1.5");
    assert_eq!(r("1e3"), "float 1000");
    assert_eq!(r(".inf"), "float +Inf");
    assert_eq!(r("True"), "bool True");
    assert_eq!(r("yes"), "str yes");
    assert_eq!(r("~"), "null");
    assert_eq!(r("2026-01-01"), "str 2026-01-01");
    assert_eq!(r("1.2.3"), "str 1.2.3");
    assert_eq!(r("99999999999999999999"), "float 100000000000000000000");
}

#[test]
fn formats_follow_the_file_name_as_sops_picks_them() {
    assert_eq!(SopsFormat::for_path("a/b.enc.yaml"), SopsFormat::Yaml);
    assert_eq!(SopsFormat::for_path("b.yml"), SopsFormat::Yaml);
    assert_eq!(SopsFormat::for_path("b.json"), SopsFormat::Json);
    assert_eq!(SopsFormat::for_path(".env"), SopsFormat::Dotenv);
    assert_eq!(SopsFormat::for_path("b.ini"), SopsFormat::Ini);
    assert_eq!(SopsFormat::for_path("b.enc"), SopsFormat::Binary);
    assert_eq!(
        lastmodified_aad("2026-12-07T13:25:51.123456Z"),
        "2026-12-07T13:25:51Z"
    );
}

/// A Kubernetes Secret as Flux's guide has sops encrypt it (`encrypted_regex:
/// ^(data|stringData)$`): `data` holds base64, a `.dockerconfigjson` holds JSON.
#[test]
fn values_of_a_flux_secret_are_unwrapped_from_base64_and_json() {
    let d = open("flux-secrets.enc.yaml");
    let at = |p: &str| ExtractPath::parse(p).unwrap();
    let unwrap = |p: &str, base64: bool, json: Option<&str>| {
        Unwrap {
            base64,
            json: json.map(|j| json_key(j).unwrap()),
        }
        .apply(d.extract(&at(p)).unwrap(), &at(p))
        .map(|v| v.to_string())
    };
    assert_eq!(get(&d, r#"["stringData"]["username"]"#), "robot$ci");
    assert_eq!(get(&d, r#"["kind"]"#), "Secret");
    assert_eq!(
        unwrap(r#"["data"]["password"]"#, true, None).unwrap(),
        PASSWORD
    );
    let docker = r#"["data"][".dockerconfigjson"]"#;
    assert_eq!(
        unwrap(
            docker,
            true,
            Some(r#"["auths"]["harbor.example.com"]["password"]"#)
        )
        .unwrap(),
        PASSWORD
    );
    assert_eq!(
        unwrap(
            docker,
            true,
            Some(r#"["auths"]["harbor.example.com"]["username"]"#)
        )
        .unwrap(),
        "robot$ci"
    );
    // What is not there, or not of the kind said, is named, not shown.
    assert_eq!(
        unwrap(docker, true, Some(r#"["auths"]["quay.io"]["password"]"#))
            .unwrap_err()
            .to_string(),
        r#"["auths"]["quay.io"]["password"] is not in the JSON document at ["data"][".dockerconfigjson"]"#
    );
    assert_eq!(
        unwrap(docker, false, Some("auths"))
            .unwrap_err()
            .to_string(),
        r#"the value at ["data"][".dockerconfigjson"] is not a JSON document (`jsonKey`)"#
    );
    assert_eq!(
        unwrap(r#"["stringData"]["username"]"#, true, None)
            .unwrap_err()
            .to_string(),
        r#"the value at ["stringData"]["username"] is not base64 text (`decode: base64`)"#
    );
    assert_eq!(
        unwrap(docker, true, Some("auths")).unwrap_err().to_string(),
        r#"["auths"] in the JSON document at ["data"][".dockerconfigjson"] is a mapping, not a single value"#
    );
    // A plaintext value of the Secret (its name) is covered by the MAC.
    assert_eq!(
        tampered("flux-secrets.enc.yaml", "name: harbor-pull", "name: evil"),
        SopsError::MacMismatch
    );
}
