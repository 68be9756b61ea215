"""Comparing PostgreSQL's and Shoal's answers to one statement.

Input: the two Results of one statement (servers.py) and whether its rows
are ordered; output: an outcome category (classify), and for failures a
signature by which they are grouped (signature).

Values, not text. Results are compared as psycopg's Python values, not as
the servers' text output: the question is whether the values are the
same, and e.g. numeric 2.50 versus 2.5000000000 are the same value. Canon
normalises each value per column: if either server says float4 or float8
the column's values are compared as floats to --float-digits significant
digits (relative tolerance; NaN and the infinities exactly); otherwise
numbers (int, numeric) are compared exactly as Decimal; everything else by
equality. Rows are compared as lists when the query's ORDER BY names every
output column (ties are then identical rows), otherwise as multisets
(both sides sorted by a type-aware key). Column type OIDs are compared
separately: a difference in type alone (e.g. int8 where PostgreSQL says
int4 -- every integer literal is int8 on Shoal) is a "type" difference,
counted but not a failure. Canon.diff lists the rows found on only one
side, for the report.

Outcomes per statement: agree; type (values agree, column types differ);
both-error (counted by the pair of SQLSTATEs); unsupported (Shoal says
0A000 while PostgreSQL answers -- counted by message, not a failure);
timeout (either side hit statement_timeout, 57014); pg-lost (PostgreSQL's
connection dropped; counted, not Shoal's fault); and the FAILURES: value
(both answer, different rows), error (only one side errors), dml-state
(m1 differs after a DML statement whose outcomes agreed; decided by the
tester, which reads the table back) and crash (Shoal's connection
dropped).

A failure's signature is its category, and for an error also the side
that errored, its SQLSTATE and its message with numbers, quoted names and
parenthesised parts blanked (normalize_message), so that one bug hit with
different constants falls into one group. The minimizer keeps a shrunk
statement only while its signature stays the same.
"""

import collections
import decimal
import math
import re

from servers import _short

FAILURES = ("value", "error", "dml-state", "crash")

FLOAT_OIDS = {700, 701}


class Canon:
    def __init__(self, digits):
        self.rel = 10.0 ** (-digits)
        self.digits = digits

    def value(self, v, as_float):
        if v is None:
            return None
        if isinstance(v, bool):
            return v
        if as_float and isinstance(v, (int, float, decimal.Decimal)):
            f = float(v)
            if math.isnan(f):
                return "NaN"
            if math.isinf(f):
                return f
            return float("%.*g" % (self.digits, f))
        if isinstance(v, decimal.Decimal):
            if v.is_nan():
                return "NaN"
            return v
        if isinstance(v, int):
            return decimal.Decimal(v)
        if isinstance(v, float):
            return "NaN" if math.isnan(v) else v
        return v

    @staticmethod
    def key(row):
        out = []
        for v in row:
            if v is None:
                out.append((0, 0))
            elif isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool):
                out.append((1, v))
            else:
                out.append((2, str(v)))
        return tuple(out)

    def same(self, a, b):
        if a is None or b is None:
            return a is None and b is None
        if isinstance(a, float) or isinstance(b, float):
            if isinstance(a, str) or isinstance(b, str):
                return a == b
            fa, fb = float(a), float(b)
            if math.isinf(fa) or math.isinf(fb):
                return fa == fb
            return math.isclose(fa, fb, rel_tol=self.rel, abs_tol=1e-300)
        return a == b and type(a) is type(b) or \
            (isinstance(a, (decimal.Decimal, int)) and isinstance(b, (decimal.Decimal, int)) and a == b)

    def rows(self, res, float_cols):
        return [tuple(self.value(v, i in float_cols) for i, v in enumerate(r)) for r in res.rows]

    def compare(self, pg, sh, ordered):
        """None if the results agree, else a short reason."""
        if (pg.types is None) != (sh.types is None) or len(pg.types or []) != len(sh.types or []):
            return "column count %s vs %s" % (len(pg.types or []), len(sh.types or []))
        if pg.types is None:
            return None
        float_cols = {i for i, (a, b) in enumerate(zip(pg.types, sh.types)) if a in FLOAT_OIDS or b in FLOAT_OIDS}
        a, b = self.rows(pg, float_cols), self.rows(sh, float_cols)
        if len(a) != len(b):
            return "row count %d vs %d" % (len(a), len(b))
        if not ordered:
            try:
                a.sort(key=self.key)
                b.sort(key=self.key)
            except TypeError:
                a.sort(key=lambda r: [str(x) for x in r])
                b.sort(key=lambda r: [str(x) for x in r])
        for i, (ra, rb) in enumerate(zip(a, b)):
            if not all(self.same(x, y) for x, y in zip(ra, rb)):
                return "row %d differs%s" % (i, " (ordered)" if ordered else "")
        return None

    def diff(self, pg, sh, limit=5):
        """Rows only in one of the results (as multisets), for the report."""
        if not pg.ok or not sh.ok or not pg.types or not sh.types or len(pg.types) != len(sh.types):
            return None
        float_cols = {i for i, (a, b) in enumerate(zip(pg.types, sh.types)) if a in FLOAT_OIDS or b in FLOAT_OIDS}
        a = collections.Counter(self.rows(pg, float_cols))
        b = collections.Counter(self.rows(sh, float_cols))
        only_a = list((a - b).elements())
        only_b = list((b - a).elements())
        return ([_short(r) for r in only_a[:limit]], len(only_a), [_short(r) for r in only_b[:limit]], len(only_b))


def normalize_message(msg):
    m = (msg or "").splitlines()[0] if msg else ""
    for _ in range(30):
        prev = m
        m = re.sub(r"\{[^{}]*\}", "", m)
        m = re.sub(r"\([^()]*\)", "(..)", m)
        if m == prev:
            break
    m = re.sub(r"'[^']*'", "'..'", m)
    m = re.sub(r'"[^"]*"', '".."', m)
    m = re.sub(r"\d+", "N", m)
    return m[:110]


def classify(pg, sh, ordered, canon):
    """(outcome, detail)"""
    if sh.lost:
        return "crash", None
    if pg.lost:
        return "pg-lost", None
    if not pg.ok and not sh.ok:
        return "both-error", None
    if not sh.ok and sh.sqlstate == "0A000":
        return "unsupported", None
    if (not pg.ok and pg.sqlstate == "57014") or (not sh.ok and sh.sqlstate == "57014"):
        return "timeout", None
    if not pg.ok or not sh.ok:
        return "error", None
    reason = canon.compare(pg, sh, ordered)
    if reason:
        return "value", reason
    if pg.types != sh.types:
        return "type", None
    return "agree", None


def signature(outcome, pg, sh):
    if outcome == "error":
        if pg.ok:
            return ("error", "Shoal-only", sh.sqlstate, normalize_message(sh.message))
        return ("error", "PostgreSQL-only", pg.sqlstate, normalize_message(pg.message))
    return (outcome,)
