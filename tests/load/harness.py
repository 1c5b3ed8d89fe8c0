#!/usr/bin/env python3
"""Helpers for tests/load/run.sh (python3 stdlib only).

  harness.py ports N                       print N free loopback TCP ports
  harness.py wait-http URL SECS [PID]      wait (bounded) until URL answers 200
  harness.py check ...                     correctness checks before timing
  harness.py record ...                    turn one wrk run into a JSON line
  harness.py report ...                    print the table, write RESULTS.md
"""
import argparse
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

# Only ever talk to loopback.
def _assert_loopback(url):
    host = urllib.request.urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"harness: refusing non-loopback URL {url}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))


def http(method, url, body=None, headers=None, timeout=5):
    _assert_loopback(url)
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


# --------------------------------------------------------------------- ports
def cmd_ports(a):
    socks = []
    try:
        for _ in range(a.n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        print(" ".join(str(s.getsockname()[1]) for s in socks))
    finally:
        for s in socks:
            s.close()


# ----------------------------------------------------------------- wait-http
def _alive(pid):
    """False once the process has exited (a zombie counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmd_wait_http(a):
    deadline = time.monotonic() + a.secs
    last = "no attempt"
    while time.monotonic() < deadline:
        if a.pid and not _alive(a.pid):
            sys.exit(f"harness: process {a.pid} exited while waiting for {a.url}")
        try:
            status, _, _ = http("GET", a.url, timeout=1)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    sys.exit(f"harness: {a.url} not ready after {a.secs}s ({last})")


# ---------------------------------------------------------------------- busy
def _cpu_sample():
    with open("/proc/stat") as fh:
        vals = [int(v) for v in fh.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return sum(vals[:8]), idle


def cmd_busy(a):
    """Print the machine-wide CPU busy percentage over `secs` seconds."""
    t0, i0 = _cpu_sample()
    time.sleep(a.secs)
    t1, i1 = _cpu_sample()
    total = max(t1 - t0, 1)
    print(f"{100.0 * (1 - (i1 - i0) / total):.0f}")


# --------------------------------------------------------------------- check
def cmd_check(a):
    """Functional sanity check of one target before any timing."""
    env = _read_env(os.path.join(a.canned, "canned.env"))
    pid = env["CANNED_PATIENT_ID"]
    base = a.base.rstrip("/")
    up = a.upstream_base.rstrip("/")
    up_hostport = urllib.request.urlparse(up).netloc  # 127.0.0.1:PORT
    hdr = {"Accept": "application/fhir+json"}
    if os.environ.get("LOAD_TOKEN"):
        hdr["Authorization"] = "Bearer " + os.environ["LOAD_TOKEN"]
    problems, notes = [], []

    def get(path):
        status, headers, body = http("GET", base + path, headers=hdr)
        return status, headers, body

    # metadata
    st, h, b = get("/metadata")
    if st != 200:
        problems.append(f"GET /metadata -> {st}")
    # read
    st, h, b = get(f"/Patient/{pid}")
    if st != 200:
        problems.append(f"GET /Patient/{pid} -> {st}")
    else:
        res = json.loads(b)
        if res.get("resourceType") != "Patient" or res.get("id") != pid:
            problems.append("patient read: wrong resource returned")
        ct = {k.lower(): v for k, v in h.items()}.get("content-type", "")
        if "fhir+json" not in ct:
            problems.append(f"patient read: Content-Type {ct!r}")
    # search
    st, h, b = get(f"/{env['CANNED_SEARCH_TYPE']}?{env['CANNED_SEARCH_QUERY']}")
    search_text = b.decode("utf-8", "replace")
    if st != 200:
        problems.append(f"search -> {st}")
    else:
        bundle = json.loads(b)
        n = len(bundle.get("entry", []))
        if bundle.get("type") != "searchset" or n != 50:
            problems.append(f"search: type={bundle.get('type')} entries={n}")
        leaked = up_hostport in search_text or any(
            up_hostport in str(v) for v in h.values())
        mentions_self = base in search_text
        if a.expect_rewrite:
            if leaked:
                problems.append(
                    f"UPSTREAM BASE LEAKS: search response still contains {up_hostport}")
            if not mentions_self:
                problems.append(f"search response does not contain the gateway base {base}")
            if not leaked and mentions_self:
                notes.append("search links/fullUrls rewritten to the gateway base")
        else:
            notes.append("body URLs point at the upstream (no rewriting)" if leaked
                         else "body URLs do not mention the upstream")
    # create (optional)
    if a.with_create:
        body = open(os.path.join(a.canned, "patient-create.json"), "rb").read()
        st, h, b = http("POST", base + "/Patient", body=body,
                        headers={**hdr, "Content-Type": "application/fhir+json"})
        loc = {k.lower(): v for k, v in h.items()}.get("location", "")
        if st != 201:
            problems.append(f"POST /Patient -> {st}")
        elif a.expect_rewrite and (up_hostport in loc or not loc.startswith(base)):
            problems.append(f"POST /Patient: Location not rewritten: {loc!r}")
        else:
            notes.append(f"create -> 201 Location {loc}")
        leaf = {k.lower(): v for k, v in h.items()}.get("x-anchorgate-leaf-index")
        if a.name in ("anchorgate", "anchorgate-noval"):
            if st == 201 and not leaf:
                problems.append("POST /Patient: 201 without X-Anchorgate-Leaf-Index (not anchored)")
            elif leaf:
                notes.append(f"create anchored at leaf {leaf}")
        if a.name == "anchorgate":
            # The enforce-mode gateway must really validate what it forwards.
            st, _, _ = http("POST", base + "/Patient", body=b'{"resourceType":"Patient","gender":"robot"}',
                            headers={**hdr, "Content-Type": "application/fhir+json"})
            if st != 422:
                problems.append(f"POST of an invalid Patient -> {st}, expected 422 (validation not on?)")
            else:
                notes.append("an invalid Patient is refused with 422")

    for n in notes:
        print(f"  check[{a.name}]: ok: {n}")
    for p in problems:
        print(f"  check[{a.name}]: FAIL: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"  check[{a.name}]: passed")


def _read_env(path):
    env = {}
    for line in open(path, encoding="utf-8"):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            env[k] = v.strip("'")
    return env


# -------------------------------------------------------------------- record
def cmd_record(a):
    line = None
    for l in open(a.wrk_output, encoding="utf-8", errors="replace"):
        if l.startswith("LOADRESULT "):
            line = l[len("LOADRESULT "):]
    if line is None:
        sys.exit(f"harness: no LOADRESULT line in {a.wrk_output}")
    row = json.loads(line)
    row.update(target=a.target, case=a.case, conns=a.conns, round=a.round)
    if a.cpu_ticks is not None:
        hz = os.sysconf("SC_CLK_TCK")
        cpu_s = a.cpu_ticks / hz
        row["proxy_cpu_s"] = round(cpu_s, 3)
        row["proxy_cpu_util"] = round(cpu_s / row["duration_s"], 3) if row["duration_s"] else None
        row["proxy_cpu_us_per_req"] = (round(cpu_s * 1e6 / row["requests"], 1)
                                       if row["requests"] else None)
    hz = os.sysconf("SC_CLK_TCK")
    for key, ticks in (("upstream_cpu", a.upstream_ticks), ("wrk_cpu", a.wrk_ticks),
                       ("other_cpu", a.other_ticks)):
        # average cores busy during the run
        if ticks is not None and row["duration_s"]:
            row[key] = round(max(ticks, 0) / hz / row["duration_s"], 2)
    print(json.dumps(row))


# -------------------------------------------------------------------- report
TARGETS = ["direct", "nginx", "floor", "bound", "anchorgate", "anchorgate-noval", "anchorgate-noanchor"]
ERR_KEYS = ["err_connect", "err_read", "err_write", "err_status", "err_timeout"]
CASE_TITLES = {
    "read": "Patient read (`GET /fhir/Patient/{id}`)",
    "search": "50-entry search (`GET /fhir/Encounter?patient=..&_count=50`)",
    "create": "Patient create (`POST /fhir/Patient`, canned 201)",
}


def _sh(cmd):
    try:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0] if (r.stdout + r.stderr).strip() else "?"
    except Exception:  # noqa: BLE001
        return "?"


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


NOISY = 0.1  # cores of foreign CPU use during a run above which it is flagged


def _other(x):
    v = x.get("other_cpu")
    if v is None:
        return ""
    return f"{v:.2f} ⚠" if v > NOISY else f"{v:.2f}"


def _fmt_int(v):
    return "–" if v is None else f"{v:,.0f}"


def cmd_report(a):
    global NOISY
    NOISY = a.max_other
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    runs = [r for r in rows if "rps" in r]
    mem = {r["target"]: r for r in rows if r.get("kind") == "mem"}
    ledger = [r for r in rows if r.get("kind") == "ledger"]
    # with several rounds: per (case, target, conns) the run with the median rps
    groups = {}
    for r in runs:
        groups.setdefault((r["case"], r["target"], r["conns"]), []).append(r)
    cell = {k: sorted(v, key=lambda r: r["rps"])[(len(v) - 1) // 2] for k, v in groups.items()}
    rounds = max((r.get("round", 1) for r in runs), default=1)
    cases = [c for c in ["read", "search", "create"] if any(r["case"] == c for r in runs)]
    conns_all = sorted({r["conns"] for r in runs})
    have_gw = any(r["target"] == "anchorgate" for r in runs)
    moderate = a.moderate_conns

    out = []
    w = out.append
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w("# Anchorgate load results\n")
    w("Generated by `tests/load/run.sh` (on-demand, not run in CI). "
      "Re-run to refresh; numbers are only comparable within one run on one machine.\n")
    w("## Environment\n")
    w(f"- Date: {now}")
    w(f"- Machine: {os.cpu_count()} CPUs (`nproc`: {_sh('nproc')}), {_cpu_model()}, "
      f"kernel {platform.release()}")
    noisy_runs = [r for r in runs if r.get("other_cpu", 0) > NOISY]
    if noisy_runs:
        w(f"- Background load: **NOT QUIET** — in {len(noisy_runs)} of {len(runs)} timed runs "
          f"other processes used more than {NOISY} cores (up to "
          f"{max(r['other_cpu'] for r in noisy_runs):.2f}); those rows are marked ⚠ and are "
          f"unreliable. {a.machine_note}")
    else:
        w(f"- Background load: quiet — no timed run saw other processes use more than "
          f"{NOISY} cores. {a.machine_note}")
    w(f"- nginx: `{_sh('nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1')}`")
    w(f"- wrk: `{_sh('wrk -v 2>&1 | head -1')}`")
    w(f"- Git: `{a.git_rev}`")
    if have_gw:
        gw = a.gateway_bin or "target/release/anchorgate"
        shown = "target/release/anchorgate" if gw.endswith("/target/release/anchorgate") else gw
        w(f"- Anchorgate: `{_sh(repr(gw) + ' --version')}` (`{shown}`, rustc `{_sh('rustc -V')}`)")
        if a.gateway_note:
            w(f"- **Anchorgate note:** {a.gateway_note}")
    else:
        w("- Anchorgate: **not measured in this run** "
          f"({a.gateway_note or 'LOAD_SKIP_GATEWAY=1'})")
    w("")
    w("## Method\n")
    for line in a.method.splitlines():
        w(line)
    w("")
    w("Columns: rps = requests/s (with several rounds: the median round, range in brackets); p50/p99 = wrk latency percentiles in µs; "
      "+p99 = that proxy's p99 minus the direct p99 at the same concurrency; "
      "proxy CPU µs/req = CPU time (user+sys, all processes/threads of the proxy under test) "
      "divided by requests, with the proxy's CPU utilisation in brackets "
      "(1.00 = one whole core busy, i.e. proxy-bound); rps vs nginx = Anchorgate "
      "throughput / nginx peer throughput; other CPU = cores used during the run by "
      "anything except wrk, the upstream and the proxy under test (⚠ above "
      f"{NOISY}: another workload competed; that row is unreliable).\n")

    targets = [t for t in TARGETS if any(r["target"] == t for r in runs)]
    verdicts = []
    overhead = []  # (conns, rps ratio enforce/off, cpu enforce, cpu off, +p50, noisy tag)
    anchoring = []  # (conns, rps ratio anchored/not, cpu anchored, cpu not, +p50, noisy tag)
    # Per reference proxy: (case, conns, ref/nginx, anchorgate/ref, ref cpu, anchorgate cpu, noisy tag).
    against = {"floor": [], "bound": []}

    def tag_of(r):
        return " (noisy)" if any((y or {}).get("other_cpu", 0) > NOISY for y in r.values()) else ""
    for case in cases:
        w(f"## {CASE_TITLES.get(case, case)}\n")
        w("| conns | target | rps | p50 µs | p99 µs | +p99 vs direct µs "
          "| proxy CPU µs/req (util) | rps vs nginx | other CPU |")
        w("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for c in conns_all:
            r = {t: cell.get((case, t, c)) for t in targets}
            d, n = r.get("direct"), r.get("nginx")
            for t in targets:
                x = r[t]
                if not x:
                    continue
                errs = sum(x.get(k, 0) for k in ERR_KEYS)
                rps = _fmt_int(x["rps"]) + (f" ⚠{errs} err" if errs else "")
                g = groups[(case, t, c)]
                if len(g) > 1:
                    lo, hi = min(y["rps"] for y in g), max(y["rps"] for y in g)
                    rps += f" ({lo / 1000:.1f}–{hi / 1000:.1f}k)"
                added = (x["p99_us"] - d["p99_us"]) if (d and t != "direct") else None
                cpu = (f"{x['proxy_cpu_us_per_req']:.1f} ({x['proxy_cpu_util']:.2f})"
                       if x.get("proxy_cpu_us_per_req") is not None else "")
                ratio = (x["rps"] / n["rps"]) if (n and n["rps"] and t not in ("direct", "nginx")) else None
                name = f"**{t}**" if t == "anchorgate" else t
                w(f"| {c} | {name} | {rps} | {_fmt_int(x['p50_us'])} | {_fmt_int(x['p99_us'])} "
                  f"| {'' if added is None else f'{added:+,}'} | {cpu} "
                  f"| {'' if ratio is None else f'**{ratio:.2f}×**'} | {_other(x)} |")
                noisy = any((y or {}).get("other_cpu", 0) > NOISY for y in r.values())
                tag = " (noisy)" if noisy else ""
                v = r.get("anchorgate-noval")
                na = r.get("anchorgate-noanchor")
                if t == "anchorgate-noval" and na and na["rps"]:
                    anchoring.append((c, x["rps"] / na["rps"],
                                      x.get("proxy_cpu_us_per_req"), na.get("proxy_cpu_us_per_req"),
                                      x["p50_us"] - na["p50_us"], tag_of(r)))
                if t == "anchorgate" and case == "create" and ratio is not None:
                    verdicts.append((case, c, "write path (validate + anchor) ≥ 0.8× nginx",
                                     ratio >= 0.8, f"{ratio:.2f}×{tag}"))
                if t == "anchorgate" and v and v["rps"]:
                    overhead.append((c, x["rps"] / v["rps"],
                                     x.get("proxy_cpu_us_per_req"), v.get("proxy_cpu_us_per_req"),
                                     x["p50_us"] - v["p50_us"], tag_of(r)))
                if ratio is not None and t == "anchorgate" and case != "create":
                    # DESIGN.md's gateway-overhead row; creates are judged by the write-path line.
                    verdicts.append((case, c, "throughput ≥ 0.8× nginx", ratio >= 0.8,
                                     f"{ratio:.2f}×{tag}"))
                for ref, cells in against.items():
                    y = r.get(ref)
                    if t == "anchorgate" and y and y["rps"] and n and n["rps"]:
                        cells.append((case, c, y["rps"] / n["rps"], x["rps"] / y["rps"],
                                     y.get("proxy_cpu_us_per_req"), x.get("proxy_cpu_us_per_req"), tag))
                if t == "anchorgate" and added is not None and c == moderate:
                    nadd = (n["p99_us"] - d["p99_us"]) if n else None
                    verdicts.append((case, c, "added p99 < 2 ms", added < 2000,
                                     f"{added:+,} µs" + (f" (nginx {nadd:+,} µs)"
                                                         if nadd is not None else "") + tag))
        w("")
    def cost_table(rows, title, intro, on, off):
        """One feature's cost on the write path: the same gateway with it on and off."""
        if not rows:
            return
        w(f"## {title}\n")
        w(intro + "\n")
        w(f"| conns | rps {on} / {off} | proxy CPU µs/req {on} | {off} | added | +p50 µs |")
        w("|---:|---:|---:|---:|---:|---:|")
        for c, ratio, c_on, c_off, dp50, tag in rows:
            added = f"{c_on - c_off:+.1f}" if (c_on is not None and c_off is not None) else ""
            w(f"| {c} | **{ratio:.2f}×**{tag} | {'' if c_on is None else f'{c_on:.1f}'} "
              f"| {'' if c_off is None else f'{c_off:.1f}'} | {added} | {dp50:+,} |")
        w("")

    cost_table(overhead, "Validation on the write path",
               "The create case timed twice through the same binary and placement: `anchorgate` validates "
               "every POSTed Patient (the default `enforce`), `anchorgate-noval` runs with "
               "`[validation] mode = \"off\"`.", "enforce", "off")
    cost_table(anchoring, "Anchoring on the write path",
               "The create case through `anchorgate-noval` (validation off, every 201 anchored: a salted "
               "commitment appended and fsynced before the response) and `anchorgate-noanchor` (validation "
               "off, `[ledger] enabled = false`), same binary and placement. The canned upstream gives every "
               "create a new id, so every request is a new ledger entry.", "anchored", "not")
    def against_table(ref, title, intro):
        """Anchorgate and the nginx peer against one reference proxy (floor or bound)."""
        cells = against[ref]
        if not cells:
            return
        w(f"## {title}\n")
        w(intro + "\n")
        w(f"| case | conns | {ref} / nginx | anchorgate / {ref} | {ref} CPU µs/req | anchorgate CPU µs/req |")
        w("|---|---:|---:|---:|---:|---:|")
        for case, c, rn, ar, rc, ac, tag in cells:
            w(f"| {case} | {c} | **{rn:.2f}×**{tag} | **{ar:.2f}×** | "
              f"{'' if rc is None else f'{rc:.1f}'} | {'' if ac is None else f'{ac:.1f}'} |")
        w("")

    against_table("floor", "Against the floor",
                  "`floor` is `gateway/examples/floor_proxy.rs`: hyper's server and pooled client on one "
                  "current-thread runtime with mimalloc, collecting each upstream response whole before "
                  "sending it on (as a gateway that judges responses must), and doing nothing else: no "
                  "identity, policy, validation, URL rewriting or ledger. floor / nginx is the most any "
                  "gateway built on these crates can reach here; anchorgate / floor is what Anchorgate's own "
                  "work costs on top.")
    against_table("bound", "Against the bound",
                  "`bound` is the floor proxy run with `--bound`: the floor plus the least per-request work "
                  "issues 4 and 5 mandate, each done the cheapest way: a request body parsed into a tree and "
                  "validated against the base R4 specification (Anchorgate's own validator, no profiles), "
                  "one JSON syntax pass over every response body (judging a Bundle's entries needs at "
                  "least that), a created version's canonical form, and a salted SHA-256 commitment per "
                  "decision and per created version, group-committed to SQLite (WAL, `synchronous = "
                  "FULL`) with a small decision record indexed by patient and time; a create's "
                  "response waits for its batch to be durable, a read's decision is only queued, as "
                  "Anchorgate does. No token check, consent, profiles, URL rewriting, Merkle tree or "
                  "other decision indexes. bound / nginx is therefore an upper bound on the ratio any "
                  "implementation of the issues can reach here; anchorgate / bound is how far Anchorgate is "
                  "from it.")
    if any(sum(r.get(k, 0) for k in ERR_KEYS) for r in runs):
        w("⚠ = wrk counted socket errors or HTTP status ≥ 400 in that run; see raw results.\n")

    w("## Peak memory\n")
    w("VmHWM from `/proc/<pid>/status` after all runs (nginx: master + workers summed).\n")
    w("| process | peak RSS (VmHWM) | RSS after start-up | processes |")
    w("|---|---:|---:|---:|")
    for t, label in [("nginx", "nginx peer proxy"), ("anchorgate", "anchorgate"),
                     ("upstream", "static upstream nginx (for reference)")]:
        m = mem.get(t)
        if m:
            w(f"| {label} | {m['hwm_kb'] / 1024:.1f} MiB | "
              f"{m.get('idle_rss_kb', 0) / 1024:.1f} MiB | {m['procs']} |")
    w("")

    if ledger:
        w("## Ledger batching\n")
        w("Entries each gateway made durable over the whole run (a decision entry per request, a "
          "resource-version entry per create) and the batches they went in: one fsync per batch.\n")
        w("| gateway | entries | batches (fsyncs) | mean entries per batch |")
        w("|---|---:|---:|---:|")
        for r in ledger:
            mean = r["entries"] / r["batches"] if r["batches"] else 0
            w(f"| {r['target']} | {_fmt_int(r['entries'])} | {_fmt_int(r['batches'])} | {mean:.1f} |")
        w("")

    w("## Targets\n")
    w("- Throughput: Anchorgate ≥ **0.8×** nginx peer-proxy requests/s while validating, enforcing "
      "and anchoring (every case × concurrency; DESIGN.md, gateway overhead; issues 4 and 5).")
    w(f"- Latency: Anchorgate adds **< 2 ms** p99 over direct at moderate load "
      f"({moderate} connections).\n")
    if verdicts:
        w("| case | conns | target | result | value |")
        w("|---|---:|---|---|---:|")
        for case, c, what, ok, val in verdicts:
            w(f"| {case} | {c} | {what} | {'PASS' if ok else '**FAIL**'} | {val} |")
        w("")
    else:
        w("Not evaluated: Anchorgate was not part of this run.\n")

    w("## Notes\n")
    for line in a.notes.splitlines():
        w(line)
    w("")
    w("<details><summary>Raw results (JSON lines)</summary>\n")
    w("```")
    for r in rows:
        w(json.dumps(r))
    w("```")
    w("</details>")

    text = "\n".join(out) + "\n"
    with open(a.out, "w", encoding="utf-8") as fh:
        fh.write(text)
    # console: the tables only
    start = text.find("## " + CASE_TITLES.get(cases[0], cases[0])) if cases else 0
    end = text.find("## Notes")
    print(text[start:end].rstrip())
    print(f"\nwrote {a.out}")
    return 0


# --------------------------------------------------------------------- ledger batching
def cmd_ledger(a):
    """One result line with a gateway's ledger counters (entries and batches made durable)."""
    try:
        status, _, body = http("GET", a.metrics_url, timeout=15)
    except OSError as e:  # urllib's URLError included: the report just goes without the row
        print(f"ledger counters of {a.target} unavailable: {e}", file=sys.stderr)
        return
    if status != 200:
        return
    got = {}
    for line in body.decode("utf-8", "replace").splitlines():
        for key, name in (("entries", "anchorgate_ledger_entries_committed "),
                          ("batches", "anchorgate_ledger_batches_committed ")):
            if line.startswith(name):
                got[key] = int(float(line[len(name):].strip()))
    if "entries" in got and "batches" in got:
        print(json.dumps({"kind": "ledger", "target": a.target, **got}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ports"); p.add_argument("n", type=int); p.set_defaults(f=cmd_ports)
    p = sub.add_parser("wait-http")
    p.add_argument("url"); p.add_argument("secs", type=float)
    p.add_argument("pid", nargs="?", default="")
    p.set_defaults(f=cmd_wait_http)
    p = sub.add_parser("busy"); p.add_argument("secs", type=float, nargs="?", default=1.0)
    p.set_defaults(f=cmd_busy)
    p = sub.add_parser("check")
    p.add_argument("--name", required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--upstream-base", required=True)
    p.add_argument("--canned", required=True)
    p.add_argument("--expect-rewrite", action="store_true")
    p.add_argument("--with-create", action="store_true")
    p.set_defaults(f=cmd_check)
    p = sub.add_parser("record")
    p.add_argument("--target", required=True); p.add_argument("--case", required=True)
    p.add_argument("--conns", type=int, required=True)
    p.add_argument("--round", type=int, default=1)
    p.add_argument("--cpu-ticks", type=int)
    p.add_argument("--other-ticks", type=int)
    p.add_argument("--upstream-ticks", type=int)
    p.add_argument("--wrk-ticks", type=int)
    p.add_argument("--wrk-output", required=True)
    p.set_defaults(f=cmd_record)
    p = sub.add_parser("ledger")
    p.add_argument("--target", required=True); p.add_argument("--metrics-url", required=True)
    p.set_defaults(f=cmd_ledger)
    p = sub.add_parser("report")
    p.add_argument("--results", required=True); p.add_argument("--out", required=True)
    p.add_argument("--git-rev", default="?")
    p.add_argument("--method", default="")
    p.add_argument("--notes", default="")
    p.add_argument("--gateway-note", default="")
    p.add_argument("--machine-note", default="")
    p.add_argument("--gateway-bin", default="")
    p.add_argument("--max-other", type=float, default=0.1)
    p.add_argument("--moderate-conns", type=int, default=16)
    p.set_defaults(f=cmd_report)
    a = ap.parse_args()
    sys.exit(a.f(a))


if __name__ == "__main__":
    main()
