"""Shared setup for the end-to-end Python scripts.

Each script is run by a Rust test (crates/gantry/tests/e2e/python.rs) with
KUBECONFIG pointing at a fresh gantry and the namespace to work in as its
first argument. A script fails by raising (an AssertionError says what
differed); it prints "ok" at the end so the Rust side can tell a clean
finish from a silent early exit.
"""

import sys

from kubernetes import client, config


def setup():
    """Loads the kubeconfig and returns (namespace, ApiClient)."""
    config.load_kube_config()
    namespace = sys.argv[1] if len(sys.argv) > 1 else "default"
    return namespace, client.ApiClient()


def expect_status(code, fn, *args, **kwargs):
    """Calls fn and asserts it raises ApiException with HTTP `code`;
    returns the exception (its body is the Kubernetes Status)."""
    try:
        fn(*args, **kwargs)
    except client.ApiException as e:
        assert e.status == code, f"expected HTTP {code}, got {e.status}: {e.body}"
        return e
    raise AssertionError(f"expected HTTP {code}, the call succeeded")


def configmap(name, data=None, labels=None):
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        data=data,
    )


def deployment(name, image="nginx:1.25", replicas=1):
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="main", image=image)]
                ),
            ),
        ),
    )
