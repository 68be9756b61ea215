"""The schema and the rows the differential tester compares over.

Three read-only tables and one scratch table:

* t1, t2, t3 have int4 / int8 / text / bool / float8 / numeric / date
  columns, a primary key each and secondary indexes, and a few hundred rows
  with NULLs, duplicates, ties, .5 fractions and a few values near the
  int4 / int8 limits. The rows come from a fixed generator seeded with a
  constant string, not with --seed, so every run (and every seed) queries the
  same data and a failing query can be replayed against a fresh pair of
  servers with nothing but its text.

* m1 has t1's columns and rows and is the only target of the generated
  DML, so t1..t3 never change and each SELECT is reproducible on its own
  from its seed and index. The tester reloads m1 alone (schema_statements
  with just "m1") when it drifts or has taken enough statements.

Data flow: DATA (built once at import) -> schema_statements(tables), the
DROP / CREATE TABLE / CREATE INDEX / multi-row INSERT text, which the
tester sends verbatim to both servers; the same statements on both sides
means any difference read back afterwards is a difference in how the
servers stored or returned the values, not in what was loaded.
TABLES (column names and logical types) is also what the generator
(generator.py) draws columns from, and sql_literal is shared with it for
text and date literals.
"""

import datetime
import decimal
import random

TABLES = {
    "t1": [("id", "int4"), ("a", "int4"), ("b", "int8"), ("s", "text"), ("flag", "bool"),
           ("f", "float8"), ("n", "numeric"), ("d", "date")],
    "t2": [("id", "int8"), ("t1_id", "int4"), ("k", "int4"), ("v", "text"),
           ("amt", "numeric"), ("f", "float8"), ("d", "date")],
    "t3": [("k", "int4"), ("name", "text"), ("w", "float8"), ("active", "bool")],
}
TABLES["m1"] = TABLES["t1"]
DDL_TYPES = {  # the declared type where it differs from the logical one
    ("t1", "n"): "numeric(12,3)", ("m1", "n"): "numeric(12,3)", ("t2", "amt"): "numeric(10,2)",
}
PKEY = {"t1": "id", "t2": "id", "t3": "k", "m1": "id"}
INDEXES = {"t1": ["a", "s"], "t2": ["t1_id"], "t3": ["name"], "m1": ["a"]}

WORDS = ["alpha", "beta", "Gamma", "delta", "", "a_b", "a%b", "zeta", "ünï", "Alpha",
         "alpha ", " beta", "x", "xyz", "beta", "alpha"]
SPECIAL_DATES = [datetime.date(2000, 2, 29), datetime.date(2020, 2, 29), datetime.date(1999, 12, 31),
                 datetime.date(2024, 1, 1)]


def _maybe_null(rng, value, p=0.1):
    return None if rng.random() < p else value


def _data():
    """The rows of t1, t2, t3 — fixed, independent of --seed."""
    rng = random.Random("shoal-differential-data-v1")
    day0 = datetime.date(1999, 1, 1)

    def a_date():
        if rng.random() < 0.15:
            return rng.choice(SPECIAL_DATES)
        return day0 + datetime.timedelta(days=rng.randrange(0, 32 * 365))

    def a_float():
        r = rng.random()
        if r < 0.3:
            return rng.choice([0.0, 1.5, -2.5, 0.5, 2.5, 0.1, 1 / 3, 1e-5, 100.0, 3.14159, -0.5])
        return round(rng.uniform(-1000, 1000), rng.choice([0, 1, 3]))

    t1 = []
    for i in range(1, 301):
        r = rng.random()
        if r < 0.05:
            a = rng.choice([2147483647, -2147483647, 1000000, 65536])
        elif r < 0.15:
            a = rng.randrange(-10, 0)
        else:
            a = rng.randrange(0, 21)
        r = rng.random()
        if r < 0.05:
            b = rng.choice([9000000000000000000, -9000000000000000000, 4294967296])
        elif r < 0.3:
            b = rng.randrange(-10 ** 12, 10 ** 12)
        else:
            b = rng.randrange(0, 50)
        n = decimal.Decimal(rng.randrange(-1000000, 1000000)).scaleb(-3)
        if rng.random() < 0.3:
            n = decimal.Decimal(rng.choice(["0.000", "1.500", "2.500", "-0.500", "10.000", "0.125"]))
        t1.append((i, _maybe_null(rng, a), _maybe_null(rng, b), _maybe_null(rng, rng.choice(WORDS)),
                   _maybe_null(rng, rng.random() < 0.5), _maybe_null(rng, a_float()),
                   _maybe_null(rng, n), _maybe_null(rng, a_date())))
    t2 = []
    for i in range(1, 401):
        amt = decimal.Decimal(rng.randrange(-100000, 100000)).scaleb(-2)
        t2.append((1000 + 7 * i, _maybe_null(rng, rng.randrange(1, 321)), _maybe_null(rng, rng.randrange(0, 26)),
                   _maybe_null(rng, rng.choice(WORDS)), _maybe_null(rng, amt), _maybe_null(rng, a_float()),
                   _maybe_null(rng, a_date())))
    t3 = []
    for k in range(0, 25):
        t3.append((k, _maybe_null(rng, rng.choice(WORDS)), _maybe_null(rng, a_float()),
                   _maybe_null(rng, rng.random() < 0.5)))
    return {"t1": t1, "t2": t2, "t3": t3, "m1": t1}


DATA = _data()


def sql_literal(value, typ):
    if value is None:
        return "NULL"
    if typ == "text":
        return "'" + value.replace("'", "''") + "'"
    if typ == "bool":
        return "TRUE" if value else "FALSE"
    if typ == "date":
        return "DATE '%s'" % value.isoformat()
    if typ == "float8":
        return repr(float(value))
    return str(value)


def schema_statements(tables):
    out = []
    for t in tables:
        cols = ", ".join("%s %s%s" % (c, DDL_TYPES.get((t, c), ty), " PRIMARY KEY" if c == PKEY[t] else "")
                         for c, ty in TABLES[t])
        out.append("DROP TABLE IF EXISTS %s" % t)
        out.append("CREATE TABLE %s (%s)" % (t, cols))
        for c in INDEXES[t]:
            out.append("CREATE INDEX %s_%s_idx ON %s (%s)" % (t, c, t, c))
        rows = DATA[t]
        for i in range(0, len(rows), 100):
            values = ", ".join("(" + ", ".join(sql_literal(v, ty) for v, (_, ty) in zip(row, TABLES[t])) + ")"
                               for row in rows[i:i + 100])
            out.append("INSERT INTO %s VALUES %s" % (t, values))
    return out
