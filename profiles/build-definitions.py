#!/usr/bin/env python3
"""Build Anchorgate's compact, compressed FHIR R4 definitions bundles.

Downloads three pinned npm packages (with `npm pack`, into a temporary
directory), checks each tarball against the sha512 integrity pinned below,
keeps only what instance validation needs, and writes deterministic
gzip-compressed NDJSON files next to this script:

  r4-core.ndjson.gz        R4 4.0.1 StructureDefinitions (with snapshots)
                           and SearchParameters
  r4-terminology.ndjson.gz R4 4.0.1 ValueSets (expanded where possible)
                           and CodeSystems
  ips-2.0.0.ndjson.gz      IPS 2.0.0 StructureDefinitions and ValueSets
  extension-contexts-5.3.0-ballot-tc1.ndjson.gz
                           where each core extension may be used, by the
                           extension pack (url, version, context only)
  definitions.lock.json    package pins, counts, output hashes

Usage:
  python3 profiles/build-definitions.py            # rebuild in place
  python3 profiles/build-definitions.py --check    # rebuild in a temp dir,
                                                   # exit 1 if it differs
  --tarballs DIR   use NAME-VERSION.tgz from DIR when present (offline);
                   tarballs that have to be downloaded are saved there
  --out DIR        write somewhere else than the script's directory
  --fetch-only     only download the pinned tarballs into --tarballs DIR and
                   check their integrity (the R4 examples corpus test reads
                   hl7.fhir.r4.examples-4.0.1.tgz from target/fhir-packages/)

Python 3 standard library only (plus the `npm` client when a tarball has to
be downloaded). The compaction rules are documented in profiles/README.md;
keep the two in step.
"""

import argparse
import base64
import copy
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import tempfile
from decimal import Decimal

FORMAT = "anchorgate-compact-definitions/1"
FHIR_VERSION = "4.0.1"

EXAMPLES = "hl7.fhir.r4.examples"
EXPANSIONS = "hl7.fhir.r4.expansions"
IPS = "hl7.fhir.uv.ips"
EXTENSIONS = "hl7.fhir.uv.extensions.r4"

# Exact pins. `integrity` is npm's sha512 of the tarball; a package
# republished under the same version would fail the build.
PACKAGES = [
    {
        "name": EXAMPLES,
        "version": "4.0.1",
        "integrity": "sha512-DXBdIZOeQaSKIgCU7w6HOC7sw/6BzylmipLkBW4f//pT+Bc94x+8LImwTdvaNThPJoOzpBzvxAzNqjeu3X/zLw==",
    },
    {
        "name": EXPANSIONS,
        "version": "4.0.1",
        "integrity": "sha512-E0LjAGKIEla9XdM98cOzE8fv+syczVSzzqjE/29rhK1jK52kSByzSM+dQuQM0j4BiBIpMwZydQnKHV11rV5IlQ==",
    },
    {
        "name": IPS,
        "version": "2.0.0",
        "integrity": "sha512-4PWToJ9b1FgXsm9DIvHiU6HO9Z5m75jxk0e0MXOmhFlf2m2slk/d6RoiSYIChKJlvmtJ7GbRftt7PphlwmZcbQ==",
    },
    # IPS 2.0.0 profiles point at four extensions of this exact version
    # (`...|5.3.0-ballot-tc1`); only the StructureDefinitions IPS reaches
    # (transitively) are taken from it, and the contexts of all its core
    # extensions (the HL7 validator judges where R4 core extensions may be
    # used by this pack).
    {
        "name": EXTENSIONS,
        "version": "5.3.0-ballot-tc1",
        "integrity": "sha512-mhPmWj0dZvIC7JQLkqxT42/UpoIyYwFtSiIZbhX/ArfX96hR5oTqNvAUvMD+dMH45m4mGMQ19WyCZFpP1OLEbQ==",
    },
]

OUT_CORE = "r4-core.ndjson.gz"
OUT_TERM = "r4-terminology.ndjson.gz"
OUT_IPS = "ips-2.0.0.ndjson.gz"
OUT_EXT_CONTEXTS = "extension-contexts-5.3.0-ballot-tc1.ndjson.gz"
LOCK = "definitions.lock.json"

WANTED_TYPES = ("StructureDefinition", "SearchParameter", "ValueSet", "CodeSystem")

# Example SearchParameters of the R4 examples package (ids); not definitions.
EXAMPLE_SEARCH_PARAMETER_IDS = {"example", "example-extension", "example-reference"}

COMPUTED_EXPANSION_ID = "urn:anchorgate:expansion-computed-from-compose"

# --- what is kept --------------------------------------------------------

SD_TOP_KEYS = (
    "resourceType", "id", "url", "version", "name", "status", "fhirVersion",
    "kind", "abstract", "context", "contextInvariant", "type",
    "baseDefinition", "derivation",
)
TYPE_KEYS = ("code", "profile", "targetProfile", "aggregation", "versioning")
TYPE_EXTENSIONS = {
    "http://hl7.org/fhir/StructureDefinition/regex",
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type",
}
CONSTRAINT_KEYS = ("key", "severity", "human", "expression")
CONSTRAINT_EXTENSIONS = {
    "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice",
}
BINDING_EXTENSIONS = {
    "http://hl7.org/fhir/StructureDefinition/elementdefinition-maxValueSet",
    "http://hl7.org/fhir/StructureDefinition/elementdefinition-minValueSet",
    "http://hl7.org/fhir/tools/StructureDefinition/additional-binding",
}
SLICING_KEYS = ("discriminator", "ordered", "rules")
EXPANSION_EXTENSIONS = {
    "http://hl7.org/fhir/StructureDefinition/valueset-unclosed",
    "http://hl7.org/fhir/StructureDefinition/valueset-toocostly",
}
CONCEPT_PROPERTIES = {
    "notSelectable", "abstract", "status", "inactive", "deprecated",
    "child", "parent", "subsumedBy",
}
SP_KEYS = (
    "resourceType", "id", "url", "name", "code", "base", "type", "expression",
    "target", "multipleOr", "multipleAnd", "comparator", "modifier", "chain",
    "component",
)


def pick(src, keys):
    return {k: src[k] for k in keys if k in src}


def filter_extensions(obj, allowed):
    ext = [e for e in obj.get("extension", []) if e.get("url") in allowed]
    return ext


def compact_element(e):
    out = {}
    for k in ("id", "path", "sliceName", "min", "max"):
        if k in e:
            out[k] = e[k]
    if "base" in e:
        out["base"] = pick(e["base"], ("path", "min", "max"))
    if "contentReference" in e:
        out["contentReference"] = e["contentReference"]
    if "type" in e:
        types = []
        for t in e["type"]:
            nt = {}
            ext = filter_extensions(t, TYPE_EXTENSIONS)
            if ext:
                nt["extension"] = ext
            nt.update(pick(t, TYPE_KEYS))
            types.append(nt)
        out["type"] = types
    for k in e:
        if k.startswith(("fixed", "pattern", "minValue", "maxValue")) and not k.startswith("_"):
            out[k] = e[k]
    if "maxLength" in e:
        out["maxLength"] = e["maxLength"]
    if "constraint" in e:
        cs = []
        for c in e["constraint"]:
            nc = {}
            ext = filter_extensions(c, CONSTRAINT_EXTENSIONS)
            if ext:
                nc["extension"] = ext
            nc.update(pick(c, CONSTRAINT_KEYS))
            cs.append(nc)
        out["constraint"] = cs
    if "binding" in e:
        b = e["binding"]
        nb = {}
        ext = filter_extensions(b, BINDING_EXTENSIONS)
        if ext:
            nb["extension"] = ext
        nb.update(pick(b, ("strength", "valueSet")))
        out["binding"] = nb
    if "slicing" in e:
        out["slicing"] = pick(e["slicing"], SLICING_KEYS)
    for k in ("isModifier", "isSummary"):
        if k in e:
            out[k] = e[k]
    return out


def compact_structure_definition(sd):
    out = pick(sd, SD_TOP_KEYS)
    if "snapshot" in sd:
        out["snapshot"] = {"element": [compact_element(e) for e in sd["snapshot"]["element"]]}
    elif "differential" in sd:
        out["differential"] = {"element": [compact_element(e) for e in sd["differential"]["element"]]}
    return out


def compact_search_parameter(sp):
    out = pick(sp, SP_KEYS)
    if "component" in out:
        out["component"] = [pick(c, ("definition", "expression")) for c in out["component"]]
    return out


def compact_contains(items):
    res = []
    for c in items:
        n = pick(c, ("system", "version", "code", "display", "abstract", "inactive"))
        if c.get("contains"):
            n["contains"] = compact_contains(c["contains"])
        res.append(n)
    return res


def compact_compose(compose):
    out = {}
    if "inactive" in compose:
        out["inactive"] = compose["inactive"]
    for part in ("include", "exclude"):
        if part not in compose:
            continue
        items = []
        for inc in compose[part]:
            n = pick(inc, ("system", "version"))
            if "concept" in inc:
                n["concept"] = [pick(c, ("code", "display")) for c in inc["concept"]]
            if "filter" in inc:
                n["filter"] = [pick(f, ("property", "op", "value")) for f in inc["filter"]]
            if "valueSet" in inc:
                n["valueSet"] = inc["valueSet"]
            items.append(n)
        out[part] = items
    return out


def compact_value_set(vs, expansion):
    """`expansion` is an already compact expansion or None."""
    out = pick(vs, ("resourceType", "id", "url", "version", "name", "status"))
    if expansion is not None:
        out["expansion"] = expansion
    elif "compose" in vs:
        out["compose"] = compact_compose(vs["compose"])
    return out


def compact_official_expansion(x):
    n = {}
    ext = filter_extensions(x, EXPANSION_EXTENSIONS)
    if ext:
        n["extension"] = ext
    for k in ("total", "offset"):
        if k in x:
            n[k] = x[k]
    n["contains"] = compact_contains(x.get("contains", []))
    return n


def compact_concepts(items):
    res = []
    for c in items:
        n = pick(c, ("code", "display"))
        props = [p for p in c.get("property", []) if p.get("code") in CONCEPT_PROPERTIES]
        if props:
            n["property"] = props
        if c.get("concept"):
            n["concept"] = compact_concepts(c["concept"])
        res.append(n)
    return res


def compact_code_system(cs):
    out = pick(cs, ("resourceType", "id", "url", "version", "name", "status",
                    "caseSensitive", "valueSet", "hierarchyMeaning", "content",
                    "supplements"))
    props = [pick(p, ("code", "uri", "type")) for p in cs.get("property", [])
             if p.get("code") in CONCEPT_PROPERTIES]
    if props:
        out["property"] = props
    if cs.get("concept"):
        out["concept"] = compact_concepts(cs["concept"])
    return out


# --- ValueSet expansion from compose -------------------------------------

class CodeSystemIndex:
    """Codes, displays and is-a hierarchy of one complete CodeSystem."""

    def __init__(self, cs):
        self.order = []
        self.display = {}
        self.abstract = set()
        self.not_selectable = set()
        self.inactive = set()
        self.children = {}
        self._props = []
        self._walk(cs.get("concept", []), None)
        # v3 code systems add extra parents with a `child` property;
        # others may use `parent` / `subsumedBy`.
        for code, props in self._props:
            for p in props:
                v = p.get("valueCode")
                if v is None:
                    continue
                if p["code"] == "child":
                    self.children.setdefault(code, []).append(v)
                elif p["code"] in ("parent", "subsumedBy"):
                    self.children.setdefault(v, []).append(code)
        del self._props

    def _walk(self, concepts, parent):
        for c in concepts:
            code = c["code"]
            if code not in self.display:
                self.order.append(code)
                self.display[code] = c.get("display")
            if parent is not None:
                self.children.setdefault(parent, []).append(code)
            props = c.get("property", [])
            self._props.append((code, props))
            for p in props:
                pc = p.get("code")
                if pc == "notSelectable" and p.get("valueBoolean") is True:
                    self.not_selectable.add(code)
                elif pc == "abstract" and p.get("valueBoolean") is True:
                    self.abstract.add(code)
                elif pc == "inactive" and p.get("valueBoolean") is True:
                    self.inactive.add(code)
                elif pc == "status" and p.get("valueCode") in ("deprecated", "retired", "inactive"):
                    self.inactive.add(code)
            self._walk(c.get("concept", []), code)

    def descendants(self, code, include_self):
        seen = set()
        stack = [code]
        while stack:
            c = stack.pop()
            for ch in self.children.get(c, []):
                if ch not in seen:
                    seen.add(ch)
                    stack.append(ch)
        if include_self:
            seen.add(code)
        else:
            seen.discard(code)
        return seen


class Expander:
    def __init__(self, code_systems, value_sets, official):
        self.cs = code_systems          # url -> raw CodeSystem
        self.vs = value_sets            # url -> raw ValueSet
        self.official = official        # url -> compact expansion
        self.index = {}
        self.memo = {}

    def cs_index(self, url):
        cs = self.cs.get(url)
        if cs is None or cs.get("content") != "complete":
            return None
        if url not in self.index:
            self.index[url] = CodeSystemIndex(cs)
        return self.index[url]

    def entry(self, system, code, display, idx):
        e = {"system": system, "code": code}
        if display is None and idx is not None:
            display = idx.display.get(code)
        if display is not None:
            e["display"] = display
        if idx is not None and code in idx.abstract:
            e["abstract"] = True
        if idx is not None and code in idx.inactive:
            e["inactive"] = True
        return e

    def expand_url(self, url, stack, use_official=True):
        url = url.split("|", 1)[0]
        if use_official and url in self.official:
            return flatten(self.official[url])
        if url in stack:
            return None
        key = (url, use_official)
        if key in self.memo:
            return self.memo[key]
        vs = self.vs.get(url)
        res = None
        if vs is not None and "compose" in vs:
            res = self.expand_compose(vs["compose"], stack | {url})
        self.memo[key] = res
        return res

    def expand_part(self, inc, stack, inactive):
        system = inc.get("system")
        result = None
        if system is not None:
            idx = self.cs_index(system)
            if "concept" in inc:
                if "filter" in inc:
                    return None
                result = [self.entry(system, c["code"], c.get("display"), idx) for c in inc["concept"]]
            elif "filter" in inc:
                if idx is None:
                    return None
                codes = set(idx.order)
                for f in inc["filter"]:
                    if f.get("property") != "concept":
                        return None
                    op, val = f.get("op"), f.get("value")
                    if val not in idx.display:
                        return None
                    if op == "is-a":
                        sel = idx.descendants(val, True)
                    elif op == "descendent-of":
                        sel = idx.descendants(val, False)
                    elif op == "is-not-a":
                        sel = set(idx.order) - idx.descendants(val, True)
                    elif op == "=":
                        sel = {val}
                    else:
                        return None
                    codes &= sel
                result = [self.entry(system, c, None, idx) for c in idx.order
                          if c in codes and self.selectable(idx, c, inactive)]
            else:
                if idx is None:
                    return None
                result = [self.entry(system, c, None, idx) for c in idx.order
                          if self.selectable(idx, c, inactive)]
        for ref in inc.get("valueSet", []):
            sub = self.expand_url(ref, stack)
            if sub is None:
                return None
            if result is None:
                result = sub
            else:
                keys = {(e["system"], e["code"]) for e in sub}
                result = [e for e in result if (e["system"], e["code"]) in keys]
        return result

    @staticmethod
    def selectable(idx, code, inactive):
        # notSelectable (grouping) concepts are never in an expansion (the
        # published R4 expansions leave them out too). Deprecated/retired
        # concepts stay in, flagged `inactive: true`: the published
        # expansions are not consistent about them (v2 deprecated codes
        # dropped, v3 retired codes kept), and a gateway should rather warn
        # than reject. `inactive` (compose.inactive) is accepted for clarity.
        return code not in idx.not_selectable

    def expand_compose(self, compose, stack):
        out = []
        seen = set()
        inactive = compose.get("inactive") is True
        for inc in compose.get("include", []):
            part = self.expand_part(inc, stack, inactive)
            if part is None:
                return None
            for e in part:
                k = (e["system"], e["code"])
                if k not in seen:
                    seen.add(k)
                    out.append(e)
        for exc in compose.get("exclude", []):
            part = self.expand_part(exc, stack, True)
            if part is None:
                return None
            drop = {(e["system"], e["code"]) for e in part}
            out = [e for e in out if (e["system"], e["code"]) not in drop]
        return out


def flatten(expansion):
    out = []

    def walk(items):
        for c in items:
            if "code" in c:
                out.append({k: c[k] for k in ("system", "code", "display", "abstract", "inactive") if k in c})
            walk(c.get("contains", []))
    walk(expansion.get("contains", []))
    return out


def computed_expansion(entries):
    return {"identifier": COMPUTED_EXPANSION_ID, "total": len(entries), "contains": entries}


# --- JSON / NDJSON / gzip -------------------------------------------------

class _NeedsSlowPath(Exception):
    pass


def _raise(_o):
    raise _NeedsSlowPath()


def dumps(obj):
    """Compact JSON; Decimal numbers keep their literal text (1.50 stays 1.50)."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_raise)
    except _NeedsSlowPath:
        parts = []
        _enc(obj, parts.append)
        return "".join(parts)


def _enc(o, w):
    if isinstance(o, dict):
        w("{")
        first = True
        for k, v in o.items():
            if not first:
                w(",")
            first = False
            w(json.dumps(k, ensure_ascii=False))
            w(":")
            _enc(v, w)
        w("}")
    elif isinstance(o, list):
        w("[")
        for i, v in enumerate(o):
            if i:
                w(",")
            _enc(v, w)
        w("]")
    elif isinstance(o, Decimal):
        w(str(o))
    else:
        w(json.dumps(o, ensure_ascii=False))


def sort_key(r):
    return (r["resourceType"], r.get("url", ""), r.get("version", ""), r.get("id", ""))


def ndjson_bytes(resources):
    lines = [dumps(r) for r in sorted(resources, key=sort_key)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def gzip_bytes(data):
    buf = io.BytesIO()
    # filename='' and mtime=0: no name or time in the header -> reproducible.
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as g:
        g.write(data)
    return buf.getvalue()


def sha256(b):
    return hashlib.sha256(b).hexdigest()


# --- packages -------------------------------------------------------------

def tarball_name(pkg):
    return "%s-%s.tgz" % (pkg["name"], pkg["version"])


def npm_integrity(data):
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def fetch(pkg, cache_dir, tmp):
    name = tarball_name(pkg)
    if cache_dir and os.path.exists(os.path.join(cache_dir, name)):
        path = os.path.join(cache_dir, name)
        source = "local"
    else:
        # Absolute: npm runs with cwd=tmp, so a relative --pack-destination would land there.
        dest = os.path.abspath(cache_dir or tmp)
        os.makedirs(dest, exist_ok=True)
        spec = "%s@%s" % (pkg["name"], pkg["version"])
        path = os.path.join(dest, name)
        if shutil.which("npm"):
            print("npm pack %s" % spec, file=sys.stderr)
            subprocess.run(
                ["npm", "pack", spec, "--json", "--ignore-scripts", "--pack-destination", dest],
                check=True, cwd=tmp, stdout=subprocess.DEVNULL,
            )
            source = "npm"
        else:
            # No npm on this machine: the registry serves the same tarball over HTTPS; the pinned
            # integrity below is what makes either source trustworthy.
            url = "https://registry.npmjs.org/%s/-/%s-%s.tgz" % (
                pkg["name"], pkg["name"].rsplit("/", 1)[-1], pkg["version"])
            print("GET %s" % url, file=sys.stderr)
            with urllib.request.urlopen(url, timeout=300) as r, open(path, "wb") as out:
                shutil.copyfileobj(r, out)
            source = "registry"
    with open(path, "rb") as f:
        data = f.read()
    got = npm_integrity(data)
    if got != pkg["integrity"]:
        sys.exit("integrity mismatch for %s: got %s, pinned %s" % (name, got, pkg["integrity"]))
    return data, source


def read_package(data, accept):
    """Top-level package/* files that `accept(filename)`; returns
    (package.json, [(filename, resource)])."""
    manifest = None
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for m in tf.getmembers():
            if not m.isfile() or not m.name.startswith("package/"):
                continue
            rel = m.name[len("package/"):]
            if "/" in rel:
                continue
            if rel == "package.json":
                manifest = json.loads(tf.extractfile(m).read().decode("utf-8-sig"))
                continue
            if not accept(rel):
                continue
            raw = tf.extractfile(m).read().decode("utf-8-sig")
            try:
                res = json.loads(raw, parse_float=Decimal)
            except ValueError:
                continue
            if isinstance(res, dict) and res.get("resourceType") in WANTED_TYPES:
                out.append((rel, res))
    out.sort(key=lambda t: t[0])
    return manifest, out


def wanted_prefix(rel):
    return rel.startswith(tuple(t + "-" for t in WANTED_TYPES))


# --- build ----------------------------------------------------------------

def build(out_dir, cache_dir):
    tmp = tempfile.mkdtemp(prefix="anchorgate-defs-")
    try:
        return _build(out_dir, cache_dir, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def by_url(items, label, notes):
    res = {}
    for rel, r in items:
        u = r.get("url")
        if u in res:
            notes.append("%s: duplicate url %s (%s), first kept" % (label, u, rel))
            continue
        res[u] = r
    return res


def _build(out_dir, cache_dir, tmp):
    notes = []
    pkg_info = []
    contents = {}
    for pkg in PACKAGES:
        data, source = fetch(pkg, cache_dir, tmp)
        if pkg["name"] == EXPANSIONS:
            accept = lambda rel: rel.startswith("ValueSet-")
        elif pkg["name"] == EXTENSIONS:
            accept = lambda rel: rel.startswith("StructureDefinition-")
        else:
            accept = wanted_prefix
        manifest, items = read_package(data, accept)
        if manifest.get("name") != pkg["name"] or manifest.get("version") != pkg["version"]:
            sys.exit("unexpected package.json in %s" % tarball_name(pkg))
        contents[pkg["name"]] = items
        counts = {}
        for _, r in items:
            counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
        pkg_info.append({
            "name": pkg["name"],
            "version": pkg["version"],
            "integrity": pkg["integrity"],
            "shasum": hashlib.sha1(data).hexdigest(),
            "tarballBytes": len(data),
            "license": manifest.get("license"),
            "fhirVersions": manifest.get("fhirVersions"),
            "dependencies": manifest.get("dependencies", {}),
            "filesRead": dict(sorted(counts.items())),
        })
        print("%-24s %s  %s" % (pkg["name"], pkg["version"], dict(sorted(counts.items()))), file=sys.stderr)

    # --- R4 core (examples package) ---
    ex = contents[EXAMPLES]
    core_sd, core_sp, core_vs, core_cs = [], [], [], []
    for rel, r in ex:
        rt = r["resourceType"]
        if rt == "StructureDefinition":
            if "snapshot" not in r:
                notes.append("%s: StructureDefinition %s has no snapshot (an example profile); left out"
                             % (EXAMPLES, r["url"]))
                continue
            core_sd.append((rel, r))
        elif rt == "SearchParameter":
            if r.get("id") in EXAMPLE_SEARCH_PARAMETER_IDS:
                notes.append("%s: example SearchParameter %s left out" % (EXAMPLES, r["url"]))
                continue
            core_sp.append((rel, r))
        elif rt == "ValueSet":
            core_vs.append((rel, r))
        elif rt == "CodeSystem":
            core_cs.append((rel, r))
    sd_map = by_url(core_sd, "StructureDefinition", notes)
    sp_map = by_url(core_sp, "SearchParameter", notes)
    vs_map = by_url(core_vs, "ValueSet", notes)
    cs_map = by_url(core_cs, "CodeSystem", notes)

    # --- official expansions ---
    # The expansions tarball holds most ValueSets twice (`X` and `X.json`,
    # two builds with identical codes); keep the most recently updated.
    official_raw = {}
    for rel, r in contents[EXPANSIONS]:
        if "expansion" not in r:
            continue
        u = r["url"]
        key = (r.get("meta", {}).get("lastUpdated", ""), rel)
        if u not in official_raw or key > official_raw[u][0]:
            official_raw[u] = (key, r)
    official = {u: compact_official_expansion(v[1]["expansion"]) for u, v in official_raw.items()}
    # ValueSets in the examples package that carry their own expansion.
    for u, vs in vs_map.items():
        if u not in official and "expansion" in vs:
            official[u] = compact_official_expansion(vs["expansion"])
    for u, v in official_raw.items():
        if u not in vs_map:
            vs_map[u] = v[1]
            notes.append("%s: ValueSet %s only in the expansions package; added" % (EXPANSIONS, u))

    core_expander = Expander(cs_map, vs_map, official)

    # Self-test of the compose expander against the official expansions.
    agree = agree_but_inactive = disagree = 0
    mismatches = []
    for u in sorted(official):
        vs = vs_map.get(u)
        if vs is None or "compose" not in vs:
            continue
        if any(e.get("url") in EXPANSION_EXTENSIONS for e in official[u].get("extension", [])):
            continue
        mine = core_expander.expand_url(u, frozenset(), use_official=False)
        if mine is None:
            continue
        a = {(e["system"], e["code"]) for e in mine}
        b = {(e["system"], e["code"]) for e in flatten(official[u])}
        active = {(e["system"], e["code"]) for e in mine if not e.get("inactive")}
        if a == b:
            agree += 1
        elif active <= b <= a:
            agree_but_inactive += 1
        else:
            disagree += 1
            mismatches.append("%s (+%d -%d)" % (u, len(a - b), len(b - a)))

    term = []
    computed = []
    for u in sorted(vs_map):
        vs = vs_map[u]
        if u in official:
            exp = official[u]
        else:
            entries = core_expander.expand_url(u, frozenset())
            exp = computed_expansion(entries) if entries is not None else None
            if exp is not None:
                computed.append(u)
        term.append(compact_value_set(vs, exp))
    for u in sorted(cs_map):
        term.append(compact_code_system(cs_map[u]))

    core = [compact_structure_definition(sd_map[u]) for u in sorted(sd_map)]
    core += [compact_search_parameter(sp_map[u]) for u in sorted(sp_map)]

    # --- IPS ---
    ips_items = contents[IPS]
    ips_sd = by_url([t for t in ips_items if t[1]["resourceType"] == "StructureDefinition"], "IPS SD", notes)
    ips_vs = by_url([t for t in ips_items if t[1]["resourceType"] == "ValueSet"], "IPS VS", notes)
    ips_cs = by_url([t for t in ips_items if t[1]["resourceType"] == "CodeSystem"], "IPS CS", notes)
    for u, sd in ips_sd.items():
        if "snapshot" not in sd:
            notes.append("%s: StructureDefinition %s has no snapshot" % (IPS, u))
    # Extension definitions the IPS profiles use that R4 core does not have.
    ext_sd = by_url([t for t in contents[EXTENSIONS] if t[1]["resourceType"] == "StructureDefinition"],
                    "extensions SD", notes)
    known = set(sd_map) | set(ips_sd)
    todo = sorted(ips_sd)
    while todo:
        sd = ips_sd[todo.pop()]
        refs = [sd.get("baseDefinition")]
        for e in sd.get("snapshot", {}).get("element", []):
            for t in e.get("type", []):
                refs += t.get("profile", [])
        for ref in refs:
            if not ref:
                continue
            u = ref.split("|", 1)[0]
            if u in known:
                continue
            known.add(u)
            if u in ext_sd:
                ips_sd[u] = ext_sd[u]
                todo.append(u)
                notes.append("%s: StructureDefinition %s (used by IPS) added to %s" % (EXTENSIONS, u, OUT_IPS))
            else:
                notes.append("IPS refers to %s, which none of the packages defines" % ref)
    all_cs = dict(cs_map)
    all_cs.update(ips_cs)
    all_vs = dict(vs_map)
    all_vs.update(ips_vs)
    ips_expander = Expander(all_cs, all_vs, official)
    ips = [compact_structure_definition(ips_sd[u]) for u in sorted(ips_sd)]
    ips_computed = []
    for u in sorted(ips_vs):
        vs = ips_vs[u]
        exp = compact_official_expansion(vs["expansion"]) if "expansion" in vs else None
        if exp is None:
            entries = ips_expander.expand_url(u, frozenset())
            if entries is not None:
                exp = computed_expansion(entries)
                ips_computed.append(u)
        ips.append(compact_value_set(vs, exp))
    ips += [compact_code_system(ips_cs[u]) for u in sorted(ips_cs)]

    # --- where core extensions may be used, by the extension pack ---
    ext_contexts = [
        {"resourceType": "StructureDefinition", "url": u, "version": sd.get("version"),
         "type": "Extension", "kind": sd.get("kind"), "derivation": sd.get("derivation"),
         "context": sd.get("context", [])}
        for u, sd in sorted(ext_sd.items())
        if u.startswith("http://hl7.org/fhir/StructureDefinition/") and sd.get("type") == "Extension"
    ]

    # --- write ---
    outputs = {}
    os.makedirs(out_dir, exist_ok=True)
    for fname, resources, comp in ((OUT_CORE, core, []), (OUT_TERM, term, computed), (OUT_IPS, ips, ips_computed),
                                   (OUT_EXT_CONTEXTS, ext_contexts, [])):
        raw = ndjson_bytes(resources)
        gz = gzip_bytes(raw)
        with open(os.path.join(out_dir, fname), "wb") as f:
            f.write(gz)
        counts = {}
        for r in resources:
            counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
        info = {
            "bytes": len(gz),
            "sha256": sha256(gz),
            "uncompressedBytes": len(raw),
            "contentSha256": sha256(raw),
            "lines": len(resources),
            "resources": dict(sorted(counts.items())),
        }
        vss = [r for r in resources if r["resourceType"] == "ValueSet"]
        if vss:
            info["valueSetsWithExpansion"] = sum(1 for r in vss if "expansion" in r)
            info["valueSetsWithComputedExpansion"] = len(comp)
            info["valueSetsWithComposeOnly"] = sum(1 for r in vss if "expansion" not in r)
        sds = [r for r in resources if r["resourceType"] == "StructureDefinition"]
        if sds:
            kinds = {}
            for r in sds:
                k = r.get("kind", "?")
                if r.get("type") == "Extension" and r.get("derivation") == "constraint":
                    k = "extension"
                elif r.get("derivation") == "constraint":
                    k = "profile:" + k
                kinds[k] = kinds.get(k, 0) + 1
            info["structureDefinitionsByKind"] = dict(sorted(kinds.items()))
        outputs[fname] = info

    lock = {
        "format": FORMAT,
        "fhirVersion": FHIR_VERSION,
        "generator": "profiles/build-definitions.py",
        "packages": pkg_info,
        "outputs": outputs,
        "computedExpansionIdentifier": COMPUTED_EXPANSION_ID,
        "expanderSelfTest": {
            "agreeWithOfficial": agree,
            "agreeExceptDeprecatedOrRetiredCodesKept": agree_but_inactive,
            "disagreeWithOfficial": disagree,
            "mismatches": mismatches,
        },
        "notes": sorted(notes),
    }
    with open(os.path.join(out_dir, LOCK), "w", encoding="utf-8") as f:
        f.write(json.dumps(lock, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return lock


# --- sanity checks (read back from the written files) ----------------------

def load_ndjson_gz(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line, parse_float=Decimal) for line in f if line.strip()]


def sanity(out_dir):
    ok = True

    def check(cond, msg):
        nonlocal ok
        print(("  ok    " if cond else "  FAIL  ") + msg)
        ok = ok and bool(cond)

    core = load_ndjson_gz(os.path.join(out_dir, OUT_CORE))
    term = load_ndjson_gz(os.path.join(out_dir, OUT_TERM))
    ips = load_ndjson_gz(os.path.join(out_dir, OUT_IPS))
    sds = {r["url"]: r for r in core if r["resourceType"] == "StructureDefinition"}
    sps = [r for r in core if r["resourceType"] == "SearchParameter"]
    vss = {r["url"]: r for r in term if r["resourceType"] == "ValueSet"}
    css = {r["url"]: r for r in term if r["resourceType"] == "CodeSystem"}
    ips_sds = {r["url"]: r for r in ips if r["resourceType"] == "StructureDefinition"}
    ips_vss = {r["url"]: r for r in ips if r["resourceType"] == "ValueSet"}
    ext_ctx = {r["url"]: r for r in load_ndjson_gz(os.path.join(out_dir, OUT_EXT_CONTEXTS))}

    def kind(r, k, derivation="specialization"):
        return r.get("kind") == k and r.get("derivation") == derivation

    print("sanity checks:")
    n_res = sum(1 for r in sds.values() if kind(r, "resource") and not r.get("abstract"))
    n_cx = sum(1 for r in sds.values() if kind(r, "complex-type"))
    n_prim = sum(1 for r in sds.values() if kind(r, "primitive-type"))
    n_ext = sum(1 for r in sds.values() if r.get("type") == "Extension" and r.get("derivation") == "constraint")
    n_prof = sum(1 for r in sds.values() if r.get("derivation") == "constraint") - n_ext
    print("  R4 StructureDefinitions: %d (concrete resources %d, complex types %d, "
          "primitive types %d, extensions %d, other profiles %d, logical %d)"
          % (len(sds), n_res, n_cx, n_prim, n_ext, n_prof,
             sum(1 for r in sds.values() if r.get("kind") == "logical")))
    check(len(sds) >= 640, "at least 640 R4 StructureDefinitions")
    check(n_res == 146, "146 concrete resource types")
    check(n_prim == 20, "20 primitive types")
    check(all("snapshot" in r for r in sds.values()), "every R4 StructureDefinition has a snapshot")
    for name in ("Patient", "Observation", "Bundle", "HumanName", "Extension", "string", "dateTime"):
        r = sds.get("http://hl7.org/fhir/StructureDefinition/" + name)
        n = len(r["snapshot"]["element"]) if r and "snapshot" in r else 0
        check(n > 0, "SD %s with %d snapshot elements" % (name, n))
    regex_url = "http://hl7.org/fhir/StructureDefinition/regex"
    with_regex = []
    for r in sds.values():
        if r.get("kind") != "primitive-type":
            continue
        for e in r["snapshot"]["element"]:
            if e["path"].endswith(".value"):
                for t in e.get("type", []):
                    for x in t.get("extension", []):
                        if x["url"] == regex_url:
                            with_regex.append((r["type"], x["valueString"]))
    rx = dict(with_regex)
    no_rx = sorted({r["type"] for r in sds.values() if r.get("kind") == "primitive-type"} - set(rx))
    print("  primitive value regexes kept: %d of %d primitive types (without one in R4: %s)"
          % (len(rx), n_prim, ", ".join(no_rx) or "none"))
    for p in ("string", "dateTime"):
        check(p in rx, "regex on %s.value: %s" % (p, rx.get(p)))
    print("  R4 SearchParameters: %d" % len(sps))
    check(len(sps) > 1300, "more than 1300 SearchParameters")
    check(all(r.get("code") and r.get("type") for r in sps), "every SearchParameter has code and type")
    print("  R4 ValueSets: %d (%d with expansion), CodeSystems: %d"
          % (len(vss), sum(1 for r in vss.values() if "expansion" in r), len(css)))
    for u in ("http://hl7.org/fhir/ValueSet/administrative-gender",
              "http://hl7.org/fhir/ValueSet/observation-status"):
        r = vss.get(u)
        codes = [c["code"] for c in flatten(r["expansion"])] if r and "expansion" in r else []
        check(codes, "%s expansion: %s" % (u, " ".join(codes)))
    r = ips_sds.get("http://hl7.org/fhir/uv/ips/StructureDefinition/Patient-uv-ips")
    check(r and len(r.get("snapshot", {}).get("element", [])) > 0,
          "IPS Patient-uv-ips with %d snapshot elements" % (len(r["snapshot"]["element"]) if r else 0))
    n_ips_own = sum(1 for u in ips_sds if u.startswith("http://hl7.org/fhir/uv/ips/"))
    print("  IPS StructureDefinitions: %d (+%d extensions from %s), ValueSets: %d (%d with expansion)"
          % (n_ips_own, len(ips_sds) - n_ips_own, EXTENSIONS, len(ips_vss),
             sum(1 for r in ips_vss.values() if "expansion" in r)))

    print("  extension pack contexts: %d core extensions" % len(ext_ctx))
    r = ext_ctx.get("http://hl7.org/fhir/StructureDefinition/humanname-mothers-family")
    check(r and r.get("context"), "humanname-mothers-family contexts: %s"
          % ([c.get("expression") for c in r["context"]] if r else None))

    # Required bindings: which ValueSets can the validator check offline?
    all_vs = dict(vss)
    all_vs.update(ips_vss)
    for label, group in (("R4", sds), ("IPS", ips_sds)):
        req = {}
        for r in group.values():
            for e in r.get("snapshot", {}).get("element", []):
                b = e.get("binding", {})
                if b.get("strength") == "required" and b.get("valueSet"):
                    req.setdefault(b["valueSet"].split("|", 1)[0], set()).add(r["url"].rsplit("/", 1)[1])
        missing = sorted(u for u in req if u not in all_vs)
        noexp = sorted(u for u in req if u in all_vs and "expansion" not in all_vs[u])
        print("  %s required bindings: %d ValueSets, %d expanded, %d compose only, %d not in the bundle"
              % (label, len(req), len(req) - len(missing) - len(noexp), len(noexp), len(missing)))
        for u in noexp:
            print("      compose only: %s" % u)
        for u in missing:
            print("      not shipped:  %s (used by %s)" % (u, ", ".join(sorted(req[u]))))
    return ok


# --- main -----------------------------------------------------------------

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temp dir and compare with the committed files")
    ap.add_argument("--out", default=here, help="output directory (default: this script's directory)")
    ap.add_argument("--tarballs", default=None,
                    help="directory of NAME-VERSION.tgz tarballs to use / to save downloads in")
    ap.add_argument("--fetch-only", action="store_true",
                    help="download and check the pinned tarballs into --tarballs, build nothing")
    args = ap.parse_args()

    if args.fetch_only:
        if not args.tarballs:
            sys.exit("--fetch-only needs --tarballs DIR")
        tmp = tempfile.mkdtemp(prefix="anchorgate-defs-fetch-")
        try:
            for pkg in PACKAGES:
                _, source = fetch(pkg, args.tarballs, tmp)
                print("%s (%s, integrity ok)" % (tarball_name(pkg), source))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(0)

    if not args.check:
        lock = build(args.out, args.tarballs)
        for fname, info in lock["outputs"].items():
            print("%-26s %9d bytes  %s" % (fname, info["bytes"], info["resources"]))
        print("total %d bytes" % sum(i["bytes"] for i in lock["outputs"].values()))
        for n in lock["notes"]:
            print("note: " + n)
        st = lock["expanderSelfTest"]
        print("compose expander vs official expansions: %d agree, %d agree except that deprecated/retired "
              "codes are kept, %d differ"
              % (st["agreeWithOfficial"], st["agreeExceptDeprecatedOrRetiredCodesKept"],
                 st["disagreeWithOfficial"]))
        for m in st["mismatches"]:
            print("  differs: " + m)
        sys.exit(0 if sanity(args.out) else 1)

    tmp = tempfile.mkdtemp(prefix="anchorgate-defs-check-")
    try:
        build(tmp, args.tarballs)
        failed = False
        for fname in (OUT_CORE, OUT_TERM, OUT_IPS, OUT_EXT_CONTEXTS):
            new = open(os.path.join(tmp, fname), "rb").read()
            path = os.path.join(args.out, fname)
            if not os.path.exists(path):
                print("MISSING  %s" % fname)
                failed = True
                continue
            old = open(path, "rb").read()
            if new == old:
                print("same     %s" % fname)
            elif gzip.decompress(new) == gzip.decompress(old):
                # A different zlib build may compress differently; the
                # content is what matters.
                print("same     %s (content identical; gzip bytes differ, different zlib?)" % fname)
            else:
                print("DIFFERS  %s" % fname)
                failed = True
        new_lock = json.load(open(os.path.join(tmp, LOCK), encoding="utf-8"))
        lock_path = os.path.join(args.out, LOCK)
        old_lock = json.load(open(lock_path, encoding="utf-8")) if os.path.exists(lock_path) else None
        if old_lock is None:
            print("MISSING  %s" % LOCK)
            failed = True
        else:
            for lk in (new_lock, old_lock):
                for info in lk["outputs"].values():
                    info.pop("sha256", None)
                    info.pop("bytes", None)
            if new_lock == old_lock:
                print("same     %s" % LOCK)
            else:
                print("DIFFERS  %s" % LOCK)
                failed = True
        sys.exit(1 if failed else 0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
