"""The dynamic client (legacy discovery, cached under TMPDIR): version,
resource lookup by kind, server-side apply, merge patch, and deletion."""

from kubernetes import client, dynamic

from common import setup

ns, api = setup()

code = client.VersionApi(api).get_code()
assert code.major == "1" and code.minor == "32", code
assert code.git_version.startswith("v1.32."), code

dyn = dynamic.DynamicClient(api)
deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
assert deployments.namespaced and deployments.name == "deployments"
configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")

manifest = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "dyn", "namespace": ns},
    "data": {"a": "1"},
}
applied = configmaps.server_side_apply(body=manifest, field_manager="python")
assert applied.data.a == "1", applied
assert applied.metadata.managedFields[0].manager == "python"
patched = configmaps.patch(
    name="dyn", namespace=ns, body={"data": {"b": "2"}},
    content_type="application/merge-patch+json",
)
assert dict(patched.data) == {"a": "1", "b": "2"}, patched.data
listed = configmaps.get(namespace=ns)
assert [i.metadata.name for i in listed.items] == ["dyn", "kube-root-ca.crt"], listed

# Old versions are discoverable too, and lead to the same objects.
old = dyn.resources.get(api_version="extensions/v1beta1", kind="Deployment")
created = old.create(
    namespace=ns,
    body={
        "apiVersion": "extensions/v1beta1",
        "kind": "Deployment",
        "metadata": {"name": "legacy"},
        "spec": {"template": {"metadata": {"labels": {"app": "legacy"}},
                 "spec": {"containers": [{"name": "c", "image": "nginx:1.13.1"}]}}},
    },
)
assert created.spec.selector.matchLabels.app == "legacy", created.spec
current = deployments.get(name="legacy", namespace=ns)
assert current.apiVersion == "apps/v1"

configmaps.delete(name="dyn", namespace=ns)
try:
    configmaps.get(name="dyn", namespace=ns)
    raise AssertionError("deleted configmap still readable")
except dynamic.exceptions.NotFoundError:
    pass
print("ok")
