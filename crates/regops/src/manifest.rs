//! The Kubernetes objects regops owns, as manifests: today the pull-secret Secrets, for
//! `regops render`. Pure: spec, logins and namespaces in, objects out.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use regops_spec::{Loaded, Scope};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::credentials::Login;

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "regops";
pub const SPEC_ANNOTATION: &str = "regops.dev/spec";
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";
pub const SECRET_KEY: &str = ".dockerconfigjson";

/// One pull secret in one namespace.
pub struct PullSecretObject {
    pub namespace: String,
    pub name: String,
    /// `(server, username)` of each login in it, for review output (usernames are not secret).
    pub logins: Vec<(String, String)>,
    pub dockerconfigjson: SecretString,
}

/// Which namespaces each pull secret goes to, when there is no cluster to ask.
pub struct Targets<'a> {
    /// `--namespaces`: the namespaces to render for.
    pub namespaces: Option<&'a [String]>,
}

/// Namespaces a scope selects by means only a cluster can answer (labels, projects, workspaces).
pub fn is_dynamic(scope: &Scope) -> bool {
    scope.selector.is_some()
        || scope.rancher_project.is_some()
        || scope.kubesphere_workspace.is_some()
}

fn scope_namespaces(scope: &Scope, targets: &Targets<'_>) -> BTreeSet<String> {
    let excluded: BTreeSet<&str> = scope.exclude.iter().map(|e| e.as_str()).collect();
    let named: BTreeSet<String> = scope.namespaces.iter().map(|n| n.value.clone()).collect();
    let chosen: BTreeSet<String> = match targets.namespaces {
        // Named namespaces are always in scope; with label, project or workspace selection any
        // given namespace may be, and without a cluster regops takes the user's word for it.
        Some(given) => given
            .iter()
            .filter(|n| is_dynamic(scope) || named.contains(*n))
            .cloned()
            .collect(),
        None => named,
    };
    chosen
        .into_iter()
        .filter(|n| !excluded.contains(n.as_str()))
        .collect()
}

/// The Secrets for every pull secret in every namespace of its scope, sorted by namespace and
/// name. Logins must hold every credential the pull secrets use.
pub fn pull_secrets(
    loaded: &Loaded,
    logins: &BTreeMap<String, Login>,
    targets: &Targets<'_>,
) -> Vec<PullSecretObject> {
    let spec = &loaded.spec;
    let mut out = Vec::new();
    for ps in spec.pull_secrets.values() {
        let Some(scope) = spec.scopes.get(ps.scope.as_str()) else {
            continue;
        };
        let regops_core::desired::PullSecretDocument {
            logins: review,
            doc,
            ..
        } = regops_core::desired::pull_secret_document(spec, ps, logins);
        for ns in scope_namespaces(scope, targets) {
            out.push(PullSecretObject {
                namespace: ns,
                name: ps.name.value.clone(),
                logins: review.clone(),
                dockerconfigjson: doc.clone(),
            });
        }
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

fn q(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// Multi-document YAML, as `kubectl apply -f -` and Argo CD read it. Secret data is shown only
/// with `show_secrets`; otherwise a placeholder and a comment naming the logins.
pub fn to_yaml(
    objects: &[PullSecretObject],
    spec_name: &str,
    show_secrets: bool,
) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    for o in objects {
        out.push_str("---\napiVersion: v1\nkind: Secret\nmetadata:\n");
        out.push_str(&format!(
            "  name: {}\n  namespace: {}\n",
            q(&o.name),
            q(&o.namespace)
        ));
        out.push_str(&format!(
            "  labels:\n    {MANAGED_BY_LABEL}: {MANAGED_BY_VALUE}\n"
        ));
        out.push_str(&format!(
            "  annotations:\n    {SPEC_ANNOTATION}: {}\n",
            q(spec_name)
        ));
        out.push_str(&format!("type: {SECRET_TYPE}\ndata:\n"));
        let logins: Vec<String> = o
            .logins
            .iter()
            .map(|(s, u)| format!("{s} as {u}"))
            .collect();
        out.push_str(&format!("  # logins: {}\n", q(&logins.join(", "))));
        if show_secrets {
            let encoded =
                Zeroizing::new(STANDARD.encode(o.dockerconfigjson.expose_secret().as_bytes()));
            out.push_str(&format!("  {SECRET_KEY}: {}\n", encoded.as_str()));
        } else {
            out.push_str(&format!(
                "  {SECRET_KEY}: \"(sensitive value: pass --show-secrets)\"\n"
            ));
        }
    }
    out
}
