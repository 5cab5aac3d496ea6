//! Sets of field paths, and their `fieldsV1` encoding.
//!
//! A path is a sequence of elements: a field name (`f:spec`), the key of a
//! list-map element (`k:{"name":"nginx"}`), the value of a set element
//! (`v:"finalizer"`), or an index (`i:0`, never produced here but accepted).
//! A set is a tree: at each level, the elements that are themselves members
//! and the children holding longer paths. The order of elements and the
//! encoding follow structured-merge-diff exactly, so that `fieldsV1` written
//! here is byte-for-byte what Kubernetes writes and parses back losslessly.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::PatchError;
use crate::fmt::{go_json, go_json_string, go_number, go_quote};

/// One step of a field path.
#[derive(Clone, Debug)]
pub(crate) enum PathElement {
    /// A field of a map or struct.
    Field(String),
    /// A list-map element, by its key fields sorted by name.
    Key(Vec<(String, Value)>),
    /// A set element, by value.
    Value(Value),
    /// A list element by position.
    Index(i64),
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            Self::Field(_) => 0,
            Self::Key(_) => 1,
            Self::Value(_) => 2,
            Self::Index(_) => 3,
        }
    }

    /// The `fieldsV1` key for this element (`f:name`, `k:{...}`, `v:...`,
    /// `i:N`).
    pub(crate) fn encode(&self) -> String {
        match self {
            Self::Field(name) => format!("f:{name}"),
            Self::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{}:{}", go_json_string(k), go_json(v)))
                    .collect();
                format!("k:{{{}}}", parts.join(","))
            }
            Self::Value(v) => format!("v:{}", go_json(v)),
            Self::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `fieldsV1` key; `Ok(None)` for a key of an unknown kind,
    /// which Kubernetes skips.
    fn decode(key: &str) -> Result<Option<Self>, PatchError> {
        let bad = |why: &str| PatchError::BadFieldsV1(format!("{why}: {key:?}"));
        let bytes = key.as_bytes();
        if bytes.len() < 2 {
            return Err(bad("key must be 2 characters long"));
        }
        if bytes[1] != b':' {
            return Err(bad("missing colon"));
        }
        let rest = &key[2..];
        Ok(Some(match bytes[0] {
            b'f' => Self::Field(rest.to_owned()),
            b'v' => Self::Value(serde_json::from_str(rest).map_err(|e| bad(&e.to_string()))?),
            b'k' => {
                let Value::Object(map) =
                    serde_json::from_str(rest).map_err(|e| bad(&e.to_string()))?
                else {
                    return Err(bad("list-map key is not an object"));
                };
                let mut fields: Vec<(String, Value)> = map.into_iter().collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Self::Key(fields)
            }
            b'i' => Self::Index(rest.parse().map_err(|_| bad("bad index"))?),
            _ => return Ok(None),
        }))
    }
}

/// Prints an element the way Kubernetes prints paths in conflicts:
/// `.name`, `[name="nginx",protocol="TCP"]`, `[="value"]`, `[0]`.
impl std::fmt::Display for PathElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Field(name) => write!(f, ".{name}"),
            Self::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_string(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            Self::Value(v) => write!(f, "[={}]", value_string(v)),
            Self::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// structured-merge-diff's `value.ToString`.
fn value_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", value_string(v)))
            .collect(),
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// structured-merge-diff's order: field names, then keys, then values,
/// then indices; within each, by content.
impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Field(a), Self::Field(b)) => a.cmp(b),
            (Self::Key(a), Self::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b) {
                    let c = an.cmp(bn).then_with(|| compare_values(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Self::Value(a), Self::Value(b)) => compare_values(a, b),
            (Self::Index(a), Self::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// structured-merge-diff's total order of values: numbers (ints and floats
/// by value), then strings, booleans, lists, maps, and null last.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (a, b) in x.iter().zip(y) {
                let c = compare_values(a, b);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let c = match (x.get(key.as_str()), y.get(key.as_str())) {
                    (Some(a), Some(b)) => compare_values(a, b),
                    (None, _) => Ordering::Greater,
                    (_, None) => Ordering::Less,
                };
                if c != Ordering::Equal {
                    return c;
                }
            }
            Ordering::Equal
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A set of field paths, such as the fields one manager owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Elements at this level that are themselves in the set.
    members: BTreeSet<PathElement>,
    /// Longer paths, by their first element; never empty.
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a `fieldsV1` value, as found in `metadata.managedFields`.
    /// Keys of an unknown kind are skipped, as Kubernetes does.
    pub fn from_fields_v1(fields: &Value) -> Result<Self, PatchError> {
        let Value::Object(map) = fields else {
            return Err(PatchError::BadFieldsV1("fieldsV1 must be an object".into()));
        };
        Ok(Self::decode_level(map)?.0.unwrap_or_default())
    }

    /// Reads one level: the set of its children and whether the level's own
    /// element is a member (it is when marked with `.` or when it has no
    /// children at all).
    fn decode_level(map: &Map<String, Value>) -> Result<(Option<Self>, bool), PatchError> {
        let mut children: Option<Self> = None;
        let mut member = false;
        for (key, value) in map {
            if key == "." {
                member = true;
                continue;
            }
            let Some(element) = PathElement::decode(key)? else {
                continue;
            };
            let Value::Object(inner) = value else {
                return Err(PatchError::BadFieldsV1(format!(
                    "the value of {key:?} is not an object"
                )));
            };
            let (grandchildren, child_member) = Self::decode_level(inner)?;
            let set = children.get_or_insert_with(Self::new);
            if child_member {
                set.members.insert(element.clone());
            }
            if let Some(grandchildren) = grandchildren {
                let slot = set.children.entry(element).or_default();
                *slot = slot.union(&grandchildren);
            }
        }
        if children.is_none() {
            member = true;
        }
        Ok((children, member))
    }

    /// The `fieldsV1` encoding of the set, keys in Kubernetes' order.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.encode_level(false))
    }

    fn encode_level(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        // Members and children interleave in element order; an element that
        // is both is written once, with `.` inside.
        let mut members = self.members.iter().peekable();
        let mut children = self.children.iter().peekable();
        loop {
            let next = match (members.peek(), children.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(m), Some((c, _))) => (*m).cmp(c),
            };
            match next {
                Ordering::Less => {
                    if let Some(m) = members.next() {
                        out.insert(m.encode(), Value::Object(Map::new()));
                    }
                }
                Ordering::Greater => {
                    if let Some((c, set)) = children.next() {
                        out.insert(c.encode(), Value::Object(set.encode_level(false)));
                    }
                }
                Ordering::Equal => {
                    members.next();
                    if let Some((c, set)) = children.next() {
                        out.insert(c.encode(), Value::Object(set.encode_level(true)));
                    }
                }
            }
        }
        out
    }

    /// Adds a path. The empty path (the object itself) is never tracked.
    pub(crate) fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether `path` is in the set.
    #[cfg(test)]
    pub(crate) fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether `element` is a member at this level.
    pub(crate) fn has_member(&self, element: &PathElement) -> bool {
        self.members.contains(element)
    }

    /// The paths below `element`, without it.
    pub(crate) fn with_prefix(&self, element: &PathElement) -> Option<&FieldSet> {
        self.children.get(element)
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    pub(crate) fn from_parts(
        members: BTreeSet<PathElement>,
        children: BTreeMap<PathElement, FieldSet>,
    ) -> Self {
        let children = children
            .into_iter()
            .filter(|(_, c)| !c.is_empty())
            .collect();
        Self { members, children }
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.union(&other.members).cloned().collect();
        let mut children = self.children.clone();
        for (element, set) in &other.children {
            let slot = children.entry(element.clone()).or_default();
            *slot = slot.union(set);
        }
        FieldSet { members, children }
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(element, set)| {
                let theirs = other.children.get(element)?;
                let both = set.intersection(theirs);
                (!both.is_empty()).then(|| (element.clone(), both))
            })
            .collect();
        FieldSet { members, children }
    }

    /// The paths of `self` not in `other`. As in structured-merge-diff, a
    /// member of `other` does not remove the paths below it from `self`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(element, set)| match other.children.get(element) {
                Some(theirs) => {
                    let rest = set.difference(theirs);
                    (!rest.is_empty()).then(|| (element.clone(), rest))
                }
                None => Some((element.clone(), set.clone())),
            })
            .collect();
        FieldSet { members, children }
    }

    /// The paths of `self` not in `other`, where a member of `other` also
    /// removes everything below it.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(element, set)| {
                if other.members.contains(element) {
                    return None;
                }
                match other.children.get(element) {
                    Some(theirs) => {
                        let rest = set.recursive_difference(theirs);
                        (!rest.is_empty()).then(|| (element.clone(), rest))
                    }
                    None => Some((element.clone(), set.clone())),
                }
            })
            .collect();
        FieldSet { members, children }
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Every path, printed as Kubernetes prints them in conflicts
    /// (`.spec.replicas`, `.spec.containers[name="nginx"].image`), in the
    /// order Kubernetes walks a set: the members of a level, then its
    /// children.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(&mut Vec::new(), &mut |path| out.push(path_string(path)));
        out
    }

    /// Calls `f` with every path, in [`FieldSet::paths`] order.
    pub(crate) fn walk(&self, prefix: &mut Vec<PathElement>, f: &mut dyn FnMut(&[PathElement])) {
        for member in &self.members {
            prefix.push(member.clone());
            f(prefix);
            prefix.pop();
        }
        for (element, set) in &self.children {
            prefix.push(element.clone());
            set.walk(prefix, f);
            prefix.pop();
        }
    }
}

/// A path printed as Kubernetes prints it.
pub(crate) fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.into())
    }

    #[test]
    fn fields_v1_round_trips_byte_for_byte() {
        // Written by a Kubernetes 1.32 API server for a Deployment applied
        // with kubectl, then extended with a set and a multi-key list map.
        let text = r#"{"f:metadata":{"f:finalizers":{".":{},"v:\"example.com/a\\u003cb\\u003e\"":{},"v:\"z\"":{}},"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let set = FieldSet::from_fields_v1(&value).unwrap();
        assert_eq!(serde_json::to_string(&set.to_fields_v1()).unwrap(), text);
        assert_eq!(
            set.paths(),
            [
                ".metadata.finalizers",
                ".metadata.finalizers[=\"example.com/a<b>\"]",
                ".metadata.finalizers[=\"z\"]",
                ".metadata.labels.app",
                ".spec.replicas",
                ".spec.selector",
                ".spec.template.metadata.labels.app",
                ".spec.template.spec.containers[name=\"nginx\"]",
                ".spec.template.spec.containers[name=\"nginx\"].image",
                ".spec.template.spec.containers[name=\"nginx\"].name",
                ".spec.template.spec.containers[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"]",
                ".spec.template.spec.containers[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"].containerPort",
            ]
        );
    }

    #[test]
    fn fields_v1_sorts_and_normalises() {
        // Keys out of order, list-map key fields out of order, and a float
        // written with a fraction: parsing normalises, printing sorts.
        let value = json!({
            "f:spec": {"f:b": {}, "f:a": {}},
            "f:list": {"k:{\"protocol\":\"TCP\",\"port\":80}": {}},
            "x:unknown": {},
            "i:3": {}
        });
        let set = FieldSet::from_fields_v1(&value).unwrap();
        assert_eq!(
            serde_json::to_string(&set.to_fields_v1()).unwrap(),
            r#"{"f:list":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{}},"f:spec":{"f:a":{},"f:b":{}},"i:3":{}}"#
        );
        for bad in [
            json!([]),
            json!({"f:a": 1}),
            json!({"k:[1]": {}}),
            json!({"q": {}}),
            json!({"fx": {}}),
        ] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_operations_follow_structured_merge_diff() {
        let mut a = FieldSet::new();
        a.insert(&[field("spec"), field("replicas")]);
        a.insert(&[field("spec"), field("template"), field("x")]);
        a.insert(&[field("spec")]);
        let mut b = FieldSet::new();
        b.insert(&[field("spec"), field("replicas")]);
        b.insert(&[field("status")]);

        assert_eq!(a.intersection(&b).paths(), [".spec.replicas"]);
        assert_eq!(
            a.union(&b).paths(),
            [".spec", ".status", ".spec.replicas", ".spec.template.x"]
        );
        assert_eq!(a.difference(&b).paths(), [".spec", ".spec.template.x"]);
        // A member of the other set does not remove what lies below it in a
        // plain difference, but does in a recursive one.
        let mut spec = FieldSet::new();
        spec.insert(&[field("spec")]);
        assert_eq!(
            a.difference(&spec).paths(),
            [".spec.replicas", ".spec.template.x"]
        );
        assert!(a.recursive_difference(&spec).is_empty());
        assert!(a.difference(&a).is_empty());
        assert!(a.has(&[field("spec"), field("template"), field("x")]));
        assert!(!a.has(&[field("spec"), field("template")]));
    }

    #[test]
    fn elements_order_like_kubernetes() {
        let mut elements = [
            PathElement::Index(0),
            PathElement::Value(json!("a")),
            PathElement::Value(json!(2)),
            PathElement::Key(vec![("name".into(), json!("b"))]),
            PathElement::Key(vec![("name".into(), json!("a"))]),
            PathElement::Field("z".into()),
            PathElement::Field("a".into()),
        ];
        elements.sort();
        let printed: Vec<String> = elements.iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            [
                ".a",
                ".z",
                "[name=\"a\"]",
                "[name=\"b\"]",
                "[=2]",
                "[=\"a\"]",
                "[0]"
            ]
        );
        assert_eq!(
            PathElement::Value(json!(80)),
            PathElement::Value(json!(80.0))
        );
    }
}
