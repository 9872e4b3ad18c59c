#!/usr/bin/env python3
"""Renders a Kustomize base without kubectl: the resources its kustomization.yaml
lists, in order, as one JSON array on stdout ([{"file": ..., "resource": {...}}]).

Only what a plain base uses is understood (apiVersion, kind, resources: files, not
directories or URLs); any other field of kustomization.yaml (patches, generators,
namePrefix, labels, ...) is refused by name, so that this rendering never silently
differs from `kubectl kustomize`. Needs PyYAML (scripts/install-deps.sh).

usage: render.py DIR
"""
import json
import os
import sys

import yaml

KNOWN = {"apiVersion", "kind", "resources"}


def main(base):
    with open(os.path.join(base, "kustomization.yaml"), encoding="utf-8") as f:
        k = yaml.safe_load(f)
    if k.get("kind") != "Kustomization":
        sys.exit("kustomization.yaml: kind is not Kustomization")
    unknown = sorted(set(k) - KNOWN)
    if unknown:
        sys.exit("kustomization.yaml: fields this renderer does not apply: %s "
                 "(extend tests/deploy/render.py)" % ", ".join(unknown))
    out = []
    for name in k.get("resources") or []:
        path = os.path.join(base, name)
        if not os.path.isfile(path):
            sys.exit("kustomization.yaml: resource %s is not a file" % name)
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    out.append({"file": name, "resource": doc})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
