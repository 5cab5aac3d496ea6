//! rbac.authorization.k8s.io/v1: Roles, RoleBindings, ClusterRoles and
//! ClusterRoleBindings. Their names may be any path segment
//! (`system:controller:deployment-controller`).

use std::sync::Arc;

use k8s_openapi::api::rbac::v1 as rbac;
use serde_json::{Value, json};

use crate::apps::fields::{self, child, default_value, get, items};
use crate::apps::messages::go_label_selector;
use crate::apps::selector::{Selector, validate_selector};
use crate::apps::strategy::{KindStrategy, created_at_columns, created_at_row};
use crate::catalog::resource;
use crate::core::field::not_supported;
use crate::table::{self, age_column, column, name_column, wide};
use crate::validation::{dns1123_subdomain, path_segment, quote};
use crate::{Column, FieldError, NameRule, ResourceDef};

/// The API group, also the `apiGroup` of role references and of user and
/// group subjects.
const GROUP: &str = "rbac.authorization.k8s.io";

/// This group's resources.
pub(crate) fn resources() -> Vec<ResourceDef> {
    vec![
        resource(GROUP, "v1", "Role", "roles", Arc::new(role_strategy())).build(),
        resource(
            GROUP,
            "v1",
            "RoleBinding",
            "rolebindings",
            Arc::new(binding_strategy()),
        )
        .build(),
        resource(
            GROUP,
            "v1",
            "ClusterRole",
            "clusterroles",
            Arc::new(cluster_role_strategy()),
        )
        .cluster_scoped()
        .build(),
        resource(
            GROUP,
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            Arc::new(cluster_binding_strategy()),
        )
        .cluster_scoped()
        .build(),
    ]
}

fn role_strategy() -> KindStrategy<rbac::Role> {
    KindStrategy {
        names: NameRule::PathSegment,
        validate: |obj, _| validate_rules(obj, true),
        ..KindStrategy::new(created_at_columns, created_at_row)
    }
}

fn cluster_role_strategy() -> KindStrategy<rbac::ClusterRole> {
    KindStrategy {
        names: NameRule::PathSegment,
        validate: |obj, _| {
            let mut errs = validate_rules(obj, false);
            if let Some(rule) = get(obj, "/aggregationRule") {
                let selectors = items(rule, "/clusterRoleSelectors");
                if selectors.is_empty() {
                    errs.push(FieldError::required(
                        "aggregationRule.clusterRoleSelectors",
                        "at least one clusterRoleSelector required if aggregationRule is non-nil",
                    ));
                }
                for (i, sel) in selectors.iter().enumerate() {
                    let path = format!("aggregationRule.clusterRoleSelectors[{i}]");
                    errs.extend(validate_selector(Some(sel), &path));
                    if Selector::parse(Some(sel)).is_err() {
                        errs.push(FieldError::invalid(
                            path,
                            go_label_selector(Some(sel)),
                            "invalid label selector.",
                        ));
                    }
                }
            }
            errs
        },
        ..KindStrategy::new(created_at_columns, created_at_row)
    }
}

/// Kubernetes' `ValidatePolicyRule` for each rule.
fn validate_rules(obj: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, rule) in items(obj, "/rules").iter().enumerate() {
        let path = format!("rules[{i}]");
        if items(rule, "/verbs").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = items(rule, "/nonResourceURLs");
        if !urls.is_empty() {
            let rendered = crate::apps::messages::go_string_slice(get(rule, "/nonResourceURLs"));
            if namespaced {
                errs.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    rendered.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if ["apiGroups", "resources", "resourceNames"]
                .iter()
                .any(|k| !items(rule, &format!("/{k}")).is_empty())
            {
                errs.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    rendered,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if items(rule, "/apiGroups").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if items(rule, "/resources").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

/// RoleBinding and ClusterRoleBinding defaults: the role reference's group,
/// and the group of user and group subjects.
fn default_binding(obj: &mut Value) {
    if let Some(role_ref) = child(obj, "roleRef")
        && fields::str_or_empty(role_ref, "/apiGroup").is_empty()
    {
        fields::set(role_ref, "apiGroup", json!(GROUP));
    }
    for subject in fields::each_mut(obj, "subjects") {
        if fields::str_or_empty(subject, "/apiGroup").is_empty() {
            match fields::str_or_empty(subject, "/kind") {
                "User" | "Group" => fields::set(subject, "apiGroup", json!(GROUP)),
                "ServiceAccount" => default_value(subject, "apiGroup", json!("")),
                _ => {}
            }
        }
    }
}

fn binding_strategy() -> KindStrategy<rbac::RoleBinding> {
    KindStrategy {
        names: NameRule::PathSegment,
        default: default_binding,
        validate: |obj, old| validate_binding(obj, old, true),
        ..KindStrategy::new(binding_columns, binding_row)
    }
}

fn cluster_binding_strategy() -> KindStrategy<rbac::ClusterRoleBinding> {
    KindStrategy {
        names: NameRule::PathSegment,
        default: default_binding,
        validate: |obj, old| validate_binding(obj, old, false),
        ..KindStrategy::new(binding_columns, binding_row)
    }
}

/// The role reference as Go prints an `rbac.RoleRef` in messages.
fn go_role_ref(obj: &Value) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        quote(fields::str_or_empty(obj, "/roleRef/apiGroup")),
        quote(fields::str_or_empty(obj, "/roleRef/kind")),
        quote(fields::str_or_empty(obj, "/roleRef/name"))
    )
}

fn validate_binding(obj: &Value, old: Option<&Value>, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = fields::str_or_empty(obj, "/roleRef/apiGroup");
    if group != GROUP {
        errs.push(not_supported("roleRef.apiGroup", group, &[GROUP]));
    }
    let kind = fields::str_or_empty(obj, "/roleRef/kind");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(not_supported("roleRef.kind", kind, kinds));
    }
    let name = fields::str_or_empty(obj, "/roleRef/name");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for p in path_segment(name) {
            errs.push(FieldError::invalid("roleRef.name", quote(name), p));
        }
    }
    for (i, subject) in items(obj, "/subjects").iter().enumerate() {
        errs.extend(validate_subject(
            subject,
            &format!("subjects[{i}]"),
            namespaced,
        ));
    }
    if let Some(old) = old
        && fields::changed(obj, old, "/roleRef")
    {
        errs.push(FieldError::invalid(
            "roleRef",
            go_role_ref(obj),
            "cannot change roleRef",
        ));
    }
    errs
}

fn validate_subject(subject: &Value, path: &str, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = fields::str_or_empty(subject, "/name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    }
    let group = fields::str_or_empty(subject, "/apiGroup");
    match fields::str_or_empty(subject, "/kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for p in dns1123_subdomain(name) {
                    errs.push(FieldError::invalid(format!("{path}.name"), quote(name), p));
                }
            }
            if !group.is_empty() {
                errs.push(not_supported(format!("{path}.apiGroup"), group, &[""]));
            }
            if !namespaced && fields::str_or_empty(subject, "/namespace").is_empty() {
                errs.push(FieldError::required(format!("{path}.namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                errs.push(not_supported(format!("{path}.apiGroup"), group, &[GROUP]));
            }
        }
        other => errs.push(not_supported(
            format!("{path}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errs
}

fn binding_columns() -> Vec<Column> {
    vec![
        name_column(),
        column("Role", "string", "The role the binding grants."),
        age_column(),
        wide("Users", "string", "Users in the binding."),
        wide("Groups", "string", "Groups in the binding."),
        wide(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the binding.",
        ),
    ]
}

fn binding_row(obj: &Value, now: i64) -> Vec<Value> {
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for s in items(obj, "/subjects") {
        let name = fields::str_or_empty(s, "/name").to_owned();
        match fields::str_or_empty(s, "/kind") {
            "User" => users.push(name),
            "Group" => groups.push(name),
            "ServiceAccount" => {
                accounts.push(format!("{}/{name}", fields::str_or_empty(s, "/namespace")))
            }
            _ => {}
        }
    }
    vec![
        table::name(obj),
        json!(format!(
            "{}/{}",
            fields::str_or_empty(obj, "/roleRef/kind"),
            fields::str_or_empty(obj, "/roleRef/name")
        )),
        table::age(obj, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(accounts.join(", ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Strategy;
    use crate::apps::tests::{create, update};

    #[test]
    fn roles() {
        let s = role_strategy();
        assert_eq!(s.name_rule(), NameRule::PathSegment);
        let role = json!({"metadata": {"name": "pod-reader", "creationTimestamp": "2026-01-01T10:00:00+02:00"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
        let (role, errs) = create(&s, role);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            s.row(&role, 0),
            vec![json!("pod-reader"), json!("2026-01-01T08:00:00Z")]
        );
        let cols: Vec<(String, String)> = s.columns().into_iter().map(|c| (c.name, c.ty)).collect();
        assert_eq!(cols[1], ("Created At".to_string(), "date".to_string()));
        let bad = json!({"metadata": {"name": "r"}, "rules": [
            {"resources": ["pods"]}, {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]});
        assert_eq!(
            create(&s, bad).1,
            [
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[1].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs",
            ]
        );
        let cluster = json!({"metadata": {"name": "health"}, "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]});
        assert!(create(&cluster_role_strategy(), cluster).1.is_empty());
    }

    #[test]
    fn bindings() {
        let s = binding_strategy();
        let rb = json!({"metadata": {"name": "read-pods", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "roleRef": {"kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "bot", "namespace": "ci"},
                         {"kind": "Group", "name": "devs"}]});
        let (rb, errs) = create(&s, rb);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(rb["roleRef"]["apiGroup"], GROUP);
        assert_eq!(rb["subjects"][0]["apiGroup"], GROUP);
        let now = crate::table::parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            s.row(&rb, now),
            vec![
                json!("read-pods"),
                json!("Role/pod-reader"),
                json!("0s"),
                json!("jane"),
                json!("devs"),
                json!("ci/bot")
            ]
        );
        let mut changed = rb.clone();
        changed["roleRef"]["name"] = json!("admin");
        assert_eq!(
            update(&s, &rb, changed).1,
            [
                "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"admin\"}: cannot change roleRef"
            ]
        );
        let crb = json!({"metadata": {"name": "x"}, "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot"}]});
        assert_eq!(
            create(&cluster_binding_strategy(), crb).1,
            [
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
            ]
        );
    }
}
