"""exec and port-forward from the Python client, which speaks the WebSocket
channel protocol (v4.channel.k8s.io) for both."""

import sys

from kubernetes import client
from kubernetes.stream import portforward, stream

from common import setup

ns, api = setup()
pod = sys.argv[2]
core = client.CoreV1Api(api)

out = stream(core.connect_get_namespaced_pod_exec, pod, ns,
             command=["sh", "-c", "echo hello from python"],
             stderr=True, stdin=False, stdout=True, tty=False)
print("exec:", out.strip())

# An exec with stdin and a non-zero exit, read through the error channel.
resp = stream(core.connect_get_namespaced_pod_exec, pod, ns,
              command=["sh", "-c", "read line; echo got $line; exit 4"],
              stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
resp.write_stdin("ping\n")
got = ""
while resp.is_open():
    resp.update(timeout=5)
    if resp.peek_stdout():
        got += resp.read_stdout()
    if resp.returncode is not None:
        break
resp.close()
assert got.strip() == "got ping", got
assert resp.returncode == 4, resp.returncode

pf = portforward(core.connect_get_namespaced_pod_portforward, pod, ns, ports="80")
sock = pf.socket(80)
sock.setblocking(True)
sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
data = b""
while True:
    chunk = sock.recv(4096)
    if not chunk:
        break
    data += chunk
sock.close()
assert b"Welcome to nginx!" in data, data[:200]
print("portforward: Welcome to nginx!")
print("ok")
