//! The little of Kubernetes' protobuf encoding this server reads: a Namespace, as `kubectl
//! create namespace` sends it (client-go's default for built-in kinds is protobuf, and a 415
//! makes it switch to JSON only for its next requests, not retry this one: `Request.request`
//! in client-go's rest/request.go calls `UnsupportedMediaType` and returns the error).
//!
//! The body is the envelope of apimachinery's protobuf serializer: the magic `k8s\0`, then a
//! `runtime.Unknown` (1: typeMeta {1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding,
//! 4: contentType). `raw` is a `v1.Namespace` (1: metadata, 2: spec {1: finalizers}) whose
//! `ObjectMeta` fields are those of apimachinery's generated.proto (1: name, 2: generateName,
//! 11: labels, 12: annotations, 14: finalizers; a map entry is {1: key, 2: value}). Other
//! fields are skipped; any other kind is refused (415) by the caller.

use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// One field: its number and, for length-delimited ones, its bytes.
struct Field<'a> {
    number: u64,
    bytes: Option<&'a [u8]>,
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
        let bytes = match wire {
            0 => {
                varint(buf, &mut at)?;
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
        out.push(Field { number, bytes });
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

/// The object a protobuf body holds, as JSON, if it is a `v1` Namespace; else why not.
pub fn decode_namespace(body: &[u8]) -> Result<Value, String> {
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
    if (api_version.as_str(), kind.as_str()) != ("v1", "Namespace") {
        return Err(format!("{api_version}/{kind} in protobuf"));
    }
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace"});
    for f in fields(raw.unwrap_or_default())? {
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
