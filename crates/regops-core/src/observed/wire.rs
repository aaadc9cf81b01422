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
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use zeroize::Zeroizing;

use super::Labels;

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ManagedFieldsEntry {
    pub manager: Option<String>,
    pub operation: Option<String>,
    #[serde(rename = "fieldsV1")]
    pub fields_v1: Option<FieldsRoot>,
}

/// Of a managedFields entry's field set, only whether it reaches into `data`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FieldsRoot {
    #[serde(rename = "f:data")]
    pub data: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SecretData {
    #[serde(rename = ".dockerconfigjson")]
    pub dockerconfigjson: Option<SecretBase64>,
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
    /// Deployment, StatefulSet, DaemonSet, Job.
    pub template: Option<PodTemplate>,
    /// CronJob.
    pub job_template: Option<JobTemplate>,
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
            let mut m = Labels::new();
            while let Some((k, v)) = a.next_entry::<String, MaybeString>()? {
                if let Some(v) = v.0 {
                    m.insert(k, v);
                }
            }
            Ok(Some(m))
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
