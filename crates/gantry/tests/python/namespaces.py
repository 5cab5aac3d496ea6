"""Namespaces from Python: create, fill, delete, and watch the namespace
go; dry runs; a body over the 3 MiB limit; events through the core API."""

import json

from kubernetes import client, watch

from common import configmap, expect_status, setup

prefix, api = setup()
core = client.CoreV1Api(api)
name = f"{prefix}-doomed"

ns = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
assert ns.status.phase == "Active", ns.status
assert ns.spec.finalizers == ["kubernetes"], ns.spec
assert ns.metadata.labels["kubernetes.io/metadata.name"] == name
core.create_namespaced_config_map(name, configmap("inside"))

# A dry run answers with what would be stored and stores nothing.
dry = core.create_namespaced_config_map(name, configmap("dry", {"a": "1"}), dry_run="All")
assert dry.metadata.uid and dry.data == {"a": "1"}, dry
expect_status(404, core.read_namespaced_config_map, "dry", name)

# Too large a body: 413.
e = expect_status(
    413, core.create_namespaced_config_map, name,
    configmap("huge", {"blob": "x" * (3 * 1024 * 1024 + 1)}),
)
assert json.loads(e.body)["reason"] == "RequestEntityTooLarge", e.body

# Events through the core API (CoreV1Event needs involvedObject).
pod_ref = client.V1ObjectReference(kind="Pod", name="p", namespace=name, api_version="v1")
core.create_namespaced_event(name, client.CoreV1Event(
    metadata=client.V1ObjectMeta(name="p.1"), involved_object=pod_ref,
    reason="Tested", message="from python", type="Normal", count=1,
))
events = core.list_namespaced_event(name, field_selector="involvedObject.name=p")
assert [e.reason for e in events.items] == ["Tested"], events.items

# Delete the namespace and watch it go.
start = core.list_namespace(field_selector=f"metadata.name={name}").metadata.resource_version
status = core.delete_namespace(name)
seen = []
w = watch.Watch()
for event in w.stream(core.list_namespace, field_selector=f"metadata.name={name}",
                      resource_version=start, timeout_seconds=30):
    seen.append((event["type"], event["object"].status.phase))
    if event["type"] == "DELETED":
        w.stop()
assert seen[0] == ("MODIFIED", "Terminating"), seen
assert seen[-1][0] == "DELETED", seen
expect_status(404, core.read_namespace, name)
expect_status(404, core.read_namespaced_config_map, "inside", name)
print("ok")
