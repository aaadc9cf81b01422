//! Field ownership for server-side apply (managedFields), and the list semantics it and
//! strategic merge patch share: which lists are maps keyed by a field, which are atomic.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// The key field of a list that merges by key, by the list's field path (names only).
/// Every other list is atomic: replaced whole, owned whole. This follows the Kubernetes
/// schema for the fields regops touches: PodSpec's containers, initContainers,
/// ephemeralContainers, imagePullSecrets and volumes merge by `name`;
/// ServiceAccount.imagePullSecrets has no merge key and is atomic.
pub fn list_key(path: &[String]) -> Option<&'static str> {
    let n = path.len();
    let last = path.last()?.as_str();
    let in_pod_spec = n >= 3 && path[n - 3] == "template" && path[n - 2] == "spec";
    if in_pod_spec
        && matches!(
            last,
            "containers"
                | "initContainers"
                | "ephemeralContainers"
                | "imagePullSecrets"
                | "volumes"
        )
    {
        return Some("name");
    }
    if n >= 2 && matches!(path[n - 2].as_str(), "containers" | "initContainers") {
        return match last {
            "env" => Some("name"),
            "volumeMounts" => Some("mountPath"),
            "ports" => Some("containerPort"),
            _ => None,
        };
    }
    if n == 2 && path[0] == "metadata" && last == "ownerReferences" {
        return Some("uid");
    }
    None
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Elem {
    Field(String),
    /// A keyed list entry: the key field's name and value.
    Key(String, String),
}

pub type Path = Vec<Elem>;
pub type FieldSet = BTreeSet<Path>;

fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Fields never owned: identity and bookkeeping.
fn untracked(path: &[String], key: &str) -> bool {
    match path.len() {
        0 => matches!(key, "apiVersion" | "kind" | "status"),
        1 if path[0] == "metadata" => {
            matches!(
                key,
                "name"
                    | "namespace"
                    | "resourceVersion"
                    | "uid"
                    | "managedFields"
                    | "creationTimestamp"
                    | "generation"
                    | "deletionTimestamp"
                    | "selfLink"
                    | "generateName"
            )
        }
        _ => false,
    }
}

/// The leaf fields set in `v`, and the entries of keyed lists.
pub fn field_set(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut Vec::new(), &mut out);
    out
}

fn walk(v: &Value, names: &mut Vec<String>, prefix: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                if untracked(names, k) {
                    continue;
                }
                names.push(k.clone());
                prefix.push(Elem::Field(k.clone()));
                walk(child, names, prefix, out);
                prefix.pop();
                names.pop();
            }
        }
        Value::Array(items) if list_key(names).is_some() => {
            let key = list_key(names).unwrap_or("name");
            for item in items {
                let kv = key_text(&item[key]);
                prefix.push(Elem::Key(key.to_string(), kv));
                out.insert(prefix.clone());
                walk(item, names, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The value at a path, if present.
pub fn get<'a>(v: &'a Value, path: &[Elem]) -> Option<&'a Value> {
    let mut cur = v;
    for e in path {
        cur = match e {
            Elem::Field(k) => cur.get(k)?,
            Elem::Key(key, kv) => cur
                .as_array()?
                .iter()
                .find(|item| key_text(&item[key.as_str()]) == *kv)?,
        };
    }
    Some(cur)
}

/// Removes the value at a path (a field, or a keyed list entry).
pub fn remove(v: &mut Value, path: &[Elem]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for e in parent_path {
        let next = match e {
            Elem::Field(k) => cur.get_mut(k),
            Elem::Key(key, kv) => cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| key_text(&item[key.as_str()]) == *kv)
            }),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Elem::Field(k) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(k);
            }
        }
        Elem::Key(key, kv) => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|item| key_text(&item[key.as_str()]) != *kv);
            }
        }
    }
}

/// Merges `applied` into `live` the way server-side apply does: maps field by field, keyed
/// lists entry by entry, everything else replaced.
pub fn merge_applied(live: &mut Value, applied: &Value, names: &mut Vec<String>) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                names.push(k.clone());
                match l.get_mut(k) {
                    Some(lv) => merge_applied(lv, av, names),
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
                names.pop();
            }
        }
        (lv @ Value::Array(_), Value::Array(items)) if list_key(names).is_some() => {
            let key = list_key(names).unwrap_or("name");
            if let Value::Array(list) = lv {
                for item in items {
                    match list.iter_mut().find(|x| x[key] == item[key]) {
                        Some(existing) => merge_applied(existing, item, names),
                        None => list.push(item.clone()),
                    }
                }
            }
        }
        (lv, av) => *lv = av.clone(),
    }
}

/// One managedFields entry's key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Manager {
    pub name: String,
    /// `Apply` or `Update`.
    pub operation: &'static str,
}

pub type Managed = BTreeMap<Manager, FieldSet>;

/// A field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub path: Path,
}

pub fn path_string(p: &[Elem]) -> String {
    p.iter()
        .map(|e| match e {
            Elem::Field(k) => format!(".{k}"),
            Elem::Key(key, kv) => format!("[{key}=\"{kv}\"]"),
        })
        .collect()
}

/// Server-side apply of `applied` by `manager` onto `live` (None: the object is created).
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    managed: &mut Managed,
) -> Result<Value, Vec<Conflict>> {
    let me = Manager {
        name: manager.to_string(),
        operation: "Apply",
    };
    let wanted = field_set(applied);
    let Some(live) = live else {
        managed.clear();
        managed.insert(me, wanted);
        return Ok(applied.clone());
    };
    let mut conflicts = Vec::new();
    for (m, owned) in managed.iter() {
        if *m == me {
            continue;
        }
        for p in wanted.intersection(owned) {
            // A keyed entry is shared, not contested; its fields carry the values.
            if matches!(p.last(), Some(Elem::Key(..))) {
                continue;
            }
            if get(live, p) != get(applied, p) {
                conflicts.push(Conflict {
                    manager: m.name.clone(),
                    path: p.clone(),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflicts);
        }
        for c in &conflicts {
            for (m, owned) in managed.iter_mut() {
                if m.name == c.manager {
                    owned.remove(&c.path);
                }
            }
        }
    }
    let previous = managed.remove(&me).unwrap_or_default();
    let mut result = live.clone();
    // Fields this manager set before and no longer sets are removed, unless someone else
    // owns them too. Shallowest first: removing a keyed entry removes its fields with it
    // (removing the key field first would leave an entry that can no longer be found).
    let mut dropped: Vec<&Path> = previous.difference(&wanted).collect();
    dropped.sort_by_key(|p| p.len());
    for p in dropped {
        let shared = managed.values().any(|owned| owned.contains(p));
        if !shared {
            remove(&mut result, p);
        }
    }
    merge_applied(&mut result, applied, &mut Vec::new());
    managed.insert(me, wanted);
    managed.retain(|_, s| !s.is_empty());
    Ok(result)
}

/// Ownership after a create, update or patch by `manager`: it takes the fields it changed;
/// fields that no longer exist leave every manager.
pub fn record_update(old: Option<&Value>, new: &Value, manager: &str, managed: &mut Managed) {
    let now = field_set(new);
    let changed: FieldSet = now
        .iter()
        .filter(|p| old.is_none_or(|o| get(o, p) != get(new, p)))
        .cloned()
        .collect();
    for owned in managed.values_mut() {
        owned.retain(|p| now.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        managed
            .entry(Manager {
                name: manager.to_string(),
                operation: "Update",
            })
            .or_default()
            .extend(changed);
    }
    managed.retain(|_, s| !s.is_empty());
}

/// `metadata.managedFields` as the API returns it (FieldsV1).
pub fn to_managed_fields(managed: &Managed, api_version: &str, time: &str) -> Value {
    serde_json::to_value(ManagedFieldsJson {
        managed,
        api_version,
        time,
    })
    .unwrap_or(Value::Null)
}

/// `metadata.managedFields`, serialised straight from the field sets (no tree is built).
pub struct ManagedFieldsJson<'a> {
    pub managed: &'a Managed,
    pub api_version: &'a str,
    pub time: &'a str,
}

impl serde::Serialize for ManagedFieldsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.managed.len()))?;
        for (m, set) in self.managed {
            let paths: Vec<&[Elem]> = set.iter().map(Vec::as_slice).collect();
            struct Entry<'a> {
                m: &'a Manager,
                api_version: &'a str,
                time: &'a str,
                tree: FieldsV1<'a>,
            }
            impl serde::Serialize for Entry<'_> {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    let mut e = s.serialize_map(Some(6))?;
                    e.serialize_entry("manager", &self.m.name)?;
                    e.serialize_entry("operation", self.m.operation)?;
                    e.serialize_entry("apiVersion", self.api_version)?;
                    e.serialize_entry("time", self.time)?;
                    e.serialize_entry("fieldsType", "FieldsV1")?;
                    e.serialize_entry("fieldsV1", &self.tree)?;
                    e.end()
                }
            }
            seq.serialize_element(&Entry {
                m,
                api_version: self.api_version,
                time: self.time,
                tree: FieldsV1 {
                    paths: &paths,
                    depth: 0,
                    keyed: false,
                },
            })?;
        }
        seq.end()
    }
}

/// The FieldsV1 tree of sorted paths that share their first `depth` elements: each next
/// element is a key (`f:name`, or `k:{"name":"x"}` with a `.` entry for the item itself).
struct FieldsV1<'a> {
    paths: &'a [&'a [Elem]],
    depth: usize,
    keyed: bool,
}

impl serde::Serialize for FieldsV1<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        if self.keyed {
            m.serialize_entry(".", &serde_json::Map::new())?;
        }
        // Paths ending here are leaves (already the empty map); the rest group by their next
        // element, contiguous because the set is sorted.
        let n = self.paths.len();
        let mut i = self
            .paths
            .iter()
            .position(|p| p.len() > self.depth)
            .unwrap_or(n);
        while i < n {
            let elem = &self.paths[i][self.depth];
            let start = i;
            while i < n && self.paths[i].get(self.depth) == Some(elem) {
                i += 1;
            }
            let key = match elem {
                Elem::Field(f) => format!("f:{f}"),
                Elem::Key(key, kv) => format!("k:{}", json!({ key.as_str(): kv })),
            };
            m.serialize_entry(
                &key,
                &FieldsV1 {
                    paths: &self.paths[start..i],
                    depth: self.depth + 1,
                    keyed: matches!(elem, Elem::Key(..)),
                },
            )?;
        }
        m.end()
    }
}

/// Strategic merge patch for the fields regops touches: maps merge, `null` deletes, keyed lists
/// merge by key with `$patch: delete` removing an entry, other lists are replaced.
pub fn strategic_merge(orig: &mut Value, patch: &Value, names: &mut Vec<String>) {
    let Value::Object(p) = patch else {
        *orig = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = patch.clone();
        strip_directives(&mut clean);
        *orig = clean;
        return;
    }
    if !orig.is_object() {
        *orig = json!({});
    }
    for (k, pv) in p {
        if k.starts_with('$') {
            if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/")
                && let (Some(list), Some(del)) = (
                    orig.get_mut(field).and_then(Value::as_array_mut),
                    pv.as_array(),
                )
            {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        names.push(k.clone());
        if pv.is_null() {
            if let Some(o) = orig.as_object_mut() {
                o.remove(k);
            }
        } else if let (Some(key), Value::Array(items)) = (list_key(names), pv) {
            let target = &mut orig[k.as_str()];
            if !target.is_array() {
                *target = json!([]);
            }
            if let Value::Array(list) = target {
                for item in items {
                    let directive = item.get("$patch").and_then(Value::as_str);
                    let pos = list.iter().position(|x| x[key] == item[key]);
                    match (directive, pos) {
                        (Some("delete"), Some(i)) => {
                            list.remove(i);
                        }
                        (Some("delete"), None) => {}
                        (_, Some(i)) => strategic_merge(&mut list[i], item, names),
                        (_, None) => {
                            let mut clean = item.clone();
                            strip_directives(&mut clean);
                            list.push(clean);
                        }
                    }
                }
            }
        } else if pv.is_object() && orig.get(k).is_some_and(Value::is_object) {
            strategic_merge(&mut orig[k.as_str()], pv, names);
        } else {
            let mut clean = pv.clone();
            strip_directives(&mut clean);
            orig[k.as_str()] = clean;
        }
        names.pop();
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(secrets: &[&str]) -> Value {
        let list: Vec<Value> = secrets.iter().map(|s| json!({"name": s})).collect();
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "a"},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}], "imagePullSecrets": list}}}})
    }

    #[test]
    fn keyed_lists_are_owned_per_entry() {
        let f = field_set(&deployment(&["x"]));
        let entry: Path = ["spec", "template", "spec", "imagePullSecrets"]
            .iter()
            .map(|s| Elem::Field(s.to_string()))
            .chain([Elem::Key("name".into(), "x".into())])
            .collect();
        assert!(f.contains(&entry));
    }

    #[test]
    fn two_appliers_share_a_keyed_list() {
        let mut managed = Managed::new();
        let live = apply(None, &deployment(&["theirs"]), "other", false, &mut managed).unwrap();
        let mine = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "a"},
                          "spec": {"template": {"spec": {"imagePullSecrets": [{"name": "mine"}]}}}});
        let merged = apply(Some(&live), &mine, "regops", false, &mut managed).unwrap();
        let names: Vec<&str> = merged["spec"]["template"]["spec"]["imagePullSecrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["theirs", "mine"]);
        // Withdrawing mine removes only mine.
        let none = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "a"}});
        let after = apply(Some(&merged), &none, "regops", false, &mut managed).unwrap();
        assert_eq!(
            after["spec"]["template"]["spec"]["imagePullSecrets"],
            json!([{"name": "theirs"}])
        );
        assert_eq!(
            after["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx"
        );
    }

    #[test]
    fn changing_anothers_field_conflicts_unless_forced() {
        let mut managed = Managed::new();
        let live = apply(None, &deployment(&[]), "other", false, &mut managed).unwrap();
        let mut mine = deployment(&[]);
        mine["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        let err = apply(Some(&live), &mine, "regops", false, &mut managed).unwrap_err();
        assert_eq!(err[0].manager, "other");
        assert!(path_string(&err[0].path).ends_with(".image"));
        let forced = apply(Some(&live), &mine, "regops", true, &mut managed).unwrap();
        assert_eq!(
            forced["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2"
        );
    }

    #[test]
    fn service_account_pull_secrets_are_atomic() {
        let mut managed = Managed::new();
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}, "imagePullSecrets": [{"name": "a"}]});
        let live = apply(None, &sa, "other", false, &mut managed).unwrap();
        let mine = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}, "imagePullSecrets": [{"name": "b"}]});
        assert!(apply(Some(&live), &mine, "regops", false, &mut managed).is_err());
    }

    #[test]
    fn strategic_merge_by_name_and_delete_directive() {
        let mut d = deployment(&["a", "b"]);
        strategic_merge(
            &mut d,
            &json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "c"}, {"name": "a", "$patch": "delete"}]}}}}),
            &mut Vec::new(),
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["imagePullSecrets"],
            json!([{"name": "b"}, {"name": "c"}])
        );
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["name"], "c");
        let mut sa = json!({"imagePullSecrets": [{"name": "a"}]});
        strategic_merge(
            &mut sa,
            &json!({"imagePullSecrets": [{"name": "b"}]}),
            &mut Vec::new(),
        );
        assert_eq!(
            sa["imagePullSecrets"],
            json!([{"name": "b"}]),
            "atomic list replaced"
        );
    }
}
