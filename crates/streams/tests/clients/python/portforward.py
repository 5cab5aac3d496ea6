"""Port-forward through the official Python client (WebSocket,
v4.channel.k8s.io, two channels per port with the port number first).

Usage: portforward.py KUBECONFIG PORT PORT CLOSED_PORT. Prints JSON.
"""
import json
import sys

from kubernetes import client, config
from kubernetes.stream import portforward

config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()
ports = [int(p) for p in sys.argv[2:4]]
closed = int(sys.argv[4])
seen = {}

pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default",
                 ports=",".join(str(p) for p in ports + [closed]))
for port in ports:
    sock = pf.socket(port)
    sock.setblocking(True)
    sock.settimeout(30)
    payload = ("hello %d\n" % port).encode() * 1000
    sock.sendall(payload)
    want = ("port %d\n" % port).encode() + payload
    got = b""
    while len(got) < len(want):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    seen[str(port)] = got == want
    sock.close()

# The forward to a closed port fails; the server says why on the error
# channel and the client closes the local socket.
sock = pf.socket(closed)
sock.settimeout(30)
try:
    rest = sock.recv(10)
except OSError:
    rest = b""
seen["closed_eof"] = rest == b""
seen["closed_error"] = pf.error(closed) or ""
print(json.dumps(seen))
