//! What the plan warns of, by kind, so that a view can say "600 workloads will roll their
//! pods" once instead of 600 times.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use regops_spec::untrusted::Message;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// A namespace a scope names does not exist.
    MissingNamespace,
    /// A namespace given with `-n` does not exist (in the cluster, or the state file).
    NoSuchNamespace,
    /// A namespace given with `-n` exists, and no scope selects it.
    UnselectedNamespace,
    /// A ServiceAccount a binding names does not exist in a namespace of its scope.
    MissingServiceAccount,
    /// A namespace in scope is being deleted.
    NamespaceTerminating,
    /// A workload's pod template changes, so its pods roll.
    RestartsPods,
    /// A Job wants a pull secret, and a Job's template cannot change.
    JobNotPatched,
    /// A workload wants a pull secret, and another workload controls its template (a
    /// ReplicaSet's Deployment).
    ControlledNotPatched,
    /// A workload wants a pull secret, and runs another workload's pod template (an Argo
    /// Rollout's `workloadRef`).
    TemplateReferenced,
    /// References to Secrets in conflict are held back.
    HeldBack,
    /// A ServiceAccount regops patches is also managed by Argo CD, Flux or Helm.
    GitopsManaged,
    /// An object of a state file could not be read.
    SkippedObject,
    /// A credential in use expires within its `warnBefore`.
    CredentialExpiring,
    /// A credential in use has expired.
    CredentialExpired,
    /// A Secret's credentials change in place (same uid): a rotation the kubelet recognises.
    Rotation,
    /// A Secret is made anew (new uid): pods starting with it pull their images again
    /// (KEP-2535).
    ReverifiesImages,
    /// Workloads pull from a plain-HTTP or private-CA registry: their nodes must trust it
    /// (docs/node-trust.md).
    NodeTrust,
    /// A host the node-trust ConfigMap asks for is not on the operator's allowlist:
    /// `regops node-sync` will refuse it.
    NodeTrustRefused,
}

/// One warning: its kind, what it is about, and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    /// The object or namespace concerned (`deployment web/api`), for lists.
    pub subject: String,
    /// What it says: regops' words, and the data from outside they quote.
    pub message: Message,
}

impl Warning {
    pub fn new(kind: WarningKind, subject: impl Into<String>, message: impl Into<Message>) -> Self {
        Warning {
            kind,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

/// Every warning of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarningGroup {
    pub kind: WarningKind,
    pub count: usize,
    /// The warning itself when there is one; else what they say together.
    pub message: Message,
}

fn together(kind: WarningKind, n: usize) -> Message {
    Message::own(match kind {
        WarningKind::MissingNamespace => {
            format!("{n} namespaces named by scopes do not exist; nothing is planned for them")
        }
        WarningKind::NoSuchNamespace => {
            format!("{n} namespaces given with `-n` do not exist; nothing is planned for them")
        }
        WarningKind::UnselectedNamespace => format!(
            "{n} namespaces given with `-n` are selected by no scope of the spec; no pull secret is planned for them"
        ),
        WarningKind::MissingServiceAccount => {
            format!("{n} bound ServiceAccounts do not exist; skipped")
        }
        WarningKind::NamespaceTerminating => {
            format!("{n} namespaces are being deleted; nothing is planned for them")
        }
        WarningKind::RestartsPods => format!("{n} workloads will roll their pods"),
        WarningKind::JobNotPatched => format!(
            "{n} Jobs are not patched: a Job's pod template cannot change once it exists; bind their CronJob, or the ServiceAccount they run as"
        ),
        WarningKind::ControlledNotPatched => format!(
            "{n} workloads are not patched: another workload controls their pod template (a ReplicaSet's Deployment); bind their controller instead"
        ),
        WarningKind::TemplateReferenced => format!(
            "{n} workloads are not patched: each runs the pod template of the workload its `workloadRef` names; bind that workload instead"
        ),
        WarningKind::HeldBack => format!("{n} sets of references are held back"),
        WarningKind::GitopsManaged => format!(
            "{n} ServiceAccounts to patch are also managed by Argo CD, Flux or Helm: their `imagePullSecrets` lists will flap between the two writers (see docs/ci.md, \"Living beside Argo CD, Flux and Helm\")"
        ),
        WarningKind::SkippedObject => format!("{n} objects of the state file were skipped"),
        WarningKind::CredentialExpiring => format!("{n} credentials expire soon"),
        WarningKind::CredentialExpired => format!("{n} credentials have expired"),
        WarningKind::Rotation => format!(
            "{n} Secrets' credentials change in place (same uid: the kubelet takes it as a rotation and pulls nothing again); they are first used at the next pull: prove them with `regops validate` before applying"
        ),
        WarningKind::NodeTrust => format!(
            "workloads pull from {n} registries over plain HTTP or with a private CA: the nodes that run them must trust those registries, which a pull secret does not do (`regops render --node-config`, docs/node-trust.md)"
        ),
        WarningKind::NodeTrustRefused => format!(
            "{n} registry hosts of the node-trust ConfigMap will be refused by `regops node-sync`: they are not on the operator's allowlist (docs/node-trust.md)"
        ),
        WarningKind::ReverifiesImages => format!(
            "{n} Secrets are made anew (new uid): pods starting with them pull their images from the registry again, even those present on their node (KEP-2535); run `regops validate` first"
        ),
    })
}

/// The warnings by kind, in the order each kind first appears.
pub fn groups(warnings: &[Warning]) -> Vec<WarningGroup> {
    let mut order: Vec<WarningKind> = Vec::new();
    let mut by_kind: BTreeMap<WarningKind, Vec<&Warning>> = BTreeMap::new();
    for w in warnings {
        let list = by_kind.entry(w.kind).or_default();
        if list.is_empty() {
            order.push(w.kind);
        }
        list.push(w);
    }
    order
        .into_iter()
        .map(|kind| {
            let list = &by_kind[&kind];
            WarningGroup {
                kind,
                count: list.len(),
                message: match list.as_slice() {
                    [one] => one.message.clone(),
                    _ => together(kind, list.len()),
                },
            }
        })
        .collect()
}
