"""A bearer token instead of the kubeconfig's client certificate.

Arguments: namespace, token, CA file, server URL."""

import sys

from kubernetes import client

ns, token, ca, host = sys.argv[1:5]
configuration = client.Configuration()
configuration.host = host
configuration.ssl_ca_cert = ca
configuration.api_key = {"authorization": f"Bearer {token}"}
api = client.ApiClient(configuration)
core = client.CoreV1Api(api)
names = [n.metadata.name for n in core.list_namespace().items]
assert "default" in names, names
core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="by-token")))

configuration.api_key = {"authorization": "Bearer wrong"}
try:
    client.CoreV1Api(client.ApiClient(configuration)).list_namespace()
    raise AssertionError("a wrong token was accepted")
except client.ApiException as e:
    assert e.status == 401, e
print("ok")
