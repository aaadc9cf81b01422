//! The wire shapes of the objects regops reads: one superset of the few fields planning needs
//! from Namespaces, Secrets, ServiceAccounts and workloads, deserialised from JSON (API pages,
//! state files) or YAML (state files). Fields not named here are skipped by serde as they are
//! read, never stored: managedFields' field sets, the rest of a pod spec, status, and the data
//! of any Secret key but `.dockerconfigjson`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

use super::{Labels, Observed, Skipped};

/// Any object, or a `List` of them.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Object {
    pub kind: Option<String>,
    pub metadata: Meta,
    /// Secret.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub immutable: Option<bool>,
    pub data: Option<SecretData>,
    pub string_data: Option<StringData>,
    /// ServiceAccount.
    pub image_pull_secrets: Option<Vec<NameRef>>,
    /// Workloads.
    pub spec: Option<WorkloadSpec>,
    /// A List.
    pub items: Option<Vec<Object>>,
}

impl Object {
    /// From a JSON value (tests and small inputs).
    pub fn from_value(v: &serde_json::Value) -> Result<Object, serde_json::Error> {
        Object::deserialize(v)
    }

    /// An object of a kind a spec declares, from unstructured JSON: its pod template is read
    /// at `template` (the declaration's `podTemplate`, split at the dots) and kept where every
    /// workload's is read from (`spec.template`), with `spec.workloadRef`; the rest of its
    /// spec is dropped.
    pub fn unstructured(
        template: &[&str],
        mut v: serde_json::Value,
    ) -> Result<Object, serde_json::Error> {
        let mut at = Some(&mut v);
        for key in template {
            at = at.and_then(|x| x.get_mut(*key));
        }
        let template = at.map(serde_json::Value::take);
        let workload_ref = v
            .pointer_mut("/spec/workloadRef")
            .map(serde_json::Value::take);
        if let Some(m) = v.as_object_mut() {
            m.remove("spec");
        }
        let mut obj = Object::deserialize(v)?;
        obj.spec = Some(WorkloadSpec {
            template: template
                .filter(|t| !t.is_null())
                .map(PodTemplate::deserialize)
                .transpose()?,
            job_template: None,
            workload_ref: workload_ref
                .filter(|r| !r.is_null())
                .map(WorkloadRef::deserialize)
                .transpose()?,
        });
        Ok(obj)
    }
}

/// One LIST page as the API answers it: the items (kinds implied by the request) and where the
/// next page starts.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Page {
    pub metadata: ListMeta,
    pub items: Vec<Object>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListMeta {
    #[serde(rename = "continue")]
    pub continue_: Option<String>,
    /// How many items follow this page (set only for lists without selectors).
    #[serde(rename = "remainingItemCount")]
    pub remaining_item_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    #[serde(deserialize_with = "string_map")]
    pub labels: Option<Labels>,
    #[serde(deserialize_with = "string_map")]
    pub annotations: Option<Labels>,
    pub resource_version: Option<String>,
    pub uid: Option<String>,
    pub deletion_timestamp: Option<IgnoredAny>,
    pub managed_fields: Option<Vec<ManagedFieldsEntry>>,
    pub owner_references: Option<Vec<OwnerRef>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ManagedFieldsEntry {
    pub manager: Option<String>,
    pub operation: Option<String>,
    #[serde(rename = "fieldsV1")]
    pub fields_v1: Option<FieldsRoot>,
}

/// Of a managedFields entry's field set, only whether it reaches into `data` (Secrets) and
/// whether it holds the KubeSphere annotation on the object's own metadata (workloads, where
/// earlier regops versions wrote it).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FieldsRoot {
    #[serde(rename = "f:data")]
    pub data: Option<IgnoredAny>,
    #[serde(rename = "f:metadata")]
    pub metadata: Option<FieldsMeta>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FieldsMeta {
    #[serde(rename = "f:annotations")]
    pub annotations: Option<FieldsAnnotations>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FieldsAnnotations {
    #[serde(rename = "f:kubesphere.io/imagepullsecrets")]
    pub kubesphere: Option<IgnoredAny>,
}

/// An owner reference: only whether it is the controller, and its kind and name.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OwnerRef {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub controller: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SecretData {
    #[serde(rename = ".dockerconfigjson")]
    pub dockerconfigjson: Option<SecretBase64>,
    /// A legacy `kubernetes.io/dockercfg` Secret's document (read by `regops import`).
    #[serde(rename = ".dockercfg")]
    pub dockercfg: Option<SecretBase64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StringData {
    #[serde(rename = ".dockerconfigjson", deserialize_with = "plain_secret")]
    pub dockerconfigjson: Option<SecretString>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NameRef {
    pub name: Option<String>,
}

/// The names in a list of `{name: …}` references.
pub fn names(list: Option<Vec<NameRef>>) -> Vec<String> {
    list.unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.name)
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job.
    pub template: Option<PodTemplate>,
    /// CronJob.
    pub job_template: Option<JobTemplate>,
    /// An Argo Rollout that runs another workload's pod template instead of its own.
    pub workload_ref: Option<WorkloadRef>,
}

/// A reference to the workload whose pod template an object runs (an Argo Rollout's
/// `spec.workloadRef`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkloadRef {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
}

/// One LIST page of a kind a spec declares, its items as unstructured JSON: where the pod
/// template is depends on the declaration ([`Object::unstructured`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawPage {
    pub metadata: ListMeta,
    pub items: Vec<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JobTemplate {
    pub spec: Option<JobTemplateSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JobTemplateSpec {
    pub template: Option<PodTemplate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodTemplate {
    pub metadata: Option<TemplateMeta>,
    pub spec: Option<PodSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TemplateMeta {
    #[serde(deserialize_with = "string_map")]
    pub annotations: Option<Labels>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Option<Vec<ContainerRef>>,
    pub init_containers: Option<Vec<ContainerRef>>,
    pub image_pull_secrets: Option<Vec<NameRef>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContainerRef {
    pub name: Option<String>,
    pub image: Option<String>,
}

/// A `.dockerconfigjson` value: base64 decoded as it is read, into a zeroized buffer and a
/// secret string; or not base64 (reported, never echoed).
pub enum SecretBase64 {
    Decoded(SecretString),
    Invalid,
}

impl fmt::Debug for SecretBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretBase64::Decoded(_) => f.write_str("Decoded(sensitive value)"),
            SecretBase64::Invalid => f.write_str("Invalid"),
        }
    }
}

impl<'de> Deserialize<'de> for SecretBase64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SecretBase64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SecretBase64, E> {
                Ok(match STANDARD.decode(s) {
                    Ok(raw) => {
                        let raw = Zeroizing::new(raw);
                        SecretBase64::Decoded(SecretString::from(
                            String::from_utf8_lossy(&raw).into_owned(),
                        ))
                    }
                    Err(_) => SecretBase64::Invalid,
                })
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<SecretBase64, E> {
                let s = Zeroizing::new(s);
                self.visit_str(&s)
            }
        }
        d.deserialize_str(V)
    }
}

fn plain_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<SecretString>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Some(SecretString::from(s.to_string())))
        }
        fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
            Ok(Some(SecretString::from(s)))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// A label or annotation value: strings are kept; anything else (a hand-written state file's
/// `true` or `1`) is dropped, as the API would never send it.
struct MaybeString(Option<String>);

impl<'de> Deserialize<'de> for MaybeString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<MaybeString, E> {
                Ok(MaybeString(Some(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<MaybeString, E> {
                Ok(MaybeString(Some(s)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<MaybeString, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeString(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<MaybeString, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeString(None))
            }
        }
        d.deserialize_any(V)
    }
}

fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Labels>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Labels>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of strings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some((k, v)) = a.next_entry::<String, MaybeString>()? {
                if let Some(v) = v.0 {
                    pairs.push((k, v));
                }
            }
            Ok(Some(pairs.into_iter().collect()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// Reads one document (an object, or a `List`) straight into an [`Observed`]: a List's items
/// are moved into the model one at a time, as they are read, so a state file of any size costs
/// the model and one item, never a vector of every item. Items that do not say their kind wait
/// until the List's `kind` has been read (`DeploymentList` gives them `Deployment`).
pub struct DocumentSeed<'a> {
    pub observed: &'a mut Observed,
    pub skipped: &'a mut Vec<Skipped>,
    /// The document's position in the input, for skipped objects.
    pub index: usize,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object or List")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut obj = Object::default();
        let mut kindless: Vec<Object> = Vec::new();
        let mut had_items = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "kind" => obj.kind = map.next_value()?,
                "metadata" => obj.metadata = map.next_value()?,
                "type" => obj.type_ = map.next_value()?,
                "immutable" => obj.immutable = map.next_value()?,
                "data" => obj.data = map.next_value()?,
                "stringData" => obj.string_data = map.next_value()?,
                "imagePullSecrets" => obj.image_pull_secrets = map.next_value()?,
                "spec" => obj.spec = map.next_value()?,
                "items" => {
                    had_items = true;
                    map.next_value_seed(ItemsSeed {
                        observed: &mut *self.observed,
                        skipped: &mut *self.skipped,
                        index: self.index,
                        kindless: &mut kindless,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if had_items {
            obj.items = Some(kindless);
        }
        self.observed.push(self.index, None, obj, self.skipped);
        Ok(())
    }
}

struct ItemsSeed<'a> {
    observed: &'a mut Observed,
    skipped: &'a mut Vec<Skipped>,
    index: usize,
    kindless: &'a mut Vec<Object>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of objects")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Object>()? {
            if item.kind.is_some() {
                self.observed.push(self.index, None, item, self.skipped);
            } else {
                self.kindless.push(item);
            }
        }
        Ok(())
    }
}
