#!/usr/bin/env python3
"""tests/fuzz/replay.py — run a file of SQL statements (sqlsmith output)
against a server one at a time, the way sqlsmith itself does (each in a
transaction that is rolled back), and record what each one did.

Speaks libpq through ctypes, so it needs nothing beyond python3 and libpq.

    replay.py --conn CONNINFO --queries FILE --out DIR
              [--node-log FILE] [--node-pid PID]
              [--statement-timeout SECS] [--hang-secs SECS]
              [--max-seconds SECS] [--strip-tablesample]

With --strip-tablesample, TABLESAMPLE clauses (which sqlsmith writes
often and Shoal refuses with 0A000) are dropped first, so the rest of
each such statement is exercised; the summary counts them.

For every statement it notes the outcome (ok / error with SQLSTATE /
connection lost), how long it took, and whether the node's log gained a
"panicked" line while it ran (the statements run one after another on one
connection, so a panic is attributed to the statement in flight). A
statement still running --hang-secs after it started is cancelled and
recorded as a hang; if even the cancel does not end it within another
--hang-secs, the run stops there (exit status 3).

Writes into DIR:
  results.tsv           index, outcome, SQLSTATE, milliseconds, message class
  errors_by_sqlstate.tsv, errors_by_class.tsv   counts, most frequent first
  findings/NNNNN-KIND.sql   each statement that panicked the node, lost the
                        connection, hung or overran statement_timeout, with
                        findings/NNNNN-KIND.txt (what happened, log excerpt)
  summary.txt           the figures, one "key: value" a line
Exit status: 0 when the run finished (whatever it found), 2 on bad usage or
when the server cannot be reached at the start, 3 on an unrecoverable hang,
4 when the node died.
"""

import argparse
import collections
import ctypes
import ctypes.util
import os
import re
import sys
import threading
import time

# ---------------------------------------------------------------------------
# libpq
# ---------------------------------------------------------------------------

_lib_name = ctypes.util.find_library("pq") or "libpq.so.5"
pq = ctypes.CDLL(_lib_name)
NOTICE_PROCESSOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
_PTR, _STR, _INT = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
# The libpq calls used here: name, return type, argument types.
for _name, _ret, _args in [
    ("PQconnectdb", _PTR, [_STR]),
    ("PQstatus", _INT, [_PTR]),
    ("PQerrorMessage", _STR, [_PTR]),
    ("PQfinish", None, [_PTR]),
    ("PQexec", _PTR, [_PTR, _STR]),
    ("PQresultStatus", _INT, [_PTR]),
    ("PQresultErrorField", _STR, [_PTR, _INT]),
    ("PQresultErrorMessage", _STR, [_PTR]),
    ("PQntuples", _INT, [_PTR]),
    ("PQclear", None, [_PTR]),
    ("PQgetCancel", _PTR, [_PTR]),
    ("PQfreeCancel", None, [_PTR]),
    ("PQcancel", _INT, [_PTR, _STR, _INT]),
    ("PQsetNoticeProcessor", _PTR, [_PTR, NOTICE_PROCESSOR, _PTR]),
]:
    _fn = getattr(pq, _name)
    _fn.restype, _fn.argtypes = _ret, _args

CONNECTION_OK = 0
PGRES_EMPTY_QUERY, PGRES_COMMAND_OK, PGRES_TUPLES_OK = 0, 1, 2
PGRES_NONFATAL_ERROR, PGRES_FATAL_ERROR = 6, 7
PGRES_SINGLE_TUPLE, PGRES_TUPLES_CHUNK = 9, 12
PG_DIAG_SQLSTATE = ord("C")
PG_DIAG_MESSAGE_PRIMARY = ord("M")

_ignore_notices = NOTICE_PROCESSOR(lambda _arg, _msg: None)


def _s(b):
    return b.decode("utf-8", "replace") if b else ""


class Conn:
    def __init__(self, conninfo):
        self.conn = pq.PQconnectdb(conninfo.encode())
        if not self.conn or pq.PQstatus(self.conn) != CONNECTION_OK:
            msg = _s(pq.PQerrorMessage(self.conn)) if self.conn else "out of memory"
            self.close()
            raise ConnectionError(msg.strip())
        pq.PQsetNoticeProcessor(self.conn, _ignore_notices, None)

    def ok(self):
        return self.conn and pq.PQstatus(self.conn) == CONNECTION_OK

    def cancel_handle(self):
        return pq.PQgetCancel(self.conn)

    def exec(self, sql):
        """(status, sqlstate, message): status is ok, error or lost."""
        res = pq.PQexec(self.conn, sql.encode())
        try:
            st = pq.PQresultStatus(res) if res else PGRES_FATAL_ERROR
            if st in (PGRES_EMPTY_QUERY, PGRES_COMMAND_OK, PGRES_TUPLES_OK,
                      PGRES_NONFATAL_ERROR, PGRES_SINGLE_TUPLE, PGRES_TUPLES_CHUNK):
                return "ok", "", ""
            msg = _s(pq.PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) if res else ""
            if not msg:
                msg = _s(pq.PQresultErrorMessage(res)) if res else ""
            if not msg:
                msg = _s(pq.PQerrorMessage(self.conn))
            state = _s(pq.PQresultErrorField(res, PG_DIAG_SQLSTATE)) if res else ""
            if not self.ok():
                return "lost", state or "08006", msg.strip()
            return "error", state or "?????", msg.strip()
        finally:
            if res:
                pq.PQclear(res)

    def close(self):
        if self.conn:
            pq.PQfinish(self.conn)
            self.conn = None


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------

def split_statements(text):
    """Statements of an SQL file, split at semicolons outside quotes and
    comments (sqlsmith writes one statement after another, each ending in
    ";" and a newline)."""
    out, cur, i, n = [], [], 0, len(text)
    quote = None
    while i < n:
        c = text[i]
        if quote:
            cur.append(c)
            if c == quote:
                if i + 1 < n and text[i + 1] == quote:  # doubled quote
                    cur.append(text[i + 1])
                    i += 1
                else:
                    quote = None
        elif c in ("'", '"'):
            quote = c
            cur.append(c)
        elif c == "-" and text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            cur.append(text[i:j])
            i = j
            continue
        elif c == ";":
            stmt = "".join(cur).strip()
            if stmt:
                out.append(stmt)
            cur = []
        else:
            cur.append(c)
        i += 1
    stmt = "".join(cur).strip()
    if stmt:
        out.append(stmt)
    return out


_TABLESAMPLE = re.compile(r"\s+tablesample\s+\w+\s*\(", re.IGNORECASE)
_REPEATABLE = re.compile(r"\s*repeatable\s*\(", re.IGNORECASE)


def _balanced_end(text, i):
    """The index just past the parenthesis that closes the one open before
    text[i] (quotes respected); len(text) if none does."""
    depth, quote = 1, None
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = None
        elif c in ("'", '"'):
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def without_tablesample(stmt):
    """stmt without its `TABLESAMPLE method (args) [REPEATABLE (seed)]`
    clauses. A match inside a string literal is left alone only by luck:
    sqlsmith's literals do not spell the clause."""
    out, i = [], 0
    while True:
        m = _TABLESAMPLE.search(stmt, i)
        if not m:
            out.append(stmt[i:])
            return "".join(out)
        out.append(stmt[i:m.start()])
        i = _balanced_end(stmt, m.end())
        r = _REPEATABLE.match(stmt, i)
        if r:
            i = _balanced_end(stmt, r.end())


_class_res = [
    (re.compile(r"'(?:[^']|'')*'"), "'?'"),
    (re.compile(r'"(?:[^"]|"")*"'), '"?"'),
    (re.compile(r"\b\d+(\.\d+)?\b"), "N"),
    (re.compile(r"\s+"), " "),
]


def message_class(msg):
    """The first line of an error message with quoted names and numbers
    blanked, so that errors of one kind count together."""
    line = msg.split("\n", 1)[0]
    for rx, rep in _class_res:
        line = rx.sub(rep, line)
    return line.strip()[:120]


# ---------------------------------------------------------------------------
# The node's log
# ---------------------------------------------------------------------------

class LogWatch:
    def __init__(self, path):
        self.path = path
        self.pos = 0
        if path and os.path.exists(path):
            self.pos = os.path.getsize(path)

    def new_text(self):
        if not self.path or not os.path.exists(self.path):
            return ""
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        self.pos += len(data)
        return data.decode("utf-8", "replace")


def panic_excerpt(text, limit=40):
    """The log lines from the first panic on, without backtrace frames."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if "panicked" in l), 0)
    keep = [l for l in lines[start:] if not re.match(r"^\s+(\d+: |at )", l)]
    return "\n".join(keep[:limit])


def pid_alive(pid):
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

class Watchdog(threading.Thread):
    """Cancels a statement running past hang_secs; ends the process when the
    cancel does not help either."""

    def __init__(self, hang_secs, on_fatal):
        super().__init__(daemon=True)
        self.hang_secs = hang_secs
        self.on_fatal = on_fatal
        self.lock = threading.Lock()
        self.started = None
        self.cancel = None
        self.cancelled = False

    def begin(self, cancel):
        with self.lock:
            self.started, self.cancel, self.cancelled = time.monotonic(), cancel, False

    def end(self):
        with self.lock:
            self.started = None
            was = self.cancelled
            if self.cancel:
                pq.PQfreeCancel(self.cancel)
            self.cancel = None
            return was

    def run(self):
        while True:
            time.sleep(0.5)
            with self.lock:
                if self.started is None:
                    continue
                waited = time.monotonic() - self.started
                if waited > self.hang_secs and not self.cancelled:
                    self.cancelled = True
                    if self.cancel:
                        buf = ctypes.create_string_buffer(256)
                        pq.PQcancel(self.cancel, buf, 256)
                elif waited > 2 * self.hang_secs:
                    self.on_fatal(waited)
                    return


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conn", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--node-log")
    ap.add_argument("--node-pid", type=int)
    ap.add_argument("--statement-timeout", type=float, default=5.0)
    ap.add_argument("--hang-secs", type=float, default=30.0)
    ap.add_argument("--max-seconds", type=float, default=0.0,
                    help="stop after this long (0: run every statement)")
    ap.add_argument("--first", type=int, default=1,
                    help="start at this statement (1-based)")
    ap.add_argument("--strip-tablesample", action="store_true",
                    help="drop TABLESAMPLE clauses (Shoal refuses them) so "
                         "that the rest of each statement still runs")
    args = ap.parse_args()

    with open(args.queries, encoding="utf-8", errors="replace") as f:
        stmts = split_statements(f.read())
    stripped = 0
    if args.strip_tablesample:
        for i, stmt in enumerate(stmts):
            stmts[i] = without_tablesample(stmt)
            stripped += stmts[i] != stmt
    os.makedirs(os.path.join(args.out, "findings"), exist_ok=True)
    results = open(os.path.join(args.out, "results.tsv"), "w")
    results.write("index\toutcome\tsqlstate\tms\tclass\n")

    log = LogWatch(args.node_log)
    setup = [
        f"SET statement_timeout = '{int(args.statement_timeout * 1000)}ms'",
        "SET client_min_messages = 'error'",
        "SET application_name = 'sqlsmith-replay'",
    ]

    def connect(deadline_secs):
        end = time.monotonic() + deadline_secs
        last = ""
        while time.monotonic() < end:
            if not pid_alive(args.node_pid):
                return None, "node process has exited"
            try:
                c = Conn(args.conn)
                for s in setup:
                    c.exec(s)  # a setting the server lacks is not fatal
                return c, ""
            except ConnectionError as e:
                last = str(e)
                time.sleep(0.5)
        return None, last

    counts = collections.Counter()
    by_state = collections.Counter()
    by_class = collections.Counter()
    class_state = {}
    findings = []
    t_start = time.monotonic()
    state = {"index": 0, "stmt": ""}

    def finding(kind, idx, stmt, detail):
        base = os.path.join(args.out, "findings", f"{idx:05d}-{kind}")
        with open(base + ".sql", "w") as f:
            f.write(stmt.rstrip() + ";\n")
        with open(base + ".txt", "w") as f:
            f.write(detail.rstrip() + "\n")
        findings.append((kind, idx))
        print(f"[replay] statement {idx}: {kind}", file=sys.stderr, flush=True)

    def write_summary(stopped_by):
        elapsed = time.monotonic() - t_start
        with open(os.path.join(args.out, "errors_by_sqlstate.tsv"), "w") as f:
            for k, v in by_state.most_common():
                f.write(f"{v}\t{k}\n")
        with open(os.path.join(args.out, "errors_by_class.tsv"), "w") as f:
            for k, v in by_class.most_common():
                f.write(f"{v}\t{class_state.get(k, '')}\t{k}\n")
        kinds = collections.Counter(k for k, _ in findings)
        with open(os.path.join(args.out, "summary.txt"), "w") as f:
            f.write(f"statements_in_file: {len(stmts)}\n")
            f.write(f"statements_run: {counts['run']}\n")
            f.write(f"tablesample_stripped: {stripped}\n")
            f.write(f"ok: {counts['ok']}\n")
            f.write(f"errors: {counts['error']}\n")
            f.write(f"connection_lost: {counts['lost']}\n")
            f.write(f"statement_timeouts: {by_state.get('57014', 0)}\n")
            for k in ("panic", "crash", "lost", "hang", "overran"):
                f.write(f"findings_{k}: {kinds.get(k, 0)}\n")
            f.write(f"seconds: {elapsed:.1f}\n")
            f.write(f"stopped_by: {stopped_by}\n")
        results.flush()

    def fatal_hang(waited):
        idx, stmt = state["index"], state["stmt"]
        finding("hang", idx, stmt,
                f"statement {idx} still running {waited:.0f} s after it started,"
                f" {waited - args.hang_secs:.0f} s after a cancel request;"
                " the run stops here.\n" + panic_excerpt(log.new_text()))
        write_summary("unrecoverable hang")
        os._exit(3)

    conn, err = connect(30)
    if conn is None:
        print(f"[replay] cannot connect: {err}", file=sys.stderr)
        write_summary("no connection")
        return 2
    dog = Watchdog(args.hang_secs, fatal_hang)
    dog.start()

    def run(sql):
        dog.begin(conn.cancel_handle())
        t0 = time.monotonic()
        r = conn.exec(sql)
        ms = (time.monotonic() - t0) * 1000
        cancelled = dog.end()
        return r, ms, cancelled

    stopped_by = "end of file"
    for idx in range(args.first, len(stmts) + 1):
        if args.max_seconds and time.monotonic() - t_start > args.max_seconds:
            stopped_by = "time budget"
            break
        stmt = stmts[idx - 1]
        state["index"], state["stmt"] = idx, stmt
        counts["run"] += 1
        run("BEGIN")
        (outcome, sqlstate, msg), ms, cancelled = run(stmt)
        if conn.ok():
            run("ROLLBACK")
        counts[outcome] += 1
        cls = ""
        if outcome != "ok":
            cls = message_class(msg)
            by_state[sqlstate] += 1
            by_class[cls] += 1
            class_state.setdefault(cls, sqlstate)
        results.write(f"{idx}\t{outcome}\t{sqlstate}\t{ms:.0f}\t{cls}\n")

        logged = log.new_text()
        alive = pid_alive(args.node_pid)
        detail = (f"statement {idx} of {args.queries}\noutcome: {outcome}"
                  f" {sqlstate} {msg}\nmilliseconds: {ms:.0f}\n"
                  f"node alive afterwards: {alive}\n")
        if "panicked" in logged:
            finding("panic", idx, stmt, detail + "\nnode log:\n" + panic_excerpt(logged))
        elif not alive:
            finding("crash", idx, stmt, detail + "\nnode log (tail):\n"
                    + "\n".join(logged.splitlines()[-40:]))
        elif outcome == "lost":
            finding("lost", idx, stmt, detail)
        if cancelled:
            finding("hang", idx, stmt, detail +
                    f"\nstill running after {args.hang_secs:.0f} s"
                    " (statement_timeout did not end it); a cancel request ended it\n")
        elif ms > (args.statement_timeout + 5) * 1000:
            finding("overran", idx, stmt, detail +
                    f"\nran {ms / 1000:.1f} s under statement_timeout"
                    f" {args.statement_timeout:.0f} s\n")

        if not alive:
            stopped_by = "node died"
            break
        if not conn.ok():
            conn.close()
            conn, err = connect(30)
            if conn is None:
                stopped_by = f"cannot reconnect: {err}"
                break

    write_summary(stopped_by)
    results.close()
    if conn:
        conn.close()
    if stopped_by == "node died":
        return 4
    if stopped_by.startswith("cannot reconnect"):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
