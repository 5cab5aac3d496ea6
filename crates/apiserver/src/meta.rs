//! `metadata`: what every object has, whatever its kind.

use std::collections::BTreeMap;

use kinds::validation::{self, field_errors, quote};
use kinds::{FieldError, FieldErrorKind, NameRule};
use rand::Rng;
use serde_json::{Map, Value, json};

/// Largest total size of an object's annotations.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Characters Kubernetes uses for generated name suffixes (no vowels, so no
/// words, and no look-alike digits).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The object's `metadata`, created if missing.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("just made an object")
}

/// A string field of metadata.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The object's name ("" if none).
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// The object's labels.
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the object is being deleted (waiting for finalizers).
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// A name made from `generateName` and five random characters.
pub fn generate_name(base: &str) -> String {
    let mut rng = rand::rng();
    // Kubernetes trims the base so the result stays a valid name.
    let base: String = base.chars().take(58).collect();
    let suffix: String = (0..5)
        .map(|_| SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// The current time as Kubernetes writes timestamps (`2026-11-23T10:00:00Z`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Puts `cond` among `conditions` (one per type), keeping the transition time
/// when the status does not change.
pub fn set_condition(conditions: &mut Vec<Value>, mut cond: Value, now: &str) {
    match conditions.iter_mut().find(|c| c["type"] == cond["type"]) {
        Some(existing) => {
            cond["lastTransitionTime"] = if existing["status"] == cond["status"] {
                existing["lastTransitionTime"].clone()
            } else {
                json!(now)
            };
            *existing = cond;
        }
        None => {
            cond["lastTransitionTime"] = json!(now);
            conditions.push(cond);
        }
    }
}

/// Seconds since the epoch, for table ages.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Checks what every kind's metadata must satisfy: name (by the kind's
/// rule), labels, annotations, owner references and finalizers.
pub fn validate(obj: &Value, rule: NameRule, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = name(obj);
    let generate = meta_str(obj, "generateName").unwrap_or("");
    if name.is_empty() {
        if generate.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        errs.extend(field_errors(
            "metadata.name",
            name,
            validation::name(rule, name),
        ));
    }
    if namespaced {
        match meta_str(obj, "namespace") {
            None | Some("") => errs.push(FieldError::required("metadata.namespace", "")),
            Some(ns) => errs.extend(field_errors(
                "metadata.namespace",
                ns,
                validation::dns1123_label(ns),
            )),
        }
    } else if meta_str(obj, "namespace").is_some_and(|ns| !ns.is_empty()) {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            errs.extend(field_errors(
                "metadata.labels",
                k,
                validation::qualified_name(k),
            ));
            if let Some(v) = v.as_str() {
                errs.extend(field_errors(
                    "metadata.labels",
                    v,
                    validation::label_value(v),
                ));
            }
        }
    }
    if let Some(annotations) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in annotations {
            errs.extend(field_errors(
                "metadata.annotations",
                k,
                validation::qualified_name(k),
            ));
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > MAX_ANNOTATIONS_BYTES {
            errs.push(FieldError {
                kind: FieldErrorKind::TooLong,
                field: "metadata.annotations".into(),
                value: None,
                detail: format!("must have at most {MAX_ANNOTATIONS_BYTES} bytes"),
            });
        }
    }
    if let Some(owners) = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    {
        // Kubernetes names these fields without the list index
        // (`metadata.ownerReferences.uid`), and so do we.
        let mut controller: Option<String> = None;
        for owner in owners {
            let text = |field: &str| owner.get(field).and_then(Value::as_str).unwrap_or("");
            for (field, what) in [
                ("apiVersion", "version"),
                ("kind", "kind"),
                ("name", "name"),
                ("uid", "uid"),
            ] {
                if text(field).is_empty() {
                    errs.push(FieldError::invalid(
                        format!("metadata.ownerReferences.{field}"),
                        quote(""),
                        format!("{what} must not be empty"),
                    ));
                }
            }
            if owner.get("controller").and_then(Value::as_bool) == Some(true) {
                let this = format!("{}/{}", text("kind"), text("name"));
                match &controller {
                    Some(first) => errs.push(FieldError::invalid(
                        "metadata.ownerReferences",
                        format!("{owners:?}").chars().take(100).collect::<String>(),
                        format!(
                            "Only one reference can have Controller set to true. \
                             Found \"true\" in references for {first} and {this}"
                        ),
                    )),
                    None => controller = Some(this),
                }
            }
        }
    }
    let finalizers = finalizers(obj);
    for f in &finalizers {
        let problems = validation::qualified_name(f);
        errs.extend(field_errors("metadata.finalizers", f, problems));
    }
    // The garbage collector cannot both orphan and delete the dependents.
    if finalizers.iter().any(|f| f == "orphan")
        && finalizers.iter().any(|f| f == "foregroundDeletion")
    {
        errs.push(FieldError::invalid(
            "metadata.finalizers",
            format!("{finalizers:?}"),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_use_kubernetes_alphabet() {
        let n = generate_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("web-"));
        assert!(n[4..].bytes().all(|b| SUFFIX_ALPHABET.contains(&b)));
        assert_eq!(generate_name(&"a".repeat(100)).len(), 63);
    }

    #[test]
    fn metadata_validation_names_fields() {
        let ok =
            json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}});
        assert!(validate(&ok, NameRule::DnsSubdomain, true).is_empty());
        let bad = json!({"metadata": {
            "name": "Web_1",
            "labels": {"bad key": "x", "ok": "-bad"},
            "finalizers": ["example.com/ok", "not ok"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "", "uid": "u"}]
        }});
        let errs: Vec<String> = validate(&bad, NameRule::DnsSubdomain, true)
            .iter()
            .map(|e| e.field.clone())
            .collect();
        assert_eq!(
            errs,
            [
                "metadata.name",
                "metadata.namespace",
                "metadata.labels",
                "metadata.labels",
                "metadata.ownerReferences.name",
                "metadata.finalizers"
            ]
        );
        let both =
            json!({"metadata": {"name": "a", "finalizers": ["orphan", "foregroundDeletion"]}});
        assert_eq!(
            validate(&both, NameRule::DnsSubdomain, false)[0].detail,
            "finalizer orphan and foregroundDeletion cannot be both set"
        );
        let nameless = json!({"metadata": {}});
        assert_eq!(
            validate(&nameless, NameRule::DnsLabel, false)[0].to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
    }
}
