//! Which clusters each part of a spec is on, and the spec as one cluster sees it. A spec
//! without `clusters` is the one cluster `--kubeconfig` and `--context` reach; with them, a
//! scope is on the clusters it selects (every one by default), and its pull secrets and their
//! bindings go where it goes.

use std::collections::BTreeSet;

use crate::model::{Scope, Spec};

/// The Rancher cluster id a `rancherProject` (`<cluster-id>:<project-id>`) belongs to.
pub fn rancher_cluster(project: &str) -> &str {
    project.split_once(':').map_or(project, |(c, _)| c)
}

/// The clusters `scope` is on, by name: those its `clusters` selects; without it, those whose
/// `rancherId` is its Rancher project's cluster id when it has one, else every cluster.
pub fn scope_clusters<'s>(spec: &'s Spec, scope: &Scope) -> BTreeSet<&'s str> {
    spec.clusters
        .values()
        .filter(|c| match (&scope.clusters, &scope.rancher_project) {
            (Some(sel), _) => sel.selects(c),
            (None, Some(p)) => {
                c.rancher_id.as_ref().map(|r| r.as_str()) == Some(rancher_cluster(p.as_str()))
            }
            (None, None) => true,
        })
        .map(|c| c.name.as_str())
        .collect()
}

/// The spec as cluster `name` sees it: the scopes on it, the pull secrets of those scopes and
/// the bindings of those pull secrets. Registries and credentials stay whole (only those the
/// pull secrets use are ever resolved).
pub fn for_cluster(spec: &Spec, name: &str) -> Spec {
    let mut view = spec.clone();
    view.scopes
        .retain(|_, scope| scope_clusters(spec, scope).contains(name));
    let scopes = &view.scopes;
    view.pull_secrets
        .retain(|_, ps| scopes.contains_key(ps.scope.as_str()));
    let pull_secrets = &view.pull_secrets;
    view.bindings
        .retain(|b| pull_secrets.contains_key(b.pull_secret.as_str()));
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Spec {
        let mut sources = crate::Sources::default();
        sources.add("fleet.yaml".into(), text.into(), crate::SpecFormat::Yaml);
        match crate::load(sources, "fleet") {
            Ok(l) => l.spec,
            Err(inv) => panic!("{:?}", inv.diagnostics),
        }
    }

    const FLEET: &str = "\
apiVersion: regops.dev/v1
kind: RegistryConfig
registries:
  harbor: {server: harbor.example.com, credential: robot}
credentials:
  robot: {username: robot, password: {env: PW}}
clusters:
  prod-eu: {labels: {env: prod, region: eu}, rancherId: c-m-eu}
  prod-us: {labels: {env: prod, region: us}}
  staging: {context: stage-ctx, labels: {env: staging}}
scopes:
  everywhere: {namespaces: [web]}
  prod: {namespaces: [api], clusters: {matchLabels: {env: prod}}}
  named: {namespaces: [batch], clusters: {names: [staging]}}
  not-us: {namespaces: [ops], clusters: {matchExpressions: [{key: region, operator: NotIn, values: [us]}]}}
  eu-project: {rancherProject: \"c-m-eu:p-apps\"}
pullSecrets:
  all: {registries: [harbor], scope: everywhere}
  prod: {registries: [harbor], scope: prod}
  batch: {registries: [harbor], scope: named}
  apps: {registries: [harbor], scope: eu-project}
bindings:
  - {pullSecret: prod, serviceAccounts: [default]}
  - {pullSecret: batch, serviceAccounts: [default]}
";

    fn names(set: BTreeSet<&str>) -> Vec<&str> {
        set.into_iter().collect()
    }

    #[test]
    fn scopes_select_clusters_by_name_label_expression_and_rancher_id() {
        let spec = load(FLEET);
        let on = |s: &str| names(scope_clusters(&spec, &spec.scopes[s]));
        assert_eq!(on("everywhere"), ["prod-eu", "prod-us", "staging"]);
        assert_eq!(on("prod"), ["prod-eu", "prod-us"]);
        assert_eq!(on("named"), ["staging"]);
        // NotIn also holds for a cluster without the label, as for namespaces.
        assert_eq!(on("not-us"), ["prod-eu", "staging"]);
        assert_eq!(on("eu-project"), ["prod-eu"]);
        assert_eq!(spec.clusters["staging"].context(), "stage-ctx");
        assert_eq!(spec.clusters["prod-us"].context(), "prod-us");
    }

    #[test]
    fn a_cluster_sees_its_scopes_their_pull_secrets_and_bindings() {
        let spec = load(FLEET);
        let staging = for_cluster(&spec, "staging");
        assert_eq!(
            staging.scopes.keys().collect::<Vec<_>>(),
            ["everywhere", "named", "not-us"]
        );
        assert_eq!(
            staging.pull_secrets.keys().collect::<Vec<_>>(),
            ["all", "batch"]
        );
        assert_eq!(staging.bindings.len(), 1);
        assert_eq!(staging.bindings[0].pull_secret.as_str(), "batch");
        let eu = for_cluster(&spec, "prod-eu");
        assert_eq!(
            eu.pull_secrets.keys().collect::<Vec<_>>(),
            ["all", "apps", "prod"]
        );
        // Registries and credentials are not cut.
        assert_eq!(eu.registries.len(), 1);
        assert_eq!(eu.credentials.len(), 1);
    }
}
