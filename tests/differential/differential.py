"""Differential testing of Shoal against PostgreSQL: random queries, both answers compared.

Run by tests/differential/run.sh (which starts a throwaway PostgreSQL cluster
and a throwaway Shoal node and passes their connection strings), or by hand:

    differential.py --pg CONNINFO --shoal CONNINFO [--seed S] [--queries N | --seconds S]
                    [--allow-failures] [--json FILE]
    differential.py --pg ... --shoal ... --query 'SELECT ...'     # one query, both answers

This file is the entry point: the arguments, the two connections, the main
loop and the exit status. The rest of the tester is in sibling modules of
this directory (imported as plain modules: running this file as a script
puts its directory first on sys.path), each opening with an account of its
own design:

    schema.py     the tables and their fixed rows: t1..t3 read-only, m1 for DML
    sqltree.py    the syntax tree of generated statements; walks, validity, features
    generator.py  the typed random generator of queries and DML statements
    servers.py    running one statement on one server; errors and connection loss
    compare.py    normalising and comparing two answers; the outcome categories
    minimize.py   recording failures, shrinking them, grouping them
    report.py     the text summary and the JSON file

How a run flows. Tester.setup creates and loads the tables on both servers
with the same statements (schema.py), reads every table back from both and
compares them; a difference there is a "load" failure, found before any
query runs. Then for each index I from --start, a generator seeded with
"seed:I" builds one statement tree (generator.py), a --dml fraction of
them DML on m1. Its text is sent to PostgreSQL, then to Shoal (servers.py);
the two answers are classified (compare.py) and counted; a failure is
recorded, minimized within its budget and grouped (minimize.py). After a
DML statement m1 is read back from both servers: if the statements'
outcomes agreed but the tables no longer do, that is a dml-state failure;
m1 is reloaded when it differs, after 50 DML statements, or when its size
drifts out of range. The run ends after --queries statements or --seconds
seconds, or early once Shoal stops answering after a crash; then the
summary is printed (report.py) and, with --json, written out in full.

Reproducing: statement I of seed S is generated from S and I alone, and a
SELECT reads only t1..t3, which never change, so
`--seed S --start I --queries 1 --print-queries` replays it (a DML
statement's effect also depends on m1's state at the time); --query runs
any statement text on both servers and shows both answers.

Exit status: 0 if every statement's outcome was a non-failure; 1 if there
was any value / error / dml-state / crash failure, or the loaded tables
differed; 1 also on a setup problem that stops the run (a server that
cannot be reached, a schema statement that fails; the error is printed);
2 on bad arguments.

--allow-failures: value, error and dml-state failures are still found,
minimized and reported exactly as without it, but do not make the exit
status non-zero (a note on stderr says how many there were). A crash
(Shoal's connection dropped: the server died or stopped answering) and
setup problems (including tables that differ right after loading) still
exit 1. This is for a short fixed-seed pass in `make test` that shows how
far Shoal is from PostgreSQL without failing the build on known
differences, as the SQLite-corpus runner reports its pass counts.
"""

import argparse
import collections
import os
import random
import re
import sys
import time

import psycopg

# The sibling modules are imported as top-level modules: when this file
# runs as a script its directory is sys.path[0]; make that so when it is
# loaded any other way, and keep __pycache__ out of the source tree.
sys.dont_write_bytecode = True
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import report  # noqa: E402
from compare import FAILURES, Canon, classify, normalize_message, signature  # noqa: E402
from generator import Gen  # noqa: E402
from minimize import Failures  # noqa: E402
from schema import schema_statements  # noqa: E402
from servers import Server, type_name  # noqa: E402

# The failures --allow-failures lets pass; "crash" (and a load difference) never.
ALLOWED_FAILURES = ("value", "error", "dml-state")


class Tester:
    """One run: the two servers, the counts of outcomes, the failures
    (minimize.Failures), and the time spent; report.py reads them."""

    def __init__(self, args):
        self.args = args
        self.pg = Server("PostgreSQL", args.pg, args.timeout_ms)
        self.sh = Server("Shoal", args.shoal, args.timeout_ms)
        self.canon = Canon(args.float_digits)
        self.counts = collections.Counter()
        self.unsupported = collections.Counter()
        self.both_error = collections.Counter()
        self.type_diffs = collections.Counter()
        self.failures = Failures(args, self.canon, self.check_query, self.sh.alive)
        self.statements = 0
        self.dml_since_reset = 0
        self.busy = collections.Counter()
        self.slow = []  # (Shoal s, PostgreSQL s, sql): Shoal over 1 s and 10x slower

    # -- setup ----------------------------------------------------------------

    def setup(self, tables=("t1", "t2", "t3", "m1")):
        for srv in (self.pg, self.sh):
            srv.connect()
            for stmt in schema_statements(tables):
                try:
                    srv.conn.execute(stmt)
                except psycopg.Error as e:
                    raise SystemExit("setup failed on %s: %s\n  in: %s" % (srv.name, e, stmt[:300]))
        for t in tables:
            reason = self.table_diff(t)
            if reason:
                self.failures.add("load", "SELECT * FROM %s" % t, None, None, ("load", t), reason)

    def table_diff(self, t):
        q = "SELECT * FROM %s" % t
        pg, sh = self.pg.run(q), self.sh.run(q)
        if not pg.ok or not sh.ok:
            return "cannot read %s: %s / %s" % (t, pg.brief(), sh.brief())
        return self.canon.compare(pg, sh, ordered=False)

    # -- one statement ----------------------------------------------------------

    def run_pair(self, sql):
        self.statements += 1
        pg = self.pg.run(sql)
        sh = self.sh.run(sql)
        self.busy["PostgreSQL"] += pg.elapsed
        self.busy["Shoal"] += sh.elapsed
        if sh.elapsed > 1.0 and sh.elapsed > 10 * pg.elapsed:
            self.slow.append((sh.elapsed, pg.elapsed, sql))
        return pg, sh

    def check_query(self, node, sql=None):
        sql = sql or node.sql()
        pg, sh = self.run_pair(sql)
        ordered = node.fully_ordered() if node is not None and hasattr(node, "fully_ordered") else False
        outcome, reason = classify(pg, sh, ordered, self.canon)
        return outcome, reason, pg, sh

    def record(self, outcome, node, sql, pg, sh, reason):
        self.counts[outcome] += 1
        if outcome == "unsupported":
            self.unsupported[normalize_message(sh.message)] += 1
        elif outcome == "both-error":
            self.both_error[(pg.sqlstate, sh.sqlstate)] += 1
        elif outcome == "type":
            for a, b in zip(pg.types, sh.types):
                if a != b:
                    self.type_diffs["%s -> %s" % (type_name(a), type_name(b))] += 1
        elif outcome in FAILURES:
            self.failures.add(outcome, sql, pg, sh, signature(outcome, pg, sh), reason, node)

    # -- DML -------------------------------------------------------------------

    def check_dml(self, node):
        sql = node.sql()
        pg, sh = self.run_pair(sql)
        outcome, reason = classify(pg, sh, False, self.canon)
        if outcome == "agree" and pg.rowcount != sh.rowcount:
            outcome, reason = "value", "rowcount %s vs %s" % (pg.rowcount, sh.rowcount)
        if outcome == "type":
            outcome = "agree"
        self.counts["dml:" + outcome] += 1
        if outcome in FAILURES:
            self.failures.add(outcome, sql, pg, sh, signature(outcome, pg, sh), reason, None)
        elif outcome == "unsupported":
            self.unsupported[normalize_message(sh.message)] += 1
        elif outcome == "both-error":
            self.both_error[(pg.sqlstate, sh.sqlstate)] += 1
        self.dml_since_reset += 1
        diff = self.table_diff("m1")
        if diff and outcome in ("agree", "both-error"):
            # The statements' outcomes agreed but the tables no longer do.
            # (After an error on one side only, they differ of course.)
            self.counts["dml-state"] += 1
            self.failures.add("dml-state", sql, pg, sh, ("dml-state",), "m1 differs afterwards: " + diff)
        size = self.pg.run("SELECT count(*) FROM m1")
        n = size.rows[0][0] if size.ok else 0
        if diff or self.dml_since_reset >= 50 or n < 50 or n > 1500:
            self.setup(("m1",))
            self.dml_since_reset = 0

    # -- main loop -------------------------------------------------------------

    def run(self):
        a = self.args
        self.setup()
        start = time.monotonic()
        i = a.start
        while True:
            if a.queries is not None and i >= a.start + a.queries:
                break
            if a.seconds is not None and time.monotonic() - start > a.seconds:
                break
            g = Gen(random.Random("%d:%d" % (a.seed, i)))
            if g.chance(a.dml):
                node = g.dml()
                if a.print_queries:
                    print("-- %d\n%s;" % (i, node.sql()), flush=True)
                self.check_dml(node)
            else:
                node = g.query()
                sql = node.sql()
                if a.print_queries:
                    print("-- %d\n%s;" % (i, sql), flush=True)
                outcome, reason, pg, sh = self.check_query(node, sql)
                self.record(outcome, node, sql, pg, sh, reason)
                if outcome == "crash" and not self.sh.alive():
                    print("Shoal no longer answers; stopping after statement %d" % i, file=sys.stderr)
                    self.counts["stopped-on-crash"] += 1
                    i += 1
                    break
            i += 1
            if a.progress and (i - a.start) % a.progress == 0:
                print("[%6.0fs] %d statements: %s" % (time.monotonic() - start, i - a.start,
                                                      dict(self.counts)), file=sys.stderr, flush=True)
        self.elapsed = time.monotonic() - start
        self.generated = i - a.start


def exit_status(t, allow_failures):
    """1 if the run failed, else 0; with allow_failures only a crash or a
    load difference fails it. Prints a note on stderr when failures were
    allowed through."""
    c = t.counts
    crashes = c["crash"] + c["dml:crash"]
    load = sum(1 for f in t.failures.entries if f["category"] == "load")
    # A DML statement's own failure is counted as "dml:value" / "dml:error";
    # tables that diverge after it, as "dml-state".
    allowed = sum(c[k] + c["dml:" + k] for k in ALLOWED_FAILURES)
    if crashes or load:
        return 1
    if allowed and allow_failures:
        print("--allow-failures: %d value / error / dml-state failure(s) reported above, not counted in the "
              "exit status" % allowed, file=sys.stderr)
        return 0
    return 1 if allowed else 0


def single(args):
    t = Tester(args)
    for srv in (t.pg, t.sh):
        srv.connect()
    if args.setup:
        t.setup()
    pg, sh = t.run_pair(args.query)
    ordered = bool(re.search(r"\border\s+by\b", args.query, re.I)) and args.ordered
    outcome, reason = classify(pg, sh, ordered, t.canon)
    print("outcome:    %s %s" % (outcome, reason or ""))
    print("PostgreSQL: %s" % pg.brief(limit=args.show_rows))
    print("Shoal:      %s" % sh.brief(limit=args.show_rows))
    d = t.canon.diff(pg, sh, limit=args.show_rows)
    if d and (d[1] or d[3]):
        print("only PG (%d):    %s" % (d[1], " ".join(d[0])))
        print("only Shoal (%d): %s" % (d[3], " ".join(d[2])))
    if outcome == "crash" or (outcome in FAILURES and not args.allow_failures):
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pg", required=True, help="PostgreSQL conninfo")
    ap.add_argument("--shoal", required=True, help="Shoal conninfo")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="index of the first statement (for reproducing one)")
    ap.add_argument("--queries", type=int, help="number of statements")
    ap.add_argument("--seconds", type=float, help="run for this long (default: 60 unless --queries)")
    ap.add_argument("--dml", type=float, default=0.05, help="fraction of DML statements (default 0.05)")
    ap.add_argument("--timeout-ms", type=int, default=5000, help="statement_timeout on both (default 5000)")
    ap.add_argument("--float-digits", type=int, default=12, help="significant digits compared for floats")
    ap.add_argument("--no-minimize", dest="minimize", action="store_false")
    ap.add_argument("--minimize-per-group", type=int, default=3, help="failures minimized per group (default 3)")
    ap.add_argument("--minimize-values", type=int, default=150,
                    help="value failures minimized in all (default 150); they are grouped by the features "
                         "(operators, functions, clauses) left in the minimized query; a later value failure "
                         "whose query has all the features of an earlier minimized one is presumed to be "
                         "the same bug and not minimized")
    ap.add_argument("--minimize-tests", type=int, default=250, help="statements per minimization (default 250)")
    ap.add_argument("--minimize-seconds", type=float, default=60)
    ap.add_argument("--show", type=int, default=2, help="examples printed per failure group (default 2)")
    ap.add_argument("--json", help="also write every failure and the counts to this file")
    ap.add_argument("--allow-failures", action="store_true",
                    help="exit 0 despite value / error / dml-state failures (still reported); a crash or a "
                         "setup problem still exits 1")
    ap.add_argument("--print-queries", action="store_true", help="print each statement before running it")
    ap.add_argument("--progress", type=int, default=500, help="a progress line every N statements (0: none)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print failures as they are found")
    ap.add_argument("--query", help="run just this query on both servers and compare")
    ap.add_argument("--setup", action="store_true", help="with --query: (re)create the tables first")
    ap.add_argument("--ordered", action="store_true", help="with --query: compare rows in order")
    ap.add_argument("--show-rows", type=int, default=20)
    args = ap.parse_args()
    if args.query:
        return single(args)
    if args.queries is None and args.seconds is None:
        args.seconds = 60
    t = Tester(args)
    try:
        t.run()
    except KeyboardInterrupt:
        t.elapsed, t.generated = 0, 0
    print(report.summary(t))
    if args.json:
        report.write_json(args.json, t)
    return exit_status(t, args.allow_failures)


if __name__ == "__main__":
    sys.exit(main())
