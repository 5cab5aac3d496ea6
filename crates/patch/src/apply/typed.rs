//! Values read through a schema the way structured-merge-diff reads them:
//! which parts of an object are separate fields (granular maps, list-maps,
//! sets) and which are single values (scalars, atomic maps and lists). On
//! that: the field set of a value, the comparison of two values, the merge
//! of an applied configuration into a live object, and the removal of a set
//! of fields.
//!
//! A schema position may be unknown (`None`): a field the schema does not
//! declare, or one declared without a type. Such values are "deduced" as
//! structured-merge-diff does: maps are granular, lists atomic.

use schema::{ListType, MapType, Node, Type};
use serde_json::{Map, Value};

use super::fieldset::{FieldSet, PathElement, compare_values, path_string};

/// The schema at one position; `None` when unknown.
pub(crate) type Schema<'a> = Option<Node<'a>>;

/// How a value at a position merges.
#[derive(Clone)]
enum Atom<'a> {
    /// A single value, replaced whole.
    Scalar,
    /// A list; `keys` is `None` for an atomic list, `Some([])` for a set,
    /// and the key fields of a list-map.
    List {
        keys: Option<Vec<String>>,
        items: Schema<'a>,
    },
    /// A map or struct, granular unless `atomic`.
    Map { atomic: bool, node: Schema<'a> },
}

/// How `value` (or, without one, any value) at a position described by
/// `schema` merges.
fn atom<'a>(schema: Schema<'a>, value: Option<&Value>) -> Atom<'a> {
    let deduced = |value: Option<&Value>| match value {
        Some(Value::Object(_)) => Atom::Map {
            atomic: false,
            node: None,
        },
        Some(Value::Array(_)) => Atom::List {
            keys: None,
            items: None,
        },
        _ => Atom::Scalar,
    };
    let Some(node) = schema else {
        return deduced(value);
    };
    let declared = match node.ty() {
        Type::Object => Atom::Map {
            atomic: node.map_type() == MapType::Atomic,
            node: Some(node),
        },
        Type::Array => Atom::List {
            keys: match node.list_type() {
                ListType::Atomic => None,
                ListType::Set => Some(Vec::new()),
                ListType::Map(keys) => Some(keys),
            },
            items: node.items(),
        },
        Type::Any => return deduced(value),
        _ => Atom::Scalar,
    };
    // A value of another shape than the schema says is treated as a single
    // value rather than an error: validation reports it elsewhere.
    match (&declared, value) {
        (_, None | Some(Value::Null)) => declared,
        (Atom::Map { .. }, Some(Value::Object(_))) => declared,
        (Atom::List { .. }, Some(Value::Array(_))) => declared,
        (Atom::Scalar, Some(v)) if !v.is_object() && !v.is_array() => declared,
        _ => Atom::Scalar,
    }
}

/// The schema of field `key` of a map described by `node`.
pub(crate) fn child<'a>(node: Schema<'a>, key: &str) -> Schema<'a> {
    let node = node?;
    node.property(key).or_else(|| node.additional_properties())
}

/// Whether `key` is a declared field (a struct property) of `node`.
fn declared(node: Schema<'_>, key: &str) -> bool {
    node.is_some_and(|n| n.property(key).is_some())
}

/// The path element of a list element, or why there is none.
fn element_of(keys: &[String], items: Schema<'_>, item: &Value) -> Result<PathElement, String> {
    if keys.is_empty() {
        return match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            v => Ok(PathElement::Value(v.clone())),
        };
    }
    let Value::Object(map) = item else {
        return Err(if item.is_null() {
            "associative list with keys may not have a null element".into()
        } else {
            "associative list with keys may not have non-map elements".into()
        });
    };
    let mut fields = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(v) = map.get(key) {
            fields.push((key.clone(), v.clone()));
        } else if let Some(default) = items
            .and_then(|n| n.property(key))
            .and_then(|n| n.keyword("default"))
            .filter(|d| !d.is_null())
        {
            // A key field left out takes its schema default (a port's
            // protocol is TCP), so that the element has one identity.
            fields.push((key.clone(), default.clone()));
        }
    }
    if fields.is_empty() {
        let quoted: Vec<String> = keys.iter().map(|k| crate::fmt::go_quote(k)).collect();
        return Err(format!(
            "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
            quoted.join(" ")
        ));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(PathElement::Key(fields))
}

/// Deep equality as structured-merge-diff compares values: numbers by value
/// (`1` equals `1.0`), maps without regard to order.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare_values(a, b).is_eq(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------
// Field sets

/// Every field of `value`: its leaves, the elements of its granular lists,
/// the entries of its maps, and the fields whose value is null or empty.
pub(crate) fn field_set(value: &Value, schema: Schema<'_>) -> FieldSet {
    let mut set = FieldSet::new();
    collect(&mut set, &mut Vec::new(), value, schema);
    set
}

fn collect(set: &mut FieldSet, path: &mut Vec<PathElement>, value: &Value, schema: Schema<'_>) {
    match atom(schema, Some(value)) {
        Atom::Scalar => set.insert(path),
        Atom::List { keys: None, .. } | Atom::Map { atomic: true, .. } => set.insert(path),
        Atom::List {
            keys: Some(keys),
            items,
        } => {
            let Value::Array(list) = value else { return };
            let elements: Vec<Option<PathElement>> = list
                .iter()
                .map(|item| element_of(&keys, items, item).ok())
                .collect();
            // An element that appears twice is owned as a whole, without its
            // fields: its copies cannot be told apart.
            let mut seen = std::collections::BTreeSet::new();
            let mut duplicates = std::collections::BTreeSet::new();
            for element in elements.iter().flatten() {
                if !seen.insert(element.clone()) && duplicates.insert(element.clone()) {
                    path.push(element.clone());
                    set.insert(path);
                    path.pop();
                }
            }
            for (item, element) in list.iter().zip(elements) {
                let Some(element) = element else { continue };
                if duplicates.contains(&element) {
                    continue;
                }
                path.push(element);
                collect(set, path, item, items);
                set.insert(path);
                path.pop();
            }
        }
        Atom::Map { node, .. } => {
            let Value::Object(map) = value else { return };
            for (key, item) in map {
                path.push(PathElement::Field(key.clone()));
                collect(set, path, item, child(node, key));
                let empty = item.is_null() || item.as_object().is_some_and(Map::is_empty);
                if empty || !declared(node, key) {
                    set.insert(path);
                }
                path.pop();
            }
        }
    }
}

/// `set` plus, as members, every struct field that has members below it
/// (structured-merge-diff's `EnsureNamedFieldsAreMembers`), so that
/// removing the set's fields removes emptied structs too.
pub(crate) fn with_named_fields(set: &FieldSet, schema: Schema<'_>) -> FieldSet {
    let node = schema.filter(|n| n.ty() == Type::Object);
    let mut members: std::collections::BTreeSet<PathElement> = set.members().cloned().collect();
    let mut children = std::collections::BTreeMap::new();
    for (element, inner) in set.children() {
        let inner_schema = match element {
            PathElement::Field(name) => {
                if declared(node, name) {
                    members.insert(element.clone());
                }
                child(node, name)
            }
            PathElement::Key(_) => schema
                .filter(|n| n.ty() == Type::Array)
                .and_then(|n| n.items()),
            _ => None,
        };
        children.insert(element.clone(), with_named_fields(inner, inner_schema));
    }
    FieldSet::from_parts(members, children)
}

// ---------------------------------------------------------------------------
// Comparison

/// What changed from one value to another, field by field.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    /// Fields present before and gone after.
    pub(crate) removed: FieldSet,
    /// Fields present on both sides with different values.
    pub(crate) modified: FieldSet,
    /// Fields present after and not before.
    pub(crate) added: FieldSet,
}

/// Compares `lhs` (before) with `rhs` (after).
pub(crate) fn compare(lhs: &Value, rhs: &Value, schema: Schema<'_>) -> Comparison {
    let mut out = Comparison::default();
    compare_at(&mut out, &mut Vec::new(), Some(lhs), Some(rhs), schema);
    out
}

fn compare_at(
    out: &mut Comparison,
    path: &mut Vec<PathElement>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    schema: Schema<'_>,
) {
    let left = atom(schema, lhs);
    let right = atom(schema, rhs);
    // A value whose shape changed is compared as a whole first; the new
    // shape then decides what is walked.
    let mut leaf = false;
    if lhs.is_some() && rhs.is_some() && !same_atom(&left, &right) {
        compare_atom(out, path, lhs, rhs, left.clone(), &mut false);
    }
    let chosen = if rhs.is_none() { left } else { right };
    compare_atom(out, path, lhs, rhs, chosen, &mut leaf);
    if !leaf {
        match (lhs, rhs) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            _ => {}
        }
    }
}

fn same_atom(a: &Atom<'_>, b: &Atom<'_>) -> bool {
    matches!(
        (a, b),
        (Atom::Scalar, Atom::Scalar)
            | (Atom::List { .. }, Atom::List { .. })
            | (Atom::Map { .. }, Atom::Map { .. })
    )
}

/// A leaf: recorded as added, removed or modified, never walked into.
fn compare_leaf(
    out: &mut Comparison,
    path: &[PathElement],
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    leaf: &mut bool,
) {
    if *leaf {
        return;
    }
    *leaf = true;
    match (lhs, rhs) {
        (None, _) => out.added.insert(path),
        (_, None) => out.removed.insert(path),
        (Some(l), Some(r)) if !equal(l, r) => out.modified.insert(path),
        _ => {}
    }
}

fn compare_atom(
    out: &mut Comparison,
    path: &mut Vec<PathElement>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    atom: Atom<'_>,
    leaf: &mut bool,
) {
    match atom {
        Atom::Scalar => compare_leaf(out, path, lhs, rhs, leaf),
        Atom::List { keys, items } => {
            let l = lhs.and_then(Value::as_array);
            let r = rhs.and_then(Value::as_array);
            // Two empty (or null) lists are compared as values, which keeps
            // the difference between null and [].
            let empty = l.is_none_or(Vec::is_empty) && r.is_none_or(Vec::is_empty);
            match keys {
                Some(keys) if !empty => compare_lists(out, path, l, r, &keys, items),
                _ => compare_leaf(out, path, lhs, rhs, leaf),
            }
        }
        Atom::Map { atomic, node } => {
            let l = lhs.and_then(Value::as_object);
            let r = rhs.and_then(Value::as_object);
            let empty = l.is_none_or(Map::is_empty) && r.is_none_or(Map::is_empty);
            if atomic || empty {
                return compare_leaf(out, path, lhs, rhs, leaf);
            }
            for key in union_keys(l, r) {
                path.push(PathElement::Field(key.clone()));
                compare_at(
                    out,
                    path,
                    l.and_then(|m| m.get(&key)),
                    r.and_then(|m| m.get(&key)),
                    child(node, &key),
                );
                path.pop();
            }
        }
    }
}

/// The keys of both maps, those of `l` first.
fn union_keys(l: Option<&Map<String, Value>>, r: Option<&Map<String, Value>>) -> Vec<String> {
    let mut keys: Vec<String> = l.into_iter().flat_map(|m| m.keys().cloned()).collect();
    for key in r.into_iter().flat_map(|m| m.keys()) {
        if l.is_none_or(|m| !m.contains_key(key)) {
            keys.push(key.clone());
        }
    }
    keys
}

/// Groups a list's elements by path element, in first-seen order; elements
/// without one are skipped.
fn group<'v>(
    keys: &[String],
    items: Schema<'_>,
    list: Option<&'v Vec<Value>>,
) -> Vec<(PathElement, Vec<&'v Value>)> {
    let mut groups: Vec<(PathElement, Vec<&Value>)> = Vec::new();
    for item in list.into_iter().flatten() {
        let Ok(element) = element_of(keys, items, item) else {
            continue;
        };
        match groups.iter_mut().find(|(e, _)| *e == element) {
            Some((_, values)) => values.push(item),
            None => groups.push((element, vec![item])),
        }
    }
    groups
}

fn compare_lists(
    out: &mut Comparison,
    path: &mut Vec<PathElement>,
    l: Option<&Vec<Value>>,
    r: Option<&Vec<Value>>,
    keys: &[String],
    items: Schema<'_>,
) {
    let left = group(keys, items, l);
    let right = group(keys, items, r);
    let mut all: Vec<&PathElement> = left.iter().map(|(e, _)| e).collect();
    for (e, _) in &right {
        if !left.iter().any(|(l, _)| l == e) {
            all.push(e);
        }
    }
    for element in all {
        let lv: &[&Value] = left
            .iter()
            .find(|(e, _)| e == element)
            .map_or(&[], |(_, v)| v);
        let rv: &[&Value] = right
            .iter()
            .find(|(e, _)| e == element)
            .map_or(&[], |(_, v)| v);
        path.push(element.clone());
        match (lv.len(), rv.len()) {
            (0..=1, 0..=1) => {
                compare_at(out, path, lv.first().copied(), rv.first().copied(), items)
            }
            // Duplicates on both sides compare as one value.
            (2.., 2..) => {
                if lv.len() != rv.len() || lv.iter().zip(rv).any(|(a, b)| !equal(a, b)) {
                    out.modified.insert(path);
                }
            }
            (2.., _) => {
                if let Some(r) = rv.first() {
                    compare_at(out, path, None, Some(r), items);
                }
                out.removed.insert(path);
            }
            (_, _) => {
                if let Some(l) = lv.first() {
                    compare_at(out, path, Some(l), None, items);
                }
                out.added.insert(path);
            }
        }
        path.pop();
    }
}

// ---------------------------------------------------------------------------
// Merge

/// Merges `rhs` (an applied configuration) into `lhs` (the live object):
/// the configuration's values win, granular maps and lists merge. Fails on
/// a list element whose key appears twice in the configuration.
pub(crate) fn merge(lhs: &Value, rhs: &Value, schema: Schema<'_>) -> Result<Value, String> {
    let mut path = Vec::new();
    Ok(merge_at(&mut path, Some(lhs), Some(rhs), schema)?
        .unwrap_or_else(|| Value::Object(Map::new())))
}

fn merge_at(
    path: &mut Vec<PathElement>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    schema: Schema<'_>,
) -> Result<Option<Value>, String> {
    let atom = atom(schema, rhs.or(lhs));
    let keep_rhs = || rhs.or(lhs).cloned();
    match atom {
        Atom::Scalar => Ok(keep_rhs()),
        Atom::List { keys, items } => {
            let l = lhs.and_then(Value::as_array);
            let r = rhs.and_then(Value::as_array);
            let empty = l.is_none_or(Vec::is_empty) && r.is_none_or(Vec::is_empty);
            match keys {
                Some(keys) if !empty => merge_lists(path, l, r, &keys, items),
                _ => Ok(keep_rhs()),
            }
        }
        Atom::Map { atomic, node } => {
            let l = lhs.and_then(Value::as_object);
            let r = rhs.and_then(Value::as_object);
            let empty = l.is_none_or(Map::is_empty) && r.is_none_or(Map::is_empty);
            if atomic || empty {
                return Ok(keep_rhs());
            }
            let mut out = Map::new();
            for key in union_keys(l, r) {
                let lv = l.and_then(|m| m.get(&key));
                let rv = r.and_then(|m| m.get(&key));
                path.push(PathElement::Field(key.clone()));
                let merged = merge_at(path, lv, rv, child(node, &key))?;
                path.pop();
                if let Some(merged) = merged {
                    out.insert(key, merged);
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
    }
}

/// Merges two granular lists, keeping the live order for elements the
/// configuration does not mention and the configuration's order for those
/// it does (structured-merge-diff's `visitListItems`).
fn merge_lists(
    path: &mut Vec<PathElement>,
    l: Option<&Vec<Value>>,
    r: Option<&Vec<Value>>,
    keys: &[String],
    items: Schema<'_>,
) -> Result<Option<Value>, String> {
    let index = |list: Option<&Vec<Value>>,
                 allow_duplicates: bool|
     -> Result<Vec<(PathElement, usize, bool)>, String> {
        // (element, position, duplicated)
        let mut out: Vec<(PathElement, usize, bool)> = Vec::new();
        for (i, item) in list.into_iter().flatten().enumerate() {
            let element = element_of(keys, items, item)
                .map_err(|e| format!("{}: element {i}: {e}", path_string(path)))?;
            if let Some(first) = out.iter_mut().find(|(e, _, _)| *e == element) {
                if !allow_duplicates {
                    return Err(format!(
                        "{}: duplicate entries for key {element}",
                        path_string(path)
                    ));
                }
                first.2 = true;
            }
            out.push((element, i, false));
        }
        Ok(out)
    };
    let right = index(r, false)?;
    let mut left = index(l, true)?;
    // Mark every copy of a duplicated live element.
    let duplicated: Vec<PathElement> = left
        .iter()
        .filter(|(_, _, d)| *d)
        .map(|(e, _, _)| e.clone())
        .collect();
    for entry in &mut left {
        entry.2 = duplicated.contains(&entry.0);
    }
    let lv = |i: usize| l.and_then(|l| l.get(i));
    let rv = |i: usize| r.and_then(|r| r.get(i));
    let in_left = |e: &PathElement| left.iter().find(|(x, _, _)| x == e);
    let in_right = |e: &PathElement| right.iter().find(|(x, _, _)| x == e);
    // The live value a configuration element merges with: none for a
    // duplicated live element, which the configuration replaces.
    let live_for =
        |e: &PathElement| in_left(e).and_then(|(_, i, dup)| if *dup { None } else { lv(*i) });

    let mut shared: std::collections::VecDeque<&PathElement> = right
        .iter()
        .map(|(e, _, _)| e)
        .filter(|e| in_left(e).is_some())
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: Vec<PathElement> = Vec::new();
    let mut out = Vec::new();
    let (mut li, mut ri) = (0, 0);
    while li < left.len() || ri < right.len() {
        if li < left.len() && ri < right.len() {
            let element = &left[li].0;
            if *element == right[ri].0 {
                merged_rhs.push(element.clone());
                path.push(element.clone());
                let merged = merge_at(path, live_for(element), rv(right[ri].1), items)?;
                path.pop();
                out.extend(merged);
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if in_right(element).is_some() && next_shared.is_some_and(|n| n != element) {
                // A shared element, but not the one to place now.
                li += 1;
                continue;
            }
        }
        if li < left.len() {
            let element = &left[li].0;
            if in_right(element).is_none() {
                path.push(element.clone());
                let merged = merge_at(path, lv(left[li].1), None, items)?;
                path.pop();
                out.extend(merged);
                li += 1;
                continue;
            } else if merged_rhs.contains(element) {
                li += 1;
            }
        }
        if ri < right.len() {
            let element = right[ri].0.clone();
            merged_rhs.push(element.clone());
            path.push(element.clone());
            let merged = merge_at(path, live_for(&element), rv(right[ri].1), items)?;
            path.pop();
            out.extend(merged);
            ri += 1;
            if next_shared.is_some_and(|n| *n == element) {
                next_shared = shared.pop_front();
            }
        }
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// Removes from `merged` the nulls that came from `config`: such a null
/// claims the field (and conflicts like any other value while the merge is
/// checked) but leaves it unset, as Kubernetes' typed decoding does.
pub(crate) fn drop_config_nulls(merged: &mut Value, config: &Value) {
    let (Value::Object(out), Value::Object(config)) = (merged, config) else {
        return;
    };
    for (key, value) in config {
        if value.is_null() {
            // A null over a granular map or list merges to the live value,
            // which stays; a null that won is dropped.
            if out.get(key).is_some_and(Value::is_null) {
                out.remove(key);
            }
        } else if let Some(inner) = out.get_mut(key) {
            drop_config_nulls(inner, value);
        }
    }
}

// ---------------------------------------------------------------------------
// Removal

/// `value` without the fields of `set` (each removed with everything below
/// it). Maps and lists left empty by the removal disappear.
pub(crate) fn remove(value: &Value, set: &FieldSet, schema: Schema<'_>) -> Value {
    remove_at(value, set, schema).unwrap_or_else(|| Value::Object(Map::new()))
}

fn remove_at(value: &Value, set: &FieldSet, schema: Schema<'_>) -> Option<Value> {
    match atom(schema, Some(value)) {
        Atom::Scalar => Some(value.clone()),
        // An atomic value cannot lose part of itself: structured-merge-diff
        // drops it whole when asked to.
        Atom::List { keys: None, .. } | Atom::Map { atomic: true, .. } => None,
        Atom::List {
            keys: Some(keys),
            items,
        } => {
            let list = value.as_array()?;
            let mut out = Vec::new();
            for item in list {
                let Ok(element) = element_of(&keys, items, item) else {
                    out.push(item.clone());
                    continue;
                };
                if set.has_member(&element) {
                    continue;
                }
                match set.with_prefix(&element) {
                    Some(inner) if !inner.is_empty() => out.extend(remove_at(item, inner, items)),
                    _ => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Atom::Map { node, .. } => {
            let map = value.as_object()?;
            let mut out = Map::new();
            for (key, item) in map {
                let element = PathElement::Field(key.clone());
                if set.has_member(&element) {
                    continue;
                }
                match set.with_prefix(&element) {
                    Some(inner) if !inner.is_empty() => {
                        if let Some(kept) = remove_at(item, inner, child(node, key)) {
                            out.insert(key.clone(), kept);
                        }
                    }
                    _ => {
                        out.insert(key.clone(), item.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
    }
}

// ---------------------------------------------------------------------------
// Validation of an applied configuration

/// Checks what structured-merge-diff checks when it reads an applied
/// configuration: list-map elements have keys, no element appears twice,
/// maps and lists are where the schema says.
pub(crate) fn validate(value: &Value, schema: Schema<'_>) -> Result<(), String> {
    let mut errors = Vec::new();
    validate_at(&mut errors, &mut Vec::new(), value, schema);
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(format!("errors:\n  {}", errors.join("\n  "))),
    }
}

fn validate_at(
    errors: &mut Vec<String>,
    path: &mut Vec<PathElement>,
    value: &Value,
    schema: Schema<'_>,
) {
    let at = |path: &[PathElement], msg: String| {
        if path.is_empty() {
            msg
        } else {
            format!("{}: {msg}", path_string(path))
        }
    };
    if value.is_null() {
        return;
    }
    if let Some(node) = schema {
        let expected = match node.ty() {
            Type::Object if !value.is_object() => Some("map"),
            Type::Array if !value.is_array() => Some("list"),
            _ => None,
        };
        if let Some(expected) = expected {
            errors.push(at(path, format!("expected {expected}, got {value}")));
            return;
        }
    }
    match atom(schema, Some(value)) {
        Atom::Scalar => {}
        Atom::List { keys, items } => {
            let Value::Array(list) = value else { return };
            let mut seen: Vec<PathElement> = Vec::new();
            for (i, item) in list.iter().enumerate() {
                let element = match &keys {
                    None => PathElement::Index(i as i64),
                    Some(keys) => match element_of(keys, items, item) {
                        Ok(element) => {
                            if seen.contains(&element) {
                                errors
                                    .push(at(path, format!("duplicate entries for key {element}")));
                            }
                            seen.push(element.clone());
                            element
                        }
                        Err(err) => {
                            errors.push(at(path, format!("element {i}: {err}")));
                            return;
                        }
                    },
                };
                path.push(element);
                validate_at(errors, path, item, items);
                path.pop();
            }
        }
        Atom::Map { node, .. } => {
            let Value::Object(map) = value else { return };
            for (key, item) in map {
                path.push(PathElement::Field(key.clone()));
                validate_at(errors, path, item, child(node, key));
                path.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, schemas};
    use serde_json::json;

    fn names(value: &Value) -> Vec<&str> {
        value["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn merged_lists_keep_live_order_around_the_configuration_order() {
        let set = schemas();
        let pod = Some(node(&set, "io.k8s.api.core.v1.Pod"));
        let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let config = json!({"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "a"}]}});
        let merged = merge(&live, &config, pod).unwrap();
        // b, which the configuration does not mention, keeps its place
        // before the shared elements, which follow the configuration.
        assert_eq!(names(&merged), ["b", "c", "a"]);
        assert_eq!(merged["spec"]["containers"][1]["image"], "x");
        let config = json!({"spec": {"containers": [{"name": "d"}, {"name": "b"}]}});
        assert_eq!(
            names(&merge(&live, &config, pod).unwrap()),
            ["a", "d", "b", "c"]
        );
        let dup = json!({"spec": {"containers": [{"name": "d"}, {"name": "d"}]}});
        assert_eq!(
            merge(&live, &dup, pod).unwrap_err(),
            ".spec.containers: duplicate entries for key [name=\"d\"]"
        );
    }

    #[test]
    fn comparison_reports_granular_changes() {
        let set = schemas();
        let pod = Some(node(&set, "io.k8s.api.core.v1.Pod"));
        let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "x", "image": "1", "args": ["p"]}], "nodeSelector": {"k": "v"}}});
        let new = json!({"metadata": {"labels": {"a": "1", "c": "3"}},
            "spec": {"containers": [{"name": "x", "image": "2", "args": ["q"]}, {"name": "y"}], "nodeSelector": {"k": "w"}}});
        let c = compare(&old, &new, pod);
        assert_eq!(c.removed.paths(), [".metadata.labels.b"]);
        assert_eq!(
            c.modified.paths(),
            [
                ".spec.nodeSelector",
                ".spec.containers[name=\"x\"].args",
                ".spec.containers[name=\"x\"].image"
            ]
        );
        assert_eq!(
            c.added.paths(),
            [
                ".metadata.labels.c",
                ".spec.containers[name=\"y\"]",
                ".spec.containers[name=\"y\"].name"
            ]
        );
        // Numbers compare by value.
        assert!(
            compare(
                &json!({"spec": {"hostname": 1}}),
                &json!({"spec": {"hostname": 1.0}}),
                pod
            )
            .modified
            .is_empty()
        );
    }

    #[test]
    fn removal_takes_whole_subtrees_and_empty_parents() {
        let set = schemas();
        let pod = Some(node(&set, "io.k8s.api.core.v1.Pod"));
        let value = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "x"}, {"name": "y", "image": "i"}]}});
        let mut remove_set = FieldSet::new();
        remove_set.insert(&[
            PathElement::Field("metadata".into()),
            PathElement::Field("labels".into()),
            PathElement::Field("a".into()),
        ]);
        remove_set.insert(&[
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            PathElement::Key(vec![("name".into(), json!("x"))]),
        ]);
        assert_eq!(
            remove(&value, &remove_set, pod),
            json!({"spec": {"containers": [{"name": "y", "image": "i"}]}})
        );
    }
}
