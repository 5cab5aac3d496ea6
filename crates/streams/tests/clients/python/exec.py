"""Exec through the official Python client (WebSocket, v4.channel.k8s.io).

Usage: exec.py KUBECONFIG. Prints one JSON object with what it saw.
"""
import json
import sys

from kubernetes import client, config
from kubernetes.stream import stream

config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()
seen = {}

# Output of both streams, read to the end.
resp = stream(api.connect_get_namespaced_pod_exec, "web", "default",
              command=["sh", "-c", "echo out; echo err >&2"],
              stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False)
resp.run_forever(timeout=30)
seen["stdout"] = resp.read_stdout()
seen["stderr"] = resp.read_stderr()
seen["success_code"] = resp.returncode

# A non-zero exit code, read from the error channel's Status.
resp = stream(api.connect_get_namespaced_pod_exec, "web", "default",
              command=["sh", "-c", "exit 3"],
              stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False)
resp.run_forever(timeout=30)
seen["failure_code"] = resp.returncode

# Interactive stdin.
resp = stream(api.connect_get_namespaced_pod_exec, "web", "default",
              command=["sh", "-c", "read x; echo got-$x"],
              stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
resp.write_stdin("abc\n")
resp.run_forever(timeout=30)
seen["interactive"] = resp.read_stdout()

# The preloaded form most scripts use.
seen["preloaded"] = stream(api.connect_get_namespaced_pod_exec, "web", "default",
                           command=["echo", "preloaded"],
                           stdin=False, stdout=True, stderr=True, tty=False)
print(json.dumps(seen))
