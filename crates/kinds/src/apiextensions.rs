//! apiextensions.k8s.io/v1: CustomResourceDefinitions, checked as
//! Kubernetes checks them. Serving the custom resources themselves is the
//! API server's job (its registry follows established CRDs).

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use serde_json::{Value, json};

use crate::apps::fields::{self, child, default_str, default_value, get, items};
use crate::apps::messages::render;
use crate::apps::strategy::{KindStrategy, created_at_columns, created_at_row};
use crate::catalog::resource;
use crate::core::field::{immutable, not_supported};
use crate::validation::{dns1035_label, dns1123_subdomain, quote};
use crate::{FieldError, ResourceDef};

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            Arc::new(crd_strategy()),
        )
        .short_names(&["crd", "crds"])
        .cluster_scoped()
        .status()
        .build(),
    ]
}

fn crd_strategy() -> KindStrategy<apiextensions::CustomResourceDefinition> {
    KindStrategy {
        status: true,
        generation: true,
        default: default_crd,
        prepare_create: record_storage_version,
        prepare_update: |new, _| record_storage_version(new),
        validate: validate_crd,
        validate_status: |obj, _| {
            let mut errs = validate_names(
                obj.pointer("/status/acceptedNames").unwrap_or(&Value::Null),
                "status.acceptedNames",
            );
            errs.extend(validate_stored_versions(obj));
            errs
        },
        ..KindStrategy::new(created_at_columns, created_at_row)
    }
}

/// apiextensions/v1 defaults: the singular name and list kind from the
/// kind, no conversion, and webhook services on port 443.
fn default_crd(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if let Some(names) = child(spec, "names") {
        let kind = fields::str_or_empty(names, "/kind").to_owned();
        default_str(names, "singular", &kind.to_lowercase());
        if !kind.is_empty() {
            default_str(names, "listKind", &format!("{kind}List"));
        }
    }
    default_value(spec, "conversion", json!({"strategy": "None"}));
    if let Some(service) = fields::get_mut(spec, "/conversion/webhook/clientConfig/service") {
        default_value(service, "port", json!(443));
    }
}

/// Kubernetes records the storage version among `status.storedVersions`
/// when a CRD is created or changes its storage version; the status is
/// otherwise the CRD controller's.
fn record_storage_version(obj: &mut Value) {
    let Some(storage) = items(obj, "/spec/versions")
        .iter()
        .find(|v| fields::get_bool(v, "/storage") == Some(true))
        .map(|v| fields::str_or_empty(v, "/name").to_owned())
    else {
        return;
    };
    let Some(status) = child(obj, "status") else {
        return;
    };
    let stored = status.get_mut("storedVersions").filter(|v| v.is_array());
    match stored.and_then(Value::as_array_mut) {
        Some(list) => {
            if !list.iter().any(|v| v == storage.as_str()) {
                list.push(json!(storage));
            }
        }
        None => fields::set(status, "storedVersions", json!([storage])),
    }
}

fn validate_crd(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let name = fields::str_or_empty(obj, "/metadata/name");
    let plural = fields::str_or_empty(&spec, "/names/plural");
    let group = fields::str_or_empty(&spec, "/group");
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            quote(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }

    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        let problems = dns1123_subdomain(group);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                "spec.group",
                quote(group),
                problems.join(","),
            ));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                "spec.group",
                quote(group),
                "should be a domain with at least one dot",
            ));
        }
    }
    match fields::str_or_empty(&spec, "/scope") {
        "" => errs.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }

    let versions = items(&spec, "/versions");
    let mut seen: Vec<&str> = Vec::new();
    let mut unique = true;
    let mut storage = 0;
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let vname = fields::str_or_empty(version, "/name");
        if fields::get_bool(version, "/storage") == Some(true) {
            storage += 1;
        }
        if seen.contains(&vname) {
            unique = false;
        } else {
            seen.push(vname);
        }
        let problems = dns1035_label(vname);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                quote(vname),
                problems.join(","),
            ));
        }
        match get(version, "/schema/openAPIV3Schema") {
            None => errs.push(FieldError::required(
                format!("{path}.schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(schema) => errs.extend(validate_schema(
                schema,
                &format!("{path}.schema.openAPIV3Schema"),
                true,
            )),
        }
        for (j, col) in items(version, "/additionalPrinterColumns")
            .iter()
            .enumerate()
        {
            errs.extend(validate_column(
                col,
                &format!("{path}.additionalPrinterColumns[{j}]"),
            ));
        }
        if let Some(scale) = get(version, "/subresources/scale") {
            errs.extend(validate_scale(scale, &format!("{path}.subresources.scale")));
        }
    }
    if !unique {
        errs.push(FieldError::invalid(
            "spec.versions",
            render(get(&spec, "/versions")),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            render(get(&spec, "/versions")),
            "must have exactly one version marked as storage version",
        ));
    }

    let names = spec.get("names").cloned().unwrap_or(Value::Null);
    for key in ["plural", "singular", "kind", "listKind"] {
        if fields::str_or_empty(&names, &format!("/{key}")).is_empty() {
            errs.push(FieldError::required(format!("spec.names.{key}"), ""));
        }
    }
    errs.extend(validate_names(&names, "spec.names"));
    errs.extend(validate_conversion(&spec));
    errs.extend(validate_stored_versions(obj));

    if let Some(old) = old {
        let established = items(old, "/status/conditions").iter().any(|c| {
            fields::str_or_empty(c, "/type") == "Established"
                && fields::str_or_empty(c, "/status") == "True"
        });
        let mut fixed = vec![
            ("/spec/group", "spec.group"),
            ("/spec/names/plural", "spec.names.plural"),
        ];
        if established {
            fixed.splice(
                0..0,
                [
                    ("/spec/scope", "spec.scope"),
                    ("/spec/names/kind", "spec.names.kind"),
                ],
            );
        }
        for (pointer, field) in fixed {
            if fields::changed(obj, old, pointer) {
                errs.push(immutable(field, render(get(obj, pointer))));
            }
        }
    }
    errs
}

/// Kubernetes' `ValidateCustomResourceDefinitionNames`.
fn validate_names(names: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (key, mixed_case) in [
        ("plural", false),
        ("singular", false),
        ("kind", true),
        ("listKind", true),
    ] {
        let value = fields::str_or_empty(names, &format!("/{key}"));
        if value.is_empty() {
            continue;
        }
        let checked = if mixed_case {
            value.to_lowercase()
        } else {
            value.to_owned()
        };
        let problems = dns1035_label(&checked);
        if !problems.is_empty() {
            let detail = if mixed_case {
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    problems.join(",")
                )
            } else {
                problems.join(",")
            };
            errs.push(FieldError::invalid(
                format!("{path}.{key}"),
                quote(value),
                detail,
            ));
        }
    }
    for key in ["shortNames", "categories"] {
        for (i, v) in items(names, &format!("/{key}")).iter().enumerate() {
            let v = v.as_str().unwrap_or_default();
            let problems = dns1035_label(v);
            if !problems.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{path}.{key}[{i}]"),
                    quote(v),
                    problems.join(","),
                ));
            }
        }
    }
    let kind = fields::str_or_empty(names, "/kind");
    if !kind.is_empty() && kind == fields::str_or_empty(names, "/listKind") {
        errs.push(FieldError::invalid(
            format!("{path}.listKind"),
            quote(kind),
            "kind and listKind may not be the same",
        ));
    }
    errs
}

/// The structural-schema rules users meet first: the root is an object,
/// every property says its type (unless it preserves unknown fields or is
/// an int-or-string), and the OpenAPI features Kubernetes forbids.
fn validate_schema(schema: &Value, path: &str, root: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = fields::str_or_empty(schema, "/type");
    let open = fields::get_bool(schema, "/x-kubernetes-preserve-unknown-fields") == Some(true)
        || fields::get_bool(schema, "/x-kubernetes-int-or-string") == Some(true);
    if root {
        if ty.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.type"),
                "must not be empty at the root",
            ));
        } else if ty != "object" {
            errs.push(FieldError::invalid(
                format!("{path}.type"),
                quote(ty),
                "must be object at the root",
            ));
        }
    } else if ty.is_empty() && !open {
        errs.push(FieldError::required(
            format!("{path}.type"),
            "must not be empty for specified object fields",
        ));
    }
    if ty == "null" {
        errs.push(FieldError::forbidden(
            format!("{path}.type"),
            "type cannot be set to null",
        ));
    }
    for (key, message) in [
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ] {
        if get(schema, &format!("/{}", key.replace('/', "~1"))).is_some() {
            errs.push(FieldError::forbidden(format!("{path}.{key}"), message));
        }
    }
    if fields::get_bool(schema, "/uniqueItems") == Some(true) {
        errs.push(FieldError::forbidden(
            format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(props) = fields::get_map(schema, "/properties") {
        if let Some(additional) = get(schema, "/additionalProperties")
            && (additional == &Value::Bool(false) || additional.is_object())
        {
            errs.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        for (name, prop) in props {
            errs.extend(validate_schema(
                prop,
                &format!("{path}.properties[{name}]"),
                false,
            ));
        }
    }
    if let Some(items) = get(schema, "/items") {
        if items.is_array() {
            errs.push(FieldError::forbidden(
                format!("{path}.items"),
                "items must be a schema object and not an array",
            ));
        } else {
            errs.extend(validate_schema(items, &format!("{path}.items"), false));
        }
    }
    if let Some(additional) = get(schema, "/additionalProperties").filter(|a| a.is_object()) {
        errs.extend(validate_schema(
            additional,
            &format!("{path}.additionalProperties"),
            false,
        ));
    }
    errs
}

fn validate_column(col: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    const TYPES: &str = "boolean,date,integer,number,string";
    if fields::str_or_empty(col, "/name").is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    }
    match fields::str_or_empty(col, "/type") {
        "" => errs.push(FieldError::required(
            format!("{path}.type"),
            format!("must be one of {TYPES}"),
        )),
        t if !TYPES.split(',').any(|x| x == t) => {
            errs.push(FieldError::invalid(
                format!("{path}.type"),
                quote(t),
                format!("must be one of {TYPES}"),
            ));
        }
        _ => {}
    }
    let json_path = fields::str_or_empty(col, "/jsonPath");
    if json_path.is_empty() {
        errs.push(FieldError::required(format!("{path}.jsonPath"), ""));
    }
    errs
}

fn validate_scale(scale: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (key, prefix, required) in [
        ("specReplicasPath", ".spec.", true),
        ("statusReplicasPath", ".status.", true),
        ("labelSelectorPath", ".status.", false),
    ] {
        let value = fields::str_or_empty(scale, &format!("/{key}"));
        let field = format!("{path}.{key}");
        if value.is_empty() {
            if required {
                errs.push(FieldError::required(field, ""));
            }
        } else if !value.starts_with('.') {
            errs.push(FieldError::invalid(
                field,
                quote(value),
                "must be a simple json path starting with .",
            ));
        } else if !value.starts_with(prefix) {
            errs.push(FieldError::invalid(
                field,
                quote(value),
                format!(
                    "should be a json path under {}",
                    prefix.trim_end_matches('.')
                ),
            ));
        }
    }
    errs
}

fn validate_conversion(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(conversion) = get(spec, "/conversion") else {
        return errs;
    };
    let webhook = get(conversion, "/webhook");
    match fields::str_or_empty(conversion, "/strategy") {
        "" => errs.push(FieldError::required("spec.conversion.strategy", "")),
        "None" => {
            if webhook.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.conversion.webhook",
                    "should not be set when strategy is not set to Webhook",
                ));
            }
        }
        "Webhook" => match webhook {
            None => errs.push(FieldError::required(
                "spec.conversion.webhook",
                "required when strategy is set to Webhook",
            )),
            Some(w) => {
                let config = get(w, "/clientConfig");
                let url = config.and_then(|c| get(c, "/url")).is_some();
                let service = config.and_then(|c| get(c, "/service")).is_some();
                if url == service {
                    errs.push(FieldError::required(
                        "spec.conversion.webhook.clientConfig",
                        "exactly one of url or service is required",
                    ));
                }
                if items(w, "/conversionReviewVersions").is_empty() {
                    errs.push(FieldError::required(
                        "spec.conversion.webhook.conversionReviewVersions",
                        "must include at least one of v1, v1beta1",
                    ));
                }
            }
        },
        other => errs.push(not_supported(
            "spec.conversion.strategy",
            other,
            &["None", "Webhook"],
        )),
    }
    errs
}

/// Every stored version must still be among `spec.versions`, and the
/// storage version among the stored ones.
fn validate_stored_versions(obj: &Value) -> Vec<FieldError> {
    let stored: Vec<&str> = items(obj, "/status/storedVersions")
        .iter()
        .map(|v| v.as_str().unwrap_or_default())
        .collect();
    if stored.is_empty() {
        return vec![FieldError::invalid(
            "status.storedVersions",
            "[]string(nil)",
            "must have at least one stored version",
        )];
    }
    let mut errs = Vec::new();
    let versions = items(obj, "/spec/versions");
    for v in versions {
        let name = fields::str_or_empty(v, "/name");
        if fields::get_bool(v, "/storage") == Some(true) && !stored.contains(&name) {
            errs.push(FieldError::invalid(
                "status.storedVersions",
                render(Some(v)),
                format!("must have the storage version {name}"),
            ));
        }
    }
    for (i, s) in stored.iter().enumerate() {
        if !versions
            .iter()
            .any(|v| fields::str_or_empty(v, "/name") == *s)
        {
            errs.push(FieldError::invalid(
                format!("status.storedVersions[{i}]"),
                quote(s),
                "must appear in spec.versions",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Strategy;
    use crate::apps::tests::{create, update};

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {
                "group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object", "properties": {"spec": {"type": "object", "properties": {
                        "cronSpec": {"type": "string"}, "replicas": {"type": "integer"}}}}}}}]
            }
        })
    }

    #[test]
    fn crds_default_and_record_their_storage_version() {
        let s = crd_strategy();
        let (crd, errs) = create(&s, crd());
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(crd["spec"]["names"]["singular"], "crontab");
        assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");
        assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
        assert_eq!(crd["status"], json!({"storedVersions": ["v1"]}));
        assert_eq!(
            s.row(&crd, 0),
            vec![
                json!("crontabs.stable.example.com"),
                json!("2026-01-01T00:00:00Z")
            ]
        );
        let mut changed = crd.clone();
        changed["spec"]["group"] = json!("other.example.com");
        changed["metadata"]["name"] = json!("crontabs.other.example.com");
        assert_eq!(
            update(&s, &crd, changed).1,
            ["spec.group: Invalid value: \"other.example.com\": field is immutable"]
        );
    }

    #[test]
    fn crd_rejections() {
        let s = crd_strategy();
        let mut bad = crd();
        bad["metadata"]["name"] = json!("crontab.stable.example.com");
        bad["spec"]["group"] = json!("example");
        bad["spec"]["scope"] = json!("Global");
        bad["spec"]["versions"] = json!([
            {"name": "v1", "served": true, "storage": true},
            {"name": "v2", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "string"}}}
        ]);
        let errs = create(&s, bad).1;
        assert_eq!(
            errs[..5],
            [
                "metadata.name: Invalid value: \"crontab.stable.example.com\": must be spec.names.plural+\".\"+spec.group",
                "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
                "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
                "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
                "spec.versions[1].schema.openAPIV3Schema.type: Invalid value: \"string\": must be object at the root",
            ]
        );
        assert!(
            errs[5].starts_with("spec.versions: Invalid value: [{"),
            "{errs:?}"
        );
        assert!(errs[5].ends_with("must have exactly one version marked as storage version"));
        let mut untyped = crd();
        untyped["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
            json!({"properties": {"a": {}}});
        assert_eq!(
            create(&s, untyped).1,
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[a].type: Required value: must not be empty for specified object fields",
            ]
        );
    }
}
