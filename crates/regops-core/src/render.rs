//! `regops render`: the Secrets regops owns, as manifests, without a cluster. Spec, logins and
//! the namespaces the user gives in; objects and YAML out. Scopes are resolved by the same
//! rule as the plan's ([`Membership`]).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use regops_spec::Spec;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::desired::{DesiredSecret, Membership, pull_secret_document};
use crate::login::Login;
use crate::ownership::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, SECRET_KEY, SECRET_TYPE, SPEC_ANNOTATION,
};

/// A scope's namespaces without a cluster. Named namespaces are always in scope. With label,
/// project or workspace selection any namespace may be, and regops takes the user's word for
/// the ones in `given` (`--namespaces`), as a cluster would be taken for its labels: system
/// namespaces only when named, exclusions never.
fn scope_namespaces(m: &Membership<'_>, given: Option<&[String]>) -> BTreeSet<String> {
    match given {
        Some(given) => given
            .iter()
            .filter(|n| m.admits(n, m.is_dynamic()))
            .cloned()
            .collect(),
        None => m
            .named()
            .filter(|n| m.admits(n, false))
            .map(str::to_string)
            .collect(),
    }
}

/// The scopes that select namespaces by what only a cluster knows, for a note when the user
/// gave no namespaces.
pub fn dynamic_scopes(spec: &Spec) -> Vec<&str> {
    spec.scopes
        .values()
        .filter(|s| Membership::new(s).is_dynamic())
        .map(|s| s.name.as_str())
        .collect()
}

/// The Secret for every pull secret in every namespace of its scope, sorted by namespace and
/// name. `logins` must hold every credential the pull secrets use.
pub fn pull_secrets(
    spec: &Spec,
    logins: &BTreeMap<String, Login>,
    given: Option<&[String]>,
) -> Vec<DesiredSecret> {
    let mut out = Vec::new();
    for ps in spec.pull_secrets.values() {
        let Some(scope) = spec.scopes.get(ps.scope.as_str()) else {
            continue;
        };
        let doc = pull_secret_document(spec, ps, logins);
        for ns in scope_namespaces(&Membership::new(scope), given) {
            out.push(DesiredSecret::new(ns, &ps.name.value, &doc, ps.adopt));
        }
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

fn q(s: &str) -> String {
    regops_spec::untrusted::yaml_string(s)
}

/// Multi-document YAML, as `kubectl apply -f -` and Argo CD read it. Secret data is shown only
/// with `show_secrets`; otherwise a placeholder, and a comment naming the logins either way.
pub fn to_yaml(
    objects: &[DesiredSecret],
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
        if let Some(at) = o.expires_at {
            out.push_str(&format!(
                "    {}: {}\n",
                crate::ownership::EXPIRES_AT_ANNOTATION,
                q(&regops_spec::rules::format_timestamp(at))
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use regops_spec::{Sources, SpecFormat};
    use secrecy::SecretString;

    const SPEC: &str = r#"
apiVersion: regops.dev/v1
kind: RegistryConfig
metadata:
  name: team
recipients: []
registries:
  harbor:
    server: harbor.example.com
    credential: robot
credentials:
  robot:
    username: robot$ci
    password:
      env: ROBOT_PASSWORD
scopes:
  named:
    namespaces: [web, api, kube-system]
    exclude: [api]
  labelled:
    selector:
      matchLabels:
        team: web
    exclude: [old]
pullSecrets:
  pull:
    registries: [harbor]
    scope: named
  labelled-pull:
    registries: [harbor]
    scope: labelled
"#;

    fn spec() -> Spec {
        let mut sources = Sources::default();
        sources.add("spec.yaml".into(), SPEC.into(), SpecFormat::Yaml);
        regops_spec::load(sources, "team")
            .unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
            .spec
    }

    fn logins() -> BTreeMap<String, Login> {
        BTreeMap::from([(
            "robot".to_string(),
            Login {
                username: "robot$ci".into(),
                password: SecretString::from("pw-marker".to_string()),
                email: None,
                source_digest: None,
                expires_at: None,
            },
        )])
    }

    fn placed(objects: &[DesiredSecret]) -> Vec<String> {
        objects
            .iter()
            .map(|o| format!("{}/{}", o.namespace, o.name))
            .collect()
    }

    #[test]
    fn namespaces_follow_the_plans_rule() {
        let spec = spec();
        assert_eq!(dynamic_scopes(&spec), ["labelled"]);
        // Without --namespaces: what the scopes name, less exclusions (a named system namespace
        // is in).
        let alone = pull_secrets(&spec, &logins(), None);
        assert_eq!(placed(&alone), ["kube-system/pull", "web/pull"]);
        // With --namespaces: a selector scope takes the user's word, but not for a system
        // namespace or one it excludes; a named scope takes only what it names and does not
        // exclude.
        let given: Vec<String> = ["web", "shop", "kube-system", "old", "api"]
            .map(String::from)
            .to_vec();
        let with = pull_secrets(&spec, &logins(), Some(&given));
        assert_eq!(
            placed(&with),
            [
                "api/labelled-pull",
                "kube-system/pull",
                "shop/labelled-pull",
                "web/labelled-pull",
                "web/pull"
            ]
        );
    }

    #[test]
    fn yaml_hides_the_data_unless_asked() {
        let spec = spec();
        let objects = pull_secrets(&spec, &logins(), Some(&["web".to_string()]));
        let hidden = to_yaml(&objects, "team", false);
        assert!(!hidden.contains("pw-marker"));
        insta::assert_snapshot!(hidden.as_str());
        let shown = to_yaml(&objects, "team", true);
        let line = shown
            .lines()
            .find(|l| l.trim_start().starts_with(".dockerconfigjson:"))
            .unwrap();
        let b64 = line.split_once(": ").unwrap().1;
        let doc = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
        assert_eq!(doc, objects[0].dockerconfigjson.expose_secret());
    }
}
