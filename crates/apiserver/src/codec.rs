//! Request bodies in, responses out.
//!
//! Bodies arrive as JSON (most clients), YAML (`application/yaml`, and
//! server-side apply's `application/apply-patch+yaml`, which kubectl fills
//! with JSON), or Kubernetes protobuf (typed `kubectl create <kind>`). JSON
//! is parsed with duplicate-key detection, because strict field validation
//! must refuse `{"replicas":1,"replicas":2}` where a plain parser keeps the
//! last value silently.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::status::{ApiError, ApiResult};

/// Largest request body accepted (Kubernetes' limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// A decoded body and the duplicate fields it had.
#[derive(Debug)]
pub struct Body {
    /// The document.
    pub value: Value,
    /// Paths of fields that appeared twice (`spec.replicas`); the last value
    /// was kept.
    pub duplicates: Vec<String>,
}

/// How a body is encoded, from its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON (also when no Content-Type is given, as `kubectl scale` does).
    Json,
    /// YAML.
    Yaml,
    /// Kubernetes protobuf.
    Protobuf,
}

impl BodyFormat {
    /// The format of a Content-Type's media type (parameters ignored).
    pub fn of(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "" | "application/json" | "*/*" => Some(BodyFormat::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" => Some(BodyFormat::Yaml),
            "application/vnd.kubernetes.protobuf" => Some(BodyFormat::Protobuf),
            _ => None,
        }
    }
}

/// Decodes a request body.
pub fn decode(bytes: &[u8], format: BodyFormat) -> ApiResult<Body> {
    if bytes.len() > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    match format {
        BodyFormat::Json => decode_json(bytes),
        BodyFormat::Yaml => decode_yaml(bytes),
        BodyFormat::Protobuf => decode_protobuf(bytes),
    }
}

/// Decodes a Kubernetes protobuf body into the JSON Kubernetes would make
/// of the same object, which then takes the JSON bodies' path (strict field
/// validation included). A kind without a protobuf message in the
/// `protobuf` crate's table is refused as a format the server does not
/// read for it.
pub fn decode_protobuf(bytes: &[u8]) -> ApiResult<Body> {
    match protobuf::decode(bytes) {
        Ok(decoded) => Ok(Body {
            value: decoded.object,
            duplicates: Vec::new(),
        }),
        Err(protobuf::ProtobufError::UnknownKind { api_version, kind }) => {
            let mut err = ApiError::unsupported_media_type(
                "application/vnd.kubernetes.protobuf",
                &["application/json", "application/yaml"],
            );
            err.message = format!(
                "protobuf bodies are not supported for {kind} in {api_version}; {}",
                err.message
            );
            Err(err)
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "error decoding protobuf request body: {e}"
        ))),
    }
}

/// Decodes JSON, recording duplicate keys.
pub fn decode_json(bytes: &[u8]) -> ApiResult<Body> {
    let dups = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Builder {
        path: String::new(),
        dups: &dups,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v))
    .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    Ok(Body {
        value,
        duplicates: dups.into_inner(),
    })
}

/// Decodes YAML (a JSON document is also YAML). Duplicate keys are errors
/// in YAML itself.
pub fn decode_yaml(bytes: &[u8]) -> ApiResult<Body> {
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("error decoding YAML request body: {e}"))
    };
    // Through the YAML value type, which refuses duplicate keys (reading
    // straight into JSON values would keep the last one silently).
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_slice(bytes).map_err(|e| bad(&e))?;
    let value: Value = serde_json::to_value(yaml).map_err(|e| bad(&e))?;
    Ok(Body {
        value,
        duplicates: Vec::new(),
    })
}

/// Builds a `Value` while noting duplicate keys, with their paths.
struct Builder<'a> {
    path: String,
    dups: &'a RefCell<Vec<String>>,
}

impl Builder<'_> {
    fn child(&self, segment: &str, index: bool) -> Builder<'_> {
        let path = if index {
            format!("{}[{segment}]", self.path)
        } else if self.path.is_empty() {
            segment.to_owned()
        } else {
            format!("{}.{segment}", self.path)
        };
        Builder {
            path,
            dups: self.dups,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Builder<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Builder<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.child(&out.len().to_string(), true))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key, false);
            let path = child.path.clone();
            let value = map.next_value_seed(child)?;
            if out.insert(key, value).is_some() {
                self.dups.borrow_mut().push(path);
            }
        }
        Ok(Value::Object(out))
    }
}

/// What a client wants back, from its Accept header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The object or list as JSON.
    Json,
    /// A `meta.k8s.io/v1` Table (`kubectl get`).
    Table,
    /// `meta.k8s.io/v1` PartialObjectMetadata: the metadata alone (lists
    /// are a PartialObjectMetadataList, watch events carry one each), what
    /// metadata-only informers (the garbage collector's) ask for.
    Metadata,
}

/// Reads an Accept header. A Table is served when the client lists it
/// (kubectl lists Table first, then plain JSON as a fallback); otherwise
/// metadata alone when the client lists `PartialObjectMetadata` or
/// `PartialObjectMetadataList` in `meta.k8s.io/v1`.
pub fn output(accept: &str) -> Output {
    let (mut table, mut metadata) = (false, false);
    for part in accept.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        if !params.contains(&"g=meta.k8s.io") {
            continue;
        }
        table |= params.contains(&"as=Table");
        metadata |= params.contains(&"v=v1")
            && (params.contains(&"as=PartialObjectMetadata")
                || params.contains(&"as=PartialObjectMetadataList"));
    }
    if table {
        Output::Table
    } else if metadata {
        Output::Metadata
    } else {
        Output::Json
    }
}

/// The Content-Type of PartialObjectMetadata responses.
pub const METADATA_CONTENT_TYPE: &str =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/// The Content-Type of PartialObjectMetadataList responses.
pub const METADATA_LIST_CONTENT_TYPE: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/// An object's PartialObjectMetadata.
pub fn partial_metadata(obj: &Value) -> Value {
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({})),
    })
}

/// The Content-Type of Table responses.
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_duplicate_fields_with_their_paths() {
        let body = decode_json(
            br#"{"spec":{"replicas":1,"replicas":2,"template":{"spec":{"containers":[{"name":"a","name":"b"}]}}},"x":1}"#,
        )
        .unwrap();
        assert_eq!(
            body.duplicates,
            ["spec.replicas", "spec.template.spec.containers[0].name"]
        );
        assert_eq!(body.value["spec"]["replicas"], 2);
        assert_eq!(body.value["x"], 1);
    }

    #[test]
    fn refuses_malformed_and_oversized_bodies() {
        assert_eq!(decode_json(b"{\"a\":").unwrap_err().code, 400);
        assert_eq!(decode_json(b"{} trailing").unwrap_err().code, 400);
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(decode(&big, BodyFormat::Json).unwrap_err().code, 413);
    }

    #[test]
    fn reads_yaml_and_json_as_yaml() {
        let y = decode_yaml(
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"1\"\n",
        )
        .unwrap();
        assert_eq!(y.value["data"]["a"], "1");
        let j = decode_yaml(br#"{"apiVersion":"v1","kind":"ConfigMap"}"#).unwrap();
        assert_eq!(j.value["kind"], "ConfigMap");
        assert!(decode_yaml(b"a: 1\na: 2\n").is_err());
        assert_eq!(BodyFormat::of("application/apply-patch+yaml"), None);
        assert_eq!(
            BodyFormat::of("application/json; charset=utf-8"),
            Some(BodyFormat::Json)
        );
        assert_eq!(BodyFormat::of(""), Some(BodyFormat::Json));
        let _ = json!(null);
    }

    /// A protobuf body: `k8s\0`, then runtime.Unknown {typeMeta(1)
    /// {apiVersion(1), kind(2)}, raw(2)}.
    fn protobuf_body(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
            let mut out = vec![tag << 3 | 2, u8::try_from(bytes.len()).unwrap()];
            out.extend(bytes);
            out
        }
        let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [b"k8s\0".to_vec(), field(1, &type_meta), field(2, raw)].concat()
    }

    #[test]
    fn reads_protobuf_bodies_as_json() {
        // A Namespace {metadata {name: ns1}, spec {}, status {}}.
        let body = protobuf_body("v1", "Namespace", b"\x0a\x05\x0a\x03ns1\x12\x00\x1a\x00");
        let decoded = decode(&body, BodyFormat::Protobuf).unwrap();
        assert_eq!(
            decoded.value,
            json!({
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": {"name": "ns1", "creationTimestamp": null},
                "spec": {},
                "status": {}
            })
        );
        assert_eq!(
            BodyFormat::of("application/vnd.kubernetes.protobuf"),
            Some(BodyFormat::Protobuf)
        );

        // Cut short, or not protobuf at all: 400.
        let err = decode(&body[..body.len() - 2], BodyFormat::Protobuf).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .starts_with("error decoding protobuf request body: "),
            "{}",
            err.message
        );
        assert_eq!(decode(b"{}", BodyFormat::Protobuf).unwrap_err().code, 400);

        // A kind the protobuf table lacks: 415, saying which.
        let body = protobuf_body("example.com/v1", "Widget", b"");
        let err = decode(&body, BodyFormat::Protobuf).unwrap_err();
        assert_eq!(err.code, 415);
        assert!(
            err.message
                .contains("protobuf bodies are not supported for Widget in example.com/v1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn negotiates_tables() {
        assert_eq!(
            output(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Output::Table
        );
        assert_eq!(output("application/json"), Output::Json);
        // kube's and client-go's metadata-only requests.
        for accept in [
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
        ] {
            assert_eq!(output(accept), Output::Metadata, "{accept}");
        }
        assert_eq!(
            output("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"),
            Output::Json
        );
        assert_eq!(
            partial_metadata(
                &serde_json::json!({"kind": "Pod", "metadata": {"name": "a"}, "spec": {}})
            ),
            serde_json::json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "a"}
            })
        );
        assert_eq!(
            output("application/vnd.kubernetes.protobuf,application/json"),
            Output::Json
        );
    }
}
