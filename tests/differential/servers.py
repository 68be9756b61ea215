"""Running one statement on one server, and what came back.

A Server is one autocommit psycopg connection with statement_timeout set;
Server.run(sql) sends one statement and returns a Result, never raising:
either the rows (as psycopg's Python values, from its standard text-format
loaders, so both servers' answers go through the same conversion) with the
column type OIDs and the rowcount, or the SQLSTATE and message of the
error. Anything that fails in the client (a loader that cannot read a
value, ...) is an error with a "client:<exception>" SQLSTATE, so it is
compared like a server error.

Connection loss is told apart from a statement error: an OperationalError
without a SQLSTATE, or a connection that is closed afterwards, marks the
Result `lost` and drops the connection, which is reconnected before the
next statement. The tester (differential.py) counts a lost Shoal
connection as a crash and asks Server.alive whether Shoal still answers.

statement_timeout should end every statement; a watchdog timer (the
timeout plus 10 s) cancels a statement the server lets overrun, so one
hung statement cannot hang the run.

Result.brief renders a result in one line for the report, with the column
type names from TYPE_NAMES; _short / _val are the row and value
formatting that compare.py's row diffs share.
"""

import datetime
import decimal
import threading
import time

import psycopg

TYPE_NAMES = {16: "bool", 20: "int8", 21: "int2", 23: "int4", 25: "text", 700: "float4", 701: "float8",
              1043: "varchar", 1082: "date", 1700: "numeric", 1114: "timestamp", 1184: "timestamptz",
              705: "unknown", 19: "name", 18: "char", 26: "oid"}


def type_name(oid):
    return TYPE_NAMES.get(oid, str(oid))


class Result:
    def __init__(self):
        self.ok = False
        self.rows = None
        self.types = None
        self.rowcount = None
        self.sqlstate = None
        self.message = None
        self.lost = False
        self.elapsed = 0.0

    def brief(self, limit=6):
        if self.lost:
            return "CONNECTION LOST: %s" % (self.message or "")
        if not self.ok:
            return "ERROR %s: %s" % (self.sqlstate, (self.message or "").splitlines()[0][:200])
        head = "%d row(s)" % len(self.rows)
        if self.types:
            head += " [%s]" % ", ".join(type_name(t) for t in self.types)
        if self.rowcount is not None and not self.types:
            head = "rowcount %d" % self.rowcount
        shown = [tuple(self.rows[i]) for i in range(min(limit, len(self.rows)))]
        return head + (": " + ", ".join(_short(r) for r in shown) if shown else "") + \
            (", ..." if len(self.rows) > limit else "")


def _short(row):
    s = "(" + ", ".join(_val(v) for v in row) + ")"
    return s if len(s) < 200 else s[:200] + "...)"


def _val(v):
    if v is None:
        return "NULL"
    if isinstance(v, (datetime.date, decimal.Decimal)):
        return str(v)
    return repr(v)


class Server:
    def __init__(self, name, conninfo, timeout_ms):
        self.name, self.conninfo, self.timeout_ms = name, conninfo, timeout_ms
        self.conn = None

    def connect(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
        self.conn.execute("SET statement_timeout = %d" % self.timeout_ms)

    def alive(self):
        try:
            self.connect()
            self.conn.execute("SELECT 1").fetchall()
            return True
        except Exception:
            return False

    def run(self, sql):
        res = Result()
        # statement_timeout should end every statement; the watchdog cancels
        # one the server let overrun, and gives up on the connection after that.
        watchdog = threading.Timer(self.timeout_ms / 1000 + 10, self._cancel)
        watchdog.daemon = True
        start = time.monotonic()
        watchdog.start()
        try:
            if self.conn is None or self.conn.closed:
                self.connect()
            cur = self.conn.cursor()
            cur.execute(sql)
            if cur.description is not None:
                res.types = [d.type_code for d in cur.description]
                res.rows = cur.fetchall()
            else:
                res.rows = []
            res.rowcount = cur.rowcount
            res.ok = True
        except psycopg.Error as e:
            res.sqlstate = getattr(e, "sqlstate", None) or ("client:" + type(e).__name__)
            res.message = str(e)
            if self.conn is None or self.conn.closed or isinstance(e, psycopg.OperationalError) and \
                    getattr(e, "sqlstate", None) is None:
                res.lost = True
                self.conn = None
        except Exception as e:  # a loader failing, ...
            res.sqlstate = "client:" + type(e).__name__
            res.message = str(e)
        finally:
            watchdog.cancel()
            res.elapsed = time.monotonic() - start
        return res

    def _cancel(self):
        try:
            if self.conn is not None:
                self.conn.cancel()
        except Exception:
            pass
