//! How Kubernetes 1.32's Go types declare each field that travels in
//! protobuf: its number, JSON name, Go type and `omitempty`. Neither k8s-pb
//! nor the OpenAPI definitions carry whether a field is a pointer or tagged
//! `omitempty`, yet that decides what a field on the wire (or absent from
//! it) becomes in JSON. `go-fields.txt` holds them, written by
//! `go_fields.py` from the Go sources (see its doc string for the command).

use std::collections::BTreeMap;

/// One field of a Go struct.
#[derive(Clone, Debug)]
pub struct GoField {
    /// The JSON name; empty for a struct embedded with `json:",inline"`.
    pub json: String,
    /// The Go type as declared (`*int32`, `[]Container`, `metav1.Time`).
    pub go_type: String,
    /// Tagged `omitempty`.
    pub omitempty: bool,
}

impl GoField {
    /// The table's `Go` variant for this declaration.
    pub fn mode(&self) -> &'static str {
        match (self.go_type.starts_with('*'), self.omitempty) {
            (false, false) => "Value",
            (false, true) => "OmitEmpty",
            (true, true) => "Pointer",
            (true, false) => "PointerOrNull",
        }
    }

    /// Declared as a slice (`[]T`, `[]byte` included) or a map.
    pub fn is_collection(&self) -> bool {
        self.go_type.starts_with("[]") || self.go_type.starts_with("map[")
    }
}

/// Every struct's fields, by definition name and then protobuf number.
pub type GoStructs = BTreeMap<String, BTreeMap<u32, GoField>>;

/// Reads `go-fields.txt`.
pub fn structs() -> Result<GoStructs, String> {
    parse(include_str!("go-fields.txt"))
}

fn parse(text: &str) -> Result<GoStructs, String> {
    let mut structs = GoStructs::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let bad = || format!("go-fields.txt line {}: {line:?}", i + 1);
        let parts: Vec<&str> = line.split(' ').collect();
        let (name, json, number, go_type, omitempty) = match parts.as_slice() {
            [name, json, number, go_type] => (name, json, number, go_type, false),
            [name, json, number, go_type, "omitempty"] => (name, json, number, go_type, true),
            _ => return Err(bad()),
        };
        let number: u32 = number.parse().map_err(|_| bad())?;
        let field = GoField {
            json: if *json == "-inline-" {
                String::new()
            } else {
                json.to_string()
            },
            go_type: go_type.to_string(),
            omitempty,
        };
        let fields = structs.entry(name.to_string()).or_default();
        if fields.insert(number, field).is_some() {
            return Err(format!("{}: number {number} twice", bad()));
        }
    }
    Ok(structs)
}
