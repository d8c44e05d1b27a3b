#!/usr/bin/env python3
"""Rondo-vs-peer ratios from the summary.md written by the peers' bench.sh.

usage: bench/ratios.py [--rondo NAME] path/to/summary.md

For every pass (and the mean over passes when there are several) prints:

* per route: Rondo req/s, hyper-bare req/s and rondo/hyper-bare (plain only;
  hyper-bare has no sessions), the better of axum-tower-sessions and
  actix-session-redis and rondo/better, the mux floor (hyper-redis-floor-mux)
  and rondo/floor, and the pool floor (hyper-redis-floor) when it was run;
* counter p99 of Rondo vs the session peer with the lower counter p99;
* lost increments on /counter for every server;
* warnings for non-2xx responses, socket errors and disturbed runs.

Servers or routes that were not run (or failed) show "-".
Standard library only.
"""

import argparse
import re
import signal
import sys

BARE = "hyper-bare"
SESSION_PEERS = ("axum-tower-sessions", "actix-session-redis")
MUX_FLOOR = "hyper-redis-floor-mux"
POOL_FLOOR = "hyper-redis-floor"
ROUTES = ("plain", "counter", "read", "new")
DISTURBED_OTHER_CPU = 10  # "other CPU %" above this: the run shared the CPUs

NUM_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def num(cell):
    """The cell as a float, or None when it is not a plain number."""
    cell = cell.strip()
    return float(cell) if NUM_RE.match(cell) else None


def split_row(line):
    cells = line.strip().strip("|").split("|")
    return [c.strip() for c in cells]


def parse(text):
    """Returns (heading lines, passes); each pass is a dict with

    n: pass number, ceiling: redis-benchmark line or None,
    order: server names in table order,
    main: {server: {column: cell}} from the req/s table,
    acct: {server: {column: cell}} from the lost-increments table.
    """
    heading = []
    passes = []
    cur = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^##\s+Pass\s+(\d+)", line)
        if m:
            cur = {"n": int(m.group(1)), "ceiling": None, "order": [], "main": {}, "acct": {}}
            passes.append(cur)
            i += 1
            continue
        if cur is None:
            if line.strip() and not line.startswith("|"):
                heading.append(line.strip())
            i += 1
            continue
        if line.startswith("Redis ceiling"):
            cur["ceiling"] = line.strip()
        if line.startswith("|"):
            header = split_row(line)
            rows = []
            i += 1
            if i < len(lines) and re.match(r"^\|[\s|:-]+\|?\s*$", lines[i]):
                i += 1  # separator row
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(split_row(lines[i]))
                i += 1
            if "plain req/s" in header:
                kind = "main"
            elif "lost increments" in header:
                kind = "acct"
            else:
                continue
            for r in rows:
                if not r or not r[0]:
                    continue
                name = r[0]
                cur[kind][name] = {h: (r[j] if j < len(r) else "") for j, h in enumerate(header)}
                if kind == "main" and name not in cur["order"]:
                    cur["order"].append(name)
            continue
        i += 1
    return heading, passes


def value(p, server, table, column):
    row = p[table].get(server)
    if row is None:
        return None
    return num(row.get(column, ""))


def rps(p, server, route):
    return value(p, server, "main", f"{route} req/s")


def mean_pass(passes):
    """A synthetic pass whose cells are the means over all passes; a cell that
    is not a number in some pass (failed run, missing server) becomes "-", so
    that every mean and ratio covers the same passes."""
    order = []
    for p in passes:
        for s in p["order"]:
            if s not in order:
                order.append(s)
    out = {"n": "mean", "ceiling": None, "order": order, "main": {}, "acct": {}}
    for table in ("main", "acct"):
        servers = []
        for p in passes:
            servers += [s for s in p[table] if s not in servers]
        for s in servers:
            cols = []
            for p in passes:
                cols += [c for c in p[table].get(s, {}) if c not in cols]
            row = {}
            for c in cols:
                vals = [num(p[table].get(s, {}).get(c, "")) for p in passes]
                ok = all(v is not None for v in vals)
                row[c] = f"{sum(vals) / len(vals):.6g}" if ok else "-"
            row["server"] = s
            out[table][s] = row
    out["count"] = len(passes)
    return out


def fmt_rps(v):
    return "-" if v is None else f"{v:.0f}"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def fmt_ms(v):
    return "-" if v is None else f"{v:.2f}"


def best(p, route, key, lower=False):
    """(name, value) of the session peer with the best value for key(p, name, route)."""
    cands = [(s, key(p, s, route)) for s in SESSION_PEERS]
    cands = [(s, v) for s, v in cands if v is not None]
    if not cands:
        return None, None
    return (min if lower else max)(cands, key=lambda c: c[1])


def report(p, rondo, title):
    out = [f"### {title}", ""]
    has_rondo = rondo in p["main"]
    if not has_rondo:
        out += [f"no `{rondo}` row in this pass", ""]
    status = p["main"].get(rondo, {}).get("plain req/s", "")
    if has_rondo and all(rps(p, rondo, r) is None for r in ROUTES):
        log = f"pass{p['n']}-{rondo}-server.log" if isinstance(p["n"], int) else "the server logs"
        out += [f"**{rondo}: {status or 'no results'}** (see {log})", ""]

    routes = [r for r in ROUTES
              if any(rps(p, s, r) is not None for s in p["main"])]
    # column groups: (header cells, cells for a route); a group is dropped when
    # its server was not run in this pass
    groups = [
        ([f"{rondo} req/s"], lambda r: [fmt_rps(rps(p, rondo, r))], True),
    ]

    def vs(header, get):
        def cells(r):
            mine = rps(p, rondo, r)
            label, val = get(r)
            return [label if label is not None else fmt_rps(val), fmt_ratio(mine, val)]
        present = any(get(r)[1] is not None for r in routes)
        return (header, cells, present)

    def best_peer(r):
        name, val = best(p, r, rps)
        return (None if name is None else f"{fmt_rps(val)} ({short(name)})"), val

    groups += [
        vs([BARE, f"{rondo}/bare"], lambda r: (None, rps(p, BARE, r) if r == "plain" else None)),
        vs(["best session peer", f"{rondo}/peer"], best_peer),
        vs(["mux floor", f"{rondo}/mux"], lambda r: (None, rps(p, MUX_FLOOR, r))),
        vs(["pool floor", f"{rondo}/pool"], lambda r: (None, rps(p, POOL_FLOOR, r))),
    ]
    groups = [g for g in groups if g[2]]
    hdr = ["route"] + [h for g in groups for h in g[0]]
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|---|" + "".join("---|" if h == "best session peer" else "---:|" for h in hdr[1:]))
    for r in routes:
        cells = [r] + [c for g in groups for c in g[1](r)]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")

    # counter latency
    p99 = lambda pp, s, _r: value(pp, s, "main", "counter p99 ms")
    mine = p99(p, rondo, "counter")
    pname, pval = best(p, "counter", p99, lower=True)
    if mine is not None or pval is not None:
        mux = p99(p, MUX_FLOOR, "counter")
        line = (f"counter p99: {rondo} {fmt_ms(mine)} ms vs "
                + (f"{short(pname)} {fmt_ms(pval)} ms" if pname else "no session peer")
                + f" (ratio {fmt_ratio(mine, pval)}, lower is better)")
        if mux is not None:
            line += f"; mux floor {fmt_ms(mux)} ms"
        out += [line, ""]

    # lost increments
    lost_rows = []
    for s in p["order"]:
        a = p["acct"].get(s)
        if a is None:
            continue
        lost = num(a.get("lost increments", ""))
        exp = num(a.get("counter: expected", ""))
        pct = num(a.get("lost %", ""))
        infl = num(a.get("in flight at stop", ""))
        lost_rows.append(
            f"| {s}{' (no sessions)' if s == BARE else ''} | {fmt_rps(exp or None)} | {fmt_rps(lost)} | {'-' if pct is None else f'{pct:.1f}'} "
            f"| {fmt_rps(infl)} |")
    counter_run = any(num(a.get("counter: expected", "")) for a in p["acct"].values())
    if lost_rows and counter_run:
        out += ["| server | counter expected | lost increments | lost % | in flight at stop |",
                "|---|---:|---:|---:|---:|"] + lost_rows + [""]

    # warnings
    warn = []
    for s in p["order"]:
        row = p["main"][s]
        if all(num(row.get(f"{r} req/s", "")) is None for r in ROUTES):
            st = row.get("plain req/s", "")
            if st and st != "-" and s != rondo:
                warn.append(f"{s}: {st}")
            continue
        for col, what in (("non-2xx", "non-2xx responses"), ("socket errors", "socket errors")):
            v = num(row.get(col, ""))
            if v:
                warn.append(f"{s}: {fmt_rps(v)} {what}")
        oth = num(row.get("other CPU % (max)", ""))
        if oth is not None and oth > DISTURBED_OTHER_CPU:
            warn.append(f"{s}: other CPU up to {oth:.0f}% (disturbed by other work)")
    if warn:
        out += ["warnings: " + "; ".join(warn), ""]
    return out


def problems(p, rondo):
    """Functional (not speed) problems of Rondo in a pass, for --strict."""
    row = p["main"].get(rondo)
    if row is None:
        return [f"pass {p['n']}: no {rondo} row"]
    got = [r for r in ROUTES if num(row.get(f"{r} req/s", "")) is not None]
    if not got:
        return [f"pass {p['n']}: {rondo}: {row.get('plain req/s', '') or 'no results'}"]
    out = [f"pass {p['n']}: {rondo} /{r}: wrk produced no result"
           for r in ROUTES if row.get(f"{r} req/s", "") == "err"]
    n2 = num(row.get("non-2xx", ""))
    if n2:
        out.append(f"pass {p['n']}: {rondo}: {n2:.0f} non-2xx responses")
    return out


def short(name):
    return {"axum-tower-sessions": "axum", "actix-session-redis": "actix"}.get(name, name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary", help="summary.md written by bench.sh")
    ap.add_argument("--rondo", default="rondo", help="server name of Rondo's row (default: rondo)")
    ap.add_argument("--strict", action="store_true",
                    help="exit 3 when Rondo failed to start, has no results, or answered non-2xx "
                         "(never because of its speed)")
    args = ap.parse_args()
    try:
        with open(args.summary, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        print(f"ratios.py: {e}", file=sys.stderr)
        return 1
    heading, passes = parse(text)
    if not passes:
        print(f"ratios.py: no '## Pass N' sections in {args.summary}", file=sys.stderr)
        return 1

    title = heading[0].lstrip("# ") if heading else args.summary
    out = [f"## Rondo vs peers ({title})", ""]
    for h in heading[1:]:
        if h.startswith("wrk "):
            out += [h, ""]
    out += ["Ratios are Rondo / peer (req/s: higher is better). hyper-bare has no sessions, "
            "so it is compared on plain only; best session peer = the faster of "
            "axum-tower-sessions and actix-session-redis on that route."
            + (" The mean section averages each value over the passes and takes "
               "ratios of the means." if len(passes) > 1 else ""), ""]
    for p in passes:
        out += report(p, args.rondo, f"Pass {p['n']}")
    if len(passes) > 1:
        out += report(mean_pass(passes), args.rondo, f"Mean over {len(passes)} passes")
    print("\n".join(out).rstrip())
    if args.strict:
        bad = [b for p in passes for b in problems(p, args.rondo)]
        if bad:
            sys.stdout.flush()
            print("ratios.py: " + "; ".join(bad), file=sys.stderr)
            return 3
    return 0


if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    sys.exit(main())
