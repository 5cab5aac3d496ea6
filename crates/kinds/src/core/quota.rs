//! LimitRanges and ResourceQuotas: resource names, quantities and how they
//! relate, the defaults of container limit ranges, and their tables.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem, ResourceQuota, ResourceQuotaStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Raw;
use serde_json::Value;

use super::cell;
use super::field;
use super::quantity::{self, Quantity};
use crate::table::{self, column};
use crate::validation::quote;
use crate::{Column, FieldError, Strategy, typed};

/// Resource names Kubernetes knows without a prefix.
const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

/// Resource names a quota may limit without a prefix.
const QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// Errors for a resource name (`validateResourceName`).
fn resource_name(field: &str, name: &str) -> Vec<FieldError> {
    let errs = field::qualified_name(field, name);
    if !errs.is_empty() {
        return errs;
    }
    let standard = STANDARD_RESOURCES.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-");
    if !name.contains('/') && !standard {
        return vec![FieldError::invalid(
            field,
            quote(name),
            "must be a standard resource type or fully qualified",
        )];
    }
    Vec::new()
}

/// Errors for a resource name in a quota.
fn quota_resource_name(field: &str, name: &str) -> Vec<FieldError> {
    let errs = resource_name(field, name);
    if !errs.is_empty() {
        return errs;
    }
    let standard = QUOTA_RESOURCES.contains(&name) || name.starts_with("requests.hugepages-");
    if !name.contains('/') && !standard {
        return vec![FieldError::invalid(
            field,
            quote(name),
            "must be a standard resource for quota",
        )];
    }
    Vec::new()
}

/// Parses every quantity of a list at `path[name]`, reporting bad ones.
fn quantities(
    path: &str,
    list: Option<&BTreeMap<String, Raw>>,
    name_check: fn(&str, &str) -> Vec<FieldError>,
    errs: &mut Vec<FieldError>,
) -> BTreeMap<String, Quantity> {
    let mut parsed = BTreeMap::new();
    for (name, raw) in list.into_iter().flatten() {
        let p = format!("{path}[{name}]");
        errs.extend(name_check(&p, name));
        match field::parse_quantity(&p, raw) {
            Ok(q) => {
                errs.extend(field::resource_quantity(&p, name, q));
                parsed.insert(name.clone(), q);
            }
            Err(e) => errs.push(e),
        }
    }
    parsed
}

/// What the server does to LimitRanges.
pub(crate) struct LimitRangeStrategy;

/// The defaults of one limit: containers default their limits to the
/// maximum, and their requests to the limit or the minimum.
fn default_item(item: &mut LimitRangeItem) {
    if item.type_ == "Container" {
        let max = item.max.clone().unwrap_or_default();
        let min = item.min.clone().unwrap_or_default();
        let default = item.default.get_or_insert_with(BTreeMap::new);
        for (k, v) in max {
            default.entry(k).or_insert(v);
        }
        let default = default.clone();
        let request = item.default_request.get_or_insert_with(BTreeMap::new);
        for (k, v) in default.into_iter().chain(min) {
            request.entry(k).or_insert(v);
        }
    }
    for list in [
        &mut item.max,
        &mut item.min,
        &mut item.default,
        &mut item.default_request,
        &mut item.max_limit_request_ratio,
    ] {
        quantity::default_resource_list(list);
    }
}

/// The errors of one limit.
fn validate_item(item: &LimitRangeItem, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = item.type_.as_str();
    let type_errs = field::qualified_name(&format!("{path}.type"), ty);
    if !type_errs.is_empty() {
        errs.extend(type_errs);
    } else if !ty.contains('/') && !["Pod", "Container", "PersistentVolumeClaim"].contains(&ty) {
        errs.push(FieldError::invalid(
            format!("{path}.type"),
            quote(ty),
            "must be a standard limit type or fully qualified",
        ));
    }
    let name_check: fn(&str, &str) -> Vec<FieldError> = if ty == "Pod" || ty == "Container" {
        field::container_resource_name
    } else {
        resource_name
    };
    let max = quantities(
        &format!("{path}.max"),
        item.max.as_ref(),
        name_check,
        &mut errs,
    );
    let min = quantities(
        &format!("{path}.min"),
        item.min.as_ref(),
        name_check,
        &mut errs,
    );
    let (default, default_request) = if ty == "Pod" {
        if item.default.as_ref().is_some_and(|d| !d.is_empty()) {
            errs.push(FieldError::forbidden(
                format!("{path}.default"),
                "may not be specified when `type` is 'Pod'",
            ));
        }
        if item.default_request.as_ref().is_some_and(|d| !d.is_empty()) {
            errs.push(FieldError::forbidden(
                format!("{path}.defaultRequest"),
                "may not be specified when `type` is 'Pod'",
            ));
        }
        (BTreeMap::new(), BTreeMap::new())
    } else {
        (
            quantities(
                &format!("{path}.default"),
                item.default.as_ref(),
                name_check,
                &mut errs,
            ),
            quantities(
                &format!("{path}.defaultRequest"),
                item.default_request.as_ref(),
                name_check,
                &mut errs,
            ),
        )
    };
    if ty == "PersistentVolumeClaim" && !min.contains_key("storage") && !max.contains_key("storage")
    {
        errs.push(FieldError::required(
            format!("{path}.limits"),
            "either minimum or maximum storage value is required, but neither was provided",
        ));
    }
    let ratios = quantities(
        &format!("{path}.maxLimitRequestRatio"),
        item.max_limit_request_ratio.as_ref(),
        name_check,
        &mut errs,
    );
    let keys: BTreeSet<&String> = max
        .keys()
        .chain(min.keys())
        .chain(default.keys())
        .chain(default_request.keys())
        .chain(ratios.keys())
        .collect();
    for k in keys {
        let (mn, mx, df, dr, ratio) = (
            min.get(k),
            max.get(k),
            default.get(k),
            default_request.get(k),
            ratios.get(k),
        );
        let invalid = |child: &str, value: &Quantity, detail: String| {
            FieldError::invalid(
                format!("{path}.{child}[{k}]"),
                quote(&value.to_string()),
                detail,
            )
        };
        if let (Some(mn), Some(mx)) = (mn, mx)
            && mn > mx
        {
            errs.push(invalid(
                "min",
                mn,
                format!("min value {mn} is greater than max value {mx}"),
            ));
        }
        if let (Some(dr), Some(mn)) = (dr, mn)
            && mn > dr
        {
            errs.push(invalid(
                "defaultRequest",
                dr,
                format!("min value {mn} is greater than default request value {dr}"),
            ));
        }
        if let (Some(dr), Some(mx)) = (dr, mx)
            && dr > mx
        {
            errs.push(invalid(
                "defaultRequest",
                dr,
                format!("default request value {dr} is greater than max value {mx}"),
            ));
        }
        if let (Some(dr), Some(df)) = (dr, df)
            && dr > df
        {
            errs.push(invalid(
                "defaultRequest",
                dr,
                format!("default request value {dr} is greater than default limit value {df}"),
            ));
        }
        if let (Some(df), Some(mn)) = (df, mn)
            && mn > df
        {
            errs.push(invalid(
                "default",
                mn,
                format!("min value {mn} is greater than default value {df}"),
            ));
        }
        if let (Some(df), Some(mx)) = (df, mx)
            && df > mx
        {
            errs.push(invalid(
                "default",
                mx,
                format!("default value {df} is greater than max value {mx}"),
            ));
        }
        if let Some(ratio) = ratio
            && *ratio < Quantity::from_int(1)
        {
            errs.push(invalid(
                "maxLimitRequestRatio",
                ratio,
                format!("ratio {ratio} is less than 1"),
            ));
        }
        if let (Some(df), Some(dr)) = (df, dr)
            && !field::is_overcommit_allowed(k)
            && df != dr
        {
            errs.push(invalid(
                "defaultRequest",
                dr,
                format!("default value {df} must equal to defaultRequest value {dr} in {k}"),
            ));
        }
    }
    errs
}

impl Strategy for LimitRangeStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        typed::decode::<LimitRange>(obj).map(|_| ())
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |lr: &mut LimitRange| {
            for item in lr.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
                default_item(item);
            }
        });
    }

    fn prepare_create(&self, _obj: &mut Value) {}

    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let lr = match typed::decode::<LimitRange>(obj) {
            Ok(l) => l,
            Err(e) => return vec![e],
        };
        let mut errs = Vec::new();
        let mut types = BTreeSet::new();
        for (i, item) in lr.spec.iter().flat_map(|s| s.limits.iter()).enumerate() {
            let p = format!("spec.limits[{i}]");
            errs.extend(validate_item(item, &p));
            if !types.insert(item.type_.clone()) {
                errs.push(FieldError::duplicate(
                    format!("{p}.type"),
                    quote(&item.type_),
                ));
            }
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

    /// Kubernetes has no printer for LimitRanges; its default table shows
    /// the name and the creation time.
    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            Column {
                format: String::new(),
                ..column(
                    "Created At",
                    "date",
                    "CreationTimestamp is a timestamp representing the server time when this \
                     object was created.",
                )
            },
        ]
    }

    fn row(&self, obj: &Value, _now: i64) -> Vec<Value> {
        let created = typed::str_at(obj, "metadata.creationTimestamp").unwrap_or_default();
        vec![table::name(obj), cell(created)]
    }

    fn selectable_fields(&self, _obj: &Value) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// What the server does to ResourceQuotas.
pub(crate) struct ResourceQuotaStrategy;

/// The scopes a quota may have.
const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// A list of scopes as Go prints it.
fn go_scopes(scopes: &[String]) -> String {
    let body: Vec<String> = scopes.iter().map(|s| quote(s)).collect();
    format!("[]core.ResourceQuotaScope{{{}}}", body.join(", "))
}

/// Errors for a quota's hard and used lists in its status.
fn validate_quota_status(status: Option<&ResourceQuotaStatus>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(status) = status {
        quantities(
            "status.hard",
            status.hard.as_ref(),
            quota_resource_name,
            &mut errs,
        );
        quantities(
            "status.used",
            status.used.as_ref(),
            quota_resource_name,
            &mut errs,
        );
    }
    errs
}

impl Strategy for ResourceQuotaStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        let quota = typed::decode::<ResourceQuota>(obj)?;
        field::check_quantities(
            "spec.hard",
            quota.spec.as_ref().and_then(|s| s.hard.as_ref()),
        )
    }

    fn default(&self, obj: &mut Value) {
        typed::modify(obj, |quota: &mut ResourceQuota| {
            if let Some(spec) = quota.spec.as_mut() {
                quantity::default_resource_list(&mut spec.hard);
            }
        });
    }

    fn prepare_create(&self, obj: &mut Value) {
        typed::modify(obj, |quota: &mut ResourceQuota| {
            quota.status = Some(ResourceQuotaStatus::default());
        });
    }

    fn prepare_update(&self, new: &mut Value, old: &Value) {
        typed::keep_status(new, old);
    }

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
        typed::modify(new, |quota: &mut ResourceQuota| {
            if let Some(status) = quota.status.as_mut() {
                quantity::canonicalize_list(&mut status.hard);
                quantity::canonicalize_list(&mut status.used);
            }
        });
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let quota = match typed::decode::<ResourceQuota>(obj) {
            Ok(q) => q,
            Err(e) => return vec![e],
        };
        let spec = quota.spec.clone().unwrap_or_default();
        let mut errs = Vec::new();
        quantities(
            "spec.hard",
            spec.hard.as_ref(),
            quota_resource_name,
            &mut errs,
        );
        let scopes = spec.scopes.clone().unwrap_or_default();
        for scope in &scopes {
            if !SCOPES.contains(&scope.as_str()) {
                errs.push(FieldError::invalid(
                    "spec.scopes",
                    go_scopes(&scopes),
                    "unsupported scope",
                ));
            }
        }
        let has = |s: &str| scopes.iter().any(|x| x == s);
        if (has("BestEffort") && has("NotBestEffort"))
            || (has("Terminating") && has("NotTerminating"))
        {
            errs.push(FieldError::invalid(
                "spec.scopes",
                go_scopes(&scopes),
                "conflicting scopes",
            ));
        }
        match old {
            None => errs.extend(validate_quota_status(quota.status.as_ref())),
            Some(old) => {
                let old_scopes: BTreeSet<String> = typed::decode::<ResourceQuota>(old)
                    .ok()
                    .and_then(|q| q.spec)
                    .and_then(|s| s.scopes)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                if old_scopes != scopes.iter().cloned().collect::<BTreeSet<_>>() {
                    errs.push(field::immutable("spec.scopes", go_scopes(&scopes)));
                }
            }
        }
        errs
    }

    fn validate_status(&self, obj: &Value, _old: &Value) -> Vec<FieldError> {
        match typed::decode::<ResourceQuota>(obj) {
            Ok(quota) => validate_quota_status(quota.status.as_ref()),
            Err(e) => vec![e],
        }
    }

    fn tracks_generation(&self) -> bool {
        false
    }

    fn has_status_subresource(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            table::name_column(),
            column(
                "Request",
                "string",
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            column(
                "Limit",
                "string",
                "Limits control the maximum amount of cpu/memory that a container may use \
                 independent of contention on the node.",
            ),
            table::age_column(),
        ]
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        let quota = typed::decode::<ResourceQuota>(obj).unwrap_or_default();
        let status = quota.status.unwrap_or_default();
        let hard = status.hard.unwrap_or_default();
        let used = status.used.unwrap_or_default();
        let mut requests = Vec::new();
        let mut limits = Vec::new();
        for (name, hard_value) in &hard {
            let used_value = used
                .get(name)
                .map_or_else(|| "0".to_owned(), |q| quantity::canonical(&q.0));
            let entry = format!(
                "{name}: {used_value}/{}",
                quantity::canonical(&hard_value.0)
            );
            if name.split('.').next() == Some("limits") && name.contains('.') {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
        vec![
            table::name(obj),
            cell(requests.join(", ")),
            cell(limits.join(", ")),
            table::age(obj, now),
        ]
    }

    fn selectable_fields(&self, _obj: &Value) -> Vec<(String, String)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn container_limit_ranges_default_from_max_and_min() {
        let mut obj = json!({"metadata": {"name": "l", "creationTimestamp": "2026-11-23T09:00:00Z"},
            "spec": {"limits": [{"type": "Container",
                "max": {"cpu": "2", "memory": "1Gi"}, "min": {"cpu": "100m"}, "default": {"cpu": "1"}}]}});
        LimitRangeStrategy.default(&mut obj);
        let item = &obj["spec"]["limits"][0];
        assert_eq!(item["default"], json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(item["defaultRequest"], json!({"cpu": "1", "memory": "1Gi"}));
        assert!(LimitRangeStrategy.validate(&obj, None).is_empty());
        assert_eq!(
            LimitRangeStrategy.row(&obj, 0),
            [json!("l"), json!("2026-11-23T09:00:00Z")]
        );
    }

    #[test]
    fn limit_range_errors() {
        let obj = json!({"metadata": {"name": "l"}, "spec": {"limits": [
            {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "default": {"cpu": "1"}, "defaultRequest": {"cpu": "1"}},
            {"type": "Pod", "default": {"cpu": "1"}},
            {"type": "Pod"}]}});
        assert_eq!(
            messages(LimitRangeStrategy.validate(&obj, None)),
            [
                "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
                "spec.limits[0].defaultRequest[cpu]: Invalid value: \"1\": min value 2 is greater than default request value 1",
                "spec.limits[0].default[cpu]: Invalid value: \"2\": min value 2 is greater than default value 1",
                "spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod'",
                "spec.limits[2].type: Duplicate value: \"Pod\"",
            ]
        );
    }

    #[test]
    fn quotas() {
        let mut obj = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10", "requests.cpu": "1000m", "limits.memory": "2Gi"}}});
        ResourceQuotaStrategy.default(&mut obj);
        ResourceQuotaStrategy.prepare_create(&mut obj);
        assert_eq!(obj["spec"]["hard"]["requests.cpu"], "1");
        assert_eq!(obj["status"], json!({}));
        assert!(ResourceQuotaStrategy.validate(&obj, None).is_empty());
        obj["status"] = json!({"hard": obj["spec"]["hard"].clone(), "used": {"pods": "3", "requests.cpu": "500m"}});
        assert_eq!(
            ResourceQuotaStrategy.row(&obj, 0)[1..3],
            [
                json!("pods: 3/10, requests.cpu: 500m/1"),
                json!("limits.memory: 0/2Gi")
            ]
        );
        let bad = json!({"metadata": {"name": "q"}, "spec": {"hard": {"gpus": "1", "pods": "1.5"},
            "scopes": ["BestEffort", "NotBestEffort"]}});
        assert_eq!(
            messages(ResourceQuotaStrategy.validate(&bad, None)),
            [
                "spec.hard[gpus]: Invalid value: \"gpus\": must be a standard resource type or fully qualified",
                "spec.hard[pods]: Invalid value: \"1500m\": must be an integer",
                "spec.scopes: Invalid value: []core.ResourceQuotaScope{\"BestEffort\", \"NotBestEffort\"}: conflicting scopes",
            ]
        );
        let mut rescoped = obj.clone();
        rescoped["spec"]["scopes"] = json!(["Terminating"]);
        assert_eq!(
            messages(ResourceQuotaStrategy.validate(&rescoped, Some(&obj))),
            [
                "spec.scopes: Invalid value: []core.ResourceQuotaScope{\"Terminating\"}: field is immutable"
            ]
        );
    }
}
