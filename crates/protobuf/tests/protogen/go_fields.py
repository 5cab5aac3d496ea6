#!/usr/bin/env python3
"""Writes go-fields.txt: how Kubernetes' Go types declare every field that
travels in protobuf, for the generator of src/generated.rs.

Go's protobuf marshaller writes every non-pointer field, zero or not, and a
pointer field only when it is set; its JSON encoder leaves out a zero field
tagged `omitempty` (structs excepted) and prints a nil pointer, slice or map
without `omitempty` as null. So what a field on the wire becomes in JSON
depends on two facts no other source carries: whether the Go field is a
pointer, and whether it is tagged `omitempty`. This script reads them from
the Go sources of the release Gantry serves:

    python3 crates/protobuf/tests/protogen/go_fields.py \\
        API APIMACHINERY APIEXTENSIONS_APISERVER \\
        > crates/protobuf/tests/protogen/go-fields.txt

where the three arguments are checkouts of k8s.io/api,
k8s.io/apimachinery and k8s.io/apiextensions-apiserver at v0.32.13
(Kubernetes 1.32). Each output line is

    <definition> <json name> <protobuf number> <Go type> [omitempty]

for each field of a struct with a `protobuf` tag, named like its OpenAPI
definition (io.k8s.api.apps.v1.DeploymentSpec); inlined fields have the
json name `-inline-`. The generator checks the numbers against k8s-pb.
"""

import os
import re
import sys

VERSION = "v0.32.13"

# (checkout index, directory under it, definition prefix)
PACKAGES = [
    (0, "apps/v1", "io.k8s.api.apps.v1"),
    (0, "authentication/v1", "io.k8s.api.authentication.v1"),
    (0, "authorization/v1", "io.k8s.api.authorization.v1"),
    (0, "autoscaling/v1", "io.k8s.api.autoscaling.v1"),
    (0, "autoscaling/v2", "io.k8s.api.autoscaling.v2"),
    (0, "batch/v1", "io.k8s.api.batch.v1"),
    (0, "certificates/v1", "io.k8s.api.certificates.v1"),
    (0, "coordination/v1", "io.k8s.api.coordination.v1"),
    (0, "core/v1", "io.k8s.api.core.v1"),
    (0, "discovery/v1", "io.k8s.api.discovery.v1"),
    (0, "events/v1", "io.k8s.api.events.v1"),
    (0, "networking/v1", "io.k8s.api.networking.v1"),
    (0, "policy/v1", "io.k8s.api.policy.v1"),
    (0, "rbac/v1", "io.k8s.api.rbac.v1"),
    (0, "scheduling/v1", "io.k8s.api.scheduling.v1"),
    (0, "storage/v1", "io.k8s.api.storage.v1"),
    (1, "pkg/apis/meta/v1", "io.k8s.apimachinery.pkg.apis.meta.v1"),
    (2, "pkg/apis/apiextensions/v1", "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1"),
]

STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.S | re.M)
# `Name Type `tags`` or, embedded, `pkg.Type `tags``.
FIELD = re.compile(r"^(?:(\w+)\s+)?([^\s`]+)\s+`([^`]*)`")


def fields(source):
    for struct in STRUCT.finditer(source):
        for line in struct.group(2).split("\n"):
            line = line.strip()
            if line.startswith("//"):
                continue
            m = FIELD.match(line)
            if not m:
                continue
            go_name, go_type, tags = m.groups()
            pb = re.search(r'protobuf:"[a-z0-9]+,(\d+),', tags)
            js = re.search(r'json:"([^"]*)"', tags)
            if not pb or not js:
                continue
            options = js.group(1).split(",")
            json_name = options[0] or ("-inline-" if "inline" in options else "")
            if json_name == "-":
                # Marshalled by hand (FieldsV1's Raw): the decoder's shapes.
                continue
            if not json_name:
                raise SystemExit(f"{struct.group(1)}.{go_name}: no json name in {tags}")
            omit = " omitempty" if "omitempty" in options[1:] else ""
            yield struct.group(1), json_name, int(pb.group(1)), go_type, omit


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    roots = sys.argv[1:]
    lines = []
    for index, directory, prefix in PACKAGES:
        path = os.path.join(roots[index], directory)
        for name in sorted(os.listdir(path)):
            if not name.endswith(".go") or name.endswith("_test.go") or name.startswith("zz_"):
                continue
            if name.startswith("generated") or name.endswith(".pb.go"):
                continue
            with open(os.path.join(path, name)) as f:
                for struct, json_name, number, go_type, omit in fields(f.read()):
                    lines.append(f"{prefix}.{struct} {json_name} {number} {go_type}{omit}")
    print(f"# Go declarations of the fields Kubernetes' protobuf carries, k8s.io/api {VERSION}")
    print("# and friends; written by go_fields.py, read by the generator. Do not edit.")
    for line in sorted(lines):
        print(line)


main()
