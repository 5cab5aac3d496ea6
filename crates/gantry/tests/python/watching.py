"""Watches: ADDED, MODIFIED and DELETED events from a resourceVersion,
synthetic ADDED events from the start, bookmarks, and timeoutSeconds
ending the stream."""

import time

from kubernetes import client, watch

from common import configmap, setup

ns, api = setup()
core = client.CoreV1Api(api)

start = core.list_namespaced_config_map(ns).metadata.resource_version
core.create_namespaced_config_map(ns, configmap("w", {"v": "1"}))
core.patch_namespaced_config_map("w", ns, {"data": {"v": "2"}})
core.delete_namespaced_config_map("w", ns)

# Watch from the list's resourceVersion: the three changes, in order.
events = []
w = watch.Watch()
for event in w.stream(core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=30):
    events.append((event["type"], event["object"].metadata.name, (event["object"].data or {}).get("v")))
    if event["type"] == "DELETED":
        w.stop()
assert events == [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")], events

# Without a resourceVersion a watch starts with what exists: the namespace's
# kube-root-ca.crt and this one.
core.create_namespaced_config_map(ns, configmap("present"))
w = watch.Watch()
seen = []
for event in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=30):
    assert event["type"] == "ADDED", event
    seen.append(event["object"].metadata.name)
    if len(seen) == 2:
        w.stop()
assert seen == ["kube-root-ca.crt", "present"], seen

# timeoutSeconds ends a quiet watch; bookmarks, when asked for, carry
# only a resourceVersion.
began = time.monotonic()
types = []
for event in watch.Watch().stream(
    core.list_namespaced_config_map, ns, resource_version=start,
    timeout_seconds=2, allow_watch_bookmarks=True,
):
    types.append(event["type"])
took = time.monotonic() - began
assert 1.5 <= took < 15, f"watch with timeout_seconds=2 lasted {took:.1f}s"
assert types[:4] == ["ADDED", "MODIFIED", "DELETED", "ADDED"], types
assert set(types) <= {"ADDED", "MODIFIED", "DELETED", "BOOKMARK"}, types

# Under a label selector, objects entering the selection are ADDED and
# leaving it DELETED.
start = core.list_namespaced_config_map(ns).metadata.resource_version
core.create_namespaced_config_map(ns, configmap("sel", labels={"pick": "yes"}))
core.patch_namespaced_config_map("sel", ns, {"metadata": {"labels": {"pick": "no"}}})
core.patch_namespaced_config_map("sel", ns, {"metadata": {"labels": {"pick": "yes", "more": "1"}}})
core.create_namespaced_config_map(ns, configmap("unpicked", labels={"pick": "no"}))
core.delete_namespaced_config_map("sel", ns)
events = []
w = watch.Watch()
for event in w.stream(core.list_namespaced_config_map, ns, label_selector="pick=yes",
                      resource_version=start, timeout_seconds=30):
    events.append((event["type"], event["object"].metadata.name, dict(event["object"].metadata.labels)))
    if len(events) == 4:
        w.stop()
assert events == [
    ("ADDED", "sel", {"pick": "yes"}),
    ("DELETED", "sel", {"pick": "no"}),
    ("ADDED", "sel", {"pick": "yes", "more": "1"}),
    ("DELETED", "sel", {"pick": "yes", "more": "1"}),
], events

# Raw events as the server sends them.
w = watch.Watch()
for event in w.stream(core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=30):
    raw = event["raw_object"]
    assert raw["kind"] == "ConfigMap" and raw["apiVersion"] == "v1", raw
    w.stop()
print("ok")
