//! [`Node`] to the typed model, one file at a time. Every problem is collected (unknown or
//! misspelt fields, wrong types, invalid names, missing fields) instead of stopping at the first.
//! References between sections are checked later, on the merged spec, in [`crate::validate`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::kind::WorkloadKind;
use crate::model::*;
use crate::node::{Loc, Node, Scalar, Spanned, Value};
use crate::rules;
use crate::source::expected;

pub const SPEC_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "recipients",
    "registries",
    "credentials",
    "scopes",
    "pullSecrets",
    "bindings",
    "clusters",
    "workloadKinds",
    "nodeTrust",
];
pub const NODE_TRUST_FIELDS: &[&str] = &["namespace", "configMap", "allowList"];
pub const METADATA_FIELDS: &[&str] = &["name"];
pub const REGISTRY_FIELDS: &[&str] = &["server", "credential", "insecure", "caFile"];
pub const CREDENTIAL_FIELDS: &[&str] = &[
    "username",
    "password",
    "email",
    "expires",
    "warnBefore",
    "refreshBefore",
    "refreshInterval",
];
pub const SECRET_SOURCE_FIELDS: &[&str] = &[
    "ageFile",
    "env",
    "file",
    "helper",
    "sops",
    "awsSecretsManager",
    "gcpSecretManager",
    "azureKeyVault",
    "vault",
    "ecr",
    "gcp",
    "acr",
];
pub const AWS_SECRETS_MANAGER_FIELDS: &[&str] = &["secretId", "region", "versionStage", "jsonKey"];
pub const VAULT_FIELDS: &[&str] = &["path", "field", "mount"];
pub const GCP_SECRET_MANAGER_FIELDS: &[&str] = &["name", "jsonKey"];
pub const AZURE_KEY_VAULT_FIELDS: &[&str] = &["vault", "secret", "version", "jsonKey"];
pub const SOPS_FIELDS: &[&str] = &["file", "extract", "format", "decode", "jsonKey"];
pub const ECR_FIELDS: &[&str] = &["region", "registryId", "roleArn"];
pub const GCP_FIELDS: &[&str] = &[];
pub const ACR_FIELDS: &[&str] = &["tenantId", "clientId"];
pub const SCOPE_FIELDS: &[&str] = &[
    "namespaces",
    "selector",
    "rancherProject",
    "kubesphereWorkspace",
    "exclude",
    "clusters",
];
pub const CLUSTER_FIELDS: &[&str] = &["context", "kubeconfig", "labels", "rancherId"];
pub const CLUSTER_SELECTOR_FIELDS: &[&str] = &["names", "matchLabels", "matchExpressions"];
pub const SELECTOR_FIELDS: &[&str] = &["matchLabels", "matchExpressions"];
pub const REQUIREMENT_FIELDS: &[&str] = &["key", "operator", "values"];
pub const PULL_SECRET_FIELDS: &[&str] = &["registries", "scope", "adopt"];
pub const BINDING_FIELDS: &[&str] = &[
    "pullSecret",
    "serviceAccounts",
    "workloads",
    "kubesphereAnnotation",
];
pub const WORKLOAD_FIELDS: &[&str] = &["kinds", "selector", "images"];
pub const DECLARED_KIND_FIELDS: &[&str] = &["apiVersion", "resource", "podTemplate"];

/// The fields the decoder accepts, by the schema definition they correspond to. A test checks
/// this table against the generated JSON Schema, so the two cannot drift apart.
pub const FIELD_TABLE: &[(&str, &[&str])] = &[
    ("Spec", SPEC_FIELDS),
    ("Metadata", METADATA_FIELDS),
    ("Registry", REGISTRY_FIELDS),
    ("Credential", CREDENTIAL_FIELDS),
    ("SecretSource", SECRET_SOURCE_FIELDS),
    ("EcrSource", ECR_FIELDS),
    ("GcpSource", GCP_FIELDS),
    ("AcrSource", ACR_FIELDS),
    ("SopsSource", SOPS_FIELDS),
    ("AwsSecretsManagerSource", AWS_SECRETS_MANAGER_FIELDS),
    ("VaultSource", VAULT_FIELDS),
    ("GcpSecretManagerSource", GCP_SECRET_MANAGER_FIELDS),
    ("AzureKeyVaultSource", AZURE_KEY_VAULT_FIELDS),
    ("Scope", SCOPE_FIELDS),
    ("LabelSelector", SELECTOR_FIELDS),
    ("LabelRequirement", REQUIREMENT_FIELDS),
    ("PullSecret", PULL_SECRET_FIELDS),
    ("Binding", BINDING_FIELDS),
    ("WorkloadSelector", WORKLOAD_FIELDS),
    ("Cluster", CLUSTER_FIELDS),
    ("ClusterSelector", CLUSTER_SELECTOR_FIELDS),
    ("DeclaredKind", DECLARED_KIND_FIELDS),
    ("NodeTrust", NODE_TRUST_FIELDS),
];

type Entries<'n> = &'n [(Spanned<String>, Node)];

/// A credential's expiry fields, as written and as decoded.
struct Expiry {
    expires: Option<Spanned<String>>,
    expires_at: Option<i64>,
    warn_before: Option<Spanned<String>>,
    warn_before_secs: u64,
}

fn field<'n>(entries: Entries<'n>, key: &str) -> Option<&'n Node> {
    entries.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
}

pub(crate) struct Decoder<'d> {
    diags: &'d mut Diagnostics,
    /// Locations of plaintext secrets found in the source, to be masked in any rendering.
    pub(crate) redactions: Vec<Loc>,
    /// The workload kinds the whole spec declares (in any of its files), by name: what a
    /// binding's `kinds:` may name besides the built-in ones.
    declared: BTreeMap<String, WorkloadKind>,
}

impl<'d> Decoder<'d> {
    pub(crate) fn new(diags: &'d mut Diagnostics) -> Self {
        Decoder {
            diags,
            redactions: Vec::new(),
            declared: BTreeMap::new(),
        }
    }

    /// A decoder whose bindings may name the kinds `declared` declares.
    pub(crate) fn with_kinds(mut self, declared: &BTreeMap<String, DeclaredKind>) -> Self {
        self.declared = declared
            .iter()
            .map(|(name, d)| (name.clone(), d.kind))
            .collect();
        self
    }

    /// The workload kinds one file declares (`workloadKinds:`), each added to the kind table.
    /// Read before the rest of the spec, from every file, so that a binding may name a kind
    /// another file declares; the rest of the file is checked by [`Decoder::spec`].
    pub(crate) fn workload_kinds(&mut self, root: &Node) -> BTreeMap<String, DeclaredKind> {
        let mut out = BTreeMap::new();
        let Value::Map(entries) = &root.value else {
            return out;
        };
        let Some(n) = field(entries, "workloadKinds") else {
            return out;
        };
        for (name, node) in self.named(n, "workload kind", rules::kind_name) {
            if let Some(d) = self.declared_kind(name.clone(), node) {
                out.insert(name.value, d);
            }
        }
        out
    }

    fn declared_kind(&mut self, name: Spanned<String>, node: &Node) -> Option<DeclaredKind> {
        let desc = format!("workload kind `{}`", name.value);
        let Some(e) = self.mapping(node, &desc, DECLARED_KIND_FIELDS) else {
            if node.is_null() {
                self.push(
                    Diagnostic::error("spec::missing-field", format!("{desc} is empty"))
                        .with_label(name.loc, "needs `apiVersion`, `resource` and `podTemplate`"),
                );
            }
            return None;
        };
        let api_version = self
            .required(e, "apiVersion", name.loc, &desc)
            .and_then(|n| self.checked_string(n, "apiVersion", rules::group_version));
        let resource = self
            .required(e, "resource", name.loc, &desc)
            .and_then(|n| self.checked_string(n, "resource", rules::dns1035_label));
        let pod_template = self
            .required(e, "podTemplate", name.loc, &desc)
            .and_then(|n| self.checked_string(n, "pod template path", rules::field_path));
        let (api_version, resource, pod_template) = (api_version?, resource?, pod_template?);
        // Any of the three that broke a rule was reported above; declare only a whole row.
        if rules::kind_name(&name).is_err()
            || rules::group_version(&api_version).is_err()
            || rules::dns1035_label(&resource).is_err()
            || rules::field_path(&pod_template).is_err()
        {
            return None;
        }
        let (group, version) = api_version.split_once('/')?;
        let declaration = crate::kind::Declaration {
            name: name.value.clone(),
            group: group.to_string(),
            version: version.to_string(),
            plural: resource.value.clone(),
            template: pod_template.split('.').map(str::to_string).collect(),
        };
        match crate::kind::declare(&declaration) {
            Ok(kind) => Some(DeclaredKind {
                name,
                api_version,
                resource,
                pod_template,
                kind,
            }),
            Err(e @ crate::kind::DeclareError::BuiltIn(_)) => {
                self.push(
                    Diagnostic::error(
                        "spec::builtin-kind",
                        format!("workload kind `{}` is declared, but {e}", name.value),
                    )
                    .with_label(name.loc, "a built-in kind")
                    .with_help(format!(
                        "leave it out: bindings name `{}` without declaring it",
                        name.value
                    )),
                );
                None
            }
            Err(e) => {
                self.push(
                    Diagnostic::error("spec::too-many-kinds", e.to_string())
                        .with_label(name.loc, "one too many"),
                );
                None
            }
        }
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// The entries of a mapping; unknown keys are reported with the closest known one.
    fn mapping<'n>(&mut self, node: &'n Node, what: &str, known: &[&str]) -> Option<Entries<'n>> {
        let Value::Map(entries) = &node.value else {
            if !node.is_null() {
                self.push(expected(node, &format!("a mapping ({what})")));
            }
            return None;
        };
        for (key, _) in entries {
            if !known.contains(&key.as_str()) {
                let hint = did_you_mean(key, known.iter().copied());
                self.push(
                    Diagnostic::error(
                        "spec::unknown-field",
                        format!("unknown field `{}` in {what}", key.value),
                    )
                    .with_label(key.loc, "unknown field")
                    .with_help(match hint {
                        Some(h) => format!("did you mean `{h}`?"),
                        None => format!("expected one of: {}", known.join(", ")),
                    }),
                );
            }
        }
        Some(entries)
    }

    /// A mapping from names to values, with each name checked by `rule`.
    fn named<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        rule: fn(&str) -> Result<(), rules::RuleError>,
    ) -> Vec<(Spanned<String>, &'n Node)> {
        let Value::Map(entries) = &node.value else {
            if !node.is_null() {
                self.push(expected(node, &format!("a mapping of {what} names")));
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in entries {
            if let Err(why) = rule(key) {
                self.push(
                    Diagnostic::error(
                        "spec::invalid-name",
                        format!("invalid {what} name `{}`: it {why}", key.value),
                    )
                    .with_label(key.loc, "invalid name"),
                );
            }
            out.push((key.clone(), value));
        }
        out
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        match &node.value {
            Value::Scalar(Scalar { text, .. }) if !node.is_null() => {
                Some(Spanned::new(text.clone(), node.loc))
            }
            _ => {
                self.push(expected(node, what));
                None
            }
        }
    }

    fn checked_string(
        &mut self,
        node: &Node,
        what: &str,
        rule: fn(&str) -> Result<(), rules::RuleError>,
    ) -> Option<Spanned<String>> {
        let s = self.string(node, what)?;
        if let Err(why) = rule(&s) {
            self.push(
                Diagnostic::error(
                    "spec::invalid-name",
                    format!("invalid {what} `{}`: it {why}", s.value),
                )
                .with_label(s.loc, "invalid name"),
            );
        }
        Some(s)
    }

    fn required<'n>(
        &mut self,
        entries: Entries<'n>,
        key: &str,
        owner: Loc,
        owner_desc: &str,
    ) -> Option<&'n Node> {
        let found = field(entries, key);
        if found.is_none() {
            self.push(
                Diagnostic::error(
                    "spec::missing-field",
                    format!("missing field `{key}` in {owner_desc}"),
                )
                .with_label(owner, format!("needs `{key}`")),
            );
        }
        found
    }

    fn boolean(&mut self, node: &Node) -> Option<bool> {
        match &node.value {
            Value::Scalar(Scalar {
                text,
                quoted: false,
            }) => match text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => {
                    self.push(expected(node, "true or false"));
                    None
                }
            },
            _ => {
                self.push(expected(node, "true or false"));
                None
            }
        }
    }

    fn opt_bool(&mut self, entries: Entries<'_>, key: &str) -> bool {
        field(entries, key)
            .and_then(|n| self.boolean(n))
            .unwrap_or(false)
    }

    fn list<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) => items,
            _ if node.is_null() => &[],
            _ => {
                let d = expected(node, &format!("a list of {}", plural(what)));
                let help = matches!(node.value, Value::Scalar(_))
                    .then(|| format!("write `[{}]`", node_text(node)));
                self.push(d.with_help_opt(help));
                &[]
            }
        }
    }

    fn string_list(
        &mut self,
        node: Option<&Node>,
        what: &str,
        rule: fn(&str) -> Result<(), rules::RuleError>,
    ) -> Vec<Spanned<String>> {
        let Some(node) = node else { return Vec::new() };
        let items = self.list(node, what);
        let mut out: Vec<Spanned<String>> = Vec::new();
        // Each entry's index in `out`, so a list of thousands is checked in linear time.
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for item in items {
            let Some(s) = self.checked_string(item, what, rule) else {
                continue;
            };
            if let Some(first) = seen.get(&s.value).and_then(|&i| out.get(i)) {
                self.push(
                    Diagnostic::warning(
                        "spec::duplicate-entry",
                        format!("{what} `{}` is listed twice", s.value),
                    )
                    .with_label(s.loc, "listed again here")
                    .with_label(first.loc, "first listed here"),
                );
                continue;
            }
            seen.insert(s.value.clone(), out.len());
            out.push(s);
        }
        out
    }

    // Kept whole (over 80 lines): the top-level fields, one after another, as the schema lists
    // them.
    pub(crate) fn spec(&mut self, root: &Node) -> Spec {
        let mut spec = Spec::default();
        let Some(entries) = self.mapping(root, "the spec", SPEC_FIELDS) else {
            if root.is_null() {
                return spec;
            }
            return spec;
        };
        let start = Loc::new(root.loc.file, 0, 0);
        match field(entries, "apiVersion") {
            Some(n) => {
                if let Some(v) = self.string(n, "an apiVersion") {
                    if v.value != API_VERSION {
                        self.push(
                            Diagnostic::error(
                                "spec::api-version",
                                format!("unsupported apiVersion `{}`", v.value),
                            )
                            .with_label(v.loc, "unsupported")
                            .with_help(format!("this regops reads `apiVersion: {API_VERSION}`")),
                        );
                    }
                    spec.api_version = v.value;
                }
            }
            None => self.push(
                Diagnostic::error(
                    "spec::missing-field",
                    "missing `apiVersion`: is this a regops spec?",
                )
                .with_label(start, "")
                .with_help(format!(
                    "start the file with `apiVersion: {API_VERSION}` and `kind: {KIND}`"
                )),
            ),
        }
        if let Some(n) = self.required(entries, "kind", start, "the spec")
            && let Some(v) = self.string(n, "a kind")
        {
            if v.value != KIND {
                self.push(
                    Diagnostic::error("spec::kind", format!("unsupported kind `{}`", v.value))
                        .with_label(v.loc, "unsupported")
                        .with_help(format!("a regops spec is `kind: {KIND}`")),
                );
            }
            spec.kind = v.value;
        }
        if let Some(m) = field(entries, "metadata")
            && let Some(me) = self.mapping(m, "metadata", METADATA_FIELDS)
        {
            spec.metadata.name = field(me, "name")
                .and_then(|n| self.checked_string(n, "spec name", rules::dns1123_label));
        }
        spec.recipients = self.string_list(field(entries, "recipients"), "recipient", |_| Ok(()));
        if let Some(n) = field(entries, "registries") {
            for (name, node) in self.named(n, "registry", rules::spec_name) {
                spec.declared.registries.insert(name.value.clone());
                if let Some(r) = self.registry(name.clone(), node) {
                    spec.registries.insert(name.value, r);
                }
            }
        }
        if let Some(n) = field(entries, "credentials") {
            for (name, node) in self.named(n, "credential", rules::spec_name) {
                spec.declared.credentials.insert(name.value.clone());
                if let Some(c) = self.credential(name.clone(), node) {
                    spec.credentials.insert(name.value, c);
                }
            }
        }
        if let Some(n) = field(entries, "scopes") {
            for (name, node) in self.named(n, "scope", rules::spec_name) {
                spec.declared.scopes.insert(name.value.clone());
                if let Some(s) = self.scope(name.clone(), node) {
                    spec.scopes.insert(name.value, s);
                }
            }
        }
        if let Some(n) = field(entries, "pullSecrets") {
            for (name, node) in self.named(n, "pull secret", rules::dns1123_subdomain) {
                spec.declared.pull_secrets.insert(name.value.clone());
                if let Some(p) = self.pull_secret(name.clone(), node) {
                    spec.pull_secrets.insert(name.value, p);
                }
            }
        }
        if let Some(n) = field(entries, "bindings") {
            for item in self.list(n, "binding") {
                if let Some(b) = self.binding(item) {
                    spec.bindings.push(b);
                }
            }
        }
        if let Some(n) = field(entries, "clusters") {
            for (name, node) in self.named(n, "cluster", rules::dns1123_label) {
                spec.declared.clusters.insert(name.value.clone());
                if let Some(c) = self.cluster(name.clone(), node) {
                    spec.clusters.insert(name.value, c);
                }
            }
        }
        if let Some((key, n)) = entries.iter().find(|(k, _)| k.value == "nodeTrust") {
            spec.node_trust = self.node_trust(key.loc, n);
        }
        spec
    }

    /// `nodeTrust:` alone (null) takes the component's names.
    fn node_trust(&mut self, at: Loc, node: &Node) -> Option<NodeTrust> {
        let mut t = NodeTrust {
            namespace: None,
            config_map: None,
            allow_list: None,
            loc: at,
        };
        if node.is_null() {
            return Some(t);
        }
        let e = self.mapping(node, "nodeTrust", NODE_TRUST_FIELDS)?;
        t.namespace = field(e, "namespace")
            .and_then(|n| self.checked_string(n, "namespace", rules::dns1123_label));
        t.config_map = field(e, "configMap")
            .and_then(|n| self.checked_string(n, "ConfigMap name", rules::dns1123_subdomain));
        t.allow_list = field(e, "allowList")
            .and_then(|n| self.checked_string(n, "ConfigMap name", rules::dns1123_subdomain));
        if let (Some(a), Some(b)) = (&t.config_map, &t.allow_list)
            && a.value == b.value
        {
            self.push(
                Diagnostic::error(
                    "spec::node-trust-allow-list",
                    format!("`allowList` names `{}`, the ConfigMap apply writes", b.value),
                )
                .with_label(b.loc, "the same as `configMap`")
                .with_help("the allowlist is the operator's, never written by regops: give it a ConfigMap of its own"),
            );
        }
        Some(t)
    }

    fn cluster(&mut self, name: Spanned<String>, node: &Node) -> Option<Cluster> {
        let desc = format!("cluster `{}`", name.value);
        if node.is_null() {
            // `prod:` alone: the context of that name in the default kubeconfig.
            return Some(Cluster {
                name,
                context: None,
                kubeconfig: None,
                labels: BTreeMap::new(),
                rancher_id: None,
            });
        }
        let e = self.mapping(node, &desc, CLUSTER_FIELDS)?;
        let context = field(e, "context").and_then(|n| {
            self.checked_string(n, "kubeconfig context", |s| {
                if s.is_empty() {
                    Err(rules::broke("kubeconfig_context", "must not be empty"))
                } else {
                    Ok(())
                }
            })
        });
        let kubeconfig = field(e, "kubeconfig")
            .and_then(|n| self.string(n, "a file path"))
            .map(|s| Spanned::new(PathBuf::from(s.value), s.loc));
        let mut labels = BTreeMap::new();
        if let Some(l) = field(e, "labels") {
            for (key, value) in self.named(l, "label key", rules::label_key) {
                if let Some(v) =
                    self.checked_string_allow_empty(value, "label value", rules::label_value)
                {
                    labels.insert(key.value, v);
                }
            }
        }
        let rancher_id = field(e, "rancherId")
            .and_then(|n| self.checked_string(n, "Rancher cluster id", rules::dns1123_label));
        Some(Cluster {
            name,
            context,
            kubeconfig,
            labels,
            rancher_id,
        })
    }

    fn cluster_selector(&mut self, node: &Node, scope: &str) -> Option<ClusterSelector> {
        let e = self.mapping(
            node,
            &format!("`clusters` of {scope}"),
            CLUSTER_SELECTOR_FIELDS,
        )?;
        let names = self.string_list(field(e, "names"), "cluster", rules::dns1123_label);
        let labels = self.selector_terms(e, node.loc);
        if names.is_empty() && labels.match_labels.is_empty() && labels.match_expressions.is_empty()
        {
            self.push(
                Diagnostic::error("spec::empty-list", format!("`clusters` of {scope} is empty"))
                    .with_label(node.loc, "empty")
                    .with_help("give `names`, `matchLabels` or `matchExpressions`; leave `clusters` out for every cluster"),
            );
        }
        Some(ClusterSelector {
            names,
            match_labels: labels.match_labels,
            match_expressions: labels.match_expressions,
            loc: node.loc,
        })
    }

    fn registry(&mut self, name: Spanned<String>, node: &Node) -> Option<Registry> {
        let desc = format!("registry `{}`", name.value);
        let Some(e) = self.mapping(node, &desc, REGISTRY_FIELDS) else {
            if node.is_null() {
                self.push(
                    Diagnostic::error("spec::missing-field", format!("{desc} is empty"))
                        .with_label(name.loc, "needs `server` and `credential`"),
                );
            }
            return None;
        };
        let server = self
            .required(e, "server", name.loc, &desc)
            .and_then(|n| self.string(n, "a registry server"));
        let server = server.and_then(|s| match rules::normalize_server(&s) {
            Ok(norm) => Some(Spanned::new(norm, s.loc)),
            Err(err) => {
                self.push(
                    Diagnostic::error("spec::invalid-server", err.message)
                        .with_label(s.loc, "invalid registry server")
                        .with_help_opt(err.help),
                );
                None
            }
        });
        let credential = self
            .required(e, "credential", name.loc, &desc)
            .and_then(|n| self.string(n, "a credential name"));
        let insecure = self.opt_bool(e, "insecure");
        let ca_file = field(e, "caFile")
            .and_then(|n| self.string(n, "a file path"))
            .map(|s| Spanned::new(PathBuf::from(s.value), s.loc));
        if insecure && let Some(ca) = &ca_file {
            self.push(
                Diagnostic::warning(
                    "spec::ca-unused",
                    format!("{desc} is plain HTTP (`insecure: true`); `caFile` is not used"),
                )
                .with_label(ca.loc, "ignored"),
            );
        }
        Some(Registry {
            name,
            server: server?,
            credential: credential?,
            insecure,
            ca_file,
        })
    }

    fn credential(&mut self, name: Spanned<String>, node: &Node) -> Option<Credential> {
        let desc = format!("credential `{}`", name.value);
        let e = self.mapping(node, &desc, CREDENTIAL_FIELDS)?;
        // A helper gives the user name; a minted token has its cloud's.
        let source_key = field(e, "password").and_then(|n| match &n.value {
            Value::Map(m) => m
                .iter()
                .map(|(k, _)| k.value.as_str())
                .find(|k| matches!(*k, "helper" | "ecr" | "gcp" | "acr")),
            _ => None,
        });
        let from_helper = source_key.is_some();
        // `username: {sops: {...}}`: read from a sops file when regops runs.
        let username_node = field(e, "username");
        let username_sops = match username_node.map(|n| &n.value) {
            Some(Value::Map(_)) if !from_helper => {
                let what = format!("the user name of {desc}");
                let n = username_node?;
                let e = self.mapping(n, &what, &["sops"])?;
                let Some(inner) = field(e, "sops") else {
                    self.push(
                        Diagnostic::error(
                            "spec::invalid-value",
                            format!("the user name of {desc} is a mapping without `sops`"),
                        )
                        .with_label(n.loc, "a name, or `{sops: {file, extract}}`"),
                    );
                    return None;
                };
                Some(self.sops_source(inner, &format!("`sops` of {what}"))?)
            }
            _ => None,
        };
        let username = if username_sops.is_some() {
            None
        } else if from_helper {
            username_node.and_then(|n| self.string(n, "a user name"))
        } else {
            self.required(e, "username", name.loc, &desc)
                .and_then(|n| self.string(n, "a user name"))
        };
        let missing_username = username.is_none() && username_sops.is_none() && !from_helper;
        if let Some(u) = &username
            && u.contains(':')
        {
            self.push(
                Diagnostic::error(
                    "spec::invalid-username",
                    format!("the user name of {desc} contains `:`"),
                )
                .with_label(u.loc, "registries split `user:password` at the first `:`"),
            );
        }
        let password = match field(e, "password") {
            None => {
                self.push(
                    Diagnostic::error(
                        "spec::missing-credential",
                        format!("{desc} has no password"),
                    )
                    .with_label(name.loc, "no `password`")
                    .with_help(format!(
                        "run `regops encrypt -f <spec> --credential {}` to add it, encrypted",
                        name.value
                    )),
                );
                None
            }
            Some(n) => self.secret_source(n, &desc, &name),
        };
        let email = field(e, "email").and_then(|n| self.string(n, "an e-mail address"));
        let Expiry {
            expires,
            expires_at,
            warn_before,
            warn_before_secs,
        } = self.expiry(e, &desc);
        if missing_username {
            return None;
        }
        let password = password?;
        let refresh_before = field(e, "refreshBefore").and_then(|n| self.string(n, "a duration"));
        let refresh_before_secs = self.minted_checks(
            &desc,
            &password,
            username.as_ref(),
            expires.as_ref(),
            refresh_before.as_ref(),
        );
        let refresh_interval =
            field(e, "refreshInterval").and_then(|n| self.string(n, "a duration"));
        let refresh_interval_secs =
            self.refresh_interval(&desc, &password, refresh_interval.as_ref());
        Some(Credential {
            name,
            username,
            username_sops,
            password,
            email,
            expires,
            warn_before,
            expires_at,
            warn_before_secs,
            refresh_before,
            refresh_before_secs,
            refresh_interval,
            refresh_interval_secs,
        })
    }

    /// `refreshInterval`, only for a password read from a secret manager: a whole number of
    /// seconds (the controller's `--secret-refresh-min` is the floor; a spec cannot go under it).
    fn refresh_interval(
        &mut self,
        desc: &str,
        password: &SecretSource,
        interval: Option<&Spanned<String>>,
    ) -> Option<u64> {
        let r = interval?;
        if crate::trust::secret_of(password).is_none() {
            self.push(
                Diagnostic::error(
                    "spec::refresh-interval",
                    format!("{desc} has `refreshInterval`, but its password is not read from a secret manager"),
                )
                .with_label(r.loc, "only for a secret manager's value")
                .with_help("a minted token takes `refreshBefore`; other passwords are read again when the spec is"),
            );
            return None;
        }
        match crate::duration::whole_seconds(r) {
            // The controller reads no more often than its `--secret-refresh-min` allows,
            // whatever a spec asks.
            Ok(secs) => Some(secs),
            Err(why) => {
                self.push(
                    Diagnostic::error(
                        "spec::invalid-duration",
                        format!("`refreshInterval` of {desc} {why}"),
                    )
                    .with_label(r.loc, "not a duration")
                    .with_help("write a whole number of hours, minutes or seconds: `1h`, `15m`"),
                );
                None
            }
        }
    }

    /// A credential's `expires` and `warnBefore`, each checked.
    fn expiry(&mut self, e: Entries<'_>, desc: &str) -> Expiry {
        let expires = field(e, "expires").and_then(|n| self.string(n, "a date"));
        let expires_at = expires.as_ref().and_then(|x| match rules::expiry(x) {
            Ok(at) => Some(at),
            Err(why) => {
                self.push(
                    Diagnostic::error("spec::invalid-date", format!("`expires` of {desc} {why}"))
                        .with_label(x.loc, "not a date")
                        .with_help("write a date (`2027-03-01`, midnight UTC) or an RFC 3339 time (`2027-03-01T12:00:00Z`)"),
                );
                None
            }
        });
        let warn_before = field(e, "warnBefore").and_then(|n| self.string(n, "a duration"));
        let warn_before_secs = match &warn_before {
            None => DEFAULT_WARN_BEFORE_SECS,
            Some(w) => match crate::duration::whole_seconds(w) {
                Ok(secs) => secs,
                Err(why) => {
                    self.push(
                        Diagnostic::error(
                            "spec::invalid-duration",
                            format!("`warnBefore` of {desc} {why}"),
                        )
                        .with_label(w.loc, "not a duration")
                        .with_help(
                            "write a duration in whole seconds or more: `14d`, `72h`, `1h30m`",
                        ),
                    );
                    DEFAULT_WARN_BEFORE_SECS
                }
            },
        };
        if let (Some(w), None) = (&warn_before, &expires) {
            self.push(
                Diagnostic::warning(
                    "spec::warn-before-unused",
                    format!("{desc} has `warnBefore` but no `expires`"),
                )
                .with_label(w.loc, "nothing to warn about"),
            );
        }
        Expiry {
            expires,
            expires_at,
            warn_before,
            warn_before_secs,
        }
    }

    /// What only a minted token (`ecr`, `gcp`, `acr`) may have, and what it may not: its
    /// cloud's user name, no `expires` (the token says), `refreshBefore` shorter than its
    /// lifetime. The refresh margin in seconds (0 for other credentials).
    // Kept whole (over 80 lines): each rule is a diagnostic of a few lines, in spec order.
    fn minted_checks(
        &mut self,
        desc: &str,
        password: &SecretSource,
        username: Option<&Spanned<String>>,
        expires: Option<&Spanned<String>>,
        refresh_before: Option<&Spanned<String>>,
    ) -> u64 {
        let Some(minted) = Minted::of(password) else {
            if let Some(r) = refresh_before {
                self.push(
                    Diagnostic::error(
                        "spec::refresh-before",
                        format!("{desc} has `refreshBefore`, but its password is not minted"),
                    )
                    .with_label(r.loc, "only for `ecr`, `gcp` and `acr` tokens")
                    .with_help("a static password that expires takes `expires` and `warnBefore`"),
                );
            }
            return 0;
        };
        let key = minted.key();
        if let Some(u) = username
            && u.value != minted.username()
        {
            self.push(
                Diagnostic::error(
                    "spec::minted-username",
                    format!(
                        "{desc} logs in with a token from `{key}`, whose user name is `{}`",
                        minted.username()
                    ),
                )
                .with_label(u.loc, "not the token's user name")
                .with_help("leave `username` out"),
            );
        }
        if let Some(x) = expires {
            self.push(
                Diagnostic::error(
                    "spec::minted-expires",
                    format!(
                        "{desc} has `expires`, but its tokens from `{key}` say when they expire"
                    ),
                )
                .with_label(x.loc, "not for a minted token")
                .with_help("use `refreshBefore` to choose when a Secret's token is renewed"),
            );
        }
        let lifetime = minted.lifetime_secs();
        let Some(r) = refresh_before else {
            return lifetime / 3;
        };
        match crate::duration::whole_seconds(r) {
            Ok(secs) if secs > 0 && secs < lifetime => secs,
            Ok(_) => {
                self.push(
                    Diagnostic::error(
                        "spec::refresh-before",
                        format!(
                            "`refreshBefore` of {desc} is not shorter than a `{key}` token's lifetime ({}h)",
                            lifetime / 3_600
                        ),
                    )
                    .with_label(r.loc, "every run would renew the token")
                    .with_help(format!("leave it out for a third of the lifetime ({}m)", lifetime / 180)),
                );
                lifetime / 3
            }
            Err(why) => {
                self.push(
                    Diagnostic::error(
                        "spec::invalid-duration",
                        format!("`refreshBefore` of {desc} {why}"),
                    )
                    .with_label(r.loc, "not a duration")
                    .with_help("write a whole number of hours, minutes or seconds: `4h`, `20m`"),
                );
                lifetime / 3
            }
        }
    }

    /// `{ ecr: { region, registryId?, roleArn? } }`, `{ gcp: {} }`, `{ acr: { tenantId?, clientId? } }`.
    // Kept whole (over 80 lines): one arm per cloud, each checking its own fields.
    /// `{file, extract, format}` of a `sops:` source.
    fn sops_source(&mut self, node: &Node, what: &str) -> Option<SopsSource> {
        let e = self.mapping(node, what, SOPS_FIELDS)?;
        let file = self
            .required(e, "file", node.loc, what)
            .and_then(|n| self.string(n, "a path"));
        let format = field(e, "format").and_then(|n| self.string(n, "a sops format"));
        if let Some(f) = &format
            && !rules::SOPS_FORMATS.contains(&f.value.as_str())
        {
            self.push(
                Diagnostic::error(
                    "spec::invalid-value",
                    format!(
                        "`format` of {what}: `{}` is not a format sops writes",
                        f.value
                    ),
                )
                .with_label(f.loc, "not a sops format")
                .with_help(format!("one of {}", rules::SOPS_FORMATS.join(", "))),
            );
            return None;
        }
        let file = file?;
        let extract = field(e, "extract").and_then(|n| self.string(n, "a sops path"));
        let is_binary = match &format {
            Some(f) => f.value == "binary",
            None => rules::sops_format_for_path(std::path::Path::new(&file.value)) == "binary",
        };
        if extract.is_none() && !is_binary {
            self.push(
                Diagnostic::error(
                    "spec::missing-field",
                    format!("{what} needs `extract`: which value of the file to read"),
                )
                .with_label(node.loc, "no `extract`")
                .with_help("write the value's path as sops's --extract takes it: `extract: '[\"harbor\"][\"password\"]'`"),
            );
            return None;
        }
        if let Some(x) = &extract
            && let Err(why) = rules::sops_path(x)
        {
            self.push(
                Diagnostic::error(
                    "spec::invalid-value",
                    format!("`extract` of {what} is not a sops path: {why}"),
                )
                .with_label(x.loc, "not a sops path")
                .with_help("write it as sops's --extract takes it: `[\"key\"][0]`"),
            );
            return None;
        }
        let decode = field(e, "decode").and_then(|n| self.string(n, "a decoding"));
        if let Some(d) = &decode
            && d.value != "base64"
        {
            self.push(
                Diagnostic::error(
                    "spec::invalid-value",
                    format!(
                        "`decode` of {what}: `{}` is not a decoding regops knows",
                        d.value
                    ),
                )
                .with_label(d.loc, "not `base64`"),
            );
            return None;
        }
        let json_key = field(e, "jsonKey").and_then(|n| self.string(n, "a JSON key"));
        if let Some(k) = &json_key
            && k.value.starts_with('[')
            && let Err(why) = rules::sops_path(k)
        {
            self.push(
                Diagnostic::error(
                    "spec::invalid-value",
                    format!("`jsonKey` of {what} is not a key nor a sops path: {why}"),
                )
                .with_label(k.loc, "not a key nor a sops path"),
            );
            return None;
        }
        Some(SopsSource {
            file: Spanned::new(PathBuf::from(file.value), file.loc),
            extract,
            format,
            decode,
            json_key,
            loc: node.loc,
        })
    }

    /// A name a secret manager reads: not empty, no control characters.
    fn secret_name(&mut self, n: &Spanned<String>, what: &str, field: &str) -> bool {
        if n.value.is_empty() || n.value.chars().any(char::is_control) {
            self.push(
                Diagnostic::error(
                    "spec::invalid-value",
                    format!("`{field}` of {what} is empty or holds control characters"),
                )
                .with_label(n.loc, "not a name"),
            );
            return false;
        }
        true
    }

    /// `{secretId, region, versionStage?, jsonKey?}` of an `awsSecretsManager:` source.
    fn aws_secrets_manager_source(
        &mut self,
        node: &Node,
        what: &str,
    ) -> Option<AwsSecretsManagerSource> {
        let e = self.mapping(node, what, AWS_SECRETS_MANAGER_FIELDS)?;
        let secret_id = self
            .required(e, "secretId", node.loc, what)
            .and_then(|n| self.string(n, "a secret name or ARN"));
        let region = self
            .required(e, "region", node.loc, what)
            .and_then(|n| self.string(n, "an AWS region"));
        let version_stage = field(e, "versionStage").and_then(|n| self.string(n, "a label"));
        let json_key = field(e, "jsonKey").and_then(|n| self.string(n, "a JSON key"));
        let (secret_id, region) = (secret_id?, region?);
        if let Err(why) = rules::aws_region(&region.value) {
            self.push(
                Diagnostic::error(
                    "spec::invalid-value",
                    format!("`region` of {what}: `{}` {why}", region.value),
                )
                .with_label(region.loc, "not a region")
                .with_help("a region as AWS names it: `eu-west-1`, `cn-north-1`, `us-gov-west-1`"),
            );
            return None;
        }
        let mut ok = self.secret_name(&secret_id, what, "secretId");
        for (n, f) in [(&version_stage, "versionStage"), (&json_key, "jsonKey")] {
            if let Some(n) = n {
                ok &= self.secret_name(n, what, f);
            }
        }
        ok.then_some(AwsSecretsManagerSource {
            secret_id,
            region,
            version_stage,
            json_key,
            loc: node.loc,
        })
    }

    /// `{path, field, mount?}` of a `vault:` source.
    fn vault_source(&mut self, node: &Node, what: &str) -> Option<VaultSource> {
        let e = self.mapping(node, what, VAULT_FIELDS)?;
        let path = self
            .required(e, "path", node.loc, what)
            .and_then(|n| self.string(n, "a secret's path"));
        let value_field = self
            .required(e, "field", node.loc, what)
            .and_then(|n| self.string(n, "a field name"));
        let mount = field(e, "mount").and_then(|n| self.string(n, "a mount path"));
        let (path, value_field) = (path?, value_field?);
        let mut ok = self.secret_name(&value_field, what, "field");
        // Path segments only: no `..`, no empty segment, nothing a URL would read otherwise.
        for (n, f) in [(Some(&path), "path"), (mount.as_ref(), "mount")] {
            let Some(n) = n else { continue };
            if let Err(why) = rules::vault_path(&n.value) {
                self.push(
                    Diagnostic::error(
                        "spec::invalid-value",
                        format!("`{f}` of {what} is not a Vault path: {why}"),
                    )
                    .with_label(n.loc, "not a Vault path")
                    .with_help("segments of letters, digits, `-`, `_`, `.` and `@`, joined by `/`: `registry/harbor`"),
                );
                ok = false;
            }
        }
        ok.then_some(VaultSource {
            path,
            field: value_field,
            mount,
            loc: node.loc,
        })
    }

    /// A name checked by `rule`; the error located on it, with `help`.
    fn checked_name(
        &mut self,
        n: &Spanned<String>,
        what: &str,
        field: &str,
        rule: fn(&str) -> Result<(), &'static str>,
        help: &str,
    ) -> bool {
        match rule(&n.value) {
            Ok(()) => true,
            Err(why) => {
                self.push(
                    Diagnostic::error(
                        "spec::invalid-value",
                        format!(
                            "`{field}` of {what}: `{}`: {why}",
                            crate::untrusted::terminal(&n.value)
                        ),
                    )
                    .with_label(n.loc, format!("not a {field}"))
                    .with_help(help.to_string()),
                );
                false
            }
        }
    }

    /// `{name, jsonKey?}` of a `gcpSecretManager:` source.
    fn gcp_secret_manager_source(
        &mut self,
        node: &Node,
        what: &str,
    ) -> Option<GcpSecretManagerSource> {
        let e = self.mapping(node, what, GCP_SECRET_MANAGER_FIELDS)?;
        let name = self
            .required(e, "name", node.loc, what)
            .and_then(|n| self.string(n, "a secret version's resource name"));
        let json_key = field(e, "jsonKey").and_then(|n| self.string(n, "a JSON key"));
        let name = name?;
        let mut ok = self.checked_name(
            &name,
            what,
            "name",
            rules::gcp_secret_name,
            "a secret version as Google names it: `projects/my-project/secrets/registry-harbor/versions/latest` (or a version number)",
        );
        if let Some(k) = &json_key {
            ok &= self.secret_name(k, what, "jsonKey");
        }
        ok.then_some(GcpSecretManagerSource {
            name,
            json_key,
            loc: node.loc,
        })
    }

    /// `{vault, secret, version?, jsonKey?}` of an `azureKeyVault:` source.
    fn azure_key_vault_source(&mut self, node: &Node, what: &str) -> Option<AzureKeyVaultSource> {
        let e = self.mapping(node, what, AZURE_KEY_VAULT_FIELDS)?;
        let vault = self
            .required(e, "vault", node.loc, what)
            .and_then(|n| self.string(n, "a Key Vault's name"));
        let secret = self
            .required(e, "secret", node.loc, what)
            .and_then(|n| self.string(n, "a secret's name"));
        let version = field(e, "version").and_then(|n| self.string(n, "a secret's version"));
        let json_key = field(e, "jsonKey").and_then(|n| self.string(n, "a JSON key"));
        let (vault, secret) = (vault?, secret?);
        // The vault's name becomes a host name, the secret's and the version a URL path:
        // each is held to Azure's own rules, which leave no `.`, `/`, `@` or `%`.
        let mut ok = self.checked_name(
            &vault,
            what,
            "vault",
            rules::azure_vault_name,
            "the vault's name alone (`myvault`, not `myvault.vault.azure.net`): 3 to 24 letters, digits and `-`",
        );
        ok &= self.checked_name(
            &secret,
            what,
            "secret",
            rules::azure_secret_name,
            "the secret's name as Key Vault shows it: 1 to 127 letters, digits and `-`",
        );
        if let Some(v) = &version {
            ok &= self.checked_name(
                v,
                what,
                "version",
                rules::azure_secret_version,
                "the version's id as Key Vault shows it (32 hexadecimal digits), or no `version` for the current one",
            );
        }
        if let Some(k) = &json_key {
            ok &= self.secret_name(k, what, "jsonKey");
        }
        ok.then_some(AzureKeyVaultSource {
            vault,
            secret,
            version,
            json_key,
            loc: node.loc,
        })
    }

    fn minted_source(&mut self, key: &str, node: &Node, desc: &str) -> Option<SecretSource> {
        let what = format!("`{key}` of the password of {desc}");
        let known = match key {
            "ecr" => ECR_FIELDS,
            "gcp" => GCP_FIELDS,
            _ => ACR_FIELDS,
        };
        // `gcp: {}` and a bare `gcp:` both mean: no options.
        let e: Entries<'_> = if node.is_null() {
            &[]
        } else {
            self.mapping(node, &what, known)?
        };
        let checked = |this: &mut Self,
                       k: &str,
                       rule: fn(&str) -> Result<(), rules::RuleError>,
                       label: &str| {
            let v = field(e, k).and_then(|n| this.string(n, label))?;
            if let Err(why) = rule(&v) {
                this.push(
                    Diagnostic::error(
                        "spec::invalid-value",
                        format!("`{k}` of {what}: `{}` {why}", v.value),
                    )
                    .with_label(v.loc, format!("not {label}")),
                );
                return None;
            }
            Some(v)
        };
        match key {
            "ecr" => {
                let region = self.required(e, "region", node.loc, &what);
                let region = region.and_then(|n| self.string(n, "an AWS region"));
                let region_ok = region.as_ref().is_some_and(|r| match rules::aws_region(r) {
                    Ok(()) => true,
                    Err(why) => {
                        self.push(
                            Diagnostic::error(
                                "spec::invalid-value",
                                format!("`region` of {what}: `{}` {why}", r.value),
                            )
                            .with_label(r.loc, "not an AWS region"),
                        );
                        false
                    }
                });
                let registry_id =
                    checked(self, "registryId", rules::aws_account, "an AWS account id");
                let role_arn = checked(self, "roleArn", rules::aws_role_arn, "an IAM role ARN");
                if !region_ok
                    || (field(e, "registryId").is_some() && registry_id.is_none())
                    || (field(e, "roleArn").is_some() && role_arn.is_none())
                {
                    return None;
                }
                Some(SecretSource::Ecr {
                    ecr: EcrSource {
                        region: region?,
                        registry_id,
                        role_arn,
                        loc: node.loc,
                    },
                })
            }
            "gcp" => Some(SecretSource::Gcp {
                gcp: GcpSource { loc: node.loc },
            }),
            _ => {
                let tenant_id = checked(self, "tenantId", rules::entra_tenant, "an Entra tenant");
                let client_id = checked(self, "clientId", rules::uuid, "a client id");
                if (field(e, "tenantId").is_some() && tenant_id.is_none())
                    || (field(e, "clientId").is_some() && client_id.is_none())
                {
                    return None;
                }
                Some(SecretSource::Acr {
                    acr: AcrSource {
                        tenant_id,
                        client_id,
                        loc: node.loc,
                    },
                })
            }
        }
    }

    // Kept whole (over 80 lines): one arm per way a password can be given, each with its own
    // diagnostics.
    fn secret_source(
        &mut self,
        node: &Node,
        desc: &str,
        name: &Spanned<String>,
    ) -> Option<SecretSource> {
        match &node.value {
            Value::Scalar(Scalar { text, .. }) if !node.is_null() => {
                if text
                    .trim_start()
                    .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
                {
                    Some(SecretSource::Age(Spanned::new(text.clone(), node.loc)))
                } else {
                    // The text is a plaintext secret: mask it wherever the source is shown, and
                    // point at the key, not the value.
                    self.redactions.push(node.loc);
                    let key_loc = Loc::new(node.loc.file, node.loc.start, node.loc.start);
                    self.push(
                        Diagnostic::error("spec::plaintext-secret", format!("the password of {desc} is in plaintext"))
                            .with_label(key_loc, "plaintext password (masked)")
                            .with_help(format!(
                                "only ciphertext belongs in git: run `regops encrypt -f <spec> --credential {}`, or use {{ env: NAME }} or {{ file: PATH }}",
                                name.value
                            )),
                    );
                    None
                }
            }
            Value::Map(_) => {
                let e = self.mapping(
                    node,
                    &format!("the password of {desc}"),
                    SECRET_SOURCE_FIELDS,
                )?;
                let present: Vec<&str> = SECRET_SOURCE_FIELDS
                    .iter()
                    .copied()
                    .filter(|k| field(e, k).is_some())
                    .collect();
                if present.len() != 1 {
                    self.push(
                        Diagnostic::error("spec::secret-source", format!("the password of {desc} needs exactly one of `ageFile`, `env`, `file`, `helper`, `sops`, `awsSecretsManager`, `gcpSecretManager`, `azureKeyVault`, `vault`, `ecr`, `gcp`, `acr`"))
                            .with_label(node.loc, if present.is_empty() { "none given".to_string() } else { format!("{} given", present.join(" and ")) }),
                    );
                    return None;
                }
                let key = present[0];
                if matches!(key, "ecr" | "gcp" | "acr") {
                    return self.minted_source(key, field(e, key)?, desc);
                }
                if key == "awsSecretsManager" {
                    let what = format!("`awsSecretsManager` of the password of {desc}");
                    return self.aws_secrets_manager_source(field(e, key)?, &what).map(
                        |aws_secrets_manager| SecretSource::AwsSecretsManager {
                            aws_secrets_manager,
                        },
                    );
                }
                if key == "gcpSecretManager" {
                    let what = format!("`gcpSecretManager` of the password of {desc}");
                    return self.gcp_secret_manager_source(field(e, key)?, &what).map(
                        |gcp_secret_manager| SecretSource::GcpSecretManager { gcp_secret_manager },
                    );
                }
                if key == "azureKeyVault" {
                    let what = format!("`azureKeyVault` of the password of {desc}");
                    return self
                        .azure_key_vault_source(field(e, key)?, &what)
                        .map(|azure_key_vault| SecretSource::AzureKeyVault { azure_key_vault });
                }
                if key == "vault" {
                    let what = format!("`vault` of the password of {desc}");
                    return self
                        .vault_source(field(e, key)?, &what)
                        .map(|vault| SecretSource::Vault { vault });
                }
                if key == "sops" {
                    let what = format!("`sops` of the password of {desc}");
                    return self
                        .sops_source(field(e, key)?, &what)
                        .map(|sops| SecretSource::Sops { sops });
                }
                let value = self.string(field(e, key)?, "a name or path")?;
                match key {
                    "env" => {
                        let ok = value
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                            && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if !ok {
                            self.push(
                                Diagnostic::error(
                                    "spec::invalid-name",
                                    format!(
                                        "`{}` is not an environment variable name",
                                        value.value
                                    ),
                                )
                                .with_label(
                                    value.loc,
                                    "letters, digits and '_', not starting with a digit",
                                ),
                            );
                            return None;
                        }
                        Some(SecretSource::Env { env: value })
                    }
                    "file" => Some(SecretSource::File {
                        file: Spanned::new(PathBuf::from(value.value), value.loc),
                    }),
                    "helper" => {
                        // A program name on PATH, never a path: a spec from a pull request
                        // can name only a `docker-credential-*` program already installed.
                        let ok = value
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_alphanumeric())
                            && value
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                        if !ok {
                            self.push(
                                Diagnostic::error(
                                    "spec::invalid-name",
                                    format!("`{}` is not a credential helper name", value.value),
                                )
                                .with_label(value.loc, "letters, digits, '-', '_' and '.', no path")
                                .with_help("name the helper as docker's `credHelpers` does: `ecr-login` runs `docker-credential-ecr-login` from PATH"),
                            );
                            return None;
                        }
                        Some(SecretSource::Helper { helper: value })
                    }
                    _ => Some(SecretSource::AgeFile {
                        age_file: Spanned::new(PathBuf::from(value.value), value.loc),
                    }),
                }
            }
            _ => {
                self.push(
                    Diagnostic::error(
                        "spec::missing-credential",
                        format!("the password of {desc} is empty"),
                    )
                    .with_label(node.loc, "no password")
                    .with_help(format!(
                        "run `regops encrypt -f <spec> --credential {}`",
                        name.value
                    )),
                );
                None
            }
        }
    }

    fn scope(&mut self, name: Spanned<String>, node: &Node) -> Option<Scope> {
        let desc = format!("scope `{}`", name.value);
        let e = self.mapping(node, &desc, SCOPE_FIELDS)?;
        let namespaces =
            self.string_list(field(e, "namespaces"), "namespace", rules::dns1123_label);
        let selector =
            field(e, "selector").and_then(|n| self.selector(n, &format!("the selector of {desc}")));
        let rancher_project = field(e, "rancherProject")
            .and_then(|n| self.checked_string(n, "Rancher project", rancher_project));
        let kubesphere_workspace = field(e, "kubesphereWorkspace")
            .and_then(|n| self.checked_string(n, "KubeSphere workspace", rules::label_value));
        let exclude = self.string_list(field(e, "exclude"), "namespace", rules::dns1123_label);
        let clusters = field(e, "clusters").and_then(|n| self.cluster_selector(n, &desc));
        if namespaces.is_empty()
            && selector.is_none()
            && rancher_project.is_none()
            && kubesphere_workspace.is_none()
        {
            self.push(
                Diagnostic::error("spec::empty-scope", format!("{desc} selects no namespaces"))
                    .with_label(name.loc, "empty scope")
                    .with_help(
                        "give `namespaces`, `selector`, `rancherProject` or `kubesphereWorkspace`",
                    ),
            );
        }
        for ex in &exclude {
            if let Some(n) = namespaces.iter().find(|n| n.value == ex.value) {
                self.push(
                    Diagnostic::warning(
                        "spec::excluded-named",
                        format!(
                            "namespace `{}` is both named and excluded in {desc}",
                            ex.value
                        ),
                    )
                    .with_label(ex.loc, "excluded here")
                    .with_label(n.loc, "named here; the exclusion wins"),
                );
            }
        }
        Some(Scope {
            name,
            namespaces,
            selector,
            rancher_project,
            kubesphere_workspace,
            exclude,
            clusters,
        })
    }

    fn selector(&mut self, node: &Node, desc: &str) -> Option<LabelSelector> {
        let e = self.mapping(node, desc, SELECTOR_FIELDS)?;
        Some(self.selector_terms(e, node.loc))
    }

    /// `matchLabels` and `matchExpressions` among `e`, with the API's rules for each.
    // Kept whole (over 80 lines): matchLabels then matchExpressions, with the API's rules for
    // each, as metav1.LabelSelector reads.
    fn selector_terms(&mut self, e: Entries<'_>, loc: Loc) -> LabelSelector {
        let mut sel = LabelSelector {
            loc,
            ..LabelSelector::default()
        };
        if let Some(ml) = field(e, "matchLabels") {
            for (key, value) in self.named(ml, "label key", rules::label_key) {
                if let Some(v) =
                    self.checked_string_allow_empty(value, "label value", rules::label_value)
                {
                    sel.label_keys.insert(key.value.clone(), key.loc);
                    sel.match_labels.insert(key.value, v);
                }
            }
        }
        if let Some(me) = field(e, "matchExpressions") {
            for item in self.list(me, "label requirement") {
                let Some(r) = self.mapping(item, "a label requirement", REQUIREMENT_FIELDS) else {
                    continue;
                };
                let key = self
                    .required(r, "key", item.loc, "a label requirement")
                    .and_then(|n| self.checked_string(n, "label key", rules::label_key));
                let op = self
                    .required(r, "operator", item.loc, "a label requirement")
                    .and_then(|n| self.string(n, "an operator"));
                let op = op.and_then(|o| {
                    match SelectorOperator::ALL.iter().find(|x| x.as_str() == o.value) {
                        Some(x) => Some(Spanned::new(*x, o.loc)),
                        None => {
                            let hint =
                                did_you_mean(&o, SelectorOperator::ALL.iter().map(|x| x.as_str()));
                            self.push(
                                Diagnostic::error(
                                    "spec::invalid-operator",
                                    format!("unknown selector operator `{}`", o.value),
                                )
                                .with_label(o.loc, "unknown operator")
                                .with_help(
                                    hint.map_or(
                                        "use In, NotIn, Exists or DoesNotExist".into(),
                                        |h| format!("did you mean `{h}`?"),
                                    ),
                                ),
                            );
                            None
                        }
                    }
                });
                let values =
                    self.string_list(field(r, "values"), "label value", rules::label_value);
                if let Some(op) = &op {
                    let needs_values =
                        matches!(op.value, SelectorOperator::In | SelectorOperator::NotIn);
                    if needs_values == values.is_empty() {
                        let msg = if needs_values {
                            "needs at least one value"
                        } else {
                            "takes no values"
                        };
                        self.push(
                            Diagnostic::error(
                                "spec::invalid-selector",
                                format!("operator `{}` {msg}", op.value.as_str()),
                            )
                            .with_label(op.loc, msg),
                        );
                    }
                }
                if let (Some(key), Some(operator)) = (key, op) {
                    sel.match_expressions.push(LabelRequirement {
                        key,
                        operator,
                        values,
                    });
                }
            }
        }
        sel
    }

    fn checked_string_allow_empty(
        &mut self,
        node: &Node,
        what: &str,
        rule: fn(&str) -> Result<(), rules::RuleError>,
    ) -> Option<Spanned<String>> {
        if let Value::Scalar(Scalar { text, quoted: true }) = &node.value
            && text.is_empty()
        {
            return Some(Spanned::new(String::new(), node.loc));
        }
        self.checked_string(node, what, rule)
    }

    fn pull_secret(&mut self, name: Spanned<String>, node: &Node) -> Option<PullSecret> {
        let desc = format!("pull secret `{}`", name.value);
        let e = self.mapping(node, &desc, PULL_SECRET_FIELDS)?;
        let registries = match self.required(e, "registries", name.loc, &desc) {
            Some(n) => {
                let list = self.string_list(Some(n), "registry", |_| Ok(()));
                if list.is_empty() {
                    self.push(
                        Diagnostic::error(
                            "spec::empty-list",
                            format!("{desc} names no registries"),
                        )
                        .with_label(n.loc, "empty"),
                    );
                }
                list
            }
            None => Vec::new(),
        };
        let scope = self
            .required(e, "scope", name.loc, &desc)
            .and_then(|n| self.string(n, "a scope name"));
        let adopt = self.opt_bool(e, "adopt");
        Some(PullSecret {
            name,
            registries,
            scope: scope?,
            adopt,
        })
    }

    fn binding(&mut self, node: &Node) -> Option<Binding> {
        let e = self.mapping(node, "a binding", BINDING_FIELDS)?;
        let pull_secret = self
            .required(e, "pullSecret", node.loc, "a binding")
            .and_then(|n| self.string(n, "a pull secret name"));
        let service_accounts = self.string_list(
            field(e, "serviceAccounts"),
            "service account",
            rules::dns1123_subdomain,
        );
        let workloads = field(e, "workloads").and_then(|n| self.workloads(n));
        let kubesphere_annotation = self.opt_bool(e, "kubesphereAnnotation");
        if service_accounts.is_empty() && workloads.is_none() {
            self.push(
                Diagnostic::error("spec::empty-binding", "this binding binds nothing")
                    .with_label(node.loc, "no `serviceAccounts` or `workloads`")
                    .with_help("list `serviceAccounts: [default]`, or select `workloads`"),
            );
        }
        if kubesphere_annotation && workloads.is_none() {
            self.push(
                Diagnostic::error(
                    "spec::kubesphere-needs-workloads",
                    "`kubesphereAnnotation` is set on workloads, but this binding selects none",
                )
                .with_label(
                    field(e, "kubesphereAnnotation").map_or(node.loc, |n| n.loc),
                    "needs `workloads`",
                ),
            );
        }
        Some(Binding {
            pull_secret: pull_secret?,
            service_accounts,
            workloads,
            kubesphere_annotation,
            loc: node.loc,
        })
    }

    fn workloads(&mut self, node: &Node) -> Option<WorkloadSelector> {
        let e = self.mapping(node, "the workload selector", WORKLOAD_FIELDS)?;
        let mut kinds = Vec::new();
        if let Some(k) = field(e, "kinds") {
            for item in self.list(k, "workload kind") {
                let Some(s) = self.string(item, "a workload kind") else {
                    continue;
                };
                let found = WorkloadKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == s.value)
                    .or_else(|| self.declared.get(&s.value).copied());
                let known = || {
                    WorkloadKind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .chain(self.declared.keys().map(String::as_str))
                };
                match found {
                    Some(kind) => kinds.push(Spanned::new(kind, s.loc)),
                    None => {
                        let hint = did_you_mean(&s, known());
                        self.push(
                            Diagnostic::error(
                                "spec::invalid-kind",
                                format!("unknown workload kind `{}`", s.value),
                            )
                            .with_label(s.loc, "unknown kind")
                            .with_help(hint.map_or_else(
                                || {
                                    let names: Vec<&str> = known().collect();
                                    format!(
                                        "use one of {}, or declare it under `workloadKinds`",
                                        names.join(", ")
                                    )
                                },
                                |h| format!("did you mean `{h}`?"),
                            )),
                        );
                    }
                }
            }
        }
        let selector = field(e, "selector").and_then(|n| self.selector(n, "the workload selector"));
        let images = self.string_list(field(e, "images"), "image pattern", image_pattern);
        Some(WorkloadSelector {
            kinds,
            selector,
            images,
            loc: node.loc,
        })
    }
}

fn plural(what: &str) -> String {
    match what.strip_suffix('y') {
        Some(stem) if !what.ends_with("ey") => format!("{stem}ies"),
        _ if what.ends_with('s') => what.to_string(),
        _ => format!("{what}s"),
    }
}

fn rancher_project(s: &str) -> Result<(), rules::RuleError> {
    let Some((cluster, project)) = s.split_once(':') else {
        return Err(rules::broke(
            "rancher_project",
            "must be `<cluster-id>:<project-id>` (the namespace annotation `field.cattle.io/projectId`)",
        ));
    };
    rules::dns1123_label(cluster)
        .map_err(|e| e.within("rancher_project", "has a cluster id that"))?;
    rules::dns1123_label(project).map_err(|e| e.within("rancher_project", "has a project id that"))
}

fn image_pattern(s: &str) -> Result<(), rules::RuleError> {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(rules::broke(
            "image_pattern",
            "must be a non-empty image reference pattern without spaces",
        ));
    }
    Ok(())
}

fn node_text(node: &Node) -> String {
    match &node.value {
        Value::Scalar(s) => s.text.clone(),
        _ => String::new(),
    }
}

/// Merges one file's spec into the whole, reporting names defined in two files.
pub(crate) fn merge(into: &mut Spec, from: Spec, diags: &mut Diagnostics) {
    if into.api_version.is_empty() {
        into.api_version = from.api_version;
        into.kind = from.kind;
    }
    match (&into.metadata.name, from.metadata.name) {
        (None, n) => into.metadata.name = n,
        (Some(a), Some(b)) if a.value != b.value => diags.push(
            Diagnostic::error(
                "spec::conflicting-name",
                format!("the spec is named `{}` and `{}`", a.value, b.value),
            )
            .with_label(b.loc, "named again here")
            .with_label(a.loc, "first named here"),
        ),
        _ => {}
    }
    for r in from.recipients {
        if !into.recipients.iter().any(|x| x.value == r.value) {
            into.recipients.push(r);
        }
    }
    into.declared.registries.extend(from.declared.registries);
    into.declared.credentials.extend(from.declared.credentials);
    into.declared.scopes.extend(from.declared.scopes);
    into.declared
        .pull_secrets
        .extend(from.declared.pull_secrets);
    into.declared.clusters.extend(from.declared.clusters);
    merge_map(
        &mut into.registries,
        from.registries,
        "registry",
        |r| r.name.loc,
        diags,
    );
    merge_map(
        &mut into.credentials,
        from.credentials,
        "credential",
        |c| c.name.loc,
        diags,
    );
    merge_map(
        &mut into.scopes,
        from.scopes,
        "scope",
        |s| s.name.loc,
        diags,
    );
    merge_map(
        &mut into.pull_secrets,
        from.pull_secrets,
        "pull secret",
        |p| p.name.loc,
        diags,
    );
    merge_map(
        &mut into.clusters,
        from.clusters,
        "cluster",
        |c| c.name.loc,
        diags,
    );

    into.bindings.extend(from.bindings);
    match (&into.node_trust, from.node_trust) {
        (None, n) => into.node_trust = n,
        (Some(a), Some(b)) => diags.push(
            Diagnostic::error("spec::duplicate-name", "`nodeTrust` is given twice")
                .with_label(b.loc, "given again here")
                .with_label(a.loc, "first given here"),
        ),
        (Some(_), None) => {}
    }
}

pub(crate) fn merge_map<T>(
    into: &mut BTreeMap<String, T>,
    from: BTreeMap<String, T>,
    what: &str,
    loc: fn(&T) -> Loc,
    diags: &mut Diagnostics,
) {
    for (name, item) in from {
        if let Some(first) = into.get(&name) {
            diags.push(
                Diagnostic::error(
                    "spec::duplicate-name",
                    format!("{what} `{name}` is defined twice"),
                )
                .with_label(loc(&item), "defined again here")
                .with_label(loc(first), "first defined here")
                .with_help("names are global across all spec files; rename one"),
            );
            continue;
        }
        into.insert(name, item);
    }
}

#[cfg(test)]
mod node_trust_tests {
    use crate::{Sources, SpecFormat};

    const HEAD: &str = "apiVersion: regops.dev/v1\nkind: RegistryConfig\n";

    fn load(files: &[(&str, &str)]) -> Result<crate::Spec, Vec<(String, String)>> {
        let mut sources = Sources::default();
        for (name, text) in files {
            sources.add((*name).into(), format!("{HEAD}{text}"), SpecFormat::Yaml);
        }
        match crate::load(sources, "spec") {
            Ok(l) => Ok(l.spec),
            Err(inv) => Err(inv
                .diagnostics
                .iter()
                .map(|d| {
                    let at = d.labels.first().map(|l| {
                        let f = inv.sources.get(l.loc.file).unwrap();
                        f.text[l.loc.start..l.loc.end].to_string()
                    });
                    (d.message.clone(), at.unwrap_or_default())
                })
                .collect()),
        }
    }

    #[test]
    fn node_trust_alone_takes_the_components_names() {
        let spec = load(&[("a.yaml", "nodeTrust:\n")]).unwrap();
        let t = spec.node_trust.unwrap();
        assert_eq!(
            (t.namespace(), t.config_map(), t.allow_list()),
            (
                "regops-node-trust",
                "regops-node-trust",
                "regops-node-trust-allow"
            )
        );
        assert!(
            load(&[("a.yaml", "registries: {}\n")])
                .unwrap()
                .node_trust
                .is_none()
        );
        let t = load(&[(
            "a.yaml",
            "nodeTrust: {namespace: nodes, configMap: trust}\n",
        )])
        .unwrap()
        .node_trust
        .unwrap();
        assert_eq!((t.namespace(), t.config_map()), ("nodes", "trust"));
    }

    #[test]
    fn bad_node_trust_is_a_located_error() {
        let e = load(&[(
            "a.yaml",
            "nodeTrust: {namespace: Bad_NS, configMap: ../x}\n",
        )])
        .unwrap_err();
        assert!(
            e.iter()
                .any(|(m, at)| m.contains("invalid namespace `Bad_NS`") && at == "Bad_NS"),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|(m, at)| m.contains("invalid ConfigMap name `../x`") && at == "../x"),
            "{e:?}"
        );
        let e = load(&[("a.yaml", "nodeTrust: {configMap: same, allowList: same}\n")]).unwrap_err();
        assert!(e[0].0.contains("`allowList` names `same`"), "{e:?}");
        let e = load(&[("a.yaml", "nodeTrust: {namspace: x}\n")]).unwrap_err();
        assert!(e[0].0.contains("unknown field `namspace`"), "{e:?}");
        let e = load(&[("a.yaml", "nodeTrust: {}\n"), ("b.yaml", "nodeTrust: {}\n")]).unwrap_err();
        assert!(e[0].0.contains("`nodeTrust` is given twice"), "{e:?}");
    }
}
