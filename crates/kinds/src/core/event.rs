//! Events, served as core/v1 and as events.k8s.io/v1 from the same storage
//! (core/v1). The core API keeps Kubernetes' lenient legacy validation; the
//! events.k8s.io API adds the strict rules of the new event model. Both
//! print the same `kubectl get events` table.

use k8s_openapi::api::core::v1::Event;
use serde_json::{Map, Value, json};

use super::cell;
use crate::table::{self, column, wide};
use crate::validation::{self, quote};
use crate::{Column, Conversion, FieldError, FieldErrorKind, NameRule, Strategy, typed};

/// The longest `reportingInstance`, `action` and `reason` Kubernetes takes.
const SHORT_LIMIT: usize = 128;

/// The longest message (`note`) Kubernetes takes.
const NOTE_LIMIT: usize = 1024;

/// Which API an event arrived through; the two validate differently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    /// core/v1, with legacy validation only.
    Core,
    /// events.k8s.io/v1, with the strict rules on top.
    EventsV1,
}

/// `Invalid value: "": <detail>`, the shape of most event errors.
fn invalid_empty(field: &str, detail: impl Into<String>) -> FieldError {
    FieldError::invalid(field, "\"\"", detail)
}

/// The checks every event passes (`legacyValidateEvent`).
fn legacy_validate(event: &Event, api: Api) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let controller_field = match api {
        Api::Core => "reportingComponent",
        Api::EventsV1 => "reportingController",
    };
    let namespace = event.metadata.namespace.clone().unwrap_or_default();
    let involved_ns = event.involved_object.namespace.clone().unwrap_or_default();
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            quote(&involved_ns),
            "does not match event.namespace",
        )
    };
    if event.event_time.is_none() {
        let ok = if involved_ns.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == involved_ns
        };
        if !ok {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(mismatch());
        }
        let controller = event.reporting_component.clone().unwrap_or_default();
        if controller.is_empty() {
            errs.push(FieldError::required(controller_field, ""));
        }
        errs.extend(validation::field_errors(
            controller_field,
            &controller,
            validation::qualified_name(&controller),
        ));
        for (name, value) in [
            ("reportingInstance", &event.reporting_instance),
            ("action", &event.action),
            ("reason", &event.reason),
        ] {
            let value = value.clone().unwrap_or_default();
            if value.is_empty() {
                errs.push(FieldError::required(name, ""));
            }
            if value.len() > SHORT_LIMIT {
                errs.push(invalid_empty(
                    name,
                    format!("can have at most {SHORT_LIMIT} characters"),
                ));
            }
        }
        if event.message.as_ref().is_some_and(|m| m.len() > NOTE_LIMIT) {
            errs.push(invalid_empty(
                "message",
                format!("can have at most {NOTE_LIMIT} characters"),
            ));
        }
    }
    if !namespace.is_empty() {
        errs.extend(validation::field_errors(
            "namespace",
            &namespace,
            validation::dns1123_subdomain(&namespace),
        ));
    }
    errs
}

/// The checks of a series under the new event model.
fn validate_series(event: &Event) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(series) = &event.series {
        if series.count.unwrap_or(0) < 2 {
            errs.push(invalid_empty("series.count", "should be at least 2"));
        }
        if series.last_observed_time.is_none() {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    errs
}

/// The strict checks of an event created through events.k8s.io/v1.
fn strict_create(event: &Event) -> Vec<FieldError> {
    let mut errs = validate_series(event);
    if event.event_time.is_none() {
        errs.push(FieldError::required("eventTime", ""));
    }
    let ty = event.type_.clone().unwrap_or_default();
    if ty != "Normal" && ty != "Warning" {
        errs.push(invalid_empty("type", format!("has invalid value: {ty}")));
    }
    if event.first_timestamp.is_some() {
        errs.push(invalid_empty("firstTimestamp", "needs to be unset"));
    }
    if event.last_timestamp.is_some() {
        errs.push(invalid_empty("lastTimestamp", "needs to be unset"));
    }
    if event.count.unwrap_or(0) != 0 {
        errs.push(invalid_empty("count", "needs to be unset"));
    }
    let source = event.source.clone().unwrap_or_default();
    if !source.component.unwrap_or_default().is_empty()
        || !source.host.unwrap_or_default().is_empty()
    {
        errs.push(invalid_empty("source", "needs to be unset"));
    }
    errs
}

/// The strict checks of an event updated through events.k8s.io/v1: what
/// was observed may not be rewritten.
fn strict_update(
    new: &Value,
    old: &Value,
    new_event: &Event,
    old_event: &Event,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new_event.series != old_event.series {
        errs.extend(validate_series(new_event));
    }
    for (path, key) in [
        ("involvedObject", "involvedObject"),
        ("reason", "reason"),
        ("message", "message"),
        ("source", "source"),
        ("firstTimestamp", "firstTimestamp"),
        ("lastTimestamp", "lastTimestamp"),
        ("count", "count"),
        ("type", "type"),
        ("action", "action"),
        ("eventTime", "eventTime"),
        ("related", "related"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
    ] {
        if new.get(key) != old.get(key) {
            let value = new
                .get(key)
                .map_or_else(|| "null".to_owned(), Value::to_string);
            errs.push(crate::core::field::immutable(path, value));
        }
    }
    errs
}

/// The columns of `kubectl get events`.
fn event_columns() -> Vec<Column> {
    vec![
        column(
            "Last Seen",
            "string",
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        column(
            "Type",
            "string",
            "Type of this event (Normal, Warning), new types could be added in the future",
        ),
        column(
            "Reason",
            "string",
            "This should be a short, machine understandable string that gives the reason for the \
             transition into the object's current status.",
        ),
        column("Object", "string", "The object that this event is about."),
        wide(
            "Subobject",
            "string",
            "If referring to a piece of an object instead of an entire object, this string \
             should contain a valid JSON/Go field access statement.",
        ),
        wide("Source", "string", "The component reporting this event."),
        column(
            "Message",
            "string",
            "A human-readable description of the status of this operation.",
        ),
        wide(
            "First Seen",
            "string",
            "The time at which the event was first recorded.",
        ),
        wide(
            "Count",
            "string",
            "The number of times this event has occurred.",
        ),
        Column {
            format: "name".into(),
            ..wide("Name", "string", "Name must be unique within a namespace.")
        },
    ]
}

/// Seconds since the epoch of a time, if set.
fn seconds(t: Option<&k8s_openapi::jiff::Timestamp>) -> Option<i64> {
    t.map(|t| t.as_second())
}

/// The cells of an event's row, as Kubernetes' printer computes them.
fn event_row(obj: &Value, now: i64) -> Vec<Value> {
    let event = typed::decode::<Event>(obj).unwrap_or_default();
    let ago = |at: Option<i64>| {
        at.map_or_else(
            || "<unknown>".to_owned(),
            |at| table::human_duration(now - at),
        )
    };
    let first = seconds(event.first_timestamp.as_ref().map(|t| &t.0))
        .or_else(|| seconds(event.event_time.as_ref().map(|t| &t.0)));
    let first_seen = ago(first);
    let mut last_seen = match seconds(event.last_timestamp.as_ref().map(|t| &t.0)) {
        Some(at) => ago(Some(at)),
        None => first_seen.clone(),
    };
    let mut count = i64::from(event.count.unwrap_or(0));
    if let Some(series) = &event.series {
        last_seen = ago(seconds(series.last_observed_time.as_ref().map(|t| &t.0)));
        count = i64::from(series.count.unwrap_or(0));
    } else if count == 0 {
        // Events of the new model do not count singletons.
        count = 1;
    }
    let object = &event.involved_object;
    let kind = object.kind.clone().unwrap_or_default().to_lowercase();
    let target = match object.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let source = event.source.clone().unwrap_or_default();
    let component = source
        .component
        .filter(|c| !c.is_empty())
        .or(event.reporting_component.clone())
        .unwrap_or_default();
    let host = source
        .host
        .filter(|h| !h.is_empty())
        .or(event.reporting_instance.clone())
        .unwrap_or_default();
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    vec![
        cell(last_seen),
        cell(event.type_.clone().unwrap_or_default()),
        cell(event.reason.clone().unwrap_or_default()),
        cell(target),
        cell(object.field_path.clone().unwrap_or_default()),
        cell(source),
        cell(event.message.clone().unwrap_or_default().trim()),
        cell(first_seen),
        json!(count),
        table::name(obj),
    ]
}

/// The involved object's field-selector values, named with `prefix`.
fn object_fields(obj: &Value, prefix: &str) -> Vec<(String, String)> {
    [
        "kind",
        "namespace",
        "name",
        "uid",
        "apiVersion",
        "resourceVersion",
        "fieldPath",
    ]
    .iter()
    .map(|key| {
        (
            format!("{prefix}.{key}"),
            typed::str_at(obj, &format!("involvedObject.{key}"))
                .unwrap_or_default()
                .to_owned(),
        )
    })
    .collect()
}

/// What the server does to core/v1 Events.
pub(crate) struct EventStrategy;

impl Strategy for EventStrategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        typed::decode::<Event>(obj).map(|_| ())
    }

    fn default(&self, _obj: &mut Value) {}

    fn prepare_create(&self, _obj: &mut Value) {}

    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        match typed::decode::<Event>(obj) {
            Ok(event) => legacy_validate(&event, Api::Core),
            Err(e) => vec![e],
        }
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

    fn name_rule(&self) -> NameRule {
        // Legacy events are only held to what a URL path segment allows.
        NameRule::PathSegment
    }

    fn columns(&self) -> Vec<Column> {
        event_columns()
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        event_row(obj, now)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        let s = |path: &str| typed::str_at(obj, path).unwrap_or_default().to_owned();
        let mut source = s("source.component");
        if source.is_empty() {
            source = s("reportingComponent");
        }
        let mut fields = object_fields(obj, "involvedObject");
        fields.extend([
            ("reason".into(), s("reason")),
            ("reportingComponent".into(), s("reportingComponent")),
            ("source".into(), source),
            ("type".into(), s("type")),
        ]);
        fields
    }
}

/// What the server does to events.k8s.io/v1 Events (objects arrive
/// converted to core/v1).
pub(crate) struct EventsV1Strategy;

impl Strategy for EventsV1Strategy {
    fn check_types(&self, obj: &Value) -> Result<(), FieldError> {
        EventStrategy.check_types(obj)
    }

    fn default(&self, _obj: &mut Value) {}

    fn prepare_create(&self, _obj: &mut Value) {}

    fn prepare_update(&self, _new: &mut Value, _old: &Value) {}

    fn prepare_status_update(&self, new: &mut Value, old: &Value) {
        typed::keep_all_but_status(new, old);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let event = match typed::decode::<Event>(obj) {
            Ok(e) => e,
            Err(e) => return vec![e],
        };
        let mut errs = legacy_validate(&event, Api::EventsV1);
        match old.map(|o| (o, typed::decode::<Event>(o))) {
            None => errs.extend(strict_create(&event)),
            Some((old, Ok(old_event))) => errs.extend(strict_update(obj, old, &event, &old_event)),
            Some((_, Err(e))) => errs.push(e),
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
        event_columns()
    }

    fn row(&self, obj: &Value, now: i64) -> Vec<Value> {
        event_row(obj, now)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(String, String)> {
        let s = |path: &str| typed::str_at(obj, path).unwrap_or_default().to_owned();
        let mut fields = object_fields(obj, "regarding");
        fields.extend([
            ("reason".into(), s("reason")),
            ("reportingController".into(), s("reportingComponent")),
            ("type".into(), s("type")),
        ]);
        fields
    }
}

/// Field names of events.k8s.io/v1 and their core/v1 counterparts.
const FIELD_MAP: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("reportingController", "reportingComponent"),
    ("deprecatedCount", "count"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
];

/// Renames the fields of `obj` from one side of `FIELD_MAP` to the other
/// and sets its apiVersion; the rest (`eventTime`, `series`, `action`,
/// `reason`, `related`, `type`, `reportingInstance`, metadata) carries over.
fn rename(mut obj: Map<String, Value>, to_core: bool, api_version: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    obj.remove("apiVersion");
    obj.remove("kind");
    for (key, value) in obj {
        let renamed = FIELD_MAP
            .iter()
            .find(|(v1, core)| if to_core { v1 == &key } else { core == &key })
            .map(|(v1, core)| if to_core { *core } else { *v1 });
        out.insert(renamed.map_or(key, str::to_owned), value);
    }
    out
}

/// Converts events.k8s.io/v1 Events to and from core/v1.
pub(crate) struct EventsV1Conversion;

impl Conversion for EventsV1Conversion {
    fn to_storage(&self, obj: Value) -> Result<Value, FieldError> {
        match obj {
            Value::Object(map) => Ok(Value::Object(rename(map, true, "v1"))),
            _ => Err(FieldError {
                kind: FieldErrorKind::TypeInvalid,
                field: String::new(),
                value: None,
                detail: "an Event must be a JSON object".into(),
            }),
        }
    }

    fn from_storage(&self, obj: Value) -> Value {
        match obj {
            Value::Object(map) => Value::Object(rename(map, false, "events.k8s.io/v1")),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::parse_time;

    fn v1_event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{web}"},
            "note": "Pulled image", "reason": "Pulled", "type": "Normal", "action": "Pull",
            "eventTime": "2026-11-23T09:58:00.000000Z",
            "reportingController": "kubelet", "reportingInstance": "node-1",
            "deprecatedSource": {"component": "kubelet", "host": "node-1"},
            "deprecatedCount": 3,
            "deprecatedFirstTimestamp": "2026-11-23T09:50:00Z",
            "deprecatedLastTimestamp": "2026-11-23T09:58:00Z",
            "series": {"count": 3, "lastObservedTime": "2026-11-23T09:58:00.000000Z"},
            "related": {"kind": "Node", "name": "node-1"},
        })
    }

    #[test]
    fn conversion_round_trips() {
        let v1 = v1_event();
        let core = EventsV1Conversion.to_storage(v1.clone()).unwrap();
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "Pulled image");
        assert_eq!(core["source"]["host"], "node-1");
        assert_eq!(core["reportingComponent"], "kubelet");
        assert_eq!(core["count"], 3);
        assert_eq!(core["firstTimestamp"], "2026-11-23T09:50:00Z");
        assert_eq!(core["lastTimestamp"], "2026-11-23T09:58:00Z");
        assert_eq!(core["series"], v1["series"]);
        assert!(EventStrategy.check_types(&core).is_ok());
        assert_eq!(EventsV1Conversion.from_storage(core), v1);
    }

    #[test]
    fn rows() {
        let core = EventsV1Conversion.to_storage(v1_event()).unwrap();
        let now = parse_time("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(
            EventStrategy.row(&core, now),
            [
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{web}"),
                json!("kubelet, node-1"),
                json!("Pulled image"),
                json!("10m"),
                json!(3),
                json!("web.1"),
            ]
        );
        let legacy = json!({"metadata": {"name": "x"}, "involvedObject": {"kind": "Node", "name": "n1"},
            "reason": "Starting", "message": " Starting kubelet. ", "type": "Normal",
            "firstTimestamp": "2026-11-23T09:00:00Z"});
        let row = EventStrategy.row(&legacy, now);
        assert_eq!(row[0], json!("60m"));
        assert_eq!(row[6], json!("Starting kubelet."));
        assert_eq!(row[8], json!(1));
    }

    #[test]
    fn validation_depends_on_the_api() {
        let core = json!({"metadata": {"name": "x", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "other"}, "reason": "R"});
        assert_eq!(
            EventStrategy.validate(&core, None)[0].to_string(),
            "involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"
        );
        let mut strict = EventsV1Conversion.to_storage(v1_event()).unwrap();
        let errs: Vec<String> = EventsV1Strategy
            .validate(&strict, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "firstTimestamp: Invalid value: \"\": needs to be unset",
                "lastTimestamp: Invalid value: \"\": needs to be unset",
                "count: Invalid value: \"\": needs to be unset",
                "source: Invalid value: \"\": needs to be unset",
            ]
        );
        for key in ["firstTimestamp", "lastTimestamp", "count", "source"] {
            strict.as_object_mut().unwrap().remove(key);
        }
        assert!(EventsV1Strategy.validate(&strict, None).is_empty());
        assert!(EventStrategy.validate(&strict, None).is_empty());
        strict.as_object_mut().unwrap().remove("reportingComponent");
        assert_eq!(
            EventsV1Strategy.validate(&strict, None)[0].to_string(),
            "reportingController: Required value"
        );
        assert_eq!(
            EventStrategy.validate(&strict, None)[0].to_string(),
            "reportingComponent: Required value"
        );
    }

    #[test]
    fn field_selectors_use_each_api_s_names() {
        let core = EventsV1Conversion.to_storage(v1_event()).unwrap();
        let fields = EventStrategy.selectable_fields(&core);
        assert!(fields.contains(&("involvedObject.name".into(), "web".into())));
        assert!(fields.contains(&("source".into(), "kubelet".into())));
        let fields = EventsV1Strategy.selectable_fields(&core);
        assert!(fields.contains(&("regarding.kind".into(), "Pod".into())));
        assert!(fields.contains(&("reportingController".into(), "kubelet".into())));
    }
}
