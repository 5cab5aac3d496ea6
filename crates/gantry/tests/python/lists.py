"""Lists: label and field selectors, pagination with limit/continue."""

from kubernetes import client

from common import configmap, setup

ns, api = setup()
core = client.CoreV1Api(api)

for i in range(7):
    core.create_namespaced_config_map(
        ns,
        configmap(f"c{i}", {"i": str(i)}, {"parity": "even" if i % 2 == 0 else "odd", "i": str(i)}),
    )

def names(items):
    return [c.metadata.name for c in items]

assert names(core.list_namespaced_config_map(ns, label_selector="parity=even").items) == ["c0", "c2", "c4", "c6"]
# Negative requirements also match the namespace's kube-root-ca.crt, which has no labels.
assert names(core.list_namespaced_config_map(ns, label_selector="parity!=even,i notin (1)").items) == ["c3", "c5", "kube-root-ca.crt"]
assert names(core.list_namespaced_config_map(ns, field_selector="metadata.name=c3").items) == ["c3"]
everything = core.list_config_map_for_all_namespaces(label_selector="parity", field_selector=f"metadata.namespace={ns}")
assert len(everything.items) == 7

# Pages of three: the seven and the namespace's kube-root-ca.crt.
seen, token, pages = [], None, 0
while True:
    page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
    pages += 1
    seen += names(page.items)
    token = page.metadata._continue
    if not token:
        break
    assert page.metadata.remaining_item_count == 8 - len(seen), page.metadata
assert pages == 3, pages
assert seen == [f"c{i}" for i in range(7)] + ["kube-root-ca.crt"], seen

# Empty lists are lists, not None.
empty = core.list_namespaced_pod(ns)
assert empty.items == [], empty

# Delete a collection by selector.
core.delete_collection_namespaced_config_map(ns, label_selector="parity=odd")
assert names(core.list_namespaced_config_map(ns).items) == ["c0", "c2", "c4", "c6", "kube-root-ca.crt"]
print("ok")
