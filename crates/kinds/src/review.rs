//! authentication.k8s.io and authorization.k8s.io: requests answered on the
//! spot and never stored (TokenReview, SelfSubjectReview, the access
//! reviews), and the TokenRequest a service account's `token` subresource
//! takes. Only `create` is served; the API server fills in the status.

use std::sync::Arc;

use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz};
use serde_json::Value;

use crate::apps::strategy::{KindStrategy, created_at_columns, created_at_row};
use crate::catalog::resource;
use crate::{FieldError, ResourceDef};

fn review<T: serde::de::DeserializeOwned + 'static>(
    group: &str,
    kind: &str,
    plural: &str,
    validate: crate::apps::strategy::Validate,
) -> crate::catalog::ResourceBuilder {
    let strategy = KindStrategy::<T> {
        validate,
        ..KindStrategy::new(created_at_columns, created_at_row)
    };
    resource(group, "v1", kind, plural, Arc::new(strategy)).verbs(&["create"])
}

/// These groups' resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    const AUTHN: &str = "authentication.k8s.io";
    const AUTHZ: &str = "authorization.k8s.io";
    vec![
        review::<authn::SelfSubjectReview>(
            AUTHN,
            "SelfSubjectReview",
            "selfsubjectreviews",
            |_, _| Vec::new(),
        )
        .cluster_scoped()
        .build(),
        review::<authn::TokenReview>(AUTHN, "TokenReview", "tokenreviews", |obj, _| {
            match obj.pointer("/spec/token").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => Vec::new(),
                _ => vec![FieldError::required("spec.token", "")],
            }
        })
        .cluster_scoped()
        .build(),
        review::<authz::LocalSubjectAccessReview>(
            AUTHZ,
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            |obj, _| {
                let mut errs = validate_attributes(obj);
                errs.extend(validate_subject(obj));
                let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
                let attr_ns = obj
                    .pointer("/spec/resourceAttributes/namespace")
                    .and_then(Value::as_str);
                if attr_ns.is_some() && attr_ns != ns {
                    errs.push(FieldError::invalid(
                        "spec.resourceAttributes.namespace",
                        crate::validation::quote(attr_ns.unwrap_or_default()),
                        "must match metadata.namespace",
                    ));
                }
                errs
            },
        )
        .build(),
        review::<authz::SelfSubjectAccessReview>(
            AUTHZ,
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            |obj, _| validate_attributes(obj),
        )
        .cluster_scoped()
        .build(),
        review::<authz::SelfSubjectRulesReview>(
            AUTHZ,
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            |_, _| Vec::new(),
        )
        .cluster_scoped()
        .build(),
        review::<authz::SubjectAccessReview>(
            AUTHZ,
            "SubjectAccessReview",
            "subjectaccessreviews",
            |obj, _| {
                let mut errs = validate_attributes(obj);
                errs.extend(validate_subject(obj));
                errs
            },
        )
        .cluster_scoped()
        .build(),
    ]
}

/// Exactly one of `resourceAttributes` and `nonResourceAttributes`.
fn validate_attributes(obj: &Value) -> Vec<FieldError> {
    let resource = obj.pointer("/spec/resourceAttributes").is_some();
    let non_resource = obj.pointer("/spec/nonResourceAttributes").is_some();
    if resource == non_resource {
        let which = if resource {
            "spec.resourceAttributes"
        } else {
            "spec.nonResourceAttributes"
        };
        return vec![FieldError::invalid(
            which,
            if resource { "{...}" } else { "null" },
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )];
    }
    Vec::new()
}

/// A subject: a user or at least one group.
fn validate_subject(obj: &Value) -> Vec<FieldError> {
    let user = obj.pointer("/spec/user").and_then(Value::as_str);
    let groups = obj
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty());
    if user.is_none_or(str::is_empty) && !groups {
        return vec![FieldError::invalid(
            "spec.user",
            "\"\"",
            "at least one of user or group must be specified",
        )];
    }
    Vec::new()
}

/// Checks a TokenRequest (`serviceaccounts/<name>/token`): a lifetime of
/// ten minutes to 2^32 seconds, and a bound object of a kind tokens can be
/// bound to.
pub fn validate_token_request(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(seconds) = obj.pointer("/spec/expirationSeconds") {
        match seconds.as_i64() {
            Some(s) if s < 600 => errs.push(FieldError::invalid(
                "spec.expirationSeconds",
                s.to_string(),
                "may not specify a duration less than 10 minutes",
            )),
            Some(s) if s > 1 << 32 => errs.push(FieldError::invalid(
                "spec.expirationSeconds",
                s.to_string(),
                "may not specify a duration larger than 2^32 seconds",
            )),
            Some(_) => {}
            None => errs.push(FieldError::invalid(
                "spec.expirationSeconds",
                seconds.to_string(),
                "must be an integer",
            )),
        }
    }
    if let Some(bound) = obj.pointer("/spec/boundObjectRef") {
        let kind = bound.get("kind").and_then(Value::as_str).unwrap_or("");
        if !matches!(kind, "Pod" | "Secret" | "Node") {
            errs.push(FieldError::not_supported(
                "spec.boundObjectRef.kind",
                crate::validation::quote(kind),
                "supported values: \"Node\", \"Pod\", \"Secret\"",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn access_reviews_need_exactly_one_kind_of_attributes() {
        assert!(validate_attributes(&json!({"spec": {"resourceAttributes": {}}})).is_empty());
        assert_eq!(validate_attributes(&json!({"spec": {}})).len(), 1);
        assert_eq!(
            validate_attributes(
                &json!({"spec": {"resourceAttributes": {}, "nonResourceAttributes": {}}})
            )
            .len(),
            1
        );
        assert_eq!(validate_subject(&json!({"spec": {}})).len(), 1);
        assert!(validate_subject(&json!({"spec": {"groups": ["g"]}})).is_empty());
    }

    #[test]
    fn token_requests_have_bounded_lifetimes() {
        assert!(validate_token_request(&json!({"spec": {"expirationSeconds": 3600}})).is_empty());
        assert_eq!(
            validate_token_request(&json!({"spec": {"expirationSeconds": 60}}))[0].detail,
            "may not specify a duration less than 10 minutes"
        );
        assert_eq!(
            validate_token_request(&json!({"spec": {"boundObjectRef": {"kind": "Service"}}})).len(),
            1
        );
    }
}
