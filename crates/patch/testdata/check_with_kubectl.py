#!/usr/bin/env python3
"""Checks the cases of strategic.json against kubectl's own strategic merge
patch (`kubectl patch --local`), which shares Kubernetes' strategicpatch
package with the API server. Cases without a schema are skipped: kubectl
always knows the type. Run: python3 check_with_kubectl.py"""
import json, os, subprocess, sys, tempfile

def same(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b

here = os.path.dirname(os.path.abspath(__file__))
cases = json.load(open(os.path.join(here, "strategic.json")))
bad = checked = 0
for case in cases:
    if case["schema"] is None or case["name"].startswith("unknown field"):
        continue
    checked += 1
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(case["doc"], f)
    r = subprocess.run(["kubectl", "patch", "--local", "-f", f.name, "--type", "strategic",
                        "-p", json.dumps(case["patch"]), "-o", "json"], capture_output=True, text=True)
    os.unlink(f.name)
    if "want" in case:
        ok = r.returncode == 0 and same(json.loads(r.stdout), case["want"])
    else:
        ok = r.returncode != 0 and case["error"].lower() in r.stderr.lower()
    if not ok:
        bad += 1
        print("MISMATCH", case["name"], r.stdout or r.stderr)
print(f"{checked - bad} passed, {bad} failed, {len(cases) - checked} skipped")
sys.exit(1 if bad else 0)
