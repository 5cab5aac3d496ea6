//! Kubernetes protobuf request bodies, decoded into the JSON Kubernetes
//! would produce for the same object.
//!
//! kubectl's typed clients (`kubectl create deployment|configmap|secret|…`,
//! `create token`, `auth can-i`, `autoscale`, `certificate approve`) send
//! `Content-Type: application/vnd.kubernetes.protobuf` and never fall back
//! to JSON. Such a body is the magic `k8s\0` followed by a `runtime.Unknown`
//! message {typeMeta(1) {apiVersion(1), kind(2)}, raw(2),
//! contentEncoding(3), contentType(4)}, where `raw` is the object encoded
//! as the gogo-protobuf message of its kind in `k8s.io/api`.
//!
//! The server works on JSON, so [`decode`] turns the object into the JSON
//! Go's encoder would print for what Go's protobuf decoder makes of the
//! same bytes (see `decode.rs` for the rules). The table it follows
//! (`generated.rs`) is generated from k8s-pb (field numbers and wire
//! types), Kubernetes 1.32's Go declarations (JSON names, pointers,
//! `omitempty`) and the kinds' OpenAPI definitions (JSON types); the
//! `generated` test regenerates it and fails when it is stale. Pure: no
//! I/O.

mod decode;
mod format;
#[rustfmt::skip]
mod generated;
mod table;
mod wire;

use serde_json::{Map, Value};

use wire::Fields;

/// The magic that starts every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// A decoded body: its type and the object as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// `apiVersion` from the envelope, such as `apps/v1`.
    pub api_version: String,
    /// `kind` from the envelope, such as `Deployment`.
    pub kind: String,
    /// The object, with `kind` and `apiVersion` set from the envelope.
    pub object: Value,
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("not a kubernetes protobuf body: it does not start with k8s\\0")]
    NotProtobuf,
    /// The envelope names a kind the table has no message for.
    #[error("no protobuf decoding for kind {kind:?} in {api_version:?}")]
    UnknownKind {
        /// The envelope's `apiVersion`.
        api_version: String,
        /// The envelope's `kind`.
        kind: String,
    },
    /// The envelope uses a content encoding or type other than plain
    /// protobuf.
    #[error("unsupported protobuf envelope: {0}")]
    Unsupported(String),
    /// The bytes do not follow the wire format, or a field has a wire type
    /// its declaration does not allow.
    #[error("malformed protobuf in {message}{}: {detail}", field_suffix(*.tag))]
    Malformed {
        /// The message being read, such as `io.k8s.api.apps.v1.DeploymentSpec`.
        message: String,
        /// The field number, 0 when the field's key itself is broken.
        tag: u32,
        /// What is wrong.
        detail: String,
    },
}

fn field_suffix(tag: u32) -> String {
    if tag == 0 {
        String::new()
    } else {
        format!(" field {tag}")
    }
}

/// Decodes a Kubernetes protobuf body: the envelope, then the object it
/// carries, into JSON with `kind` and `apiVersion` first.
pub fn decode(body: &[u8]) -> Result<Decoded, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::NotProtobuf)?;
    let envelope = Envelope::read(rest)?;
    let name = message_for(&envelope.api_version, &envelope.kind).ok_or_else(|| {
        ProtobufError::UnknownKind {
            api_version: envelope.api_version.clone(),
            kind: envelope.kind.clone(),
        }
    })?;
    let fields = match decode::decode_message(name, envelope.raw, 0)? {
        Value::Object(fields) => fields,
        _ => return Err(malformed_envelope("the object is not a JSON object")),
    };
    let mut object = Map::new();
    object.insert("kind".into(), Value::String(envelope.kind.clone()));
    object.insert(
        "apiVersion".into(),
        Value::String(envelope.api_version.clone()),
    );
    object.extend(fields);
    Ok(Decoded {
        api_version: envelope.api_version,
        kind: envelope.kind,
        object: Value::Object(object),
    })
}

/// The message (named like its OpenAPI definition, such as
/// `io.k8s.api.apps.v1.Deployment`) whose encoding a body of this
/// `apiVersion` and `kind` carries, if the table has it.
pub fn message_for(api_version: &str, kind: &str) -> Option<&'static str> {
    let kinds = generated::KINDS;
    if let Ok(i) = kinds.binary_search_by(|(v, k, _)| (*v, *k).cmp(&(api_version, kind))) {
        return Some(kinds[i].2);
    }
    generated::META_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, name)| *name)
}

const UNKNOWN: &str = "runtime.Unknown";

fn malformed_envelope(detail: impl Into<String>) -> ProtobufError {
    ProtobufError::Malformed {
        message: UNKNOWN.into(),
        tag: 0,
        detail: detail.into(),
    }
}

/// `runtime.Unknown`, the envelope.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn read(bytes: &'a [u8]) -> Result<Self, ProtobufError> {
        let mut envelope = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
        };
        for field in Fields::new(bytes) {
            let (tag, value) = field.map_err(|e| ProtobufError::Malformed {
                message: UNKNOWN.into(),
                tag: e.tag,
                detail: e.detail.into(),
            })?;
            if !(1..=4).contains(&tag) {
                // Skipped, as Go's decoder skips unknown fields.
                continue;
            }
            let wire::Value::Len(bytes) = value else {
                return Err(ProtobufError::Malformed {
                    message: UNKNOWN.into(),
                    tag,
                    detail: "not a length-delimited field".into(),
                });
            };
            let text = || String::from_utf8_lossy(bytes).into_owned();
            match tag {
                1 => envelope.read_type_meta(bytes)?,
                2 => envelope.raw = bytes,
                3 if !bytes.is_empty() => {
                    return Err(ProtobufError::Unsupported(format!(
                        "content encoding {:?}",
                        text()
                    )));
                }
                4 if !bytes.is_empty() && bytes != CONTENT_TYPE.as_bytes() => {
                    return Err(ProtobufError::Unsupported(format!(
                        "content type {:?}",
                        text()
                    )));
                }
                _ => {}
            }
        }
        Ok(envelope)
    }

    /// `runtime.TypeMeta` {apiVersion(1), kind(2)}.
    fn read_type_meta(&mut self, bytes: &[u8]) -> Result<(), ProtobufError> {
        const TYPE_META: &str = "runtime.TypeMeta";
        for field in Fields::new(bytes) {
            let (tag, value) = field.map_err(|e| ProtobufError::Malformed {
                message: TYPE_META.into(),
                tag: e.tag,
                detail: e.detail.into(),
            })?;
            if !(1..=2).contains(&tag) {
                continue;
            }
            let wire::Value::Len(bytes) = value else {
                return Err(ProtobufError::Malformed {
                    message: TYPE_META.into(),
                    tag,
                    detail: "not a length-delimited field".into(),
                });
            };
            let text = String::from_utf8_lossy(bytes).into_owned();
            if tag == 1 {
                self.api_version = text;
            } else {
                self.kind = text;
            }
        }
        Ok(())
    }
}
