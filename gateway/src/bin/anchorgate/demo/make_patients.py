#!/usr/bin/env python3
"""Makes patients.json, the demo's data: three Synthea patients and their Conditions.

Source: the Synthea sample data set (Apache-2.0; synthetic, no real person), ndjson-10-patients.
Run from this directory:  python3 make_patients.py [SYNTHEA_NDJSON_DIR]
(default ../../../../../../shared/data/synthea/ndjson-10-patients, i.e. the workspace's shared data).

Choice: the three patients with the fewest Conditions among those that have at least three, plus the
patient with the fewest Conditions among those recorded as victims of intimate partner abuse
(SNOMED 706893006), the code the demo's third consent withholds; at most eight Conditions each, those
with that code first. Encounter references are dropped
(the demo loads no Encounters); everything else is Synthea's own.
"""
import collections
import json
import os
import sys

WITHHELD = "706893006"
here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    here, "../../../../../../shared/data/synthea/ndjson-10-patients")


def ndjson(name):
    with open(os.path.join(src, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


patients = {p["id"]: p for p in ndjson("Patient.000.ndjson")}
conds = collections.defaultdict(list)
for c in ndjson("Condition.000.ndjson"):
    c.pop("encounter", None)
    conds[c["subject"]["reference"].split("/")[-1]].append(c)


def has_code(condition):
    return any(cd["code"] == WITHHELD for cd in condition["code"]["coding"])


def has_withheld(pid):
    return any(has_code(c) for c in conds[pid])


withheld = min((p for p in patients if has_withheld(p)), key=lambda p: len(conds[p]))
others = sorted((p for p in patients if p != withheld and len(conds[p]) >= 3),
                key=lambda p: (len(conds[p]), p))[:2]
chosen = others + [withheld]
out = []
for pid in chosen:
    out.append(patients[pid])
    ordered = sorted(conds[pid], key=lambda c: c.get("onsetDateTime", ""))
    keep = [c for c in ordered if has_code(c)] + [c for c in ordered if not has_code(c)]
    out.extend(sorted(keep[:8], key=lambda c: c.get("onsetDateTime", "")))
with open(os.path.join(here, "patients.json"), "w", encoding="utf-8") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"patients.json: {len(chosen)} patients, {len(out)} resources")
