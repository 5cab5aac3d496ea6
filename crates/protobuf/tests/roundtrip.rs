//! Objects encoded with k8s-pb's prost structs, decoded, and read back
//! through k8s-openapi's typed structs: what was put in comes out, under
//! the JSON names and in the JSON forms Kubernetes uses. Where Go's
//! declarations decide the JSON (pointers, `omitempty`, zero values), the
//! JSON itself is compared.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::coordination::v1 as coordination;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use k8s_pb::api::apps::v1 as pb_apps;
use k8s_pb::api::coordination::v1 as pb_coordination;
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as pb_ext;
use k8s_pb::apimachinery::pkg::api::resource as pb_resource;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime as pb_runtime;
use k8s_pb::apimachinery::pkg::util::intstr as pb_intstr;
use prost::Message as _;
use protobuf::ProtobufError;
use serde_json::{Value, json};

/// `k8s\0` and the runtime.Unknown envelope around an encoded object, as
/// Go's protobuf serializer writes it.
fn body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = pb_runtime::Unknown {
        type_meta: Some(pb_runtime::TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [protobuf::MAGIC.to_vec(), unknown.encode_to_vec()].concat()
}

fn decode(api_version: &str, kind: &str, raw: Vec<u8>) -> Value {
    protobuf::decode(&body(api_version, kind, raw))
        .unwrap_or_else(|e| panic!("{kind}: {e}"))
        .object
}

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn int_or_string(v: &IntOrString) -> pb_intstr::IntOrString {
    match v {
        IntOrString::Int(i) => pb_intstr::IntOrString {
            r#type: Some(0),
            int_val: Some(*i),
            str_val: Some(String::new()),
        },
        IntOrString::String(text) => pb_intstr::IntOrString {
            r#type: Some(1),
            int_val: Some(0),
            str_val: Some(text.clone()),
        },
    }
}

fn quantity(text: &str) -> pb_resource::Quantity {
    pb_resource::Quantity { string: s(text) }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn deployment_with_the_pod_tree_round_trips() {
    // 2026-11-23T10:00:00Z.
    let created = Timestamp::from_second(1_795_428_000).unwrap();
    let pb = pb_apps::Deployment {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("web"),
            namespace: s("prod"),
            labels: labels(&[("app", "web")]),
            annotations: labels(&[("note", "")]),
            creation_timestamp: Some(pb_meta::Time {
                seconds: Some(created.as_second()),
                // Go's Time keeps whole seconds from protobuf.
                nanos: Some(500_000_000),
            }),
            ..Default::default()
        }),
        spec: Some(pb_apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(pb_meta::LabelSelector {
                match_labels: labels(&[("app", "web")]),
                match_expressions: vec![pb_meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("In"),
                    values: vec!["a".into(), "b".into()],
                }],
            }),
            strategy: Some(pb_apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(pb_apps::RollingUpdateDeployment {
                    max_unavailable: Some(int_or_string(&IntOrString::Int(0))),
                    max_surge: Some(int_or_string(&IntOrString::String("25%".into()))),
                }),
            }),
            template: Some(pb_core::PodTemplateSpec {
                metadata: Some(pb_meta::ObjectMeta {
                    labels: labels(&[("app", "web")]),
                    ..Default::default()
                }),
                spec: Some(pb_core::PodSpec {
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(0),
                    containers: vec![pb_core::Container {
                        name: s("nginx"),
                        image: s("nginx:1.27"),
                        command: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
                        ports: vec![pb_core::ContainerPort {
                            name: s("http"),
                            container_port: Some(80),
                            protocol: s("TCP"),
                            ..Default::default()
                        }],
                        env: vec![pb_core::EnvVar {
                            name: s("PASSWORD"),
                            value_from: Some(pb_core::EnvVarSource {
                                secret_key_ref: Some(pb_core::SecretKeySelector {
                                    local_object_reference: Some(pb_core::LocalObjectReference {
                                        name: s("db"),
                                    }),
                                    key: s("password"),
                                    optional: Some(false),
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                        resources: Some(pb_core::ResourceRequirements {
                            limits: [
                                ("cpu".to_owned(), quantity("500m")),
                                ("memory".to_owned(), quantity("128Mi")),
                            ]
                            .into(),
                            ..Default::default()
                        }),
                        readiness_probe: Some(pb_core::Probe {
                            handler: Some(pb_core::ProbeHandler {
                                http_get: Some(pb_core::HttpGetAction {
                                    path: s("/healthz"),
                                    port: Some(int_or_string(&IntOrString::String("http".into()))),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                            period_seconds: Some(5),
                            ..Default::default()
                        }),
                        volume_mounts: vec![pb_core::VolumeMount {
                            name: s("conf"),
                            mount_path: s("/etc/nginx/conf.d"),
                            read_only: Some(true),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    volumes: vec![pb_core::Volume {
                        name: s("conf"),
                        volume_source: Some(pb_core::VolumeSource {
                            config_map: Some(pb_core::ConfigMapVolumeSource {
                                local_object_reference: Some(pb_core::LocalObjectReference {
                                    name: s("web-conf"),
                                }),
                                default_mode: Some(0o644),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let json = decode("apps/v1", "Deployment", pb.encode_to_vec());

    let want = apps::Deployment {
        metadata: meta::ObjectMeta {
            name: s("web"),
            namespace: s("prod"),
            labels: Some(labels(&[("app", "web")])),
            annotations: Some(labels(&[("note", "")])),
            creation_timestamp: Some(meta::Time(created)),
            ..Default::default()
        },
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: meta::LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                match_expressions: Some(vec![meta::LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                }]),
            },
            strategy: Some(apps::DeploymentStrategy {
                type_: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("25%".into())),
                }),
            }),
            template: core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(0),
                    containers: vec![core::Container {
                        name: "nginx".into(),
                        image: s("nginx:1.27"),
                        command: Some(vec!["nginx".into(), "-g".into(), "daemon off;".into()]),
                        ports: Some(vec![core::ContainerPort {
                            name: s("http"),
                            container_port: 80,
                            protocol: s("TCP"),
                            ..Default::default()
                        }]),
                        env: Some(vec![core::EnvVar {
                            name: "PASSWORD".into(),
                            value_from: Some(core::EnvVarSource {
                                secret_key_ref: Some(core::SecretKeySelector {
                                    name: "db".into(),
                                    key: "password".into(),
                                    optional: Some(false),
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }]),
                        resources: Some(core::ResourceRequirements {
                            limits: Some(
                                [
                                    ("cpu".to_owned(), Quantity("500m".into())),
                                    ("memory".to_owned(), Quantity("128Mi".into())),
                                ]
                                .into(),
                            ),
                            ..Default::default()
                        }),
                        readiness_probe: Some(core::Probe {
                            http_get: Some(core::HTTPGetAction {
                                path: s("/healthz"),
                                port: IntOrString::String("http".into()),
                                ..Default::default()
                            }),
                            period_seconds: Some(5),
                            ..Default::default()
                        }),
                        volume_mounts: Some(vec![core::VolumeMount {
                            name: "conf".into(),
                            mount_path: "/etc/nginx/conf.d".into(),
                            read_only: Some(true),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    volumes: Some(vec![core::Volume {
                        name: "conf".into(),
                        config_map: Some(core::ConfigMapVolumeSource {
                            name: "web-conf".into(),
                            default_mode: Some(0o644),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        // Go's DeploymentStatus is a plain struct: `{}` when unset.
        status: Some(Default::default()),
    };
    let got: apps::Deployment = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(got, want);

    // The JSON forms: whole seconds, the pointers' zeros kept, numbers and
    // names of int-or-string, quantities as strings, an inlined
    // VolumeSource and ProbeHandler, the template's zero timestamp.
    assert_eq!(
        json["metadata"]["creationTimestamp"],
        "2026-11-23T10:00:00Z"
    );
    assert_eq!(json["spec"]["replicas"], 0);
    assert_eq!(
        json["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    assert_eq!(json["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    let pod = &json["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["terminationGracePeriodSeconds"], 0);
    assert_eq!(pod["containers"][0]["resources"]["limits"]["cpu"], "500m");
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"]["port"],
        "http"
    );
    assert_eq!(
        pod["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"],
        json!({"name": "db", "key": "password", "optional": false})
    );
    assert_eq!(
        pod["volumes"][0],
        json!({"name": "conf", "configMap": {"name": "web-conf", "defaultMode": 420}})
    );
    assert_eq!(
        json["spec"]["template"]["metadata"],
        json!({"creationTimestamp": null, "labels": {"app": "web"}})
    );
}

#[test]
fn secret_and_config_map_bytes_are_base64() {
    let bytes = vec![0x00, 0xff, 0xfe, 0x80, 0x41];
    let pb = pb_core::Secret {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("s1"),
            ..Default::default()
        }),
        immutable: Some(false),
        data: [
            ("bin".to_owned(), bytes.clone()),
            ("empty".to_owned(), Vec::new()),
        ]
        .into(),
        string_data: labels(&[("plain", "text")]),
        r#type: s("Opaque"),
    };
    let json = decode("v1", "Secret", pb.encode_to_vec());
    assert_eq!(json["data"], json!({"bin": "AP/+gEE=", "empty": ""}));
    assert_eq!(json["immutable"], false);
    let got: core::Secret = serde_json::from_value(json).unwrap();
    let data = got.data.unwrap();
    assert_eq!(data["bin"], ByteString(bytes.clone()));
    assert_eq!(data["empty"], ByteString(Vec::new()));
    assert_eq!(got.string_data.unwrap()["plain"], "text");
    assert_eq!(got.type_.as_deref(), Some("Opaque"));

    let pb = pb_core::ConfigMap {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("cm"),
            ..Default::default()
        }),
        data: labels(&[("a", "1")]),
        binary_data: [("bin".to_owned(), bytes.clone())].into(),
        immutable: None,
    };
    let got: core::ConfigMap =
        serde_json::from_value(decode("v1", "ConfigMap", pb.encode_to_vec())).unwrap();
    assert_eq!(got.binary_data.unwrap()["bin"], ByteString(bytes));
    assert_eq!(got.data.unwrap()["a"], "1");
    assert_eq!(got.immutable, None);
}

#[test]
fn lease_times_and_pointer_zeros() {
    let renewed = Timestamp::from_second(1_795_428_001).unwrap();
    let pb = pb_coordination::Lease {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("node1"),
            namespace: s("kube-node-lease"),
            ..Default::default()
        }),
        spec: Some(pb_coordination::LeaseSpec {
            holder_identity: s(""),
            lease_duration_seconds: Some(0),
            renew_time: Some(pb_meta::MicroTime {
                seconds: Some(renewed.as_second()),
                nanos: Some(123_456_789),
            }),
            ..Default::default()
        }),
    };
    let json = decode("coordination.k8s.io/v1", "Lease", pb.encode_to_vec());
    // MicroTime keeps microseconds; pointers keep their zeros.
    assert_eq!(
        json["spec"],
        json!({
            "holderIdentity": "",
            "leaseDurationSeconds": 0,
            "renewTime": "2026-11-23T10:00:01.123456Z"
        })
    );
    let got: coordination::Lease = serde_json::from_value(json).unwrap();
    let spec = got.spec.unwrap();
    assert_eq!(
        spec.renew_time,
        Some(meta::MicroTime(
            renewed + SignedDuration::from_micros(123_456)
        ))
    );
    assert_eq!(spec.lease_duration_seconds, Some(0));
}

#[test]
fn custom_resource_definition_schemas() {
    let raw = |v: Value| pb_ext::Json {
        raw: Some(serde_json::to_vec(&v).unwrap()),
    };
    let props = |ty: &str| pb_ext::JsonSchemaProps {
        r#type: s(ty),
        ..Default::default()
    };
    let schema = pb_ext::JsonSchemaProps {
        r#type: s("object"),
        required: vec!["spec".into()],
        properties: [
            (
                "spec".to_owned(),
                pb_ext::JsonSchemaProps {
                    r#type: s("object"),
                    properties: [
                        (
                            "replicas".to_owned(),
                            pb_ext::JsonSchemaProps {
                                r#type: s("integer"),
                                minimum: Some(0.0),
                                maximum: Some(1.5),
                                default: Some(raw(json!(1))),
                                ..Default::default()
                            },
                        ),
                        (
                            "mode".to_owned(),
                            pb_ext::JsonSchemaProps {
                                r#type: s("string"),
                                r#enum: vec![raw(json!("a")), raw(json!("b"))],
                                ..Default::default()
                            },
                        ),
                        (
                            "tags".to_owned(),
                            pb_ext::JsonSchemaProps {
                                r#type: s("array"),
                                items: Some(Box::new(pb_ext::JsonSchemaPropsOrArray {
                                    schema: Some(Box::new(props("string"))),
                                    j_son_schemas: Vec::new(),
                                })),
                                x_kubernetes_list_type: s("set"),
                                ..Default::default()
                            },
                        ),
                        (
                            "port".to_owned(),
                            pb_ext::JsonSchemaProps {
                                x_kubernetes_int_or_string: Some(true),
                                ..Default::default()
                            },
                        ),
                    ]
                    .into(),
                    additional_properties: Some(Box::new(pb_ext::JsonSchemaPropsOrBool {
                        allows: Some(false),
                        schema: None,
                    })),
                    ..Default::default()
                },
            ),
            (
                "labels".to_owned(),
                pb_ext::JsonSchemaProps {
                    r#type: s("object"),
                    additional_properties: Some(Box::new(pb_ext::JsonSchemaPropsOrBool {
                        allows: Some(true),
                        schema: Some(Box::new(props("string"))),
                    })),
                    ..Default::default()
                },
            ),
        ]
        .into(),
        ..Default::default()
    };
    let pb = pb_ext::CustomResourceDefinition {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("widgets.example.com"),
            ..Default::default()
        }),
        spec: Some(pb_ext::CustomResourceDefinitionSpec {
            group: s("example.com"),
            names: Some(pb_ext::CustomResourceDefinitionNames {
                plural: s("widgets"),
                kind: s("Widget"),
                ..Default::default()
            }),
            scope: s("Namespaced"),
            versions: vec![pb_ext::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                schema: Some(pb_ext::CustomResourceValidation {
                    open_apiv3_schema: Some(schema),
                }),
                subresources: Some(pb_ext::CustomResourceSubresources {
                    status: Some(pb_ext::CustomResourceSubresourceStatus {}),
                    scale: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let json = decode(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        pb.encode_to_vec(),
    );
    let version = &json["spec"]["versions"][0];
    assert_eq!(version["subresources"], json!({"status": {}}));
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        spec["properties"]["replicas"],
        json!({"type": "integer", "default": 1, "maximum": 1.5, "minimum": 0})
    );
    assert_eq!(spec["properties"]["mode"]["enum"], json!(["a", "b"]));
    assert_eq!(
        spec["properties"]["tags"],
        json!({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"})
    );
    assert_eq!(
        spec["properties"]["port"],
        json!({"x-kubernetes-int-or-string": true})
    );
    assert_eq!(spec["additionalProperties"], false);
    assert_eq!(
        version["schema"]["openAPIV3Schema"]["properties"]["labels"]["additionalProperties"],
        json!({"type": "string"})
    );
    // The names Go prints for fields its types name differently.
    assert!(spec.get("x_kubernetes_list_type").is_none());
    let _: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(json).unwrap();
}

/// An object with nothing set, as a producer other than Go may send it:
/// every field is at its zero value, and the JSON is what Go prints for
/// `appsv1.Deployment{}`.
#[test]
fn absent_fields_are_go_zero_values() {
    let json = decode("apps/v1", "Deployment", Vec::new());
    assert_eq!(
        json,
        json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {
                "selector": null,
                "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": null}},
                "strategy": {}
            },
            "status": {}
        })
    );
    // Go prints a zero non-omitempty scalar: a Container's name.
    let pb = pb_core::PodSpec {
        containers: vec![pb_core::Container::default()],
        ..Default::default()
    };
    let pod = pb_core::Pod {
        spec: Some(pb),
        ..Default::default()
    };
    let json = decode("v1", "Pod", pod.encode_to_vec());
    assert_eq!(
        json["spec"]["containers"],
        json!([{"name": "", "resources": {}}])
    );
}

#[test]
fn repeated_messages_merge_and_unknown_fields_are_skipped() {
    let meta = |m: pb_meta::ObjectMeta| {
        pb_core::Namespace {
            metadata: Some(m),
            ..Default::default()
        }
        .encode_to_vec()
    };
    // Two occurrences of metadata merge, as protobuf says.
    let mut raw = meta(pb_meta::ObjectMeta {
        name: s("ns1"),
        ..Default::default()
    });
    raw.extend(meta(pb_meta::ObjectMeta {
        labels: labels(&[("a", "b")]),
        ..Default::default()
    }));
    // A field Kubernetes 1.32 does not have (number 99, a varint and a
    // string): skipped, as Go's decoder skips it.
    raw.extend([0x98, 0x06, 0x01]);
    raw.extend([0x9a, 0x06, 0x02, b'h', b'i']);
    let json = decode("v1", "Namespace", raw);
    assert_eq!(
        json["metadata"],
        json!({"name": "ns1", "creationTimestamp": null, "labels": {"a": "b"}})
    );
}

#[test]
fn refuses_what_go_refuses() {
    let err = |bytes: &[u8]| protobuf::decode(bytes).unwrap_err();
    assert_eq!(err(b"{\"kind\":\"Pod\"}"), ProtobufError::NotProtobuf);
    assert_eq!(
        err(&body("example.com/v1", "Widget", Vec::new())),
        ProtobufError::UnknownKind {
            api_version: "example.com/v1".into(),
            kind: "Widget".into()
        }
    );
    let gzip = pb_runtime::Unknown {
        type_meta: Some(pb_runtime::TypeMeta {
            api_version: s("v1"),
            kind: s("Pod"),
        }),
        raw: Some(Vec::new()),
        content_encoding: s("gzip"),
        content_type: None,
    };
    assert!(matches!(
        err(&[protobuf::MAGIC.to_vec(), gzip.encode_to_vec()].concat()),
        ProtobufError::Unsupported(_)
    ));
    // A known field with the wrong wire type: metadata as a varint.
    let bad = err(&body("v1", "Pod", vec![0x08, 0x01]));
    assert_eq!(
        bad.to_string(),
        "malformed protobuf in io.k8s.api.core.v1.Pod field 1: wire type Varint where a length-delimited value belongs"
    );
    // Cut short inside the object.
    let mut raw = pb_core::Pod {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("p"),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    raw.pop();
    assert!(matches!(
        err(&body("v1", "Pod", raw)),
        ProtobufError::Malformed { .. }
    ));
    // An empty quantity, which Go's parser refuses.
    let pb = pb_core::ResourceQuota {
        spec: Some(pb_core::ResourceQuotaSpec {
            hard: [("cpu".to_owned(), quantity(""))].into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        err(&body("v1", "ResourceQuota", pb.encode_to_vec())),
        ProtobufError::Malformed { .. }
    ));
}

/// Packed and unpacked repeated numbers both read (Go writes proto2's
/// unpacked form; other producers may pack).
#[test]
fn packed_and_unpacked_numbers() {
    let groups = |raw: Vec<u8>| {
        let pod = [vec![0x12, raw.len() as u8], raw].concat();
        decode("v1", "Pod", pod)["spec"]["securityContext"]["supplementalGroups"].clone()
    };
    // PodSpec.securityContext(14) {supplementalGroups(4)}.
    let context = |inner: Vec<u8>| [vec![0x72, inner.len() as u8], inner].concat();
    assert_eq!(groups(context(vec![0x20, 0x01, 0x20, 0x02])), json!([1, 2]));
    assert_eq!(groups(context(vec![0x22, 0x02, 0x01, 0x02])), json!([1, 2]));
}
