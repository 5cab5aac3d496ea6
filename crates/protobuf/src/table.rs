//! The shape of the generated table (`generated.rs`): for every message a
//! kind's bytes may contain, how its fields are numbered and what JSON they
//! become.

/// One protobuf message of `k8s.io/api` (or apimachinery, apiextensions),
/// named like its OpenAPI definition: `io.k8s.api.apps.v1.Deployment`.
#[derive(Debug)]
pub(crate) struct Message {
    /// The definition name; the table is sorted by it.
    pub name: &'static str,
    /// How the message's bytes become JSON.
    pub shape: Shape,
}

/// How a message's bytes become JSON. Most messages are objects; the
/// apimachinery types that Go marshals by hand to JSON have shapes of their
/// own. The generator checks each special message's field numbers against
/// k8s-pb; the numbers written in `decode.rs` are those.
#[derive(Debug)]
pub(crate) enum Shape {
    /// A JSON object with these fields, sorted by tag.
    Object(&'static [Field]),
    /// meta/v1 `Time` {seconds(1), nanos(2)}: RFC 3339 with second
    /// precision, `null` when empty (Go's zero time).
    Time,
    /// meta/v1 `MicroTime` {seconds(1), nanos(2)}: RFC 3339 with
    /// microseconds, `null` when empty.
    MicroTime,
    /// meta/v1 `Duration` {duration(1) nanoseconds}: Go's duration string
    /// (`5m0s`). No kind Gantry serves holds one in Kubernetes 1.32; the
    /// shape is here for the table a later version generates.
    #[allow(dead_code)]
    Duration,
    /// resource `Quantity` {string(1)}: the string.
    Quantity,
    /// intstr `IntOrString` {type(1), intVal(2), strVal(3)}: a number or a
    /// string.
    IntOrString,
    /// runtime `RawExtension` {raw(1)}: the JSON the bytes hold, `null` when
    /// there are none.
    RawExtension,
    /// meta/v1 `FieldsV1` {Raw(1)}: the JSON the bytes hold.
    FieldsV1,
    /// apiextensions `JSON` {raw(1)}: the JSON the bytes hold.
    Json,
    /// apiextensions `JSONSchemaPropsOrArray` {schema(1), jSONSchemas(2)}:
    /// one schema, or an array of them. The message named is the schema's.
    SchemaOrArray(&'static str),
    /// apiextensions `JSONSchemaPropsOrBool` {allows(1), schema(2)}: a
    /// schema, or a boolean.
    SchemaOrBool(&'static str),
    /// apiextensions `JSONSchemaPropsOrStringArray` {schema(1),
    /// property(2)}: a schema, or an array of strings.
    SchemaOrStringArray(&'static str),
    /// A Go named string slice (`ExtraValue`) {items(1)}: an array of
    /// strings.
    StringList,
}

/// One field of an object message.
#[derive(Debug)]
pub(crate) struct Field {
    /// Its protobuf field number.
    pub tag: u32,
    /// Its JSON name.
    pub json: &'static str,
    /// The type of the value (of each item, for a list; of each map value,
    /// for a map).
    pub ty: Type,
    /// One value, a list, or a map.
    pub card: Card,
    /// What Go's JSON encoder does with it; see [`Go`].
    pub go: Go,
}

/// The type of a value on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// `string`: a JSON string.
    String,
    /// `bytes`: base64 in JSON, as Go's encoder writes `[]byte`.
    Bytes,
    /// `bool`.
    Bool,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `double`.
    Double,
    /// An embedded message, by name.
    Message(&'static str),
}

/// How many values a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Card {
    /// At most one (proto2 `optional`).
    Single,
    /// A list (proto2 `repeated`; numbers packed or not).
    Repeated,
    /// A map with string keys: repeated entries {key(1), value(2)}, the
    /// value of the field's type.
    Map,
    /// A Go struct embedded with `json:",inline"` (`Volume`'s
    /// `VolumeSource`): one message on the wire whose fields join the
    /// parent's JSON object. Its JSON name is empty.
    Inline,
}

/// How Kubernetes' Go type declares a field, which decides what the wire's
/// presence means. Go's protobuf marshaller writes every non-pointer field,
/// zero or not, and a pointer field only when it is set; its decoder leaves
/// a field absent from the wire at its zero value (nil, for a pointer,
/// slice or map); its JSON encoder leaves out a zero field tagged
/// `omitempty` (a struct is never left out) and prints nil as `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Go {
    /// `T` without `omitempty`: always printed; absent, it is `T`'s zero
    /// value (`""`, `0`, `false`, `null` for a slice or map, the zero
    /// struct's JSON).
    Value,
    /// `T` with `omitempty`: a zero scalar or an empty slice or map is left
    /// out; a struct is printed as for [`Go::Value`].
    OmitEmpty,
    /// `*T` with `omitempty`: printed when set, zero included; left out when
    /// absent.
    Pointer,
    /// `*T` without `omitempty`: printed when set, `null` when absent.
    PointerOrNull,
}
