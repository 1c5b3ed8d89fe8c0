#!/usr/bin/env python3
"""Makes the test data in tests/data/ from the full sets in ../shared/data (python3 stdlib only).

  fhir-validator-cases.tar.gz   the HL7 validator cases, whole (cases.json, files/, README.md)
  synthea/ndjson/*.ndjson.gz    a Synthea bulk export cut down to PATIENTS and what they reference
  synthea/bundles/*.json.gz     BUNDLES of the Synthea transaction Bundles
  synthea/LICENSE-*             the Synthea data's licences, copied

The output is byte-for-byte reproducible: sorted tar members with fixed owners, modes and times, and
gzip headers without a name or a time. Run from anywhere:

  python3 tests/data/make-subset.py [--shared ../shared/data]
"""

import argparse
import gzip
import io
import json
import os
import re
import shutil
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))

# Three patients of ndjson-10-patients: one with every patient-linked type of the export (Device and
# AllergyIntolerance too), the one tests/load/gen_canned.py serves (first living patient by id with
# at least 50 Encounters), and a deceased one with the longest history of the three.
PATIENTS = [
    "a5cb8ce9-cec6-6b23-0990-cbaf753578a4",
    "6a4160eb-a793-2f86-2302-378626f46cce",
    "129c6ac7-8d06-89de-ad63-0204a93e76c3",
]

# Two bundles that together hold all 16 resource types of the bundle set (Adolph_Smith lacks only
# AllergyIntolerance, Alden_Considine only ImagingStudy), and the smallest bundle. The two zero-byte
# files with hostile names are left out.
BUNDLES = [
    "Adolph_Smith_0c6b1f3d-edb2-422b-a0af-a262fb90ed07.json",
    "Alden_Considine_42ba9929-3ab7-44fd-8f64-401c936fd769.json",
    "Alberto_Atencio_fc712d1f-5a2e-4407-9c55-a2a2bad623c2.json",
]

# Resources no patient owns; kept when a kept resource references them.
SHARED_TYPES = {"Organization", "Location", "Practitioner", "PractitionerRole"}

CONDITIONAL = re.compile(r"^([A-Za-z]+)\?identifier=([^|]*)\|(.*)$")


def gz(data: bytes) -> bytes:
    """gzip -9 without a file name or a time in the header."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=out, mtime=0) as f:
        f.write(data)
    return out.getvalue()


def write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    print(f"{os.path.relpath(path, HERE)}: {len(data)} bytes")


def validator_cases(src: str, out: str) -> None:
    """The whole case folder as one reproducible tar.gz (members under `fhir-validator-cases/`)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for root, dirs, files in os.walk(src):
            dirs.sort()
            paths += [os.path.join(root, f) for f in files]
        for path in sorted(paths):
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            with open(path, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(f"fhir-validator-cases/{rel}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    write(out, gz(buf.getvalue()))


def patient_of(r: dict):
    if r["resourceType"] == "Patient":
        return r["id"]
    ref = (r.get("subject") or r.get("patient") or {}).get("reference", "")
    return ref[len("Patient/"):] if ref.startswith("Patient/") else None


def identifiers_referenced(v, out: set) -> None:
    """Every (system, value) a reference names: `Type?identifier=system|value`, or a logical
    `{"identifier": {"system", "value"}}`."""
    if isinstance(v, dict):
        ref = v.get("reference")
        if isinstance(ref, str) and (m := CONDITIONAL.match(ref)):
            out.add((m.group(2), m.group(3)))
        ident = v.get("identifier")
        if isinstance(ident, dict) and "value" in ident:
            out.add((ident.get("system", ""), ident["value"]))
        for x in v.values():
            identifiers_referenced(x, out)
    elif isinstance(v, list):
        for x in v:
            identifiers_referenced(x, out)


def own_identifiers(r: dict) -> set:
    return {(i.get("system", ""), i.get("value")) for i in r.get("identifier", [])}


def ndjson_subset(src: str, out_dir: str) -> None:
    files = sorted(f for f in os.listdir(src) if f.endswith(".ndjson"))
    lines = {}  # file -> [(text, resource)]
    for f in files:
        with open(os.path.join(src, f), encoding="utf-8") as fh:
            lines[f] = [(l, json.loads(l)) for l in fh.read().splitlines() if l.strip()]
    keep = set()  # (file, line number)
    wanted = set()
    for f in files:
        if f == "log.ndjson":
            continue
        for i, (_, r) in enumerate(lines[f]):
            if patient_of(r) in PATIENTS:
                keep.add((f, i))
                identifiers_referenced(r, wanted)
    # The shared resources referenced, to a fixpoint (a PractitionerRole names its organisation and
    # locations); and the roles of the practitioners kept.
    while True:
        before = len(keep)
        for f in files:
            for i, (_, r) in enumerate(lines[f]):
                if (f, i) in keep or r.get("resourceType") not in SHARED_TYPES:
                    continue
                role_of_kept = r["resourceType"] == "PractitionerRole" and (
                    (r.get("practitioner", {}).get("identifier", {}).get("system", ""),
                     r.get("practitioner", {}).get("identifier", {}).get("value"))
                    in wanted
                )
                if own_identifiers(r) & wanted or role_of_kept:
                    keep.add((f, i))
                    identifiers_referenced(r, wanted)
        if len(keep) == before:
            break
    found = {p for f in files for i, (_, r) in enumerate(lines[f]) if (f, i) in keep
             for p in [patient_of(r)] if r["resourceType"] == "Patient"}
    if found != set(PATIENTS):
        sys.exit(f"make-subset: patients not found: {sorted(set(PATIENTS) - found)}")
    for f in files:
        if f == "log.ndjson":
            text = [l for l, _ in lines[f]]  # the export's log, kept whole
        else:
            text = [l for i, (l, _) in enumerate(lines[f]) if (f, i) in keep]
        if text:
            write(os.path.join(out_dir, f + ".gz"), gz(("\n".join(text) + "\n").encode()))
    print(f"ndjson: {len(keep)} resources of {sum(len(v) for k, v in lines.items() if k != 'log.ndjson')}")


def bundles_subset(src: str, out_dir: str) -> None:
    for name in BUNDLES:
        with open(os.path.join(src, name), "rb") as f:
            write(os.path.join(out_dir, name + ".gz"), gz(f.read()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(HERE, "../../../shared/data"),
                    help="the full sets (default: ../shared/data beside the repository)")
    args = ap.parse_args()
    shared = os.path.normpath(args.shared)
    validator_cases(os.path.join(shared, "fhir-validator-cases"),
                    os.path.join(HERE, "fhir-validator-cases.tar.gz"))
    synthea = os.path.join(HERE, "synthea")
    for sub in ("ndjson", "bundles"):
        shutil.rmtree(os.path.join(synthea, sub), ignore_errors=True)
    ndjson_subset(os.path.join(shared, "synthea/ndjson-10-patients"), os.path.join(synthea, "ndjson"))
    bundles_subset(os.path.join(shared, "synthea/bundles"), os.path.join(synthea, "bundles"))
    for lic in sorted(os.listdir(os.path.join(shared, "synthea"))):
        if lic.startswith("LICENSE-"):
            shutil.copyfile(os.path.join(shared, "synthea", lic), os.path.join(synthea, lic))


if __name__ == "__main__":
    main()
