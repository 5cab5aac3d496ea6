"""Every list the typed clients can read, deserialized into their models.

The generated models refuse null or missing required fields (a
V1ContainerStatus without imageID, a list without items), so this reads
one of everything the kinds fixture creates."""

from kubernetes import client

from common import setup

ns, api = setup()
core = client.CoreV1Api(api)
apps = client.AppsV1Api(api)
batch = client.BatchV1Api(api)
net = client.NetworkingV1Api(api)
policy = client.PolicyV1Api(api)
rbac = client.RbacAuthorizationV1Api(api)
storage = client.StorageV1Api(api)
scheduling = client.SchedulingV1Api(api)
coordination = client.CoordinationV1Api(api)
discovery = client.DiscoveryV1Api(api)
autoscaling = client.AutoscalingV2Api(api)
events = client.EventsV1Api(api)

namespaced = {
    "pods": core.list_namespaced_pod,
    "services": core.list_namespaced_service,
    "configmaps": core.list_namespaced_config_map,
    "secrets": core.list_namespaced_secret,
    "serviceaccounts": core.list_namespaced_service_account,
    "endpoints": core.list_namespaced_endpoints,
    "events": core.list_namespaced_event,
    "limitranges": core.list_namespaced_limit_range,
    "resourcequotas": core.list_namespaced_resource_quota,
    "pvcs": core.list_namespaced_persistent_volume_claim,
    "podtemplates": core.list_namespaced_pod_template,
    "replicationcontrollers": core.list_namespaced_replication_controller,
    "deployments": apps.list_namespaced_deployment,
    "replicasets": apps.list_namespaced_replica_set,
    "statefulsets": apps.list_namespaced_stateful_set,
    "daemonsets": apps.list_namespaced_daemon_set,
    "controllerrevisions": apps.list_namespaced_controller_revision,
    "jobs": batch.list_namespaced_job,
    "cronjobs": batch.list_namespaced_cron_job,
    "ingresses": net.list_namespaced_ingress,
    "networkpolicies": net.list_namespaced_network_policy,
    "pdbs": policy.list_namespaced_pod_disruption_budget,
    "roles": rbac.list_namespaced_role,
    "rolebindings": rbac.list_namespaced_role_binding,
    "leases": coordination.list_namespaced_lease,
    "endpointslices": discovery.list_namespaced_endpoint_slice,
    "hpas": autoscaling.list_namespaced_horizontal_pod_autoscaler,
}
cluster = {
    "namespaces": core.list_namespace,
    "nodes": core.list_node,
    "pvs": core.list_persistent_volume,
    "storageclasses": storage.list_storage_class,
    "priorityclasses": scheduling.list_priority_class,
    "clusterroles": rbac.list_cluster_role,
    "clusterrolebindings": rbac.list_cluster_role_binding,
    "ingressclasses": net.list_ingress_class,
}
for name, fn in namespaced.items():
    items = fn(ns).items
    assert len(items) >= 1, f"{name}: nothing listed"
for name, fn in cluster.items():
    fn()

# events.k8s.io: the model requires eventTime, which an Event written
# through the core API without one lacks (so on a real cluster too); read
# the raw list and check the one written through events.k8s.io.
import json

raw = json.loads(events.list_namespaced_event(ns, _preload_content=False).data)
by_name = {e["metadata"]["name"]: e for e in raw["items"]}
assert by_name["web-0.2"]["eventTime"].startswith("2026-01-01T00:00:00"), by_name
assert by_name["web-0.2"]["regarding"]["name"] == "web-0", by_name
assert by_name["web-0.1"]["note"] == "Started container c", by_name

# A few reads in detail.
svc = core.read_namespaced_service("web", ns)
assert svc.spec.cluster_ip and svc.spec.ports[0].target_port == 8080, svc.spec
pod = core.read_namespaced_pod("web-0", ns)
assert pod.status.phase == "Pending", pod.status
assert pod.spec.containers[0].ports[0].protocol == "TCP"
assert pod.spec.restart_policy == "Always" and pod.spec.dns_policy == "ClusterFirst"
job = batch.read_namespaced_job("once", ns)
assert job.spec.selector.match_labels, job.spec.selector
secret = core.read_namespaced_secret("creds", ns)
assert secret.data == {"password": "aHVudGVyMg=="}, secret.data
print("ok")
