//! Groups of changes that are the same but for where they happen: the same Secret created in
//! 300 namespaces, the same entry added to 300 `default` ServiceAccounts, 600 Deployments
//! given the same entry. The views show a group as one line; the plan keeps every change, and
//! lists the groups beside them. Changes that differ stay one by one: updates (data changes),
//! replacements, deletions, and conflicts (which are not changes).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use regops_spec::untrusted::Message;

use crate::plan::{Action, Change};
use regops_spec::kind::ObjectKind;

/// The fewest changes shown as a group; fewer are shown one by one.
pub const GROUP_MIN: usize = 3;

/// Changes alike but for their namespace (and, for workloads, their name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub action: Action,
    pub kind: ObjectKind,
    /// The objects' name, where every member has the same (Secrets, ServiceAccounts);
    /// workloads of one kind are grouped whatever their names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// The fields every member changes (their values may differ from member to member).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Message>,
    pub restarts_pods: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<String>,
    /// How many changes, in how many namespaces, the first and last namespace by name.
    pub count: usize,
    pub namespaces: usize,
    pub first_namespace: String,
    pub last_namespace: String,
    /// The members, as indices into the plan's `changes`, in plan order.
    pub members: Vec<usize>,
}

/// What members of one group share.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    action: Action,
    kind: ObjectKind,
    name: Option<String>,
    add: Vec<String>,
    remove: Vec<String>,
    fields: Vec<String>,
    reason: Option<String>,
    restarts_pods: bool,
    logins: Vec<String>,
}

fn key(c: &Change) -> Option<Key> {
    // Only creations and reference patches are alike across namespaces; an update says how
    // one Secret's data differs, and replacements and deletions are each worth a look.
    if !matches!(c.action, Action::Create | Action::Patch) {
        return None;
    }
    let workload = c.kind.workload().is_some();
    Some(Key {
        action: c.action,
        kind: c.kind,
        name: (!workload).then(|| c.name.clone()),
        add: c.add.clone(),
        remove: c.remove.clone(),
        fields: c.fields.iter().map(|f| f.field.clone()).collect(),
        reason: c.reason.as_ref().map(Message::raw),
        restarts_pods: c.restarts_pods,
        logins: c.logins.clone(),
    })
}

/// The groups of at least [`GROUP_MIN`] alike changes, in the order of their first member.
pub fn of(changes: &[Change]) -> Vec<Group> {
    let mut by_key: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    for (i, c) in changes.iter().enumerate() {
        if let Some(k) = key(c) {
            by_key.entry(k).or_default().push(i);
        }
    }
    let mut groups: Vec<Group> = by_key
        .into_iter()
        .filter(|(_, members)| members.len() >= GROUP_MIN)
        .map(|(k, members)| {
            let mut namespaces: Vec<&str> = members
                .iter()
                .map(|&i| changes[i].namespace.as_str())
                .collect();
            namespaces.sort_unstable();
            namespaces.dedup();
            Group {
                action: k.action,
                kind: k.kind,
                name: k.name,
                add: k.add,
                remove: k.remove,
                fields: k.fields,
                // Members share the reason's text; the first one's says which parts are data.
                reason: members.first().and_then(|&i| changes[i].reason.clone()),
                restarts_pods: k.restarts_pods,
                logins: k.logins,
                count: members.len(),
                namespaces: namespaces.len(),
                first_namespace: namespaces
                    .first()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                last_namespace: namespaces.last().map(|s| s.to_string()).unwrap_or_default(),
                members,
            }
        })
        .collect();
    groups.sort_by_key(|g| g.members.first().copied());
    groups
}

/// Which changes are in a group (by index into `changes`).
pub fn grouped(groups: &[Group], changes: usize) -> Vec<bool> {
    let mut out = vec![false; changes];
    for g in groups {
        for &i in &g.members {
            if let Some(x) = out.get_mut(i) {
                *x = true;
            }
        }
    }
    out
}

impl Group {
    /// "300 namespaces (team-001 … team-300)", or the namespace itself.
    pub fn where_(&self) -> Message {
        match self.namespaces {
            1 => Message::own("namespace ").quote(&self.first_namespace),
            2 => Message::own("2 namespaces (")
                .quote(&self.first_namespace)
                .and(", ")
                .quote(&self.last_namespace)
                .and(")"),
            n => Message::own(format!("{n} namespaces ("))
                .quote(&self.first_namespace)
                .and(" … ")
                .quote(&self.last_namespace)
                .and(")"),
        }
    }

    /// "Secret pull", "ServiceAccount default", "600 Deployments".
    pub fn what(&self) -> Message {
        match &self.name {
            Some(name) => Message::own(format!("{} ", self.kind)).quote(name),
            None => Message::own(format!("{} {}s", self.count, self.kind)),
        }
    }
}
