"""The end-of-run report: a text summary, and optionally a JSON file.

Both are read off a finished Tester (differential.py) and change nothing:
its outcome counts (`counts`: per query outcome, "dml:<outcome>" per DML
outcome, "dml-state", "stopped-on-crash"), the tallies of the outcomes that
are not failures (column type differences, unsupported messages, pairs of
SQLSTATEs when both errored), the time each server spent in statements
and the statements where Shoal was much slower, and the failure entries
(minimize.py).

summary() prints the counts first -- the lines a person or a script
compares between runs -- then the tallies, then the failures grouped as
minimize.group groups them, largest group first: for each, the features
seen in it and up to --show examples (minimized ones first, shortest
first, one per distinct feature set), each with both answers, the
minimized query with its answers, and the rows found on one side only.

write_json() writes the same counts and every failure entry, for tools
that compare runs or file bugs; its keys are a stable interface.
"""

import collections
import json

from minimize import group


def summary(t):
    a, c = t.args, t.counts
    out = []
    p = out.append
    p("== differential: seed %d, statements %d..%d (%d generated) in %.0fs; %d statements sent to each server"
      % (a.seed, a.start, a.start + t.generated - 1, t.generated, t.elapsed, t.statements))
    sel = sum(v for k, v in c.items() if not k.startswith("dml:") and k not in ("dml-state", "stopped-on-crash"))
    p("queries: %d   agree %d   type-only %d   both-error %d   unsupported %d   timeout %d" %
      (sel, c["agree"], c["type"], c["both-error"], c["unsupported"], c["timeout"]))
    p("query failures: value %d   error %d   crash %d" % (c["value"], c["error"], c["crash"]))
    dml = {k[4:]: v for k, v in c.items() if k.startswith("dml:")}
    if dml:
        p("DML: %d statements %s; tables diverged after %d" % (sum(dml.values()), dict(sorted(dml.items())),
                                                              c["dml-state"]))
    p("time in statements: PostgreSQL %.0fs, Shoal %.0fs; %d statements took Shoal over 1 s and 10x "
      "PostgreSQL's time" % (t.busy["PostgreSQL"], t.busy["Shoal"], len(t.slow)))
    for s, u, q in sorted(t.slow, reverse=True)[:3]:
        p("   %.1fs vs %.3fs: %s" % (s, u, _trunc(q, 300)))
    if t.type_diffs:
        p("\n-- column type differences (PostgreSQL -> Shoal), columns:")
        for k, v in t.type_diffs.most_common():
            p("  %6d  %s" % (v, k))
    if t.unsupported:
        p("\n-- unsupported on Shoal (0A000), by message:")
        for k, v in t.unsupported.most_common():
            p("  %6d  %s" % (v, k))
    if t.both_error:
        p("\n-- both errored, by SQLSTATE (PostgreSQL, Shoal):")
        for (x, y), v in t.both_error.most_common():
            p("  %6d  %s %s%s" % (v, x, y, "" if (x or "")[:2] == (y or "")[:2] else "   (class differs)"))
    failures = t.failures.entries
    groups = group(failures)
    if groups:
        p("\n-- failures: %d in %d groups (category / side / SQLSTATE / message)" % (len(failures), len(groups)))
    for sig, fs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        n_presumed = sum(1 for f in fs if "presumed" in f)
        p("\n## %s  x%d%s" % (" | ".join(str(x) for x in sig), len(fs),
                             " (%d of them presumed: not minimized, their queries have these features)" % n_presumed
                             if n_presumed else ""))
        shown, seen = [], set()
        for f in sorted(fs, key=lambda f: ("minimized" not in f, len(f.get("minimized") or f["query"]))):
            k = tuple(f.get("min_features") or ()) if "minimized" in f else None
            if len(shown) < a.show and (k is None or k not in seen):
                shown.append(f)
                seen.add(k)
        tags = collections.Counter(tag for f in fs for tag in f.get("min_features") or f["features"])
        if tags:
            p("   features in these: " + ", ".join("%s %d" % kv for kv in tags.most_common(12)))
        for f in shown:
            p("   query:     " + _trunc(f["query"], 600))
            if f.get("reason"):
                p("   reason:    " + f["reason"])
            p("   PG:        " + _trunc(f["pg"] or "", 400))
            p("   Shoal:     " + _trunc(f["shoal"] or "", 400))
            if f.get("minimized"):
                p("   minimized: " + f["minimized"])
                p("     PG:      " + _trunc(f["min_pg"], 400))
                p("     Shoal:   " + _trunc(f["min_shoal"], 400))
                d = f.get("min_diff")
            else:
                d = f.get("diff")
            if d and (d[1] or d[3]):
                p("     only PG (%d):    %s" % (d[1], _trunc(" ".join(d[0]), 300)))
                p("     only Shoal (%d): %s" % (d[3], _trunc(" ".join(d[2]), 300)))
    return "\n".join(out)


def write_json(path, t):
    a = t.args
    with open(path, "w") as fh:
        json.dump({"seed": a.seed, "start": a.start, "generated": t.generated,
                   "statements": t.statements, "counts": t.counts, "busy": t.busy, "slow": t.slow,
                   "unsupported": t.unsupported, "type_diffs": t.type_diffs,
                   "both_error": {"%s %s" % k: v for k, v in t.both_error.items()},
                   "failures": t.failures.entries}, fh, indent=1, default=str)


def _trunc(s, n):
    return s if len(s) <= n else s[:n] + " ..."
