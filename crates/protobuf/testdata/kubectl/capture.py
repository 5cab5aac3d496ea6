#!/usr/bin/env python3
"""Captures the protobuf request bodies the real kubectl 1.32 sends.

Runs a small fake API server on loopback that answers the discovery and
object reads the commands need, saves each write's body, and runs every case
twice: with --dry-run=server to capture the body (<case>.pb), and, where
kubectl can print the object it would send, with --dry-run=client -o json to
capture the JSON Go prints for the same object (<case>.json). The test
`tests/kubectl.rs` decodes each body and compares it with that JSON.

    python3 crates/protobuf/testdata/kubectl/capture.py [KUBECTL]

KUBECTL defaults to /usr/lib/google-cloud-sdk/bin/kubectl.1.32. The served
objects (served/*.json) are inputs: cronjob-zeros.json is a CronJob with every
field of its pod template set to a zero value, so `create job --from` sends
every field of the pod tree and Go's JSON shows which of them are pointers.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
KUBECTL = sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"


def served(name):
    with open(os.path.join(HERE, "served", name)) as f:
        return json.load(f)


def res(name, kind, namespaced=True, verbs=None, group=None, version=None):
    r = {
        "name": name,
        "singularName": "" if "/" in name else kind.lower(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs or ["create", "delete", "get", "list", "patch", "update", "watch"],
    }
    if group is not None:
        r["group"], r["version"] = group, version
    return r


RESOURCES = {
    "v1": [
        res("pods", "Pod"),
        res("pods/eviction", "Eviction", group="policy", version="v1", verbs=["create"]),
        res("nodes", "Node", False),
        res("configmaps", "ConfigMap"),
        res("secrets", "Secret"),
        res("namespaces", "Namespace", False),
        res("services", "Service"),
        res("serviceaccounts", "ServiceAccount"),
        res("serviceaccounts/token", "TokenRequest", group="authentication.k8s.io",
            version="v1", verbs=["create"]),
    ],
    "apps/v1": [res("deployments", "Deployment"), res("replicasets", "ReplicaSet"),
                res("deployments/scale", "Scale", group="autoscaling", version="v1",
                    verbs=["get", "patch", "update"]),
                res("daemonsets", "DaemonSet")],
    "batch/v1": [res("jobs", "Job"), res("cronjobs", "CronJob")],
    "policy/v1": [res("poddisruptionbudgets", "PodDisruptionBudget")],
    "autoscaling/v1": [res("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
    "authorization.k8s.io/v1": [
        res("selfsubjectaccessreviews", "SelfSubjectAccessReview", False, ["create"])],
    "certificates.k8s.io/v1": [
        res("certificatesigningrequests", "CertificateSigningRequest", False),
        res("certificatesigningrequests/approval", "CertificateSigningRequest", False,
            ["get", "patch", "update"])],
    "rbac.authorization.k8s.io/v1": [
        res("roles", "Role"), res("rolebindings", "RoleBinding"),
        res("clusterroles", "ClusterRole", False),
        res("clusterrolebindings", "ClusterRoleBinding", False)],
    "networking.k8s.io/v1": [res("ingresses", "Ingress")],
    "scheduling.k8s.io/v1": [res("priorityclasses", "PriorityClass", False)],
}

POD = {
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {"name": "web-1", "namespace": "default", "uid": "0f5e0c7a-0000-4000-8000-000000000002",
                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                      "uid": "0f5e0c7a-0000-4000-8000-000000000003",
                                      "controller": True}]},
    "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "nginx"}]},
    "status": {"phase": "Running"},
}

GETS = {
    "/apis/apps/v1/namespaces/default/deployments/web": {
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "default", "uid": "0f5e0c7a-0000-4000-8000-000000000004"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
    },
    "/apis/batch/v1/namespaces/default/cronjobs/zeros": served("cronjob-zeros.json"),
    "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr1": served("csr.json"),
    "/api/v1/nodes/node1": {"kind": "Node", "apiVersion": "v1",
                            "metadata": {"name": "node1", "uid": "0f5e0c7a-0000-4000-8000-000000000005"},
                            "spec": {"unschedulable": True}},
    "/api/v1/pods": {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
                     "items": [POD]},
}

# (case, arguments, whether --dry-run=client -o json prints the object)
CASES = [
    ("create-deployment", ["create", "deployment", "web", "--image=nginx", "--replicas=3", "--port=80"], True),
    ("create-deployment-zero-replicas", ["create", "deployment", "idle", "--image=nginx", "--replicas=0"], True),
    ("create-configmap", ["create", "configmap", "cm1", "--from-literal=a=1", "--from-literal=empty=",
                          "--from-file=bin=@BINARY@"], True),
    ("create-namespace", ["create", "namespace", "ns1"], True),
    ("create-secret-generic", ["create", "secret", "generic", "s1", "--from-literal=user=admin",
                               "--from-literal=password=s3cr3t"], True),
    ("create-secret-tls", ["create", "secret", "tls", "tls1", "--cert=@CERT@", "--key=@KEY@"], True),
    ("create-secret-docker-registry", ["create", "secret", "docker-registry", "reg", "--docker-username=u",
                                       "--docker-password=p", "--docker-server=registry.example.com"], True),
    ("create-service-clusterip", ["create", "service", "clusterip", "web", "--tcp=80:8080", "--tcp=443:https"], True),
    ("create-service-nodeport", ["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"], True),
    ("create-service-headless", ["create", "service", "clusterip", "headless", "--clusterip=None"], True),
    ("create-service-loadbalancer", ["create", "service", "loadbalancer", "lb", "--tcp=80:8080"], True),
    ("create-service-externalname", ["create", "service", "externalname", "ext",
                                     "--external-name=db.example.com", "--tcp=5432"], True),
    ("create-serviceaccount", ["create", "serviceaccount", "sa1"], True),
    ("create-role", ["create", "role", "reader", "--verb=get,list", "--resource=pods,deployments.apps",
                     "--resource-name=web"], True),
    ("create-rolebinding", ["create", "rolebinding", "rb1", "--role=reader", "--user=alice",
                            "--serviceaccount=default:sa1", "--group=devs"], True),
    ("create-clusterrole", ["create", "clusterrole", "pod-reader", "--verb=get,list,watch",
                            "--resource=pods,pods/log"], True),
    ("create-clusterrole-nonresource", ["create", "clusterrole", "logs", "--verb=get",
                                        "--non-resource-url=/logs/*"], True),
    ("create-clusterrole-aggregated", ["create", "clusterrole", "agg", "--aggregation-rule=rbac.example.com/agg=true"], True),
    ("create-clusterrolebinding", ["create", "clusterrolebinding", "crb1", "--clusterrole=view", "--group=devs"], True),
    ("create-job", ["create", "job", "j1", "--image=busybox", "--", "echo", "hi"], True),
    ("create-job-from-cronjob-zeros", ["create", "job", "j2", "--from=cronjob/zeros"], True),
    ("create-cronjob", ["create", "cronjob", "cj1", "--image=busybox", "--schedule=*/5 * * * *",
                        "--restart=Never", "--", "echo", "hi"], True),
    ("create-ingress", ["create", "ingress", "ing1", "--class=nginx",
                        "--rule=foo.example.com/bar*=svc1:8080,tls=my-cert", "--rule=/=svc2:http"], True),
    ("create-pdb", ["create", "pdb", "pdb1", "--selector=app=web", "--min-available=50%"], True),
    ("create-pdb-max-unavailable", ["create", "pdb", "pdb2", "--selector=app=web", "--max-unavailable=1"], True),
    ("create-priorityclass", ["create", "priorityclass", "high", "--value=1000", "--description=high",
                              "--preemption-policy=Never"], True),
    ("create-quota", ["create", "quota", "q1", "--hard=cpu=1,memory=1G,pods=2", "--scopes=BestEffort"], True),
    ("autoscale", ["autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=80"], True),
    ("create-token", ["create", "token", "default", "--duration=10m", "--audience=api"], False),
    ("auth-can-i", ["auth", "can-i", "get", "deployments.apps/scale", "--subresource=scale", "-n", "kube-system"], False),
    ("certificate-approve", ["certificate", "approve", "csr1"], False),
]
# Not here: `kubectl drain` posts its evictions as JSON in 1.32 (observed:
# POST .../pods/<name>/eviction with Content-Type: application/json).


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies = []

    def log_message(self, *args):
        pass

    def send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/api":
            return self.send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            groups = {}
            for gv in RESOURCES:
                if "/" in gv:
                    g, v = gv.split("/")
                    groups.setdefault(g, []).append({"groupVersion": gv, "version": v})
            return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": vs, "preferredVersion": vs[0]} for g, vs in groups.items()]})
        gv = re.sub(r"^/apis?/", "", path)
        if gv in RESOURCES:
            return self.send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                                   "resources": RESOURCES[gv]})
        if path in GETS:
            return self.send(200, GETS[path])
        if path == "/api/v1/namespaces/default/pods/web-1":
            # Drain waits for the evicted pod to go.
            return self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "reason": "NotFound", "code": 404, "message": "gone"})
        self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                        "code": 404, "message": "not found"})

    def do_write(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if os.environ.get("CAPTURE_DEBUG"):
            print(self.command, self.path, self.headers.get("Content-Type"), body[:200], file=sys.stderr)
        if self.headers.get("Content-Type") == "application/vnd.kubernetes.protobuf":
            Server.bodies.append(body)
        path = self.path.split("?")[0]
        if self.command == "PATCH" and path in GETS:
            return self.send(200, GETS[path])
        if path.endswith("/approval"):
            return self.send(200, GETS[path[: -len("/approval")]])
        if path.endswith("/eviction"):
            return self.send(201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201})
        obj = {"metadata": {"name": "x", "namespace": "default", "resourceVersion": "1"}}
        if "selfsubjectaccessreviews" in path:
            obj.update(kind="SelfSubjectAccessReview", apiVersion="authorization.k8s.io/v1",
                       status={"allowed": True})
        if path.endswith("/token"):
            obj.update(kind="TokenRequest", apiVersion="authentication.k8s.io/v1",
                       status={"token": "t", "expirationTimestamp": "2030-01-01T00:00:00Z"})
        self.send(201, obj)

    do_POST = do_PUT = do_PATCH = do_write


def main():
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "kubeconfig")
        with open(config, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u, namespace: default}}}}]
current-context: c
""")
        binary = os.path.join(tmp, "binary")
        with open(binary, "wb") as f:
            f.write(bytes([0x00, 0xff, 0xfe, 0x80, 0x41]))
        # A self-signed pair for `create secret tls`, which checks that the
        # two match.
        cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-subj", "/CN=tls1", "-days", "1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        base = [KUBECTL, "--kubeconfig", config, "--cache-dir", os.path.join(tmp, "cache")]
        def command(args, extra):
            # Flags go before a `--` that starts the container's command.
            at = args.index("--") if "--" in args else len(args)
            return base + args[:at] + extra + args[at:]

        for case, args, printable in CASES:
            args = [a.replace("@BINARY@", binary).replace("@CERT@", cert).replace("@KEY@", key)
                    for a in args]
            Server.bodies = []
            extra = ["--dry-run=server"] if printable else []
            run = subprocess.run(command(args, extra), capture_output=True, text=True)
            if len(Server.bodies) != 1:
                sys.exit(f"{case}: {len(Server.bodies)} protobuf bodies; kubectl said {run.stdout}{run.stderr}")
            with open(os.path.join(HERE, case + ".pb"), "wb") as f:
                f.write(Server.bodies[0])
            if printable:
                run = subprocess.run(command(args, ["--dry-run=client", "-o", "json"]),
                                     capture_output=True, text=True, check=True)
                obj = json.loads(run.stdout)
                with open(os.path.join(HERE, case + ".json"), "w") as f:
                    json.dump(obj, f, indent=2)
                    f.write("\n")
            print(f"{case}: {len(Server.bodies[0])} bytes")
    server.shutdown()


if __name__ == "__main__":
    main()
