#!/usr/bin/env python3
"""Generate the canned FHIR responses served by the load harness' static upstream.

python3 stdlib only.  Input: a Synthea bulk-export directory (``*.ndjson``, or gzipped
``*.ndjson.gz`` as in the repository's tests/data/synthea/ndjson).
Output (into --out):

  patient.json          one Patient, as a FHIR read would return it
                        (meta.versionId / meta.lastUpdated added)
  patient-create.json   request body for the POST /fhir/Patient benchmark
                        (the same patient without id/meta)
  patient-created.json  canned 201 response body for POST /fhir/Patient
  search50.json         searchset Bundle: 50 Encounters of that patient,
                        total = all of the patient's Encounters, self/next links
                        and entry fullUrls absolute on the *upstream* base
  metadata.json         minimal CapabilityStatement
  canned.env            shell-sourceable facts (ids, paths) for run.sh

The upstream base is only known at run time (free port), so run.sh calls this
script into a temp dir on every run; nothing generated is committed.
Output is deterministic for a given input and --upstream-base.
"""
import argparse
import gzip
import json
import os
import sys
import uuid

SEARCH_TYPE = "Encounter"
PAGE = 50
# Fixed timestamp (the Synthea export's transactionTime) so output is reproducible.
LAST_UPDATED = "2024-08-06T18:12:57.000+00:00"


def read_ndjson(path):
    """The resources of `path`, or of `path`.gz when only that exists."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        with gzip.open(path + ".gz", "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def dump(obj, path):
    # Compact, like most servers with _pretty=false; UTF-8 kept as is.
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, separators=(",", ":"))
    return os.path.getsize(path)


def served(resource, version="1"):
    """Return a copy of `resource` as a server would serve it (meta filled in)."""
    res = json.loads(json.dumps(resource))
    meta = res.setdefault("meta", {})
    meta["versionId"] = version
    meta["lastUpdated"] = LAST_UPDATED
    # keep a stable key order: resourceType, id, meta, ...
    ordered = {"resourceType": res.pop("resourceType"), "id": res.pop("id"),
               "meta": res.pop("meta")}
    ordered.update(res)
    return ordered


def pick_patient(patients, by_subject, wanted):
    if wanted:
        for p in patients:
            if p["id"] == wanted:
                return p
        sys.exit(f"gen_canned: patient {wanted} not found")
    # Deterministic default: first living patient (by id) with >= PAGE encounters.
    for p in sorted(patients, key=lambda p: p["id"]):
        if "deceasedDateTime" not in p and len(by_subject.get(p["id"], [])) >= PAGE:
            return p
    for p in sorted(patients, key=lambda p: p["id"]):
        if len(by_subject.get(p["id"], [])) >= PAGE:
            return p
    sys.exit(f"gen_canned: no patient with >= {PAGE} {SEARCH_TYPE} resources")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="Synthea ndjson directory")
    ap.add_argument("--upstream-base", required=True,
                    help="absolute FHIR base of the static upstream, e.g. http://127.0.0.1:8081/fhir")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--patient-id", default="", help="override the chosen patient")
    args = ap.parse_args()

    base = args.upstream_base.rstrip("/")
    os.makedirs(args.out, exist_ok=True)

    patients = read_ndjson(os.path.join(args.data, "Patient.000.ndjson"))
    others = read_ndjson(os.path.join(args.data, f"{SEARCH_TYPE}.000.ndjson"))
    by_subject = {}
    for r in others:
        ref = (r.get("subject") or r.get("patient") or {}).get("reference", "")
        if ref.startswith("Patient/"):
            by_subject.setdefault(ref[len("Patient/"):], []).append(r)

    patient = pick_patient(patients, by_subject, args.patient_id)
    pid = patient["id"]
    matches = by_subject[pid]
    sizes = {}

    # --- Patient read ---------------------------------------------------
    sizes["patient.json"] = dump(served(patient), os.path.join(args.out, "patient.json"))

    # --- Patient create (request body + canned 201 response) -------------
    body = {k: v for k, v in patient.items() if k not in ("id", "meta")}
    sizes["patient-create.json"] = dump(body, os.path.join(args.out, "patient-create.json"))
    sizes["patient-created.json"] = dump(served(patient),
                                         os.path.join(args.out, "patient-created.json"))

    # --- 50-entry searchset ----------------------------------------------
    query = f"patient={pid}&_count={PAGE}"
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{base}/{SEARCH_TYPE}?{query}")),
        "meta": {"lastUpdated": LAST_UPDATED},
        "type": "searchset",
        "total": len(matches),
        "link": [
            {"relation": "self", "url": f"{base}/{SEARCH_TYPE}?{query}"},
            {"relation": "next", "url": f"{base}/{SEARCH_TYPE}?{query}&_offset={PAGE}"},
        ],
        "entry": [
            {"fullUrl": f"{base}/{SEARCH_TYPE}/{r['id']}",
             "resource": served(r),
             "search": {"mode": "match"}}
            for r in matches[:PAGE]
        ],
    }
    sizes["search50.json"] = dump(bundle, os.path.join(args.out, "search50.json"))

    # --- CapabilityStatement ---------------------------------------------
    cap = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": LAST_UPDATED[:10],
        "kind": "instance",
        "software": {"name": "anchorgate-load-static-upstream"},
        "implementation": {"description": "canned static upstream (nginx)", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "resource": [
                {"type": "Patient", "interaction": [{"code": "read"}, {"code": "create"}]},
                {"type": SEARCH_TYPE, "interaction": [{"code": "search-type"}],
                 "searchParam": [{"name": "patient", "type": "reference"}]},
            ],
        }],
    }
    sizes["metadata.json"] = dump(cap, os.path.join(args.out, "metadata.json"))

    with open(os.path.join(args.out, "canned.env"), "w", encoding="utf-8") as fh:
        fh.write(f"CANNED_PATIENT_ID={pid}\n")
        fh.write(f"CANNED_SEARCH_TYPE={SEARCH_TYPE}\n")
        fh.write(f"CANNED_SEARCH_QUERY='{query}'\n")
        fh.write(f"CANNED_SEARCH_TOTAL={len(matches)}\n")
        for name, size in sizes.items():
            key = name.replace(".json", "").replace("-", "_").upper()
            fh.write(f"CANNED_SIZE_{key}={size}\n")
    for name, size in sizes.items():
        print(f"gen_canned: {name:22s} {size:7d} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
