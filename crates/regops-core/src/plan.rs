//! The plan: desired against observed, one action per object, ordered for applying, with
//! secret values never in it. Pure.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::desired::{Desired, DesiredSecret, Wanted};
use crate::group::Group;
use crate::observed::{Labels, Observed, Secret};
use crate::ownership::{
    self, KUBESPHERE_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SECRET_TYPE, SPEC_ANNOTATION,
};
use crate::warning::{Warning, WarningGroup, WarningKind};
use crate::write::{
    ConfigMapWrite, Entry, Interner, KubeSphereWrite, SecretWrite, ServiceAccountWrite,
    WorkloadWrite, Write,
};
use regops_spec::WorkloadKind;
use regops_spec::kind::ObjectKind;
use regops_spec::untrusted::Message;

/// The version of the JSON plan format (`schemas/plan.schema.json`).
pub const FORMAT_VERSION: &str = "1";

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    /// Delete and create again: a Secret whose `type` differs or that is immutable.
    Replace,
    /// Add or remove `imagePullSecrets` entries (and the KubeSphere annotation).
    Patch,
    /// A Secret regops owns that the spec no longer wants; applied only with `--prune`.
    Delete,
    Noop,
}

/// One field's change. Secret values never appear: `sensitive` changes say only that they
/// changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    pub sensitive: bool,
}

/// Who moved, as `kubectl apply`'s three-way merge sees it: what regops last applied (its
/// records on the object: the sources of a Secret's credentials, the entries it added to a
/// ServiceAccount or workload), the spec now, and the cluster now. One per change; the causes
/// say what differs, this says why. `docs/drift.md` has the table.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// This commit changes it: the spec (or the source of a credential) differs from what regops
    /// last applied.
    SpecChanged,
    /// Someone changed it in the cluster since regops applied it.
    ChangedInCluster,
    /// The spec changes it, and someone changed it in the cluster too.
    Both,
    /// regops had applied it, and it was deleted in the cluster.
    Missing,
    /// A namespace or object the spec now reaches: regops has not applied anything to it yet.
    NewInScope,
    /// The value of a credential read from a secret manager changed at its source since regops
    /// applied it (the spec names the same secret; the record of the value differs).
    SourceChanged,
}

impl Origin {
    /// The words every view uses for it.
    pub fn words(self) -> &'static str {
        match self {
            Origin::SpecChanged => "the spec changes it",
            Origin::ChangedInCluster => "changed in the cluster",
            Origin::Both => "the spec changes it, and it was changed in the cluster",
            Origin::Missing => "deleted in the cluster",
            Origin::NewInScope => "new in scope",
            Origin::SourceChanged => "the value changed at its source",
        }
    }

    /// As `--output json` spells it (`spec-changed`).
    pub fn name(self) -> &'static str {
        match self {
            Origin::SpecChanged => "spec-changed",
            Origin::ChangedInCluster => "changed-in-cluster",
            Origin::Both => "both",
            Origin::Missing => "missing",
            Origin::NewInScope => "new-in-scope",
            Origin::SourceChanged => "source-changed",
        }
    }

    /// One change's origin from two of its causes': a spec change and a cluster change make
    /// both; a deletion or a new object says more than the rest.
    fn and(self, other: Origin) -> Origin {
        use Origin::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Missing, _) | (_, Missing) => Missing,
            (NewInScope, x) | (x, NewInScope) => x,
            // The spec changes it anyway: what its source did too is in the reasons.
            (SpecChanged, SourceChanged) | (SourceChanged, SpecChanged) => SpecChanged,
            _ => Both,
        }
    }
}

/// Why an object is in the plan: what differs between the cluster and the spec, one entry per
/// difference. Drift reports these; the text view shows `reason`, written for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "cause", rename_all = "kebab-case")]
pub enum Cause {
    /// A Secret the spec wants is not there, and others of this spec are in its namespace: it
    /// was deleted.
    Missing,
    /// A namespace entered a scope and holds no Secret of this spec yet.
    NewNamespace,
    /// A Secret's data differs from the spec: `fields` names what differs (per login), `by`
    /// the field managers other than regops that hold the data (who changed it by hand),
    /// `rotated` the credentials whose source (ciphertext) changed since regops last applied
    /// the Secret (what the spec changes), `changed_at_source` those read from a secret
    /// manager whose value changed there (the spec names the same secret).
    DataChanged {
        fields: Vec<String>,
        by: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rotated: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changed_at_source: Vec<String>,
    },
    /// regops' label or annotation is missing from a Secret it manages or adopts.
    OwnershipChanged,
    /// The Secret's type is not `kubernetes.io/dockerconfigjson`, and a type cannot change.
    TypeDiffers { from: String },
    /// The Secret is immutable and its data must change.
    Immutable,
    /// A Secret of someone else's, taken over (`adopt: true`).
    Adopted,
    /// `imagePullSecrets` entries regops had added were removed.
    EntryRemoved { entries: Vec<String> },
    /// `imagePullSecrets` entries the spec wants are not there.
    EntryMissing { entries: Vec<String> },
    /// The pod template's KubeSphere annotation differs from what the spec wants.
    AnnotationDiffers,
    /// Entries regops added that the spec no longer wants.
    EntryUnwanted { entries: Vec<String> },
    /// The KubeSphere annotation an earlier regops wrote on the workload's own metadata moves
    /// to the pod template, where KubeSphere reads it.
    AnnotationMoved,
    /// Only regops' record changes: of the entries it added (a ServiceAccount, a workload), or
    /// of the sources of a Secret's credentials.
    RecordOutdated,
    /// `kubectl apply`'s record on the Secret (`kubectl.kubernetes.io/last-applied-configuration`,
    /// a copy of its data from before regops) is removed.
    LastAppliedRemoved,
    /// A Secret this spec owns that the spec no longer wants.
    Orphaned,
    /// The minted tokens of these credentials in the Secret expire within `refreshBefore`
    /// (or it does not say when): they are renewed.
    TokenRenewal { credentials: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub action: Action,
    pub kind: ObjectKind,
    /// The kind's `apiVersion` (`apps/v1`, `argoproj.io/v1alpha1`): with `kind`, which
    /// resource the change writes.
    // Borrowed from the kind table (every kind's row lives for the run), so a change holds no
    // copy of it; a saved plan's is read owned.
    pub api_version: std::borrow::Cow<'static, str>,
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// Why, for people (replacements, drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Message>,
    /// Why, one entry per difference; empty for `noop`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
    /// Who moved: the spec, the cluster, both; or deleted in the cluster, or new in scope.
    /// `None` for housekeeping (a renewal, regops' own records) and `noop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Origin>,
    /// `imagePullSecrets` entries to add / remove (patches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// `imagePullSecrets` before and after (patches that change it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries_before: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries_after: Vec<String>,
    /// The KubeSphere annotation's new value on the pod template, when it changes (`null`:
    /// removed).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub kubesphere_annotation: Option<Option<String>>,
    /// The regops record of added entries after this change (the `pull-secrets.regops.dev/<spec>`
    /// annotation), when it changes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub record: Option<Option<String>>,
    /// Changing the pod template rolls the workload's pods.
    pub restarts_pods: bool,
    /// For Secrets: `server as user` per login (usernames are not secret).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<String>,
    /// What apply sends (`None` for `noop`). Not in the JSON plan: a saved plan keeps it
    /// beside the plan (`crate::saved`).
    #[serde(skip)]
    #[schemars(skip)]
    pub write: Option<crate::write::Write>,
}

impl Change {
    /// A change with nothing but its action and object; the planner fills in the rest.
    pub fn new(action: Action, kind: ObjectKind, namespace: &str, name: &str) -> Self {
        Change {
            action,
            kind,
            api_version: std::borrow::Cow::Borrowed(kind.facts().api_version),
            namespace: namespace.to_string(),
            name: name.to_string(),
            fields: Vec::new(),
            reason: None,
            causes: Vec::new(),
            cause: None,
            add: Vec::new(),
            remove: Vec::new(),
            entries_before: Vec::new(),
            entries_after: Vec::new(),
            kubesphere_annotation: None,
            record: None,
            restarts_pods: false,
            logins: Vec::new(),
            write: None,
        }
    }
}

/// Something the plan cannot do as the spec asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
    pub message: Message,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub patch: usize,
    pub delete: usize,
    pub noop: usize,
    pub conflicts: usize,
}

/// Where the spec came from (git).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub dirty: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "regops plan")]
pub struct Plan {
    /// Always "1" for this format.
    pub format_version: String,
    pub spec: String,
    /// Where the plan was computed against: a kubeconfig context and server, or a state file.
    pub target: String,
    pub source: Source,
    /// Commits the cluster's objects were last applied from, when other than `source.commit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_applied_commits: Vec<String>,
    /// Every object the spec touches, in apply order; `noop` entries included.
    pub changes: Vec<Change>,
    /// Changes alike but for their namespace, as the views show them (indices into
    /// `changes`); every change is in `changes` too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    pub conflicts: Vec<Conflict>,
    /// Each warning's text.
    #[serde(serialize_with = "warning_messages", skip_deserializing)]
    #[schemars(with = "Vec<String>")]
    pub warnings: Vec<Warning>,
    /// The warnings by kind, with counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warning_groups: Vec<WarningGroup>,
    pub summary: Summary,
}

/// A field that is present, `null` included (`Some(None)`: removed); absent is `None` (by
/// `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn warning_messages<S: serde::Serializer>(w: &[Warning], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(w.iter().map(|w| w.message.raw()))
}

impl Plan {
    /// Adds warnings found outside planning (a state file's unreadable objects).
    pub fn warn(&mut self, more: impl IntoIterator<Item = Warning>) {
        self.warnings.extend(more);
        self.warning_groups = crate::warning::groups(&self.warnings);
    }

    /// Changes other than `noop`.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Noop)
    }
}

fn labels_diff(field: &str, have: &Labels, want: &[(&str, &str)], out: &mut Vec<FieldChange>) {
    for (k, v) in want {
        if have.get(k).map(String::as_str) != Some(*v) {
            out.push(FieldChange {
                field: format!("{field}[{k}]"),
                before: have.get(k).cloned(),
                after: Some(v.to_string()),
                sensitive: false,
            });
        }
    }
}

/// What differs between two `.dockerconfigjson` documents, per server, without values.
// Kept whole (over 80 lines): one match over the cases of a login added, removed or changed,
// each a few lines.
fn auths_diff(
    have: Option<&str>,
    want: &str,
    digests: &BTreeMap<String, String>,
) -> Vec<FieldChange> {
    let parse = |s: &str| serde_json::from_str::<Value>(s).ok();
    let (Some(h), Some(w)) = (have.and_then(parse), parse(want)) else {
        return vec![FieldChange {
            field: "data[.dockerconfigjson]".into(),
            before: Some("(not valid JSON)".into()),
            after: Some("(sensitive value)".into()),
            sensitive: true,
        }];
    };
    if h == w {
        return Vec::new();
    }
    let empty = serde_json::Map::new();
    let ha = h["auths"].as_object().unwrap_or(&empty);
    let wa = w["auths"].as_object().unwrap_or(&empty);
    let servers: BTreeSet<&String> = ha.keys().chain(wa.keys()).collect();
    let mut out = Vec::new();
    for s in servers {
        let field = format!("auths[{s}]");
        match (ha.get(s), wa.get(s)) {
            (None, Some(n)) => out.push(FieldChange {
                field,
                before: None,
                after: Some(format!(
                    "login as {}",
                    n["username"].as_str().unwrap_or("?")
                )),
                sensitive: false,
            }),
            (Some(o), None) => out.push(FieldChange {
                field,
                before: Some(format!(
                    "login as {}",
                    o["username"].as_str().unwrap_or("?")
                )),
                after: None,
                sensitive: false,
            }),
            (Some(o), Some(n)) if o != n => {
                if o["username"] != n["username"] {
                    out.push(FieldChange {
                        field: format!("{field}.username"),
                        before: o["username"].as_str().map(str::to_string),
                        after: n["username"].as_str().map(str::to_string),
                        sensitive: false,
                    });
                }
                // `auth` is base64(user:password): it changes with either; only a changed
                // password (or, with both equal, a changed `auth`) is a sensitive change.
                let same_user = o["username"] == n["username"];
                if o["password"] != n["password"] || (same_user && o["auth"] != n["auth"]) {
                    out.push(FieldChange {
                        field: format!("{field}.password"),
                        before: Some("(sensitive value)".into()),
                        after: Some(match digests.get(s.as_str()) {
                            Some(d) => format!("(sensitive value changed, from {d})"),
                            None => "(sensitive value changed)".into(),
                        }),
                        sensitive: true,
                    });
                }
                if o["email"] != n["email"] {
                    out.push(FieldChange {
                        field: format!("{field}.email"),
                        before: o["email"].as_str().map(str::to_string),
                        after: n["email"].as_str().map(str::to_string),
                        sensitive: false,
                    });
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        // Same logins, other bytes (key order, extra fields): still not what regops writes.
        out.push(FieldChange {
            field: "data[.dockerconfigjson]".into(),
            before: Some("(sensitive value)".into()),
            after: Some("(sensitive value changed)".into()),
            sensitive: true,
        });
    }
    out
}

/// The conflict of a wanted Secret with one of that name regops may not take.
fn collision(d: &DesiredSecret, have: &Secret) -> Conflict {
    let message = match have.owning_spec() {
        Some(other) => Message::own("would overwrite a Secret owned by regops spec ")
            .code(other)
            .and("; rename the pull secret, or set `adopt: true` to take it over"),
        None => Message::own(
            "would overwrite a Secret owned by someone else; rename, or set `adopt: true`",
        ),
    };
    Conflict {
        kind: ObjectKind::Secret,
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        message,
    }
}

/// Who moved when an owned Secret's data differs from the spec, three ways: what regops last
/// applied (its record of the credentials' sources, or, from a regops before the record, the
/// commit it applied from), the spec now, and the cluster now (the field managers other than
/// regops that hold the data).
struct DataMove {
    origin: Origin,
    /// The credentials whose source changed since the last apply.
    rotated: Vec<String>,
    /// The credentials read from a secret manager whose value changed there since.
    at_source: Vec<String>,
}

fn data_move(
    have: &Secret,
    d: &DesiredSecret,
    changed_by: &[String],
    commit: Option<&str>,
) -> DataMove {
    // Whether the spec moved: the record of the sources says, or (a Secret written before the
    // record) the commit it was applied from, when both commits are known.
    let recorded = have.annotations.get(ownership::APPLIED_SOURCES_ANNOTATION);
    let (changed, at_source) = recorded.map_or_else(Default::default, |r| {
        ownership::sources_moved(r, &d.sources)
    });
    // The record is the cluster's to edit: only the spec's own credentials are named (one the
    // record lists and the spec no longer has still counts as the spec's change).
    let rotated: Vec<String> = changed
        .iter()
        .filter(|c| d.sources.contains_key(c.as_str()))
        .cloned()
        .collect();
    let applied_from = have
        .annotations
        .get(ownership::SOURCE_COMMIT_ANNOTATION)
        .map(String::as_str);
    let spec_moved = match (recorded, commit, applied_from) {
        (Some(_), ..) => Some(!changed.is_empty()),
        (None, Some(now), Some(then)) => Some(now != then),
        _ => None,
    };
    // Whether the cluster moved: another field manager holds the data (the API server records
    // every writer: `kubectl edit`, `patch`, `replace`, a console).
    let cluster_moved = !changed_by.is_empty();
    let origin = match (spec_moved, cluster_moved) {
        (Some(true), true) => Origin::Both,
        // The spec did not move, a value did at its source: said so, with the cluster's edit
        // if there was one too.
        (Some(false), true) if !at_source.is_empty() => Origin::Both,
        (Some(false), false) if !at_source.is_empty() => Origin::SourceChanged,
        (Some(true), false) | (None, false) => Origin::SpecChanged,
        (Some(false), true) | (None, true) => Origin::ChangedInCluster,
        // Neither, as far as the records go: a credential with no ciphertext (from the
        // environment, a file, a helper) changed at its source; else the Secret was changed in
        // a way its field managers do not show.
        (Some(false), false) if d.sources.len() < d.logins.len() => Origin::SpecChanged,
        (Some(false), false) => Origin::ChangedInCluster,
    };
    DataMove {
        origin,
        rotated,
        at_source,
    }
}

/// Why an owned Secret's data differs, for people, in the words of its [`Origin`]: the spec's
/// rotation (naming the credentials), a change in the cluster (naming who made it), or both.
fn data_change_reason(m: &DataMove, changed_by: &[String]) -> Message {
    let spec = if !m.at_source.is_empty() && m.rotated.is_empty() {
        Message::own(if m.at_source.len() == 1 {
            "the value of credential "
        } else {
            "the values of credentials "
        })
        .code_all(&m.at_source, ", ")
        .and(" changed at its source")
    } else if m.rotated.is_empty() {
        Message::own("the spec changes it")
    } else {
        Message::own(if m.rotated.len() == 1 {
            "the spec rotates credential "
        } else {
            "the spec rotates credentials "
        })
        .code_all(&m.rotated, ", ")
    };
    let cluster = if changed_by.is_empty() {
        Message::own("changed in the cluster")
    } else {
        Message::own("changed in the cluster by ").code_all(changed_by, ", ")
    };
    match m.origin {
        Origin::Both => spec
            .and(", and it was ")
            .then(&cluster)
            .and("; apply writes the spec's"),
        Origin::ChangedInCluster => cluster.and("; apply restores it"),
        _ => spec,
    }
}

/// What regops once applied in a namespace: a Secret's name that a ServiceAccount's or
/// workload's record (`pull-secrets.regops.dev/<spec>`) lists as added there.
fn recorded_secrets<'o>(observed: &'o Observed, spec: &str) -> BTreeSet<(&'o str, String)> {
    let sa = observed
        .service_accounts
        .iter()
        .map(|s| (s.namespace.as_str(), &s.annotations));
    let workloads = observed
        .workloads
        .iter()
        .map(|w| (w.namespace.as_str(), &w.annotations));
    sa.chain(workloads)
        .flat_map(|(ns, a)| {
            ownership::added_by(a, spec)
                .into_iter()
                .map(move |name| (ns, name))
        })
        .collect()
}

/// `applied_here`: regops applied this Secret here before (the namespace holds another Secret
/// of this spec, or a ServiceAccount or workload records having been given this one), so a
/// missing one was deleted, rather than the namespace being new to the scope.
// Kept whole (over 80 lines): the decisions about one Secret, top to bottom: create, conflict,
// replace, update, ownership, no-op.
fn plan_secret(
    spec: &str,
    d: &DesiredSecret,
    have: Option<&Secret>,
    commit: Option<&str>,
    applied_here: bool,
) -> Result<Change, Conflict> {
    let logins: Vec<String> = d
        .logins
        .iter()
        .map(|(s, u)| format!("{s} as {u}"))
        .collect();
    let Some(have) = have else {
        let mut c = Change::new(Action::Create, ObjectKind::Secret, &d.namespace, &d.name);
        c.logins = logins;
        if applied_here {
            c.causes.push(Cause::Missing);
            c.cause = Some(Origin::Missing);
            c.reason = Some(Origin::Missing.words().into());
        } else {
            c.causes.push(Cause::NewNamespace);
            c.cause = Some(Origin::NewInScope);
        }
        return Ok(c);
    };
    let owned = have.owned_by(spec);
    if !owned && !d.adopt {
        return Err(collision(d, have));
    }
    // Adoption takes over a pull secret someone made by hand; a Secret of another type (a TLS
    // key, an application's Opaque settings) that happens to have the name is not one, and
    // replacing it would delete it.
    if !owned && !ownership::PULL_SECRET_TYPES.contains(&have.type_.as_str()) {
        return Err(Conflict {
            kind: ObjectKind::Secret,
            namespace: d.namespace.clone(),
            name: d.name.clone(),
            message: Message::own(
                "`adopt: true` takes over pull secrets only, and this Secret is of type ",
            )
            .code(&have.type_)
            .and("; rename the pull secret"),
        });
    }
    let want = d.dockerconfigjson.expose_secret();
    let have_doc = have
        .dockerconfigjson
        .as_ref()
        .map(|s| s.expose_secret().to_string());
    // What an adopted Secret holds is taken as is when its logins are the spec's, whatever
    // its bytes (a console's field order, an empty email): adoption changes no data.
    let data_same = have_doc.as_deref() == Some(want)
        || (d.adopt
            && have.type_ == SECRET_TYPE
            && have
                .dockerconfigjson
                .as_ref()
                .is_some_and(|h| crate::dockerconfig::same_logins(h, &d.dockerconfigjson)));
    let mut c = Change::new(Action::Update, ObjectKind::Secret, &d.namespace, &d.name);
    c.logins = logins;
    if have.type_ != SECRET_TYPE {
        c.action = Action::Replace;
        c.reason = Some(
            Message::own("type ")
                .code(&have.type_)
                .and(format!(" cannot be changed to `{SECRET_TYPE}`")),
        );
        c.causes.push(Cause::TypeDiffers {
            from: have.type_.clone(),
        });
        // regops writes only its own type: a Secret of its with another type was made anew in
        // the cluster; one taken over (`adopt: true`) is the spec's doing.
        c.cause = Some(if owned {
            Origin::ChangedInCluster
        } else {
            Origin::SpecChanged
        });
        return Ok(c);
    }
    // Field managers other than regops' own that hold the data: who changed it by hand. A
    // writer that changes a field takes it from every other manager (server-side apply's
    // field ownership), so while regops still holds the data nobody changed it since regops
    // wrote it: another manager holding it too only wrote the same bytes (the `kubectl apply`
    // that made a Secret regops adopted).
    let regops_holds_data = have
        .managers
        .iter()
        .any(|m| m.owns_data && m.name == ownership::SECRET_FIELD_MANAGER);
    let changed_by: Vec<String> = have
        .managers
        .iter()
        .filter(|m| !regops_holds_data && m.owns_data && m.name != ownership::SECRET_FIELD_MANAGER)
        .map(|m| m.name.clone())
        .collect();
    let moved = (owned && !data_same).then(|| data_move(have, d, &changed_by, commit));
    if have.immutable && !data_same {
        c.action = Action::Replace;
        c.reason = Some("the Secret is immutable and its data must change".into());
        c.fields = auths_diff(have_doc.as_deref(), want, &d.digests);
        c.causes.push(Cause::Immutable);
        c.cause = Some(moved.map_or(Origin::SpecChanged, |m| m.origin));
        return Ok(c);
    }
    if !data_same {
        c.fields = auths_diff(have_doc.as_deref(), want, &d.digests);
        c.causes.push(Cause::DataChanged {
            fields: c.fields.iter().map(|f| f.field.clone()).collect(),
            by: if owned {
                changed_by.clone()
            } else {
                Vec::new()
            },
            rotated: moved
                .as_ref()
                .map(|m| m.rotated.clone())
                .unwrap_or_default(),
            changed_at_source: moved
                .as_ref()
                .map(|m| m.at_source.clone())
                .unwrap_or_default(),
        });
        if let Some(m) = &moved {
            c.reason = Some(data_change_reason(m, &changed_by));
            c.cause = Some(m.origin);
        }
    }
    if !owned {
        c.reason = Some("adopted (`adopt: true`)".into());
        c.causes.push(Cause::Adopted);
        c.cause = Some(Origin::SpecChanged);
    }
    let before = c.fields.len();
    labels_diff(
        "metadata.labels",
        &have.labels,
        &[(MANAGED_BY_LABEL, MANAGED_BY_VALUE)],
        &mut c.fields,
    );
    labels_diff(
        "metadata.annotations",
        &have.annotations,
        &[(SPEC_ANNOTATION, spec)],
        &mut c.fields,
    );
    if c.fields.len() > before {
        c.causes.push(Cause::OwnershipChanged);
        if owned {
            c.cause = Some(c.cause.map_or(Origin::ChangedInCluster, |o| {
                o.and(Origin::ChangedInCluster)
            }));
        }
    }
    // `kubectl apply`'s copy of the Secret's data goes: it would keep the password regops
    // rotates away readable (a Secret made with `kubectl apply`, then adopted).
    if (owned || d.adopt)
        && have
            .annotations
            .get(ownership::KUBECTL_LAST_APPLIED)
            .is_some()
    {
        c.fields.push(FieldChange {
            field: format!("metadata.annotations[{}]", ownership::KUBECTL_LAST_APPLIED),
            before: Some("(sensitive value)".into()),
            after: None,
            sensitive: true,
        });
        c.causes.push(Cause::LastAppliedRemoved);
    }
    // The record of the credentials' sources follows the spec (a `regops rekey` changes every
    // ciphertext, not the passwords): kept up to date once a regops that writes it has written
    // the Secret; a Secret without one gets it at its next write, not before.
    if owned
        && data_same
        && let Some(recorded) = have.annotations.get(ownership::APPLIED_SOURCES_ANNOTATION)
    {
        let now = ownership::sources_value(&d.sources);
        if !now.is_empty() && *recorded != now {
            labels_diff(
                "metadata.annotations",
                &have.annotations,
                &[(ownership::APPLIED_SOURCES_ANNOTATION, &now)],
                &mut c.fields,
            );
            c.causes.push(Cause::RecordOutdated);
        }
    }
    if let Some(at) = d.expires_at {
        let at = regops_spec::rules::format_timestamp(at);
        labels_diff(
            "metadata.annotations",
            &have.annotations,
            &[(ownership::EXPIRES_AT_ANNOTATION, &at)],
            &mut c.fields,
        );
    }
    if !d.renewed.is_empty() && !c.fields.is_empty() {
        // A renewal, not drift: say so first, in place of "differs from the spec".
        c.causes
            .retain(|k| !matches!(k, Cause::DataChanged { by, .. } if by.is_empty()));
        c.causes.insert(
            0,
            Cause::TokenRenewal {
                credentials: d.renewed.clone(),
            },
        );
        if owned && changed_by.is_empty() {
            c.reason = Some(
                Message::own("renews the token of ")
                    .code_all(&d.renewed, ", ")
                    .and(", which expires within `refreshBefore`"),
            );
            // A renewal is housekeeping: no one moved.
            c.cause = None;
        }
    }
    if c.fields.is_empty() {
        c.action = Action::Noop;
        c.reason = None;
        c.causes.clear();
        c.cause = None;
    }
    Ok(c)
}

/// Where a workload keeps the KubeSphere annotation (the pod template, where KubeSphere's
/// console writes and reads it), and whether an earlier regops' copy on the workload's own
/// metadata is to be removed.
struct KubeSphere<'a> {
    /// The pod template's annotations.
    template: &'a Labels,
    /// The copy on the workload's metadata that this spec's field manager holds.
    legacy: Option<&'a String>,
}

/// The KubeSphere part of a workload's change: the pod template's shared annotation merged
/// per container (this spec's containers set, the containers of entries it removes dropped,
/// everyone else's kept), and an earlier regops' copy on the workload's metadata removed.
fn kubesphere_change(c: &mut Change, ks: &KubeSphere<'_>, wanted: Option<&Wanted>) {
    let empty = BTreeMap::new();
    let want_ks = wanted.map_or(&empty, |w| &w.kubesphere);
    let current = ks.template.get(KUBESPHERE_ANNOTATION);
    let merged = ownership::merge_kubesphere(current.map(String::as_str), want_ks, &c.remove);
    if merged.as_ref() != current {
        let template = c
            .kind
            .workload()
            .map_or("spec.template.metadata", |w| w.facts().template.metadata());
        c.fields.push(FieldChange {
            field: format!("{template}.annotations[{KUBESPHERE_ANNOTATION}]"),
            before: current.cloned(),
            after: merged.clone(),
            sensitive: false,
        });
        c.kubesphere_annotation = Some(merged);
        c.causes.push(Cause::AnnotationDiffers);
    }
    if let Some(old) = ks.legacy {
        c.fields.push(FieldChange {
            field: format!("metadata.annotations[{KUBESPHERE_ANNOTATION}]"),
            before: Some(old.clone()),
            after: None,
            sensitive: false,
        });
        c.reason = Some(
            "the KubeSphere annotation moves to the pod template, where KubeSphere reads it".into(),
        );
        c.causes.push(Cause::AnnotationMoved);
    }
}

/// Entries to add and to remove on one object: add what is wanted and missing; remove what
/// this spec recorded as added, no longer wants, and is still there. Never anything else.
fn entries_change(
    spec: &str,
    (kind, namespace, name): (ObjectKind, &str, &str),
    present: &[String],
    annotations: &Labels,
    wanted: Option<&Wanted>,
    kubesphere: Option<KubeSphere<'_>>,
) -> Change {
    let want: BTreeSet<String> = wanted
        .map(|w| w.secrets.iter().cloned().collect())
        .unwrap_or_default();
    let recorded: BTreeSet<String> = ownership::added_by(annotations, spec).into_iter().collect();
    let present_set: BTreeSet<&String> = present.iter().collect();
    let mut c = Change::new(Action::Patch, kind, namespace, name);
    c.add = want
        .iter()
        .filter(|s| !present_set.contains(s))
        .cloned()
        .collect();
    c.remove = recorded
        .iter()
        .filter(|s| !want.contains(*s) && present_set.contains(s))
        .cloned()
        .collect();
    // The record lists what regops added and still wants: entries it added before (or now).
    let new_record: Vec<String> = want
        .iter()
        .filter(|s| c.add.contains(s) || recorded.contains(*s))
        .cloned()
        .collect();
    let old_record: Vec<String> = recorded.iter().cloned().collect();
    if new_record != old_record {
        c.record = Some(ownership::record_value(&new_record));
    }
    // Wanted and missing: removed by someone since regops added it, or never there.
    let (mut removed, mut missing): (Vec<String>, Vec<String>) =
        c.add.iter().cloned().partition(|a| recorded.contains(a));
    removed.shrink_to_fit();
    missing.shrink_to_fit();
    if !removed.is_empty() {
        c.causes.push(Cause::EntryRemoved { entries: removed });
    }
    if !missing.is_empty() {
        c.causes.push(Cause::EntryMissing { entries: missing });
    }
    if !c.remove.is_empty() {
        c.causes.push(Cause::EntryUnwanted {
            entries: c.remove.clone(),
        });
    }
    if let Some(ks) = &kubesphere {
        kubesphere_change(&mut c, ks, wanted);
    }
    // Entries regops added and someone removed moved in the cluster; entries wanted and never
    // added are the spec's change on an object regops already keeps entries on, or new in
    // scope on one it does not; entries no longer wanted are the spec's change.
    let new_here = if recorded.is_empty() {
        Origin::NewInScope
    } else {
        Origin::SpecChanged
    };
    c.cause = c
        .causes
        .iter()
        .filter_map(|k| match k {
            Cause::EntryRemoved { .. } => Some(Origin::ChangedInCluster),
            Cause::EntryMissing { .. } | Cause::AnnotationDiffers => Some(new_here),
            Cause::EntryUnwanted { .. } => Some(Origin::SpecChanged),
            _ => None,
        })
        .reduce(Origin::and);
    if !c.add.is_empty() || !c.remove.is_empty() {
        c.entries_before = present.to_vec();
        c.entries_after = crate::request::entries_after(present, &c.add, &c.remove);
    }
    // A change to a pod template rolls the pods of the kinds that run them now (a CronJob's
    // template is used by its next Jobs).
    let template_changes =
        !c.add.is_empty() || !c.remove.is_empty() || c.kubesphere_annotation.is_some();
    c.restarts_pods = template_changes && kind.workload().is_some_and(|w| w.facts().rolls_pods);
    if c.add.is_empty() && c.remove.is_empty() && c.fields.is_empty() && c.record.is_none() {
        c.action = Action::Noop;
    } else if c.causes.is_empty() {
        c.causes.push(Cause::RecordOutdated);
    }
    c
}

/// What every step of planning reads: the spec's name, the desired state, the cluster, which
/// namespaces are planned, and what the steps find along the way.
struct Planner<'a> {
    spec: &'a str,
    commit: Option<&'a str>,
    desired: &'a Desired,
    observed: &'a Observed,
    only: Option<&'a BTreeSet<String>>,
    /// Namespaces being deleted are left alone: nothing is created, patched or deleted there
    /// (desired state already plans nothing for them, and says so).
    terminating: BTreeSet<&'a str>,
    /// Secrets in conflict, `(namespace, name)`: references to them are held back.
    blocked: BTreeSet<(String, String)>,
    /// In apply order (Secrets, then what references them), sized once.
    changes: Vec<Change>,
    conflicts: Vec<Conflict>,
    warnings: Vec<Warning>,
    /// The strings the writes share.
    shared: Interner,
}

impl<'a> Planner<'a> {
    /// A Secret's write: its applied configuration but the data, which apply derives.
    fn secret_write(&mut self, c: &Change, d: &DesiredSecret, have: Option<&Secret>) -> Write {
        let replace = c.action == Action::Replace;
        let write = SecretWrite {
            field_manager: self.shared.get(ownership::SECRET_FIELD_MANAGER),
            spec: self.shared.get(self.spec),
            commit: self.commit.map(|c| self.shared.get(c)),
            sources: self.shared.get(&ownership::sources_value(&d.sources)),
            expires_at: d.expires_at,
            force: d.adopt && !replace,
            restore: have.is_some_and(|h| h.owned_by(self.spec)),
            adopt_uid: have
                .and_then(|h| h.uid.clone())
                .filter(|_| d.adopt && replace),
            drop_last_applied: c
                .causes
                .iter()
                .any(|k| matches!(k, Cause::LastAppliedRemoved)),
        };
        // Each namespace's copy of a pull secret is written alike: one write for them all.
        Write::Secret(self.shared.secret(write))
    }

    /// A ServiceAccount's write: its whole list after the change, bound to the version read.
    fn service_account_write(&mut self, c: &Change, sa: &crate::observed::ServiceAccount) -> Write {
        let list = crate::request::entries_after(&sa.image_pull_secrets, &c.add, &c.remove);
        Write::ServiceAccount(Box::new(ServiceAccountWrite {
            entries: self.shared.names(&list),
            resource_version: sa.resource_version.as_deref().map(Into::into),
        }))
    }

    /// A workload's write: the entries this spec wants (and which its record lists: those it
    /// adds or had added), and the pod template's KubeSphere value, as planned or as it is.
    fn workload_write(
        &mut self,
        c: &Change,
        w: &crate::observed::Workload,
        wanted: Option<&Wanted>,
    ) -> Write {
        let recorded = ownership::added_by(&w.annotations, self.spec);
        let entries: Vec<Entry> = wanted
            .map(|w| w.secrets.iter())
            .into_iter()
            .flatten()
            .map(|s| Entry {
                name: self.shared.get(s),
                recorded: c.add.contains(s) || recorded.contains(s),
            })
            .collect();
        let entries = self.shared.entries(&entries);
        let value = match &c.kubesphere_annotation {
            Some(v) => v.clone(),
            None => w.template_annotations.get(KUBESPHERE_ANNOTATION).cloned(),
        };
        let kubesphere = value.map(|value| {
            Box::new(KubeSphereWrite {
                value,
                wanted: wanted.map(|w| w.kubesphere.clone()).unwrap_or_default(),
                resource_version: w.resource_version.as_deref().map(Into::into),
            })
        });
        let write = WorkloadWrite {
            field_manager: self
                .shared
                .get(&ownership::workload_field_manager(self.spec)),
            spec: self.shared.get(self.spec),
            entries,
            kubesphere,
        };
        // Workloads given the same entries and no KubeSphere value are written alike; one
        // with a KubeSphere value is bound to its own version.
        Write::Workload(if write.kubesphere.is_some() {
            write.into()
        } else {
            self.shared.workload(write)
        })
    }

    /// The node-trust ConfigMap (`nodeTrust:`): created, updated or left as it is; one regops
    /// does not own (for this spec) is a conflict, never written. And a warning for each host
    /// the operator's allowlist does not name: node-sync will refuse it.
    fn node_trust(&mut self) {
        let Some(d) = &self.desired.node_trust else {
            return;
        };
        if self.only.is_some_and(|o| !o.contains(&d.namespace))
            || self.terminating.contains(d.namespace.as_str())
        {
            return;
        }
        let find = |name: &str| {
            self.observed
                .config_maps
                .iter()
                .find(|c| c.namespace == d.namespace && c.name == name)
        };
        let seen = find(&d.name);
        let kept = match node_trust_change(self.spec, d, seen) {
            Ok(mut c) => {
                if matches!(c.action, Action::Create | Action::Update) {
                    c.write = Some(Write::ConfigMap(Box::new(ConfigMapWrite {
                        field_manager: self.shared.get(ownership::SECRET_FIELD_MANAGER),
                        spec: self.shared.get(self.spec),
                        data: d.data.clone(),
                        resource_version: seen
                            .and_then(|m| m.resource_version.clone())
                            .filter(|_| c.action == Action::Update),
                    })));
                }
                self.push(c);
                true
            }
            Err(message) => {
                self.conflicts.push(Conflict {
                    kind: ObjectKind::ConfigMap,
                    namespace: d.namespace.clone(),
                    name: d.name.clone(),
                    message,
                });
                false
            }
        };
        let allow = find(&d.allow_list);
        let refused = refused_hosts(d, allow);
        // A registry whose node trust regops keeps and node-sync writes needs no warning that
        // its workloads' nodes may not trust it.
        if kept {
            let managed: BTreeSet<String> = d
                .registries
                .iter()
                .filter(|(_, h)| !refused.iter().any(|w| w.subject == format!("host {h}")))
                .map(|(r, _)| format!("registry {r}"))
                .collect();
            self.warnings
                .retain(|w| !(w.kind == WarningKind::NodeTrust && managed.contains(&w.subject)));
        }
        self.warnings.extend(refused);
    }

    /// Keeps a change, its lists trimmed to their length: a plan holds tens of thousands of
    /// changes, and a vector's first push reserves room for four.
    fn push(&mut self, mut c: Change) {
        c.causes.shrink_to_fit();
        c.add.shrink_to_fit();
        c.remove.shrink_to_fit();
        c.entries_after.shrink_to_fit();
        self.changes.push(c);
    }

    fn in_only(&self, ns: &str) -> bool {
        self.only.is_none_or(|o| o.contains(ns)) && !self.terminating.contains(ns)
    }

    /// Each desired Secret: created, updated, replaced, unchanged, or in conflict.
    fn secrets(&mut self) {
        let observed = self.observed;
        let have: BTreeMap<(&str, &str), &Secret> = observed
            .secrets
            .iter()
            .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
            .collect();
        // Namespaces holding a Secret of this spec: one to create there was deleted.
        // ServiceAccounts and workloads recording that this spec gave them a Secret: it was
        // there (and so was deleted, if it is not now).
        let recorded = recorded_secrets(observed, self.spec);
        let owned_in: BTreeSet<&str> = observed
            .secrets
            .iter()
            .filter(|s| s.owned_by(self.spec))
            .map(|s| s.namespace.as_str())
            .collect();
        for d in &self.desired.secrets {
            if let Some(why) = &d.held {
                // Its credential failed: the Secret is left as it is, and references to it
                // wait, as for a conflict; the other Secrets go ahead.
                self.blocked.insert((d.namespace.clone(), d.name.clone()));
                self.conflicts.push(Conflict {
                    kind: ObjectKind::Secret,
                    namespace: d.namespace.clone(),
                    name: d.name.clone(),
                    message: Message::own("held back: ").quote(why),
                });
                continue;
            }
            let seen = have.get(&(d.namespace.as_str(), d.name.as_str())).copied();
            match plan_secret(
                self.spec,
                d,
                seen,
                self.commit,
                owned_in.contains(d.namespace.as_str())
                    || recorded.contains(&(d.namespace.as_str(), d.name.clone())),
            ) {
                Ok(mut c) => {
                    if c.action != Action::Noop {
                        c.write = Some(self.secret_write(&c, d, seen));
                    }
                    if let Some(w) = rotation_warning(&c, d.expires_at.is_some()) {
                        self.warnings.push(w);
                    }
                    self.push(c);
                }
                Err(conflict) => {
                    self.blocked.insert((d.namespace.clone(), d.name.clone()));
                    self.conflicts.push(conflict);
                }
            }
        }
    }

    /// Secrets this spec owns that it no longer wants (applied only with `--prune`).
    fn deletions(&self) -> Vec<Change> {
        let wanted: BTreeSet<(&str, &str)> = self
            .desired
            .secrets
            .iter()
            .map(|d| (d.namespace.as_str(), d.name.as_str()))
            .collect();
        self.observed
            .secrets
            .iter()
            .filter(|s| s.owned_by(self.spec) && self.in_only(&s.namespace))
            .filter(|s| !wanted.contains(&(s.namespace.as_str(), s.name.as_str())))
            .map(|s| {
                let mut c = Change::new(Action::Delete, ObjectKind::Secret, &s.namespace, &s.name);
                c.reason = Some("no longer in the spec; deleted only with --prune".into());
                c.causes.push(Cause::Orphaned);
                c.cause = Some(Origin::SpecChanged);
                c.write = Some(Write::Delete);
                c
            })
            .collect()
    }

    /// What a ServiceAccount or workload wants, less references to Secrets in conflict (they
    /// would point at someone else's).
    fn wanted(&self, ns: &str, w: Option<&Wanted>) -> Option<Wanted> {
        let mut w = w?.clone();
        let blocked = |s: &String| self.blocked.contains(&(ns.to_string(), s.clone()));
        w.secrets.retain(|s| !blocked(s));
        w.kubesphere.retain(|_, s| !blocked(s));
        Some(w)
    }

    fn service_accounts(&mut self) {
        for sa in self.observed.service_accounts.iter() {
            if !self.in_only(&sa.namespace) {
                continue;
            }
            let key = (sa.namespace.clone(), sa.name.clone());
            let wanted = self.wanted(&sa.namespace, self.desired.service_accounts.get(&key));
            let recorded = !ownership::added_by(&sa.annotations, self.spec).is_empty();
            if wanted.is_none() && !recorded {
                continue;
            }
            let mut c = entries_change(
                self.spec,
                (ObjectKind::ServiceAccount, &sa.namespace, &sa.name),
                &sa.image_pull_secrets,
                &sa.annotations,
                wanted.as_ref(),
                None,
            );
            // Its list is atomic: another writer's apply replaces it whole, dropping regops'
            // entry, and regops' write drops nothing of theirs but makes them see a drift.
            if let Some(tool) = sa.managed_by
                && (!c.add.is_empty() || !c.remove.is_empty())
            {
                let object = format!("{}/{}", sa.namespace, sa.name);
                self.warnings.push(Warning::new(
                    WarningKind::GitopsManaged,
                    format!("serviceaccount {object} ({tool})"),
                    Message::own("serviceaccount ")
                        .quote(object)
                        .and(format!(
                            " is also managed by {tool}: its `imagePullSecrets` list is written whole, so {tool} and regops will undo each other's entries; bind the pull secret in {tool}'s manifest instead, or have regops bind the workloads (see docs/ci.md, \"Living beside Argo CD, Flux and Helm\")"
                        )),
                ));
            }
            if c.action == Action::Patch {
                c.write = Some(self.service_account_write(&c, sa));
            }
            self.push(c);
        }
    }

    fn workloads(&mut self) {
        let manager = ownership::workload_field_manager(self.spec);
        let mut job_notes: Vec<Warning> = Vec::new();
        for w in self.observed.workloads.iter() {
            if !self.in_only(&w.namespace) {
                continue;
            }
            let key = (w.namespace.clone(), w.kind, w.name.clone());
            let wanted = self.wanted(&w.namespace, self.desired.workloads.get(&key));
            let recorded = !ownership::added_by(&w.annotations, self.spec).is_empty();
            if wanted.is_none() && !recorded {
                continue;
            }
            let legacy = w
                .annotations
                .get(KUBESPHERE_ANNOTATION)
                .filter(|_| w.legacy_kubesphere_owners.contains(&manager));
            let kind = ObjectKind::from(w.kind);
            let mut c = entries_change(
                self.spec,
                (kind, &w.namespace, &w.name),
                &w.image_pull_secrets,
                &w.annotations,
                wanted.as_ref(),
                Some(KubeSphere {
                    template: &w.template_annotations,
                    legacy,
                }),
            );
            if !w.kind.facts().template_mutable {
                // A Job's pod template cannot change once the Job exists (the API server
                // answers 422 "field is immutable"), so a Job is never patched; the plan says
                // where the pull secret can go instead.
                if !c.add.is_empty() {
                    job_notes.push(job_note(w));
                }
                continue;
            }
            if let Some((ref_kind, target)) = w.template_ref.as_deref() {
                // An Argo Rollout with a `workloadRef` runs the referenced workload's pod
                // template (usually a Deployment scaled to zero): that template is what to
                // bind, and this object has none to patch.
                if !c.add.is_empty() {
                    job_notes.push(referenced_note(w, ref_kind, target));
                }
                continue;
            }
            if let Some((owner_kind, owner)) = workload_controller(w, self.desired) {
                // A ReplicaSet a Deployment controls: the Deployment writes its template, and
                // one that differs from the Deployment's makes the Deployment roll out a new
                // ReplicaSet. Its controller is what to bind.
                if !c.add.is_empty() {
                    job_notes.push(controlled_note(w, owner_kind, owner, self.desired));
                }
                continue;
            }
            if c.restarts_pods {
                let object = format!("{}/{}", w.namespace, w.name);
                self.warnings.push(Warning::new(
                    WarningKind::RestartsPods,
                    format!("{} {object}", kind.lowercase()),
                    Message::own(format!("will restart pods of {} ", kind.lowercase()))
                        .quote(object),
                ));
            }
            if c.action == Action::Patch {
                c.write = Some(self.workload_write(&c, w, wanted.as_ref()));
            }
            self.push(c);
        }
        self.warnings.extend(job_notes);
    }

    /// Commits the planned namespaces' Secrets were last applied from, when other than this
    /// one (with `-n`, only those namespaces are looked at, however the cluster was read).
    fn last_applied_commits(&self) -> Vec<String> {
        let mut last: BTreeSet<&str> = BTreeSet::new();
        for s in self
            .observed
            .secrets
            .iter()
            .filter(|s| s.owned_by(self.spec) && self.in_only(&s.namespace))
        {
            if let Some(c) = s.annotations.get(ownership::SOURCE_COMMIT_ANNOTATION)
                && self.commit != Some(c.as_str())
            {
                last.insert(c);
            }
        }
        last.into_iter().map(str::to_string).collect()
    }
}

/// The controller that writes `w`'s pod template, `(kind, name)`: its controller when that is
/// a kind a binding can select (a Job's CronJob, a ReplicaSet's Argo Rollout when the spec
/// declares `Rollout`), or any controller of a kind whose copies are their controller's (a
/// ReplicaSet's Deployment or undeclared Rollout).
fn workload_controller<'w>(
    w: &'w crate::observed::Workload,
    desired: &Desired,
) -> Option<(&'w str, &'w str)> {
    let (kind, name) = w.controller.as_deref()?;
    let known = bindable(kind, desired);
    (known || w.kind.facts().copied_by_controller).then_some((kind.as_str(), name.as_str()))
}

/// Whether a binding of this spec can select the kind named `kind`: a built-in workload kind,
/// or one the spec declares. (The kind table is the process's: another spec loaded in the
/// same process may have declared a kind of that name, which this spec cannot bind.)
fn bindable(kind: &str, desired: &Desired) -> bool {
    WorkloadKind::parse(kind)
        .is_some_and(|k| !ObjectKind::from(k).is_declared() || desired.declared_kinds.contains(&k))
}

/// Why a workload another workload controls is not patched, and what to bind instead.
fn controlled_note(
    w: &crate::observed::Workload,
    owner_kind: &str,
    owner: &str,
    desired: &Desired,
) -> Warning {
    let kind = ObjectKind::from(w.kind).lowercase();
    let object = format!("{}/{}", w.namespace, w.name);
    // A controller regops can bind is what to bind; another (an Argo Rollout) takes the pull
    // secret in its own manifest.
    let instead = if bindable(owner_kind, desired) {
        Message::own("bind the ").quote(owner_kind).and(" instead")
    } else {
        Message::own("add the pull secret to the ")
            .quote(owner_kind)
            .and("'s pod template, or bind the ServiceAccount its pods run as")
    };
    Warning::new(
        WarningKind::ControlledNotPatched,
        format!("{kind} {object}"),
        Message::own(format!("{kind} "))
            .quote(object)
            .and(" is not patched: its ")
            .quote(owner_kind)
            .and(" ")
            .code(owner)
            .and(" writes its pod template; ")
            .then(&instead),
    )
}

/// Why a workload that runs another's pod template is not patched, and what to bind instead.
fn referenced_note(w: &crate::observed::Workload, ref_kind: &str, target: &str) -> Warning {
    let kind = ObjectKind::from(w.kind).lowercase();
    let object = format!("{}/{}", w.namespace, w.name);
    Warning::new(
        WarningKind::TemplateReferenced,
        format!("{kind} {object}"),
        Message::own(format!("{kind} "))
            .quote(object)
            .and(" is not patched: it runs the pod template of its `workloadRef`, ")
            .quote(ref_kind)
            .and(" ")
            .code(target)
            .and("; bind that ")
            .quote(ref_kind)
            .and(" instead"),
    )
}

/// Where the pull secret can go for a Job, which is never patched.
fn job_note(w: &crate::observed::Workload) -> Warning {
    let instead = match w.controller.as_deref() {
        Some((owner_kind, owner)) if ObjectKind::parse(owner_kind) == Some(ObjectKind::CronJob) => {
            Message::own("bind its CronJob ")
                .code(owner)
                .and(", so its next Jobs get it, or the ServiceAccount it runs as")
        }
        _ => Message::own("bind the ServiceAccount it runs as, or the workload that creates it"),
    };
    let object = format!("{}/{}", w.namespace, w.name);
    Warning::new(
        WarningKind::JobNotPatched,
        format!("job {object}"),
        Message::own("job ")
            .quote(object)
            .and(" is not patched: a Job's pod template cannot change once it exists; ")
            .then(&instead),
    )
}

/// What a node-trust stream names, for the views: its `path:` lines (the files on the node),
/// or `(empty)`. The ConfigMap's data is public; views escape it as any text from outside.
fn stream_summary(stream: Option<&str>) -> Option<String> {
    let stream = stream?;
    let paths: Vec<&str> = stream
        .lines()
        .filter_map(|l| l.strip_prefix("path: "))
        .map(|p| p.trim_matches('"'))
        .collect();
    Some(if paths.is_empty() {
        "(empty)".into()
    } else {
        paths.join(", ")
    })
}

/// The change of the node-trust ConfigMap `d` against what is there (`seen`), or why it cannot
/// be written: it exists and is not this spec's.
fn node_trust_change(
    spec: &str,
    d: &crate::desired::NodeTrustMap,
    seen: Option<&crate::observed::ConfigMap>,
) -> Result<Change, Message> {
    let mut c = Change::new(Action::Noop, ObjectKind::ConfigMap, &d.namespace, &d.name);
    let Some(seen) = seen else {
        c.action = Action::Create;
        c.cause = Some(Origin::SpecChanged);
        c.fields = d
            .data
            .iter()
            .map(|(k, v)| FieldChange {
                field: format!("data[{k}]"),
                before: None,
                after: stream_summary(Some(v)),
                sensitive: false,
            })
            .collect();
        return Ok(c);
    };
    if !seen.owned_by(spec) {
        let whose = match (
            seen.labels.get(MANAGED_BY_LABEL).map(String::as_str),
            seen.annotations.get(SPEC_ANNOTATION),
        ) {
            (Some(MANAGED_BY_VALUE), Some(other)) => {
                Message::own("it belongs to regops spec ").code(other.as_str())
            }
            _ => Message::own("it is not regops' (no `")
                .and(MANAGED_BY_LABEL)
                .and("` label and `")
                .and(SPEC_ANNOTATION)
                .and("` annotation of this spec)"),
        };
        return Err(Message::own("ConfigMap ")
            .quote(format!("{}/{}", d.namespace, d.name))
            .and(" exists and ")
            .then(&whose)
            .and(": node trust is not written over it; remove it, or name another ConfigMap in `nodeTrust.configMap`"));
    }
    let fields: Vec<FieldChange> = d
        .data
        .iter()
        .filter(|(k, v)| seen.data.get(*k) != Some(*v))
        .map(|(k, v)| {
            let before = seen.data.get(k).map(String::as_str);
            let (b, mut a) = (stream_summary(before), stream_summary(Some(v)));
            if b == a {
                a = a.map(|a| format!("{a} (content changed)"));
            }
            FieldChange {
                field: format!("data[{k}]"),
                before: b,
                after: a,
                sensitive: false,
            }
        })
        .collect();
    if fields.is_empty() {
        return Ok(c);
    }
    // Who moved, from regops' record of the data it last applied.
    let recorded = seen.annotations.get(ownership::APPLIED_DIGEST_ANNOTATION);
    let now = ownership::data_digest(&seen.data);
    let wanted = ownership::data_digest(&d.data);
    let origin = match recorded {
        Some(r) if *r == now => Origin::SpecChanged,
        Some(r) if *r == wanted => Origin::ChangedInCluster,
        Some(_) => Origin::Both,
        None => Origin::SpecChanged,
    };
    c.action = Action::Update;
    c.causes.push(Cause::DataChanged {
        fields: fields.iter().map(|f| f.field.clone()).collect(),
        by: Vec::new(),
        rotated: Vec::new(),
        changed_at_source: Vec::new(),
    });
    c.cause = Some(origin);
    if origin != Origin::SpecChanged {
        c.reason = Some(origin.words().into());
    }
    c.fields = fields;
    Ok(c)
}

/// A warning for each host of `d` that node-sync will refuse: the allowlist (`allow`, the
/// operator's ConfigMap) does not exist, lacks its key, names it not, or cannot be read by
/// node-sync at all.
fn refused_hosts(
    d: &crate::desired::NodeTrustMap,
    allow: Option<&crate::observed::ConfigMap>,
) -> Vec<Warning> {
    use crate::node_trust::{NodeHost, parse_allow_list};
    let key = regops_spec::NodeTrust::ALLOW_KEY;
    let at = format!("{}/{}", d.namespace, d.allow_list);
    let (allowed, why): (Vec<NodeHost>, Message) = match allow.map(|a| a.data.get(key)) {
        None => (
            Vec::new(),
            Message::own("the allowlist ConfigMap ")
                .quote(at.as_str())
                .and(" does not exist"),
        ),
        Some(None) => (
            Vec::new(),
            Message::own("the allowlist ConfigMap ")
                .quote(at.as_str())
                .and(" has no key ")
                .code(key),
        ),
        Some(Some(value)) => match parse_allow_list(value) {
            Ok(hosts) => (
                hosts,
                Message::own("it is not on the allowlist ")
                    .quote(at.as_str())
                    .and(" (key ")
                    .code(key)
                    .and(")"),
            ),
            Err(e) => (
                Vec::new(),
                Message::own("the allowlist ")
                    .quote(at.as_str())
                    .and(" cannot be read by node-sync: ")
                    .quote(e.to_string()),
            ),
        },
    };
    d.hosts
        .iter()
        .filter(|h| !allowed.contains(h))
        .map(|h| {
            Warning::new(
                WarningKind::NodeTrustRefused,
                format!("host {h}"),
                Message::own("node trust for registry host ")
                    .code(h.as_str())
                    .and(" will be refused by `regops node-sync`: ")
                    .then(&why)
                    .and(
                        "; the operator adds the hosts nodes may trust there (docs/node-trust.md)",
                    ),
            )
        })
        .collect()
}

fn summarize(changes: &[Change], conflicts: usize) -> Summary {
    let mut summary = Summary {
        conflicts,
        ..Summary::default()
    };
    for c in changes {
        match c.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Replace => summary.replace += 1,
            Action::Patch => summary.patch += 1,
            Action::Delete => summary.delete += 1,
            Action::Noop => summary.noop += 1,
        }
    }
    summary
}

/// What a Secret's new credentials mean for the kubelet (KEP-2535, "ensure secret pulled
/// images", beta and on by default from Kubernetes 1.35). The kubelet records which
/// credentials pulled each image, by the Secret's namespace, name and uid and a hash of the
/// credentials; a pod that starts with credentials it has no record of pulls the image again
/// (a registry round trip) even with `IfNotPresent`. A Secret whose credentials change in
/// place keeps its coordinates, and the kubelet takes the new hash as a rotation of a known
/// Secret (the KEP's "cache writes upon successful credentials match", case 2): no round trip,
/// but the new credentials are first proven at the next real pull. A Secret made anew (a new
/// uid) with new credentials matches nothing, so every pod that starts with it goes to the
/// registry. Minted tokens rotate by design and are not warned of.
fn rotation_warning(c: &Change, minted: bool) -> Option<Warning> {
    let data_changed = c
        .causes
        .iter()
        .any(|cause| matches!(cause, Cause::DataChanged { .. } | Cause::Immutable));
    let subject = format!("secret {}/{}", c.namespace, c.name);
    match c.action {
        Action::Replace => Some(Warning::new(
            WarningKind::ReverifiesImages,
            subject,
            Message::own("Secret ")
                .quote(format!("{}/{}", c.namespace, c.name))
                .and(" is made anew (a new uid): pods in namespace ")
                .code(&c.namespace)
                .and(
                    " that start with it will pull their images from the registry again, even \
                     those present on their node (KEP-2535), so the registry must be up; run \
                     `regops validate` first",
                ),
        )),
        Action::Update if data_changed && !minted => Some(Warning::new(
            WarningKind::Rotation,
            subject,
            Message::own("Secret ")
                .quote(format!("{}/{}", c.namespace, c.name))
                .and(
                    "'s credentials change in place (same uid, so the kubelet takes it as a \
                     rotation and pulls nothing again); they are first used at the next pull in \
                     namespace ",
                )
                .code(&c.namespace)
                .and(": prove them with `regops validate` before applying"),
        )),
        _ => None,
    }
}

/// Computes the plan: Secrets first, then the ServiceAccounts and workloads that reference
/// them, deletions last (the order apply follows).
pub fn compute(
    spec: &str,
    target: &str,
    source: Source,
    desired: &Desired,
    observed: &Observed,
    only: Option<&BTreeSet<String>>,
) -> Plan {
    let mut p = Planner {
        spec,
        commit: source.commit.as_deref(),
        desired,
        observed,
        only,
        terminating: observed.terminating_namespaces(),
        blocked: BTreeSet::new(),
        changes: Vec::with_capacity(
            desired.secrets.len() + desired.service_accounts.len() + desired.workloads.len(),
        ),
        conflicts: Vec::new(),
        warnings: desired.warnings.clone(),
        shared: Interner::default(),
    };
    p.secrets();
    p.node_trust();
    let deletes = p.deletions();
    p.service_accounts();
    p.workloads();
    if !p.blocked.is_empty() {
        let n = p.blocked.len();
        p.warnings.push(Warning::new(
            WarningKind::HeldBack,
            format!("{n} Secret{}", if n == 1 { "" } else { "s" }),
            Message::own(format!(
                "references to {n} Secret{} in conflict are held back until the conflict{} resolved",
                if n == 1 { "" } else { "s" },
                if n == 1 { " is" } else { "s are" }
            )),
        ));
    }
    let last_applied_commits = p.last_applied_commits();
    let Planner {
        mut changes,
        conflicts,
        warnings,
        ..
    } = p;
    changes.extend(deletes);
    let summary = summarize(&changes, conflicts.len());
    let mut plan = Plan {
        format_version: FORMAT_VERSION.into(),
        spec: spec.into(),
        target: target.into(),
        source,
        last_applied_commits,
        groups: crate::group::of(&changes),
        changes,
        conflicts,
        warnings,
        warning_groups: Vec::new(),
        summary,
    };
    plan.warning_groups = crate::warning::groups(&plan.warnings);
    plan
}
