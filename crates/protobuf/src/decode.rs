//! Messages to JSON, driven by the generated table.
//!
//! The JSON is what Kubernetes' Go JSON encoder prints for the object Go's
//! protobuf decoder makes of the same bytes: fields in tag order; each
//! field present or absent, zero or not, printed as its Go declaration
//! says (see `table::Go`); the apimachinery types in their hand-written
//! JSON forms. Fields the table does not know are skipped, as Go's decoder
//! skips them (a newer client's fields); bytes that break the wire format,
//! or a known field with the wrong wire type, are errors.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number, Value};

use crate::ProtobufError;
use crate::format::{GO_ZERO_TIME, go_duration, rfc3339};
use crate::generated::MESSAGES;
use crate::table::{Card, Field, Go, Message, Shape, Type};
use crate::wire::{self, Fields, WireError, WireType};

/// How deep messages may nest (JSONSchemaProps nests itself); deeper input
/// is refused rather than followed.
const MAX_DEPTH: usize = 100;

/// The table's entry for `name`.
pub(crate) fn message(name: &str) -> Option<&'static Message> {
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &MESSAGES[i])
}

fn malformed(message: &str, tag: u32, detail: impl Into<String>) -> ProtobufError {
    ProtobufError::Malformed {
        message: message.to_owned(),
        tag,
        detail: detail.into(),
    }
}

fn wire_error(message: &str, e: WireError) -> ProtobufError {
    malformed(message, e.tag, e.detail)
}

/// Decodes the bytes of message `name` into its JSON.
pub(crate) fn decode_message(
    name: &str,
    bytes: &[u8],
    depth: usize,
) -> Result<Value, ProtobufError> {
    let Some(entry) = message(name) else {
        // The generator only names messages it also writes.
        return Err(malformed(name, 0, "message missing from the table"));
    };
    if depth > MAX_DEPTH {
        return Err(malformed(name, 0, "messages nested too deeply"));
    }
    match &entry.shape {
        Shape::Object(fields) => object(entry.name, fields, bytes, depth).map(Value::Object),
        Shape::Time => time(entry.name, bytes, false),
        Shape::MicroTime => time(entry.name, bytes, true),
        Shape::Duration => {
            let [duration] = scalars(entry.name, bytes, [(1, Type::Int64)])?;
            let nanos = duration.map_or(0, |v| v as i64);
            Ok(Value::String(go_duration(nanos)))
        }
        Shape::Quantity => {
            // Go's marshaller writes the canonical string (`String()`), and
            // its decoder keeps it; an absent one is zero. Go refuses an
            // empty string; any other string is checked, and canonicalized
            // for other producers, by the kinds' strategies as in JSON.
            let [string] = strings(entry.name, bytes, [1])?;
            match string {
                None => Ok(Value::String("0".into())),
                Some(s) if s.is_empty() => Err(malformed(entry.name, 1, "an empty quantity")),
                Some(s) => Ok(Value::String(s)),
            }
        }
        Shape::IntOrString => int_or_string(entry.name, bytes),
        Shape::RawExtension | Shape::FieldsV1 | Shape::Json => {
            let raw = single_bytes(entry.name, bytes, 1)?;
            match raw {
                Some(raw) if !raw.is_empty() => serde_json::from_slice(raw)
                    .map_err(|e| malformed(entry.name, 1, format!("raw bytes are not JSON: {e}"))),
                _ => Ok(Value::Null),
            }
        }
        Shape::SchemaOrArray(schema) => {
            let mut one = None;
            let mut many = Vec::new();
            for field in Fields::new(bytes) {
                let (tag, value) = field.map_err(|e| wire_error(entry.name, e))?;
                match tag {
                    1 => one = Some(len(entry.name, tag, value)?),
                    2 => many.push(decode_message(
                        schema,
                        len(entry.name, tag, value)?,
                        depth + 1,
                    )?),
                    _ => {}
                }
            }
            if !many.is_empty() {
                Ok(Value::Array(many))
            } else {
                one.map_or(Ok(Value::Null), |b| decode_message(schema, b, depth + 1))
            }
        }
        Shape::SchemaOrBool(schema) => {
            let mut allows = false;
            let mut schema_bytes = None;
            for field in Fields::new(bytes) {
                let (tag, value) = field.map_err(|e| wire_error(entry.name, e))?;
                match tag {
                    1 => allows = varint(entry.name, tag, value)? != 0,
                    2 => schema_bytes = Some(len(entry.name, tag, value)?),
                    _ => {}
                }
            }
            match schema_bytes {
                Some(b) => decode_message(schema, b, depth + 1),
                None => Ok(Value::Bool(allows)),
            }
        }
        Shape::SchemaOrStringArray(schema) => {
            let mut schema_bytes = None;
            let mut property = Vec::new();
            for field in Fields::new(bytes) {
                let (tag, value) = field.map_err(|e| wire_error(entry.name, e))?;
                match tag {
                    1 => schema_bytes = Some(len(entry.name, tag, value)?),
                    2 => property.push(Value::String(string(len(entry.name, tag, value)?))),
                    _ => {}
                }
            }
            if !property.is_empty() {
                Ok(Value::Array(property))
            } else {
                schema_bytes.map_or(Ok(Value::Null), |b| decode_message(schema, b, depth + 1))
            }
        }
        Shape::StringList => {
            let mut items = Vec::new();
            for field in Fields::new(bytes) {
                let (tag, value) = field.map_err(|e| wire_error(entry.name, e))?;
                if tag == 1 {
                    items.push(Value::String(string(len(entry.name, tag, value)?)));
                }
            }
            // Go prints a nil slice as null.
            Ok(if items.is_empty() {
                Value::Null
            } else {
                Value::Array(items)
            })
        }
    }
}

/// What has been read of one field of an object.
enum Slot<'a> {
    /// A scalar: the last one read wins.
    Scalar(Value),
    /// An embedded message: every occurrence, merged in order (protobuf
    /// merges repeated occurrences of a message field).
    Message(Vec<&'a [u8]>),
    /// A list.
    List(Vec<Value>),
    /// A map: the last entry for a key wins.
    Map(Map<String, Value>),
}

fn object(
    name: &str,
    fields: &'static [Field],
    bytes: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, ProtobufError> {
    let mut slots: BTreeMap<u32, Slot<'_>> = BTreeMap::new();
    for read in Fields::new(bytes) {
        let (tag, value) = read.map_err(|e| wire_error(name, e))?;
        let Ok(i) = fields.binary_search_by_key(&tag, |f| f.tag) else {
            continue;
        };
        let field = &fields[i];
        match field.card {
            Card::Single | Card::Inline => match field.ty {
                Type::Message(_) => match slots.entry(tag).or_insert(Slot::Message(Vec::new())) {
                    Slot::Message(chunks) => chunks.push(len(name, tag, value)?),
                    _ => unreachable!("a message field holds messages"),
                },
                ty => {
                    let v = scalar(name, tag, ty, value)?;
                    slots.insert(tag, Slot::Scalar(v));
                }
            },
            Card::Repeated => {
                let Slot::List(items) = slots.entry(tag).or_insert(Slot::List(Vec::new())) else {
                    unreachable!("a repeated field holds a list")
                };
                match (field.ty, value) {
                    (Type::Message(inner), value) => {
                        items.push(decode_message(inner, len(name, tag, value)?, depth + 1)?);
                    }
                    // Packed numbers and booleans: one length-delimited run.
                    (
                        ty @ (Type::Bool | Type::Int32 | Type::Int64 | Type::Double),
                        wire::Value::Len(mut run),
                    ) => {
                        while !run.is_empty() {
                            let element = if ty == Type::Double {
                                let Some((head, rest)) = run.split_first_chunk::<8>() else {
                                    return Err(malformed(name, tag, "packed doubles cut short"));
                                };
                                run = rest;
                                wire::Value::Fixed64(u64::from_le_bytes(*head))
                            } else {
                                wire::Value::Varint(
                                    wire::varint(&mut run).map_err(|d| malformed(name, tag, d))?,
                                )
                            };
                            items.push(scalar(name, tag, ty, element)?);
                        }
                    }
                    (ty, value) => items.push(scalar(name, tag, ty, value)?),
                }
            }
            Card::Map => {
                let (key, entry_value) =
                    map_entry(name, tag, field.ty, len(name, tag, value)?, depth)?;
                let Slot::Map(map) = slots.entry(tag).or_insert(Slot::Map(Map::new())) else {
                    unreachable!("a map field holds a map")
                };
                map.insert(key, entry_value);
            }
        }
    }

    let mut out = Map::new();
    for field in fields {
        let value = match slots.remove(&field.tag) {
            None => absent(field, depth)?,
            Some(Slot::Scalar(v)) => (field.go != Go::OmitEmpty || !is_zero(&v)).then_some(v),
            Some(Slot::Message(chunks)) => {
                let Type::Message(inner) = field.ty else {
                    unreachable!("message slots belong to message fields")
                };
                let merged;
                let bytes = if let [one] = chunks.as_slice() {
                    *one
                } else {
                    // Protobuf merges repeated occurrences of a message;
                    // their concatenation is that merge.
                    merged = chunks.concat();
                    &merged
                };
                Some(decode_message(inner, bytes, depth + 1)?)
            }
            Some(Slot::List(items)) => {
                (field.go != Go::OmitEmpty || !items.is_empty()).then_some(Value::Array(items))
            }
            Some(Slot::Map(map)) => {
                (field.go != Go::OmitEmpty || !map.is_empty()).then_some(Value::Object(map))
            }
        };
        let Some(value) = value else { continue };
        if field.card == Card::Inline {
            let Value::Object(inlined) = value else {
                return Err(malformed(
                    name,
                    field.tag,
                    "inlined message is not an object",
                ));
            };
            out.extend(inlined);
        } else {
            out.insert(field.json.to_owned(), value);
        }
    }
    Ok(out)
}

/// What Go prints for a field absent from the wire, `None` when it leaves
/// the field out: Go's decoder leaves it at its zero value.
fn absent(field: &Field, depth: usize) -> Result<Option<Value>, ProtobufError> {
    Ok(match (field.go, field.card, field.ty) {
        (Go::Pointer, ..) => None,
        (Go::PointerOrNull, ..) => Some(Value::Null),
        // A struct is never left out: its zero value, as JSON.
        (Go::Value | Go::OmitEmpty, Card::Single | Card::Inline, Type::Message(inner)) => {
            Some(decode_message(inner, &[], depth + 1)?)
        }
        (Go::OmitEmpty, ..) => None,
        // A nil slice, map or `[]byte`.
        (Go::Value, Card::Repeated | Card::Map, _) | (Go::Value, _, Type::Bytes) => {
            Some(Value::Null)
        }
        (Go::Value, _, ty) => Some(zero(ty)),
    })
}

/// The JSON of a scalar type's zero value.
fn zero(ty: Type) -> Value {
    match ty {
        Type::String => Value::String(String::new()),
        Type::Bytes | Type::Message(_) => Value::Null,
        Type::Bool => Value::Bool(false),
        Type::Int32 | Type::Int64 | Type::Double => Value::from(0),
    }
}

/// One map entry {key(1) string, value(2)}: an absent key is `""`, an
/// absent value the value type's zero.
fn map_entry(
    name: &str,
    tag: u32,
    ty: Type,
    bytes: &[u8],
    depth: usize,
) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = None;
    for read in Fields::new(bytes) {
        let (entry_tag, v) =
            read.map_err(|e| malformed(name, tag, format!("map entry: {}", e.detail)))?;
        match entry_tag {
            1 => key = string(len(name, tag, v)?),
            2 => {
                value = Some(match ty {
                    Type::Message(inner) => decode_message(inner, len(name, tag, v)?, depth + 1)?,
                    ty => scalar(name, tag, ty, v)?,
                })
            }
            _ => {
                return Err(malformed(
                    name,
                    tag,
                    format!("map entry has field {entry_tag}"),
                ));
            }
        }
    }
    let value = match (value, ty) {
        (Some(v), _) => v,
        (None, Type::Message(inner)) => decode_message(inner, &[], depth + 1)?,
        // Go's generated decoder starts a map's bytes value at `[]byte{}`.
        (None, Type::Bytes) => Value::String(String::new()),
        (None, ty) => zero(ty),
    };
    Ok((key, value))
}

/// A scalar of type `ty`, checking its wire type.
fn scalar(name: &str, tag: u32, ty: Type, value: wire::Value<'_>) -> Result<Value, ProtobufError> {
    let want = match ty {
        Type::String | Type::Bytes | Type::Message(_) => WireType::Len,
        Type::Bool | Type::Int32 | Type::Int64 => WireType::Varint,
        Type::Double => WireType::Fixed64,
    };
    if value.wire_type() != want {
        return Err(malformed(
            name,
            tag,
            format!(
                "wire type {:?} where {ty:?} needs {want:?}",
                value.wire_type()
            ),
        ));
    }
    Ok(match (ty, value) {
        (Type::String, wire::Value::Len(b)) => Value::String(string(b)),
        (Type::Bytes, wire::Value::Len(b)) => Value::String(BASE64.encode(b)),
        (Type::Bool, wire::Value::Varint(v)) => Value::Bool(v != 0),
        (Type::Int32, wire::Value::Varint(v)) => Value::from(v as i64 as i32),
        (Type::Int64, wire::Value::Varint(v)) => Value::from(v as i64),
        (Type::Double, wire::Value::Fixed64(v)) => double(f64::from_bits(v))
            .ok_or_else(|| malformed(name, tag, "a double that JSON cannot hold"))?,
        _ => unreachable!("wire type checked above"),
    })
}

/// A double as Go's JSON encoder prints it: a whole number without a
/// fraction (`1`, not `1.0`), so that it reads back as an integer.
fn double(v: f64) -> Option<Value> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.fract() == 0.0 && v.abs() < EXACT {
        Some(Value::from(v as i64))
    } else {
        Number::from_f64(v).map(Value::Number)
    }
}

/// A string as Go's JSON encoder prints it: invalid UTF-8 becomes U+FFFD.
fn string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn len<'a>(name: &str, tag: u32, value: wire::Value<'a>) -> Result<&'a [u8], ProtobufError> {
    match value {
        wire::Value::Len(b) => Ok(b),
        other => Err(malformed(
            name,
            tag,
            format!(
                "wire type {:?} where a length-delimited value belongs",
                other.wire_type()
            ),
        )),
    }
}

fn varint(name: &str, tag: u32, value: wire::Value<'_>) -> Result<u64, ProtobufError> {
    match value {
        wire::Value::Varint(v) => Ok(v),
        other => Err(malformed(
            name,
            tag,
            format!("wire type {:?} where a varint belongs", other.wire_type()),
        )),
    }
}

/// The varint fields `tags` of a small fixed message (last occurrence wins;
/// any other field is skipped).
fn scalars<const N: usize>(
    name: &str,
    bytes: &[u8],
    tags: [(u32, Type); N],
) -> Result<[Option<u64>; N], ProtobufError> {
    let mut out = [None; N];
    for read in Fields::new(bytes) {
        let (tag, value) = read.map_err(|e| wire_error(name, e))?;
        let Some(i) = tags.iter().position(|(t, _)| *t == tag) else {
            continue;
        };
        out[i] = Some(varint(name, tag, value)?);
    }
    Ok(out)
}

/// The string fields `tags` of a small fixed message.
fn strings<const N: usize>(
    name: &str,
    bytes: &[u8],
    tags: [u32; N],
) -> Result<[Option<String>; N], ProtobufError> {
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    for read in Fields::new(bytes) {
        let (tag, value) = read.map_err(|e| wire_error(name, e))?;
        let Some(i) = tags.iter().position(|t| *t == tag) else {
            continue;
        };
        out[i] = Some(string(len(name, tag, value)?));
    }
    Ok(out)
}

/// The one bytes field `tag` of a message such as RawExtension.
fn single_bytes<'a>(
    name: &str,
    bytes: &'a [u8],
    tag: u32,
) -> Result<Option<&'a [u8]>, ProtobufError> {
    let mut out = None;
    for read in Fields::new(bytes) {
        let (t, value) = read.map_err(|e| wire_error(name, e))?;
        if t == tag {
            out = Some(len(name, t, value)?);
        }
    }
    Ok(out)
}

/// `Time` and `MicroTime` {seconds(1), nanos(2)}. Go reads an empty message
/// as the zero time, and prints the zero time as `null`; `Time` keeps
/// whole seconds only, as Go's decoder does.
fn time(name: &str, bytes: &[u8], micro: bool) -> Result<Value, ProtobufError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let [seconds, nanos] = scalars(name, bytes, [(1, Type::Int64), (2, Type::Int32)])?;
    let seconds = seconds.map_or(0, |v| v as i64);
    let nanos = i64::from(nanos.map_or(0, |v| v as i64 as i32));
    let (seconds, micros) = if micro {
        // time.Unix normalises nanoseconds outside 0..1e9 into seconds.
        let seconds = seconds.saturating_add(nanos.div_euclid(1_000_000_000));
        let micros = (nanos.rem_euclid(1_000_000_000) / 1_000) as u32;
        (seconds, Some(micros))
    } else {
        (seconds, None)
    };
    if seconds == GO_ZERO_TIME && micros.unwrap_or(0) == 0 {
        return Ok(Value::Null);
    }
    rfc3339(seconds, micros)
        .map(Value::String)
        .ok_or_else(|| malformed(name, 1, "a time outside the years 0 to 9999"))
}

/// `IntOrString` {type(1): 0 int, 1 string; intVal(2); strVal(3)}.
fn int_or_string(name: &str, bytes: &[u8]) -> Result<Value, ProtobufError> {
    let mut kind = 0u64;
    let mut int_val = 0i32;
    let mut str_val = String::new();
    for read in Fields::new(bytes) {
        let (tag, value) = read.map_err(|e| wire_error(name, e))?;
        match tag {
            1 => kind = varint(name, tag, value)?,
            2 => int_val = varint(name, tag, value)? as i64 as i32,
            3 => str_val = string(len(name, tag, value)?),
            _ => {}
        }
    }
    match kind {
        0 => Ok(Value::from(int_val)),
        1 => Ok(Value::String(str_val)),
        _ => Err(malformed(name, 1, format!("IntOrString type {kind}"))),
    }
}
