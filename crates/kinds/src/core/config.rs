//! ConfigMaps and Secrets: keys, sizes, the keys each Secret type needs,
//! `stringData` folded into `data`, and immutability once `immutable` is
//! set.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::{Value, json};

use super::field;
use crate::table::{self, column};
use crate::validation::quote;
use crate::{Column, FieldError, FieldErrorKind, Strategy, typed};

/// The most bytes a ConfigMap's or Secret's data may hold.
const MAX_SIZE: usize = 1024 * 1024;

/// `Too long: may not be more than 1048576 bytes` at `field`.
fn too_long(field: &str) -> FieldError {
    FieldError {
        kind: FieldErrorKind::TooLong,
        field: field.to_owned(),
        value: None,
        detail: format!("may not be more than {MAX_SIZE} bytes"),
    }
}

/// The errors of an update of an object whose `immutable` was set.
fn immutable_data(
    old_immutable: Option<bool>,
    new_immutable: Option<bool>,
    changed: &[(&str, bool)],
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old_immutable == Some(true) {
        if new_immutable != Some(true) {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        for (name, differs) in changed {
            if *differs {
                errs.push(FieldError::forbidden(
                    *name,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    errs
}

/// What the server does to ConfigMaps.
pub(crate) struct ConfigMapStrategy;

impl Strategy for ConfigMapStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        typed::decode::<ConfigMap>(obj).map(|_| ())
    }

    fn default(&self, _obj: &mut Value) {}

    fn prepare_create(&self, _obj: &mut Value) {}

    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let cm = match typed::decode::<ConfigMap>(obj) {
            Ok(c) => c,
            Err(e) => return vec![e],
        };
        let mut errs = Vec::new();
        if let Some(old) = old {
            match typed::decode::<ConfigMap>(old) {
                Ok(old) => errs.extend(immutable_data(
                    old.immutable,
                    cm.immutable,
                    &[
                        ("data", cm.data != old.data),
                        ("binaryData", cm.binary_data != old.binary_data),
                    ],
                )),
                Err(e) => errs.push(e),
            }
        }
        let binary = cm.binary_data.clone().unwrap_or_default();
        let mut size = 0;
        for (key, value) in cm.data.iter().flatten() {
            let p = format!("data[{key}]");
            errs.extend(field::config_key(&p, key));
            if binary.contains_key(key) {
                errs.push(FieldError::invalid(
                    &p,
                    quote(key),
                    "duplicate of key present in binaryData",
                ));
            }
            size += value.len();
        }
        for (key, value) in &binary {
            errs.extend(field::config_key(&format!("binaryData[{key}]"), key));
            size += value.0.len();
        }
        if size > MAX_SIZE {
            errs.push(too_long(""));
        }
        errs
    }

    fn validate_status(&self, _obj: &Value, _old: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column(
                "Data",
                "string",
                "Data contains the configuration data. Each key must consist of alphanumeric \
                 characters, '-', '_' or '.'.",
            ),
            table::age_column(),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let cm = typed::decode::<ConfigMap>(obj).unwrap_or_default();
        let count = cm.data.map_or(0, |d| d.len()) + cm.binary_data.map_or(0, |d| d.len());
        vec![table::name(obj), json!(count), table::age(obj, now)]
    }

    fn selectable_fields(&self, _obj: &Value) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// What the server does to Secrets.
pub(crate) struct SecretStrategy;

impl Strategy for SecretStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        typed::decode::<Secret>(obj).map(|_| ())
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |secret: &mut Secret| {
            if secret.type_.as_deref().unwrap_or_default().is_empty() {
                secret.type_ = Some("Opaque".into());
            }
            // `stringData` is write-only: the v1 API folds it into `data`,
            // its keys winning.
            if let Some(strings) = secret.string_data.take() {
                let data = secret.data.get_or_insert_with(Default::default);
                for (k, v) in strings {
                    data.insert(k, ByteString(v.into_bytes()));
                }
            }
        });
    }

    fn prepare_create(&self, _obj: &mut Value) {}

    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let secret = match typed::decode::<Secret>(obj) {
            Ok(s) => s,
            Err(e) => return vec![e],
        };
        let mut errs = Vec::new();
        let ty = secret.type_.clone().unwrap_or_default();
        if let Some(old) = old {
            match typed::decode::<Secret>(old) {
                Ok(old) => {
                    if old.type_.clone().unwrap_or_default() != ty {
                        errs.push(field::immutable("type", quote(&ty)));
                    }
                    errs.extend(immutable_data(
                        old.immutable,
                        secret.immutable,
                        &[("data", secret.data != old.data)],
                    ));
                }
                Err(e) => errs.push(e),
            }
        }
        let data = secret.data.clone().unwrap_or_default();
        let mut size = 0;
        for (key, value) in &data {
            errs.extend(field::config_key(&format!("data[{key}]"), key));
            size += value.0.len();
        }
        if size > MAX_SIZE {
            errs.push(too_long("data"));
        }
        let required = |key: &str| FieldError::required(format!("data[{key}]"), "");
        let json_content = |key: &str, errs: &mut Vec<FieldError>| match data.get(key) {
            None => errs.push(required(key)),
            Some(bytes) => {
                if let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes.0) {
                    errs.push(FieldError::invalid(
                        format!("data[{key}]"),
                        quote("<secret contents redacted>"),
                        e.to_string(),
                    ));
                }
            }
        };
        match ty.as_str() {
            "kubernetes.io/service-account-token" => {
                let name = secret
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubernetes.io/service-account.name"))
                    .cloned()
                    .unwrap_or_default();
                if name.is_empty() {
                    errs.push(FieldError::required(
                        "metadata.annotations[kubernetes.io/service-account.name]",
                        "",
                    ));
                }
            }
            "kubernetes.io/dockercfg" => json_content(".dockercfg", &mut errs),
            "kubernetes.io/dockerconfigjson" => json_content(".dockerconfigjson", &mut errs),
            "kubernetes.io/basic-auth"
                if !data.contains_key("username") && !data.contains_key("password") =>
            {
                errs.push(required("username"));
                errs.push(required("password"));
            }
            "kubernetes.io/ssh-auth"
                if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) =>
            {
                errs.push(required("ssh-privatekey"));
            }
            "kubernetes.io/tls" => {
                for key in ["tls.crt", "tls.key"] {
                    if !data.contains_key(key) {
                        errs.push(required(key));
                    }
                }
            }
            _ => {}
        }
        errs
    }

    fn validate_status(&self, _obj: &Value, _old: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column(
                "Type",
                "string",
                "Used to facilitate programmatic handling of secret data.",
            ),
            column(
                "Data",
                "string",
                "Data contains the secret data. Each key must consist of alphanumeric characters, \
                 '-', '_' or '.'.",
            ),
            table::age_column(),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let secret = typed::decode::<Secret>(obj).unwrap_or_default();
        vec![
            table::name(obj),
            json!(secret.type_.unwrap_or_default()),
            json!(secret.data.map_or(0, |d| d.len())),
            table::age(obj, now),
        ]
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        vec![(
            "type".into(),
            typed::str_at(obj, "type").unwrap_or_default().to_owned(),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn secrets_fold_string_data_and_default_their_type() {
        let mut obj = json!({"metadata": {"name": "s"}, "data": {"a": "eA=="},
            "stringData": {"a": "y", "b": "z"}});
        SecretStrategy.default(&mut obj);
        assert_eq!(obj["type"], "Opaque");
        assert_eq!(obj["data"], json!({"a": "eQ==", "b": "eg=="}));
        assert!(obj.get("stringData").is_none());
        assert_eq!(
            SecretStrategy.row(&obj, 0)[1..3],
            [json!("Opaque"), json!(2)]
        );
        assert_eq!(
            SecretStrategy.selectable_fields(&obj),
            [("type".into(), "Opaque".into())]
        );
    }

    #[test]
    fn secret_types_need_their_keys() {
        let tls = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}});
        assert_eq!(
            messages(SecretStrategy.validate(&tls, None)),
            ["data[tls.key]: Required value"]
        );
        let docker = json!({"metadata": {"name": "d"}, "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": "bm90IGpzb24="}});
        let errs = SecretStrategy.validate(&docker, None);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().starts_with(
            "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": "
        ));
        let bad_key = json!({"metadata": {"name": "k"}, "type": "Opaque", "data": {"a b": ""}});
        assert!(
            messages(SecretStrategy.validate(&bad_key, None))[0]
                .starts_with("data[a b]: Invalid value: \"a b\": a valid config key must consist")
        );
    }

    #[test]
    fn immutable_secrets_and_config_maps() {
        let old = json!({"metadata": {"name": "s"}, "type": "Opaque", "immutable": true, "data": {"a": "eA=="}});
        let mut new = old.clone();
        new["data"]["a"] = json!("eQ==");
        new["type"] = json!("kubernetes.io/tls");
        new["data"]["tls.crt"] = json!("");
        new["data"]["tls.key"] = json!("");
        assert_eq!(
            messages(SecretStrategy.validate(&new, Some(&old))),
            [
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        let old_cm = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"k": "v"}});
        let mut new_cm = old_cm.clone();
        new_cm["immutable"] = json!(false);
        new_cm["data"]["k"] = json!("w");
        assert_eq!(
            messages(ConfigMapStrategy.validate(&new_cm, Some(&old_cm))),
            [
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
    }

    #[test]
    fn config_map_rows_count_both_kinds_of_data() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(ConfigMapStrategy.row(&cm, 0)[1], json!(3));
        assert!(ConfigMapStrategy.validate(&cm, None).is_empty());
        let dup =
            json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"a": "AA=="}});
        assert_eq!(
            messages(ConfigMapStrategy.validate(&dup, None)),
            ["data[a]: Invalid value: \"a\": duplicate of key present in binaryData"]
        );
    }
}
