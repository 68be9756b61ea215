"""Recording failures, shrinking them, and grouping them for the report.

Every failure the tester finds goes through Failures.add, which turns it
into one entry (a dict: category, signature, query, reason, both answers
in brief, the rows found on one side only, the query's features) and
appends it to Failures.entries -- the list the report and the JSON file
are made from.

Shrinking. A failing statement is minimized greedily: walk its tree
(sqltree.py), try each node's smaller replacements (Node.shrinks) in turn,
skip candidates that are not shorter, were tried already, or are not
valid (sqltree.valid), run each on both servers through the tester's
check_query, and keep the first that still fails the same way -- the same
outcome and the same signature (compare.signature: for an error, the same
side, SQLSTATE and message shape) -- then start over from it. It stops
when no replacement keeps the failure, or after --minimize-tests
statements or --minimize-seconds. Only SELECTs are minimized (DML and
dml-state failures have no tree here), and only while Shoal still answers.

Budgets and grouping. Error and crash failures are grouped by signature
and only the first --minimize-per-group of each group are minimized.
Value failures all share one signature, so they are told apart by the
features (operators, functions, clauses) left in their minimized query:
each minimized value failure that still fails adds its feature set to
`culprits`, and a later value failure whose query has every feature of an
earlier culprit is presumed to be the same bug and not minimized (the
entry records the presumed features instead); at most --minimize-values
value failures are minimized in all. group() applies the same rule to
the finished entries: key = signature, plus for value failures the
minimized features, the presumed ones, or "not minimized".
"""

import collections
import sys
import time

from compare import signature
from sqltree import features, replace_at, valid, walk


class Failures:
    """The failures of one run. `check_query(node, sql)` runs a statement on
    both servers and returns (outcome, reason, pg, sh); `shoal_alive()`
    reconnects to Shoal and says whether it answers."""

    def __init__(self, args, canon, check_query, shoal_alive):
        self.args, self.canon = args, canon
        self.check_query, self.shoal_alive = check_query, shoal_alive
        self.entries = []  # dicts
        self.sigs = collections.Counter()
        self.minimized_per_sig = collections.Counter()
        self.minimize_runs = 0
        self.culprits = []  # feature sets of minimized value failures

    def add(self, outcome, sql, pg, sh, sig, reason, node=None):
        self.sigs[sig] += 1
        entry = {"category": outcome, "signature": sig, "query": sql, "reason": reason,
                 "pg": pg.brief() if pg else None, "shoal": sh.brief() if sh else None,
                 "features": sorted(features(node)) if node is not None else []}
        if pg is not None and sh is not None:
            entry["diff"] = self.canon.diff(pg, sh)
        presumed = None
        if outcome == "value" and node is not None:
            feats = features(node)
            presumed = next((c for c in self.culprits if c <= feats), None)
        if presumed is not None:
            entry["presumed"] = " ".join(sorted(presumed))
            budget_left = False
        elif outcome == "value":
            budget_left = self.minimized_per_sig[sig] < self.args.minimize_values
        else:
            budget_left = self.minimized_per_sig[sig] < self.args.minimize_per_group
        if node is not None and self.args.minimize and outcome in ("value", "error", "crash") and \
                budget_left and self.shoal_alive():
            self.minimized_per_sig[sig] += 1
            small = self.minimize(node, outcome, sig)
            if small is not None:
                s = small.sql()
                o, r, spg, ssh = self.check_query(small, s)
                entry["minimized"] = s
                entry["min_pg"], entry["min_shoal"] = spg.brief(), ssh.brief()
                entry["min_diff"] = self.canon.diff(spg, ssh)
                entry["min_features"] = sorted(features(small))
                if outcome == "value" and o == "value" and entry["min_features"]:
                    self.culprits.append(frozenset(entry["min_features"]))
        self.entries.append(entry)
        if self.args.verbose:
            print("[%s] %s\n  %s\n  PG:    %s\n  Shoal: %s" % (outcome, sig, entry.get("minimized") or sql,
                                                              entry.get("min_pg") or entry["pg"],
                                                              entry.get("min_shoal") or entry["shoal"]),
                  file=sys.stderr, flush=True)

    def minimize(self, node, outcome, sig):
        self.minimize_runs += 1
        best, best_sql = node, node.sql()
        tried = {best_sql}
        tests, deadline = 0, time.monotonic() + self.args.minimize_seconds
        improved = True
        while improved and tests < self.args.minimize_tests and time.monotonic() < deadline:
            improved = False
            for path, n in list(walk(best)):
                for cand in n.shrinks():
                    new = replace_at(best, path, cand)
                    s = new.sql()
                    if s in tried or len(s) >= len(best_sql):
                        continue
                    tried.add(s)
                    if not valid(new):
                        continue
                    tests += 1
                    o, _, pg, sh = self.check_query(new, s)
                    if o == outcome and signature(o, pg, sh) == sig:
                        best, best_sql, improved = new, s, True
                        break
                    if o == "crash":
                        self.shoal_alive()
                    if tests >= self.args.minimize_tests or time.monotonic() > deadline:
                        break
                if improved or tests >= self.args.minimize_tests or time.monotonic() > deadline:
                    break
        return best


def group(entries):
    """The failure entries by group key, in order of first appearance."""
    groups = collections.OrderedDict()
    for f in entries:
        key = f["signature"]
        if f["category"] == "value":
            if "minimized" in f:
                key = key + ("features: " + " ".join(f["min_features"]),)
            elif "presumed" in f:
                key = key + ("features: " + f["presumed"],)
            else:
                key = key + ("not minimized",)
        groups.setdefault(key, []).append(f)
    return groups
