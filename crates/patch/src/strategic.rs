//! Strategic merge patch, as the Kubernetes API server applies it.
//!
//! A strategic merge patch is a JSON merge patch whose lists can merge
//! element by element. The schema says how: a list whose
//! `x-kubernetes-patch-strategy` contains `merge` merges (maps by their
//! `x-kubernetes-patch-merge-key`, scalars as a union); every other list is
//! replaced. On top, the patch may carry directives:
//!
//! - `$patch: replace` in a map replaces the map; as a list element it
//!   replaces the list with the patch's other elements.
//! - `$patch: delete` in a map empties it; as a list element (with the merge
//!   key) it deletes the matching elements.
//! - `$retainKeys: [...]` in a map drops every key of the original not
//!   listed (kubectl sends it for fields with the `retainKeys` strategy, such
//!   as a volume's source or a Deployment's strategy).
//! - `$deleteFromPrimitiveList/<field>: [...]` removes scalars from a list.
//! - `$setElementOrder/<field>: [...]` gives the order of the merged list.
//!
//! The order in which this code looks at things follows Kubernetes'
//! `strategicpatch` package (`mergeMap`), because kubectl's three-way
//! patches depend on it: `$retainKeys` first, then the lists named by
//! `$setElementOrder`, then every other key in the patch's order.
//!
//! Where Kubernetes copies part of a patch into the object verbatim (a map
//! replaced with `$patch: replace`, a new list element), Kubernetes' typed
//! decoding afterwards drops nulls and leftover directive keys; this code
//! drops them right away, so that the result is what a client reads back.

use schema::Node;
use serde_json::{Map, Value};

use crate::PatchError;
use crate::fmt::go_value;

const DIRECTIVE: &str = "$patch";
const REPLACE: &str = "replace";
const DELETE: &str = "delete";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "retainKeys";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Applies the strategic merge patch `patch` to `doc`.
///
/// `schema` is the node describing `doc` (the kind's top-level schema).
/// Without one nothing is known about lists, so every list in the patch
/// replaces the original's, while maps still merge and directives still
/// apply. A field the schema does not declare is treated the same way.
pub fn strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    schema: Option<Node<'_>>,
) -> Result<Value, PatchError> {
    let Value::Object(original) = doc else {
        return Err(PatchError::NotAnObject("the document must be an object"));
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject("the patch must be an object"));
    };
    merge_map(original.clone(), patch.clone(), schema).map(Value::Object)
}

/// What the schema says about one field.
struct FieldMeta<'a> {
    /// The field's schema (for a list: the schema of its items).
    node: Option<Node<'a>>,
    /// The patch strategy other than `retainKeys`, which only matters to
    /// clients building patches.
    strategy: Option<String>,
    /// The merge key of a list of maps.
    merge_key: Option<String>,
}

impl<'a> FieldMeta<'a> {
    fn lookup(parent: Option<Node<'a>>, key: &str, list: bool) -> Result<Self, PatchError> {
        let node = parent.and_then(|p| p.property(key).or_else(|| p.additional_properties()));
        let strategy = match node.and_then(|n| n.patch_strategy()) {
            Some(raw) => other_strategy(raw)?,
            None => None,
        };
        let merge_key = node
            .and_then(|n| n.patch_merge_key())
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        let node = if list {
            node.and_then(|n| n.items())
        } else {
            node
        };
        Ok(Self {
            node,
            strategy,
            merge_key,
        })
    }

    fn is(&self, strategy: &str) -> bool {
        self.strategy.as_deref() == Some(strategy)
    }
}

/// Splits `merge,retainKeys` style strategies and returns the one that is
/// not `retainKeys`.
fn other_strategy(raw: &str) -> Result<Option<String>, PatchError> {
    let parts: Vec<&str> = raw.split(',').collect();
    match parts.as_slice() {
        [] | [""] => Ok(None),
        [single] if *single == RETAIN_KEYS => Ok(None),
        [single] => Ok(Some((*single).to_owned())),
        [a, b] if *a == RETAIN_KEYS => Ok(Some((*b).to_owned())),
        [a, b] if *b == RETAIN_KEYS => Ok(Some((*a).to_owned())),
        _ => Err(PatchError::BadStrategy(raw.to_owned())),
    }
}

/// Merges `patch` into `original` (Kubernetes' `mergeMap`).
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: Option<Node<'_>>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some(REPLACE) => {
                patch.remove(DIRECTIVE);
                Ok(clean_map(patch))
            }
            Some(DELETE) => Ok(Map::new()),
            _ => Err(PatchError::UnknownDirective {
                directive: go_value(directive),
                map: go_value(&Value::Object(patch)),
            }),
        };
    }

    apply_retain_keys(&mut original, &mut patch)?;
    merge_ordered_lists(&mut original, &mut patch, node)?;

    for (key, patch_value) in patch {
        let (key, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(rest) => match rest.strip_prefix('/') {
                Some(field) => (field.to_owned(), true),
                None => return Err(PatchError::BadDeleteFromPrimitiveList),
            },
            None => (key, false),
        };

        // Null deletes; a null for a key the original lacks is dropped
        // rather than kept, as the server does.
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }

        let Some(original_value) = original.get_mut(&key) else {
            // A deletion list for a list that is not there has nothing to
            // delete, and must not create the list.
            if !delete_list {
                insert_clean(&mut original, key, patch_value);
            }
            continue;
        };

        if kind(original_value) != kind(&patch_value) {
            if !delete_list {
                insert_clean(&mut original, key, patch_value);
            }
            continue;
        }

        match (original_value, patch_value) {
            (Value::Object(o), Value::Object(p)) => {
                let meta = FieldMeta::lookup(node, &key, false)?;
                let merged = if meta.is(REPLACE) {
                    clean_map(p)
                } else {
                    merge_map(std::mem::take(o), p, meta.node)?
                };
                *o = merged;
            }
            (Value::Array(o), Value::Array(p)) => {
                let meta = FieldMeta::lookup(node, &key, true)?;
                let merged = merge_list_field(std::mem::take(o), p, &meta, &key, delete_list)?;
                *o = merged;
            }
            // Both scalars of the same type: the patch's value wins.
            (slot, patch_value) => *slot = patch_value,
        }
    }
    Ok(original)
}

/// Merges a list field according to its strategy (Kubernetes'
/// `mergeSliceHandler`). Deletion lists apply whatever the strategy.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: &FieldMeta<'_>,
    field: &str,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if meta.is(MERGE) || delete_list {
        merge_list(
            original,
            patch,
            meta.node,
            meta.merge_key.as_deref(),
            field,
            delete_list,
        )
    } else {
        Ok(clean_list(patch))
    }
}

/// `$retainKeys`: drop every key of `original` that the list leaves out,
/// after checking that the patch sets only listed keys.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadRetainKeys);
    };
    let listed = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || key.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(key) {
            return Err(PatchError::BadRetainKeys);
        }
    }
    original.retain(|key, _| listed(key));
    Ok(())
}

/// Handles every `$setElementOrder/<field>` in the patch: merges the named
/// list with its patch list (if any) and orders the result, then removes
/// both from the patch so the main loop does not see them again
/// (Kubernetes' `mergePatchIntoOriginal`).
fn merge_ordered_lists(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: Option<Node<'_>>,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order) = patch.remove(&directive) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(PatchError::BadSetElementOrder);
        };
        let field = directive
            .strip_prefix(SET_ELEMENT_ORDER)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or(PatchError::BadSetElementOrder)?
            .to_owned();

        let original_list = match original.get(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(wrong_type("a list", other)),
        };
        let patch_list = match patch.remove(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => return Err(wrong_type("a list", &other)),
        };
        let meta = FieldMeta::lookup(node, &field, true)?;
        let merge_key = meta.merge_key.as_deref();
        check_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;

        let merged = match (&original_list, patch_list) {
            (None, None) => continue,
            (Some(list), None) => list.clone(),
            (None, Some(list)) => clean_list(list),
            (Some(list), Some(patch_list)) => {
                merge_list_field(list.clone(), patch_list, &meta, &field, false)?
            }
        };
        let server_order = original_list.unwrap_or_default();
        let Some(element_kind) = element_kind(&[&server_order, &merged])? else {
            // An empty list has no order to fix.
            original.insert(field, Value::Array(merged));
            continue;
        };
        let (in_order, server_only) = partition(merged, &order, merge_key, element_kind)?;
        let ordered = normalize_order(
            in_order,
            server_only,
            &order,
            &server_order,
            merge_key,
            element_kind,
        )?;
        original.insert(field, Value::Array(ordered));
    }
    Ok(())
}

/// Checks that the patch list's elements appear in `order` in the same
/// relative order (elements being deleted excepted).
fn check_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = match merge_key {
        Some(_) => {
            let mut kept = Vec::new();
            for item in patch_list {
                let Value::Object(map) = item else {
                    return Err(wrong_type("a map", item));
                };
                if map.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE) {
                    kept.push(item);
                }
            }
            kept
        }
        None => patch_list.iter().collect(),
    };
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if has_directive(kept[p]) {
            p += 1;
            continue;
        }
        if merge_key_equal(kept[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() {
        return Err(PatchError::OrderMismatch {
            patch: go_value(&Value::Array(patch_list.to_vec())),
            order: go_value(&Value::Array(order.to_vec())),
        });
    }
    Ok(())
}

fn merge_key_equal(
    left: &Value,
    right: &Value,
    merge_key: Option<&str>,
) -> Result<bool, PatchError> {
    let Some(key) = merge_key else {
        return Ok(scalar_eq(left, right));
    };
    let (Value::Object(l), Value::Object(r)) = (left, right) else {
        return Err(wrong_type(
            "a map",
            if left.is_object() { right } else { left },
        ));
    };
    let lv = l.get(key).ok_or_else(|| missing_key(left, key))?;
    let rv = r.get(key).ok_or_else(|| missing_key(right, key))?;
    Ok(scalar_eq(lv, rv))
}

/// The kind of a list's elements, which decides how the list merges.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ElementKind {
    Map,
    Scalar,
}

/// The common kind of the elements of `lists`, `None` if they are all empty
/// (Kubernetes' `sliceElementType`).
fn element_kind(lists: &[&[Value]]) -> Result<Option<ElementKind>, PatchError> {
    let mut seen: Option<u8> = None;
    for list in lists {
        for item in list.iter() {
            let k = kind(item);
            if item.is_array() {
                return Err(PatchError::ListOfLists);
            }
            match seen {
                None => seen = Some(k),
                Some(previous) if previous != k => {
                    let all: Vec<Value> = lists.iter().map(|l| Value::Array(l.to_vec())).collect();
                    return Err(PatchError::MixedElementTypes(go_value(&Value::Array(all))));
                }
                Some(_) => {}
            }
        }
    }
    Ok(seen.map(|k| {
        if k == kind(&Value::Object(Map::new())) {
            ElementKind::Map
        } else {
            ElementKind::Scalar
        }
    }))
}

/// Merges two lists of a field with the `merge` strategy (Kubernetes'
/// `mergeSlice`): scalars as a union (or a deletion, for a
/// `$deleteFromPrimitiveList`), maps by merge key; then orders the result:
/// patch elements in the patch's order, interleaved with the elements only
/// the server has in their original order.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    element: Option<Node<'_>>,
    merge_key: Option<&str>,
    field: &str,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(element_kind) = element_kind(&[&original, &patch])? else {
        return Ok(original);
    };
    let (server_order, patch, merged) = match element_kind {
        ElementKind::Scalar => {
            if delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|item| !patch.iter().any(|d| scalar_eq(d, item)))
                    .collect());
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for item in original.iter().chain(patch.iter()) {
                if !merged.iter().any(|m| scalar_eq(m, item)) {
                    merged.push(item.clone());
                }
            }
            (original, patch, merged)
        }
        ElementKind::Map => {
            let Some(key) = merge_key else {
                return Err(PatchError::NoMergeKey(field.to_owned()));
            };
            let (original, patch) = apply_list_directives(original, patch, key)?;
            let merged = merge_by_key(original.clone(), &patch, key, element)?;
            (original, patch, merged)
        }
    };
    let (in_patch, server_only) = partition(merged, &patch, merge_key, element_kind)?;
    normalize_order(
        in_patch,
        server_only,
        &patch,
        &server_order,
        merge_key,
        element_kind,
    )
}

/// Handles the list elements that are directives (Kubernetes'
/// `mergeSliceWithSpecialElements`): `$patch: delete` removes matching
/// elements from the original, `$patch: replace` makes the patch's other
/// elements the whole list. Returns the original and the patch without
/// directive elements.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(map) = &item else {
            return Err(wrong_type("a map", &item));
        };
        match map.get(DIRECTIVE) {
            None => plain.push(item),
            Some(directive) => match directive.as_str() {
                Some(DELETE) => {
                    let value = map.get(key).ok_or_else(|| missing_key(&item, key))?;
                    for existing in &original {
                        if !existing.is_object() {
                            return Err(wrong_type("a map", existing));
                        }
                    }
                    original
                        .retain(|existing| existing.get(key).is_none_or(|v| !scalar_eq(v, value)));
                }
                Some(REPLACE) => replace = true,
                Some(MERGE) => return Err(PatchError::MergeDirectiveInList),
                _ => {
                    return Err(PatchError::UnknownDirective {
                        directive: go_value(directive),
                        map: go_value(&item),
                    });
                }
            },
        }
    }
    if replace {
        Ok((clean_list(plain), Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// Merges each patch element into the original element with the same merge
/// key, or appends it (Kubernetes' `mergeSliceWithoutSpecialElements`).
fn merge_by_key(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    element: Option<Node<'_>>,
) -> Result<Vec<Value>, PatchError> {
    for item in patch {
        let Value::Object(item_map) = item else {
            return Err(wrong_type("a map", item));
        };
        let value = item_map.get(key).ok_or_else(|| missing_key(item, key))?;
        let mut found = None;
        for (i, existing) in original.iter().enumerate() {
            let Value::Object(existing) = existing else {
                return Err(PatchError::WrongType {
                    expected: "a map",
                    actual: kind_name(&original[i]),
                });
            };
            if existing.get(key).is_some_and(|v| scalar_eq(v, value)) {
                found = Some(i);
                break;
            }
        }
        match found {
            Some(i) => {
                let existing = match std::mem::take(&mut original[i]) {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                original[i] = Value::Object(merge_map(existing, item_map.clone(), element)?);
            }
            None => {
                if let Some(clean) = clean(item.clone()) {
                    original.push(clean);
                }
            }
        }
    }
    Ok(original)
}

/// Splits `merged` into the elements that appear in `by` and those that do
/// not, each keeping its order in `merged`.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
    element_kind: ElementKind,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::with_capacity(merged.len());
    let mut absent = Vec::new();
    for item in merged {
        let found = match (element_kind, merge_key) {
            (ElementKind::Map, Some(key)) => {
                let value = item.get(key).ok_or_else(|| missing_key(&item, key))?;
                let mut found = false;
                for other in by {
                    let Value::Object(other) = other else {
                        return Err(wrong_type("a map", other));
                    };
                    if other.get(key).is_some_and(|v| scalar_eq(v, value)) {
                        found = true;
                        break;
                    }
                }
                found
            }
            _ => by.iter().any(|other| scalar_eq(other, &item)),
        };
        if found {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Orders a merged list (Kubernetes' `normalizeElementOrder`): the patch's
/// elements sorted by `patch_order`, the server's own sorted by
/// `server_order`, then interleaved so that a server element goes before a
/// patch element when the server had them in that order.
fn normalize_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    element_kind: ElementKind,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, element_kind)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, element_kind)?;
    let key = if element_kind == ElementKind::Map {
        merge_key
    } else {
        None
    };
    let position = |item: &Value| index_of(server_order, item, key);
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (position(l), position(r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// Sorts `items` stably by their position in `order` (Kubernetes'
/// `normalizeSliceOrder`); elements being deleted go last.
fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    element_kind: ElementKind,
) -> Result<Vec<Value>, PatchError> {
    let key = match element_kind {
        ElementKind::Map => {
            let key = merge_key.unwrap_or("");
            for item in items.iter().chain(order.iter()) {
                let Value::Object(map) = item else {
                    return Err(wrong_type("a map", item));
                };
                if !map.contains_key(key) {
                    return Err(missing_key(item, key));
                }
            }
            Some(key)
        }
        ElementKind::Scalar => None,
    };
    let (mut kept, deleted): (Vec<Value>, Vec<Value>) = items.into_iter().partition(|item| {
        key.is_none() || item.get(DIRECTIVE).and_then(Value::as_str) != Some(DELETE)
    });
    // Elements missing from the order list cannot be placed; they go first,
    // where Kubernetes' comparator tends to push them.
    kept.sort_by_key(|item| index_of(order, item, key).map_or(0, |i| i + 1));
    kept.extend(deleted);
    Ok(kept)
}

/// The position of `item` in `list`, comparing merge-key values for maps
/// and whole values for scalars.
fn index_of(list: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    match merge_key {
        Some(key) => {
            let wanted = item.get(key);
            list.iter()
                .position(|other| match (other.get(key), wanted) {
                    (Some(a), Some(b)) => scalar_eq(a, b),
                    (None, None) => true,
                    _ => false,
                })
        }
        None => list.iter().position(|other| scalar_eq(other, item)),
    }
}

/// Equality of merge-key values and list elements. Kubernetes compares the
/// decoded values with Go's `==`, where the integer `80` and the float
/// `80.0` differ (the API server decodes integral JSON numbers to int64 and
/// others to float64); serde_json's equality draws the same line.
fn scalar_eq(a: &Value, b: &Value) -> bool {
    a == b
}

fn has_directive(item: &Value) -> bool {
    item.as_object().is_some_and(|m| m.contains_key(DIRECTIVE))
}

/// A small tag per JSON type, to tell whether original and patch hold the
/// same kind of value.
fn kind(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn wrong_type(expected: &'static str, actual: &Value) -> PatchError {
    PatchError::WrongType {
        expected,
        actual: kind_name(actual),
    }
}

fn missing_key(item: &Value, key: &str) -> PatchError {
    PatchError::MissingMergeKey {
        map: go_value(item),
        key: key.to_owned(),
    }
}

/// Inserts a value taken from the patch, cleaned; a value that is itself a
/// directive map leaves no key behind.
fn insert_clean(map: &mut Map<String, Value>, key: String, value: Value) {
    match clean(value) {
        Some(clean) => {
            map.insert(key, clean);
        }
        None => {
            map.remove(&key);
        }
    }
}

/// A patch value as it lands in the object when there is nothing to merge
/// it with: nulls in maps dropped (the server ignores nulls it cannot
/// match), maps carrying `$patch` dropped (Kubernetes' `removeDirectives`),
/// and the other directive keys dropped (Kubernetes' typed decoding would
/// discard them as unknown fields).
fn clean(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(clean_map(map)))
        }
        Value::Array(items) => Some(Value::Array(clean_list(items))),
        other => Some(other),
    }
}

fn clean_map(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
        .collect()
}

fn clean_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(clean).collect()
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS_DIRECTIVE
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
        || key.starts_with(SET_ELEMENT_ORDER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{same, schemas};

    /// Runs the cases of `testdata/strategic.json`. Every case on a built-in
    /// kind was checked against kubectl 1.32's own implementation
    /// (`kubectl patch --local --type strategic`), which shares Kubernetes'
    /// `strategicpatch` package with the API server.
    #[test]
    fn strategic_merge_patch_cases() {
        let set = schemas();
        let cases: Vec<Value> =
            serde_json::from_str(include_str!("../testdata/strategic.json")).unwrap();
        let mut failures = Vec::new();
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            let node = case["schema"].as_str().map(|s| set.get(s).unwrap());
            let got = strategic_merge_patch(&case["doc"], &case["patch"], node);
            match (&got, case.get("want"), case.get("error")) {
                (Ok(got), Some(want), _) if same(got, want) => {}
                (Err(err), None, Some(want))
                    if err.to_string().contains(want.as_str().unwrap()) => {}
                _ => failures.push(format!(
                    "{name}:\n  got:  {}\n  want: {}",
                    match &got {
                        Ok(v) => v.to_string(),
                        Err(e) => format!("error: {e}"),
                    },
                    case.get("want").or(case.get("error")).unwrap()
                )),
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
        assert!(cases.len() >= 70);
    }

    #[test]
    fn error_messages_name_the_problem() {
        let set = schemas();
        let pod = set.get("io.k8s.api.core.v1.Pod");
        let doc = serde_json::json!({"spec": {"containers": [{"name": "a"}]}});
        let err = strategic_merge_patch(
            &doc,
            &serde_json::json!({"spec": {"containers": [{"image": "x"}]}}),
            pod,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "map: map[image:x] does not contain declared merge key: name"
        );
        let err =
            strategic_merge_patch(&serde_json::json!([]), &serde_json::json!({}), pod).unwrap_err();
        assert!(matches!(err, PatchError::NotAnObject(_)));
    }
}
