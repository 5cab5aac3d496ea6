"""Custom resources through CustomObjectsApi (merge patches) and the
dynamic client, with a watch. Arguments: namespace, group."""

import sys

from kubernetes import client, dynamic, watch

from common import expect_status, setup

ns, api = setup()
group = sys.argv[2]
objects = client.CustomObjectsApi(api)

def gadget(name, size):
    return {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": {"size": size}}

start = objects.list_namespaced_custom_object(group, "v1", ns, "gadgets")["metadata"]["resourceVersion"]
made = objects.create_namespaced_custom_object(group, "v1", ns, "gadgets", gadget("g1", 1))
assert made["spec"] == {"size": 1, "color": "blue"}, made  # schema default
patched = objects.patch_namespaced_custom_object(group, "v1", ns, "gadgets", "g1", {"spec": {"size": 2}})
assert patched["spec"]["size"] == 2, patched
e = expect_status(422, objects.create_namespaced_custom_object, group, "v1", ns, "gadgets", gadget("bad", 0))
expect_status(404, objects.get_namespaced_custom_object, group, "v1", ns, "gadgets", "nosuch")
objects.delete_namespaced_custom_object(group, "v1", ns, "gadgets", "g1")

events = []
w = watch.Watch()
for event in w.stream(objects.list_namespaced_custom_object, group, "v1", ns, "gadgets",
                      resource_version=start, timeout_seconds=30):
    events.append((event["type"], event["object"]["spec"]["size"]))
    if event["type"] == "DELETED":
        w.stop()
assert events == [("ADDED", 1), ("MODIFIED", 2), ("DELETED", 2)], events

dyn = dynamic.DynamicClient(api)
gadgets = dyn.resources.get(api_version=f"{group}/v1", kind="Gadget")
gadgets.create(namespace=ns, body=gadget("g2", 3))
assert [g.metadata.name for g in gadgets.get(namespace=ns).items] == ["g2"]
print("ok")
