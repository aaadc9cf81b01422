//! `regops import` end to end: a cluster with hand-made, Rancher- and KubeSphere-style pull
//! secrets, partial copies and foreign entries is imported; the spec plans to adoption only,
//! one apply takes the Secrets over, and then plan and drift find nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Run, regops, run};
use serde_json::{Value, json};

/// The `.dockerconfigjson` kubectl writes.
fn kubectl_doc(server: &str, user: &str, password: &str) -> String {
    let auth = STANDARD.encode(format!("{user}:{password}"));
    format!(
        r#"{{"auths":{{"{server}":{{"username":"{user}","password":"{password}","auth":"{auth}"}}}}}}"#
    )
}

fn secret(ns: &str, name: &str, doc: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "data": {".dockerconfigjson": STANDARD.encode(doc)}})
}

fn namespace(name: &str, labels: Value, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels, "annotations": annotations}})
}

fn service_account(ns: &str, name: &str, entries: &[&str]) -> Value {
    let entries: Vec<Value> = entries.iter().map(|e| json!({"name": e})).collect();
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns},
        "imagePullSecrets": entries})
}

fn deployment(ns: &str, name: &str, image: &str, entries: &[&str]) -> Value {
    let entries: Vec<Value> = entries.iter().map(|e| json!({"name": e})).collect();
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": image}], "imagePullSecrets": entries}}}})
}

/// The mixed cluster: what teams really have.
fn seed(c: &common::Cluster) {
    let project = json!({"field.cattle.io/projectId": "c-m-x7k2:p-9fz2q"});
    for ns in [
        // A label that happens to select exactly where harbor-pull is: not a scope to infer.
        namespace(
            "web",
            json!({"team": "web", "pod-security.kubernetes.io/enforce": "baseline"}),
            json!({}),
        ),
        namespace(
            "api",
            json!({"team": "web", "pod-security.kubernetes.io/enforce": "baseline"}),
            json!({}),
        ),
        namespace("web-sandbox", json!({"team": "web"}), json!({})),
        namespace("payments-api", json!({}), project.clone()),
        namespace("payments-web", json!({}), project.clone()),
        namespace(
            "analytics-prod",
            json!({"kubesphere.io/workspace": "analytics"}),
            json!({}),
        ),
        namespace(
            "analytics-dev",
            json!({"kubesphere.io/workspace": "analytics"}),
            json!({}),
        ),
        namespace("other", json!({"team": "data"}), json!({})),
    ] {
        c.server.seed(ns).unwrap();
    }
    let harbor = kubectl_doc("harbor.example.com", "robot$ci", "MARKER-harbor-one");
    // Made by hand with kubectl, copied into two of the team's three namespaces…
    for ns in ["web", "api"] {
        c.server
            .seed(secret(ns, "harbor-pull", &harbor, json!({})))
            .unwrap();
    }
    // …and, under the same name, another password in the third: not to be merged.
    let other = kubectl_doc("harbor.example.com", "robot$ci", "MARKER-harbor-two");
    c.server
        .seed(secret("web-sandbox", "harbor-pull", &other, json!({})))
        .unwrap();
    // Docker Hub, as kubectl's default server writes it.
    c.server
        .seed(secret(
            "web",
            "hub-pull",
            &kubectl_doc("https://index.docker.io/v1/", "team", "MARKER-hub"),
            json!({}),
        ))
        .unwrap();
    // Made on Rancher's registry page in each namespace of a project.
    let quay = kubectl_doc("quay.io", "bot", "MARKER-quay");
    for ns in ["payments-api", "payments-web"] {
        c.server
            .seed(secret(ns, "quay-pull", &quay, json!({})))
            .unwrap();
    }
    // Made in KubeSphere's console: its own field order and an empty email.
    let ks_auth = STANDARD.encode("ks:MARKER-ks");
    let ks = format!(
        r#"{{"auths":{{"registry.analytics.io":{{"auth":"{ks_auth}","email":"","password":"MARKER-ks","username":"ks"}}}}}}"#
    );
    for ns in ["analytics-prod", "analytics-dev"] {
        c.server
            .seed(secret(ns, "ks-pull", &ks, json!({})))
            .unwrap();
    }
    // A legacy dockercfg Secret: taking it over would replace it, more than adoption.
    c.server
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockercfg",
            "metadata": {"name": "old", "namespace": "analytics-prod"},
            "data": {".dockercfg": STANDARD.encode(r#"{"quay.io":{"username":"old","password":"MARKER-old"}}"#)}}))
        .unwrap();
    // A Rancher project-scoped copy, and a document without logins: left out.
    c.server
        .seed(secret(
            "other",
            "project-copy",
            &kubectl_doc("harbor.example.com", "p", "MARKER-copy"),
            json!({"field.cattle.io/projectId": "c-m-x7k2:p-9fz2q"}),
        ))
        .unwrap();
    c.server
        .seed(secret(
            "other",
            "broken-pull",
            r#"{"nothing":"here"}"#,
            json!({}),
        ))
        .unwrap();
    // References: `default` has the entry (and a foreign one) wherever harbor-pull is;
    // `builder` has it in web only, so binding it would add it in api.
    for ns in ["web", "api"] {
        c.server
            .seed(service_account(
                ns,
                "default",
                &["harbor-pull", "someone-elses"],
            ))
            .unwrap();
        let entries: &[&str] = if ns == "web" { &["harbor-pull"] } else { &[] };
        c.server
            .seed(service_account(ns, "builder", entries))
            .unwrap();
    }
    c.server
        .seed(deployment(
            "web",
            "frontend",
            "harbor.example.com/web/frontend:2",
            &["harbor-pull"],
        ))
        .unwrap();
    c.server
        .seed(deployment("api", "cache", "quay.io/opstree/redis:7", &[]))
        .unwrap();
    // A workload set up in KubeSphere's console: the entry and its annotation.
    let mut report = deployment(
        "analytics-prod",
        "report",
        "registry.analytics.io/bi/report:3",
        &["ks-pull"],
    );
    report["spec"]["template"]["metadata"]["annotations"] =
        json!({"kubesphere.io/imagepullsecrets": "{\"app\":\"ks-pull\"}"});
    c.server.seed(report).unwrap();
}

fn no_leak(r: &Run) {
    assert!(
        !r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"),
        "a password leaked:\n{}",
        r.transcript()
    );
}

fn with_cluster(c: &common::Cluster, cmd: &mut std::process::Command) -> Run {
    cmd.arg("--kubeconfig").arg(&c.kubeconfig);
    run(cmd)
}

#[test]
fn an_imported_spec_plans_adoption_only_then_nothing() {
    let c = common::Cluster::new("");
    seed(&c);
    let (key, public) = common::keygen(c.dir.path(), "key.txt");
    let out = c.dir.path().join("imported.yaml");
    let r = with_cluster(
        &c,
        regops()
            .args(["import", "--recipient", &public, "-o"])
            .arg(&out),
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    no_leak(&r);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("MARKER"), "plaintext in the file:\n{text}");
    assert!(
        text.contains("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // What was found, and what was left out with what to do.
    let summary = r.flat_stderr();
    for expected in [
        "Imported 7 Secrets as 4 pull secrets",
        "Secret harbor-pull in web-sandbox: the same name as the imported `harbor-pull` (2 namespaces), with other logins: not merged",
        "Secret other/project-copy: a copy Rancher keeps of a project's registry credential",
        "Secret other/broken-pull: cannot be read: `.dockerconfigjson` has no `auths`",
        "Secret analytics-prod/old: a legacy kubernetes.io/dockercfg Secret",
        "add pull secret `old` with `adopt: true`",
        "ServiceAccount `builder` is not bound",
    ] {
        assert!(summary.contains(expected), "no `{expected}` in:\n{summary}");
    }
    // The spec as a person would write it.
    for expected in [
        "rancherProject: \"c-m-x7k2:p-9fz2q\"",
        "kubesphereWorkspace: \"analytics\"",
        "server: \"https://index.docker.io/v1/\"",
        "# Found in api, web.",
        "adopt: true",
        "serviceAccounts: [default]",
        "workloads: { kinds: [Deployment] }",
        "kubesphereAnnotation: true",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    assert!(!text.contains("builder"), "{text}");
    // By name, not by the label that happens to fit.
    assert!(
        text.contains("    namespaces:\n      - api\n      - web\n")
            && !text.contains("pod-security"),
        "{text}"
    );
    let spec_args = |sub: &str| {
        let mut cmd = regops();
        cmd.arg(sub).arg("-f").arg(&out).arg("-i").arg(&key);
        cmd
    };
    let r = run(&mut spec_args("check"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    // And it validates against the spec's JSON Schema (editors check it with it).
    let schema: Value = serde_json::from_str(&regops_spec::schema::json_schema()).unwrap();
    let validator = schema_check::validator_for(&schema).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // Right after import: adoption only.
    let r = with_cluster(&c, spec_args("plan").args(["--output", "json"]));
    assert_eq!(r.code, 2, "{}", r.transcript());
    no_leak(&r);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    let mut adopted = 0;
    for change in plan["changes"].as_array().unwrap() {
        if change["action"] == "noop" {
            continue;
        }
        let causes: Vec<&str> = change["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["cause"].as_str().unwrap())
            .collect();
        // Adoption: regops' label and spec annotation on the Secret, no data.
        assert!(
            causes.contains(&"adopted")
                && causes
                    .iter()
                    .all(|k| matches!(*k, "adopted" | "ownership-changed")),
            "more than adoption: {change}"
        );
        for f in change["fields"].as_array().unwrap() {
            let field = f["field"].as_str().unwrap();
            assert!(field.starts_with("metadata."), "not adoption: {change}");
        }
        assert_eq!(change["kind"], "Secret", "{change}");
        adopted += 1;
    }
    assert_eq!(adopted, 7, "{}", r.stdout);
    assert!(
        plan["conflicts"].as_array().unwrap().is_empty(),
        "{}",
        r.stdout
    );
    let before_sandbox = c
        .server
        .object("secrets", "web-sandbox", "harbor-pull")
        .unwrap();
    let r = with_cluster(&c, spec_args("apply").arg("--yes"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    no_leak(&r);
    let r = with_cluster(&c, &mut spec_args("plan"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    let r = with_cluster(&c, &mut spec_args("drift"));
    assert_eq!(r.code, 0, "{}", r.transcript());
    // The same-named Secret with the other password was not touched.
    let after_sandbox = c
        .server
        .object("secrets", "web-sandbox", "harbor-pull")
        .unwrap();
    assert_eq!(before_sandbox["data"], after_sandbox["data"]);
    assert_eq!(
        before_sandbox["metadata"]["resourceVersion"],
        after_sandbox["metadata"]["resourceVersion"]
    );
    // The foreign entry is still there.
    let sa = c
        .server
        .object("serviceaccounts", "web", "default")
        .unwrap();
    assert_eq!(
        sa["imagePullSecrets"],
        json!([{"name": "harbor-pull"}, {"name": "someone-elses"}])
    );
}

#[test]
fn import_refuses_without_a_recipient_and_keeps_an_existing_file() {
    let c = common::Cluster::new("");
    seed(&c);
    let out = c.dir.path().join("imported.yaml");
    let r = with_cluster(&c, regops().args(["import", "-o"]).arg(&out));
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("import needs at least one recipient"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    let (_, public) = common::keygen(c.dir.path(), "key.txt");
    std::fs::write(&out, "mine\n").unwrap();
    let r = with_cluster(
        &c,
        regops()
            .args(["import", "--recipient", &public, "-o"])
            .arg(&out),
    );
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.flat_stderr()
            .contains("exists; nothing was read or written"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "mine\n");
    // Nothing was read from the cluster either.
    assert!(c.server.log().is_empty(), "{:?}", c.server.log());
    let r = with_cluster(
        &c,
        regops()
            .args(["import", "--force", "--recipient", &public, "-o"])
            .arg(&out),
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("adopt: true")
    );
    // Nothing was written to the cluster.
    assert!(
        c.server.log().iter().all(|l| !l.is_write()),
        "{:?}",
        c.server.log()
    );
}

/// `regops import --dry-run --recipient PUBLIC` with `extra`, against the cluster.
fn dry_run(c: &common::Cluster, public: &str, extra: &[&str]) -> Run {
    with_cluster(
        c,
        regops()
            .args(["import", "--dry-run", "--recipient", public])
            .args(extra),
    )
}

#[test]
fn dry_run_prints_the_spec_with_passwords_redacted() {
    let c = common::Cluster::new("");
    seed(&c);
    let (_, public) = common::keygen(c.dir.path(), "key.txt");
    let r = dry_run(&c, &public, &["-n", "web,api"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    no_leak(&r);
    assert!(
        r.stdout
            .contains("(redacted: age ciphertext in the written file)"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("BEGIN AGE"), "{}", r.stdout);
    assert!(!r.stdout.contains("quay-pull"), "-n web,api: {}", r.stdout);
    assert!(r.stdout.contains("harbor-pull"), "{}", r.stdout);
    // --infer-selectors: the label that selects exactly those namespaces.
    let r = dry_run(
        &c,
        &public,
        &["-n", "web,api,web-sandbox", "--infer-selectors"],
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stdout
            .contains("\"pod-security.kubernetes.io/enforce\": \"baseline\""),
        "{}",
        r.stdout
    );
    // --selector: the namespaces a label selector selects.
    let r = dry_run(
        &c,
        &public,
        &["--selector", "kubesphere.io/workspace=analytics"],
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    let names: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  ").and_then(|l| l.strip_suffix(':')))
        .filter(|l| l.ends_with("-pull"))
        .collect();
    assert_eq!(names, ["ks-pull"], "{}", r.stdout);
}

/// The spec as written, passwords redacted: sorted, one comment per pull secret.
#[test]
fn the_spec_reads_as_a_person_would_write_it() {
    let c = common::Cluster::new("");
    seed(&c);
    let (_, public) = common::keygen(c.dir.path(), "key.txt");
    let r = dry_run(&c, &public, &["--name", "platform"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d{2}-\d{2}", "[date]"),
        (r"https?://127\.0\.0\.1:\d+", "[server]"),
        (r"age1[0-9a-z]+", "[recipient]"),
    ]}, {
        insta::assert_snapshot!(r.stdout);
        insta::assert_snapshot!("summary", r.stderr);
    });
}
