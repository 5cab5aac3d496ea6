"""Create, read, update, patch and delete with the typed clients, and the
errors they raise (ApiException with 404, 409, 422, 400)."""

import json

from kubernetes import client

from common import configmap, deployment, expect_status, setup

ns, api = setup()
core = client.CoreV1Api(api)
apps = client.AppsV1Api(api)

# ConfigMaps.
created = core.create_namespaced_config_map(ns, configmap("cfg", {"a": "1"}, {"tier": "web"}))
assert created.metadata.uid and created.metadata.resource_version, created.metadata
assert created.metadata.namespace == ns
read = core.read_namespaced_config_map("cfg", ns)
assert read.data == {"a": "1"}, read.data
read.data["b"] = "2"
replaced = core.replace_namespaced_config_map("cfg", ns, read)
assert replaced.data == {"a": "1", "b": "2"}, replaced.data
assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

# Stale resourceVersion: 409 Conflict.
read.data["c"] = "3"
e = expect_status(409, core.replace_namespaced_config_map, "cfg", ns, read)
assert json.loads(e.body)["reason"] == "Conflict", e.body
# Already exists: 409 AlreadyExists.
e = expect_status(409, core.create_namespaced_config_map, ns, configmap("cfg"))
status = json.loads(e.body)
assert status["reason"] == "AlreadyExists", status
assert status["message"] == 'configmaps "cfg" already exists', status
# Missing: 404 NotFound.
e = expect_status(404, core.read_namespaced_config_map, "nosuch", ns)
assert json.loads(e.body)["message"] == 'configmaps "nosuch" not found', e.body
expect_status(404, core.delete_namespaced_config_map, "nosuch", ns)
# Invalid: 422 with causes.
e = expect_status(422, core.create_namespaced_config_map, ns, configmap("Bad_Name"))
status = json.loads(e.body)
assert status["reason"] == "Invalid", status
assert status["details"]["causes"][0]["field"] == "metadata.name", status
# Strict field validation on request: 400.
e = expect_status(
    400,
    core.create_namespaced_config_map,
    ns,
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "bogus": 1},
    field_validation="Strict",
)
assert 'unknown field "bogus"' in json.loads(e.body)["message"], e.body

# Patches: a dict body is a strategic merge patch, a list a JSON patch.
patched = core.patch_namespaced_config_map("cfg", ns, {"data": {"a": "9", "b": None}})
assert patched.data == {"a": "9"}, patched.data
patched = core.patch_namespaced_config_map(
    "cfg", ns, [{"op": "add", "path": "/data/z", "value": "26"}]
)
assert patched.data == {"a": "9", "z": "26"}, patched.data

# Deployments, with their scale subresource.
d = apps.create_namespaced_deployment(ns, deployment("web", replicas=2))
assert d.spec.replicas == 2
assert d.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
assert d.spec.strategy.type == "RollingUpdate"
assert d.metadata.generation == 1
d = apps.patch_namespaced_deployment(
    "web", ns,
    {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.26"}]}}}},
)
assert d.spec.template.spec.containers[0].image == "nginx:1.26"
assert d.metadata.generation == 2
scale = apps.read_namespaced_deployment_scale("web", ns)
assert scale.spec.replicas == 2 and scale.status.selector == "app=web", scale
apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 4}})
assert apps.read_namespaced_deployment("web", ns).spec.replicas == 4
e = expect_status(
    422, apps.patch_namespaced_deployment, "web", ns, {"spec": {"replicas": -1}}
)
assert json.loads(e.body)["details"]["causes"][0]["field"] == "spec.replicas", e.body
# Status through its subresource.
apps.patch_namespaced_deployment_status("web", ns, {"status": {"replicas": 4, "readyReplicas": 1}})
assert apps.read_namespaced_deployment_status("web", ns).status.ready_replicas == 1

# Delete: a Status for configmaps, the object for deployments with
# foreground propagation (marked, held by the finalizer).
core.delete_namespaced_config_map("cfg", ns)
expect_status(404, core.read_namespaced_config_map, "cfg", ns)
apps.delete_namespaced_deployment("web", ns, propagation_policy="Foreground")
held = apps.read_namespaced_deployment("web", ns)
assert held.metadata.deletion_timestamp is not None
assert held.metadata.finalizers == ["foregroundDeletion"], held.metadata.finalizers

print("ok")
