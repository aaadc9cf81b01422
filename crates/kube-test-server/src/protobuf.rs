//! The little of Kubernetes' protobuf encoding this server reads: the kinds `kubectl create`
//! makes in the docs, as it sends them (client-go's default for built-in kinds is protobuf,
//! and a 415 makes it switch to JSON only for its next requests, not retry this one:
//! `Request.request` in client-go's rest/request.go calls `UnsupportedMediaType` and returns
//! the error): a Namespace (`kubectl create namespace`), a Secret (`kubectl create secret
//! docker-registry`), a ServiceAccount (`kubectl create serviceaccount`) and a Deployment
//! (`kubectl create deployment`).
//!
//! The field numbers are those of the `protobuf:"…"` tags in k8s.io/api's types.go (and its
//! generated.proto): core/v1 `Secret` {1 metadata, 2 data (map<string, bytes>), 3 type,
//! 4 stringData, 5 immutable}; `ServiceAccount` {1 metadata, 3 imagePullSecrets
//! (LocalObjectReference {1 name}), 4 automountServiceAccountToken}; apps/v1 `Deployment`
//! {1 metadata, 2 spec}; `DeploymentSpec` {1 replicas, 2 selector (LabelSelector {1 matchLabels,
//! 2 matchExpressions {1 key, 2 operator, 3 values}}), 3 template (PodTemplateSpec {1 metadata,
//! 2 spec})}; `PodSpec` {2 containers, 8 serviceAccountName, 15 imagePullSecrets,
//! 20 initContainers}; `Container` {1 name, 2 image, 3 command, 4 args}. What else kubectl
//! sends (an empty `resources`, `strategy`, `status`) is skipped.
//!
//! The body is the envelope of apimachinery's protobuf serializer: the magic `k8s\0`, then a
//! `runtime.Unknown` (1: typeMeta {1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding,
//! 4: contentType). `raw` is a `v1.Namespace` (1: metadata, 2: spec {1: finalizers}) whose
//! `ObjectMeta` fields are those of apimachinery's generated.proto (1: name, 2: generateName,
//! 11: labels, 12: annotations, 14: finalizers; a map entry is {1: key, 2: value}). Other
//! fields are skipped; any other kind is refused (415) by the caller.

use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// One field: its number and, for length-delimited ones, its bytes (for varints, the value).
struct Field<'a> {
    number: u64,
    bytes: Option<&'a [u8]>,
    value: Option<u64>,
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or("truncated varint")?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at)?;
        let (number, wire) = (key >> 3, key & 7);
        let mut value = None;
        let bytes = match wire {
            0 => {
                value = Some(varint(buf, &mut at)?);
                None
            }
            1 => {
                at = at
                    .checked_add(8)
                    .filter(|&e| e <= buf.len())
                    .ok_or("truncated")?;
                None
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).map_err(|_| "length")?;
                let end = at
                    .checked_add(len)
                    .filter(|&e| e <= buf.len())
                    .ok_or("truncated")?;
                let b = &buf[at..end];
                at = end;
                Some(b)
            }
            5 => {
                at = at
                    .checked_add(4)
                    .filter(|&e| e <= buf.len())
                    .ok_or("truncated")?;
                None
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        out.push(Field {
            number,
            bytes,
            value,
        });
    }
    Ok(out)
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string that is not UTF-8".to_string())
}

fn map_entry(b: &[u8]) -> Result<(String, String), String> {
    let (mut k, mut v) = (String::new(), String::new());
    for f in fields(b)? {
        match (f.number, f.bytes) {
            (1, Some(s)) => k = string(s)?,
            (2, Some(s)) => v = string(s)?,
            _ => {}
        }
    }
    Ok((k, v))
}

fn object_meta(b: &[u8]) -> Result<Value, String> {
    let mut meta = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    for f in fields(b)? {
        let Some(s) = f.bytes else { continue };
        match f.number {
            1 => {
                meta.insert("name".into(), json!(string(s)?));
            }
            2 => {
                meta.insert("generateName".into(), json!(string(s)?));
            }
            11 => {
                let (k, v) = map_entry(s)?;
                labels.insert(k, json!(v));
            }
            12 => {
                let (k, v) = map_entry(s)?;
                annotations.insert(k, json!(v));
            }
            14 => finalizers.push(json!(string(s)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

/// A map<string, string> field's entries gathered into a JSON object.
fn string_map(entries: &[&[u8]]) -> Result<Value, String> {
    let mut m = Map::new();
    for e in entries {
        let (k, v) = map_entry(e)?;
        m.insert(k, json!(v));
    }
    Ok(Value::Object(m))
}

fn bytes_map_entry(b: &[u8]) -> Result<(String, Vec<u8>), String> {
    let (mut k, mut v) = (String::new(), Vec::new());
    for f in fields(b)? {
        match (f.number, f.bytes) {
            (1, Some(s)) => k = string(s)?,
            (2, Some(s)) => v = s.to_vec(),
            _ => {}
        }
    }
    Ok((k, v))
}

fn secret(raw: &[u8]) -> Result<Value, String> {
    use base64::Engine;
    let mut s = json!({"apiVersion": "v1", "kind": "Secret"});
    let (mut data, mut string_data) = (Map::new(), Vec::new());
    for f in fields(raw)? {
        match (f.number, f.bytes, f.value) {
            (1, Some(m), _) => s["metadata"] = object_meta(m)?,
            (2, Some(e), _) => {
                let (k, v) = bytes_map_entry(e)?;
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                );
            }
            (3, Some(t), _) => s["type"] = json!(string(t)?),
            (4, Some(e), _) => string_data.push(e),
            (5, None, Some(v)) => s["immutable"] = json!(v != 0),
            _ => {}
        }
    }
    if !data.is_empty() {
        s["data"] = Value::Object(data);
    }
    if !string_data.is_empty() {
        s["stringData"] = string_map(&string_data)?;
    }
    Ok(s)
}

fn names(entries: &[&[u8]]) -> Result<Value, String> {
    let mut out = Vec::new();
    for e in entries {
        for f in fields(e)? {
            if let (1, Some(n)) = (f.number, f.bytes) {
                out.push(json!({"name": string(n)?}));
            }
        }
    }
    Ok(Value::Array(out))
}

fn service_account(raw: &[u8]) -> Result<Value, String> {
    let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount"});
    let mut pulls = Vec::new();
    for f in fields(raw)? {
        match (f.number, f.bytes, f.value) {
            (1, Some(m), _) => sa["metadata"] = object_meta(m)?,
            (3, Some(r), _) => pulls.push(r),
            (4, None, Some(v)) => sa["automountServiceAccountToken"] = json!(v != 0),
            _ => {}
        }
    }
    if !pulls.is_empty() {
        sa["imagePullSecrets"] = names(&pulls)?;
    }
    Ok(sa)
}

fn label_selector(b: &[u8]) -> Result<Value, String> {
    let (mut labels, mut exprs) = (Vec::new(), Vec::new());
    for f in fields(b)? {
        match (f.number, f.bytes) {
            (1, Some(e)) => labels.push(e),
            (2, Some(x)) => {
                let mut e = json!({});
                let mut values = Vec::new();
                for g in fields(x)? {
                    match (g.number, g.bytes) {
                        (1, Some(k)) => e["key"] = json!(string(k)?),
                        (2, Some(o)) => e["operator"] = json!(string(o)?),
                        (3, Some(v)) => values.push(json!(string(v)?)),
                        _ => {}
                    }
                }
                if !values.is_empty() {
                    e["values"] = Value::Array(values);
                }
                exprs.push(e);
            }
            _ => {}
        }
    }
    let mut sel = json!({});
    if !labels.is_empty() {
        sel["matchLabels"] = string_map(&labels)?;
    }
    if !exprs.is_empty() {
        sel["matchExpressions"] = Value::Array(exprs);
    }
    Ok(sel)
}

fn container(b: &[u8]) -> Result<Value, String> {
    let mut c = json!({});
    let (mut command, mut args) = (Vec::new(), Vec::new());
    for f in fields(b)? {
        match (f.number, f.bytes) {
            (1, Some(n)) => c["name"] = json!(string(n)?),
            (2, Some(i)) => c["image"] = json!(string(i)?),
            (3, Some(x)) => command.push(json!(string(x)?)),
            (4, Some(x)) => args.push(json!(string(x)?)),
            _ => {}
        }
    }
    if !command.is_empty() {
        c["command"] = Value::Array(command);
    }
    if !args.is_empty() {
        c["args"] = Value::Array(args);
    }
    Ok(c)
}

fn pod_spec(b: &[u8]) -> Result<Value, String> {
    let mut spec = json!({});
    let (mut containers, mut init, mut pulls) = (Vec::new(), Vec::new(), Vec::new());
    for f in fields(b)? {
        match (f.number, f.bytes) {
            (2, Some(c)) => containers.push(container(c)?),
            (8, Some(s)) => spec["serviceAccountName"] = json!(string(s)?),
            (15, Some(r)) => pulls.push(r),
            (20, Some(c)) => init.push(container(c)?),
            _ => {}
        }
    }
    spec["containers"] = Value::Array(containers);
    if !init.is_empty() {
        spec["initContainers"] = Value::Array(init);
    }
    if !pulls.is_empty() {
        spec["imagePullSecrets"] = names(&pulls)?;
    }
    Ok(spec)
}

fn deployment(raw: &[u8]) -> Result<Value, String> {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
    for f in fields(raw)? {
        match (f.number, f.bytes) {
            (1, Some(m)) => d["metadata"] = object_meta(m)?,
            (2, Some(s)) => {
                let mut spec = json!({});
                for g in fields(s)? {
                    match (g.number, g.bytes, g.value) {
                        (1, None, Some(r)) => spec["replicas"] = json!(r),
                        (2, Some(sel), _) => spec["selector"] = label_selector(sel)?,
                        (3, Some(t), _) => {
                            let mut template = json!({});
                            for h in fields(t)? {
                                match (h.number, h.bytes) {
                                    (1, Some(m)) => template["metadata"] = object_meta(m)?,
                                    (2, Some(p)) => template["spec"] = pod_spec(p)?,
                                    _ => {}
                                }
                            }
                            spec["template"] = template;
                        }
                        _ => {}
                    }
                }
                d["spec"] = spec;
            }
            _ => {}
        }
    }
    Ok(d)
}

/// The object a protobuf body holds, as JSON, if it is of a kind this server reads in
/// protobuf (a Namespace, Secret, ServiceAccount or Deployment); else why not.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let (api_version, kind, raw) = envelope(body)?;
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => namespace(raw),
        ("v1", "Secret") => secret(raw),
        ("v1", "ServiceAccount") => service_account(raw),
        ("apps/v1", "Deployment") => deployment(raw),
        _ => Err(format!("{api_version}/{kind} in protobuf")),
    }
}

/// The envelope: the `runtime.Unknown`'s apiVersion, kind and raw object.
fn envelope(body: &[u8]) -> Result<(String, String, &[u8]), String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("not a Kubernetes protobuf envelope (no `k8s\\0`)")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for f in fields(rest)? {
        match (f.number, f.bytes) {
            (1, Some(tm)) => {
                for t in fields(tm)? {
                    match (t.number, t.bytes) {
                        (1, Some(s)) => api_version = string(s)?,
                        (2, Some(s)) => kind = string(s)?,
                        _ => {}
                    }
                }
            }
            (2, Some(r)) => raw = Some(r),
            _ => {}
        }
    }
    Ok((api_version, kind, raw.unwrap_or_default()))
}

/// The object a protobuf body holds, as JSON, if it is a `v1` Namespace; else why not.
pub fn decode_namespace(body: &[u8]) -> Result<Value, String> {
    match envelope(body)? {
        (v, k, raw) if v == "v1" && k == "Namespace" => namespace(raw),
        (v, k, _) => Err(format!("{v}/{k} in protobuf")),
    }
}

fn namespace(raw: &[u8]) -> Result<Value, String> {
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace"});
    for f in fields(raw)? {
        match (f.number, f.bytes) {
            (1, Some(m)) => ns["metadata"] = object_meta(m)?,
            (2, Some(spec)) => {
                let mut fin = Vec::new();
                for s in fields(spec)? {
                    if let (1, Some(b)) = (s.number, s.bytes) {
                        fin.push(json!(string(b)?));
                    }
                }
                if !fin.is_empty() {
                    ns["spec"] = json!({"finalizers": fin});
                }
            }
            _ => {}
        }
    }
    Ok(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::try_from(number << 3 | 2).unwrap_or(0)];
        out.push(u8::try_from(bytes.len()).unwrap_or(0));
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_namespace_as_kubectl_sends_it() {
        let label = [field(1, b"team"), field(2, b"web")].concat();
        let meta = [field(1, b"x"), field(11, &label)].concat();
        let spec = field(1, b"kubernetes");
        let namespace = [field(1, &meta), field(2, &spec)].concat();
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let unknown = [
            field(1, &type_meta),
            field(2, &namespace),
            field(4, b"application/vnd.kubernetes.protobuf"),
        ]
        .concat();
        let body = [MAGIC, &unknown].concat();
        assert_eq!(
            decode_namespace(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "x", "labels": {"team": "web"}},
                "spec": {"finalizers": ["kubernetes"]}})
        );
        let secret = [field(1, &[field(1, b"v1"), field(2, b"Secret")].concat())].concat();
        assert!(decode_namespace(&[MAGIC, &secret].concat()).is_err());
        assert!(decode_namespace(b"{}").is_err());
        assert!(decode_namespace(&[MAGIC, &[0x0a, 0x7f][..]].concat()).is_err());
    }
}
