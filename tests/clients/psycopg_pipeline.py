"""psycopg 3's batches and pipelines against a Shoal node, unmodified.

Run by tests/tests/clients.rs with the node's SQL host and port as
arguments. psycopg sends `executemany` and the statements of a
`pipeline()` block without a Sync between them; as in PostgreSQL, they
are one transaction, so a failing statement takes the others with it.
Also intervals written as psycopg writes `timedelta` (`1 day 2:00:00`).
Any failed assertion or error exits non-zero; the last line names the
version that ran.
"""

import datetime
import sys

import psycopg


def main(host, port):
    conn = psycopg.connect(f"host={host} port={port} user=shoal dbname=shoal", autocommit=True)
    conn.execute("CREATE TABLE pm (id int PRIMARY KEY, every interval)")

    # executemany: one transaction.
    cur = conn.cursor()
    try:
        cur.executemany("INSERT INTO pm (id) VALUES (%s)", [(1,), (2,), (1,)])
        raise AssertionError("the duplicate must fail the batch")
    except psycopg.errors.UniqueViolation:
        pass
    count = conn.execute("SELECT count(*) FROM pm").fetchone()[0]
    assert count == 0, f"a failed batch kept {count} rows"
    cur.executemany("INSERT INTO pm (id) VALUES (%s)", [(1,), (2,), (3,)])
    assert conn.execute("SELECT count(*) FROM pm").fetchone()[0] == 3

    # A pipeline block, results fetched before its Sync (psycopg asks for
    # them with Flush).
    with conn.pipeline() as pipeline:
        first = conn.execute("INSERT INTO pm (id) VALUES (10) RETURNING id")
        second = conn.execute("SELECT count(*) FROM pm")
        assert first.fetchone() == (10,)
        assert second.fetchone() == (4,)
        pipeline.sync()
    try:
        with conn.pipeline():
            conn.execute("INSERT INTO pm (id) VALUES (11)")
            conn.execute("INSERT INTO pm (id) VALUES (10)")
        raise AssertionError("the duplicate must fail the pipeline")
    except psycopg.errors.UniqueViolation:
        pass
    ids = [r[0] for r in conn.execute("SELECT id FROM pm ORDER BY id")]
    assert ids == [1, 2, 3, 10], ids

    # timedelta parameters are sent as interval text.
    every = datetime.timedelta(days=1, hours=2, minutes=3)
    conn.execute("UPDATE pm SET every = %s WHERE id = 1", (every,))
    got = conn.execute("SELECT every FROM pm WHERE every = %s", (every,)).fetchone()
    assert got == (every,), got
    assert conn.execute("SELECT every::text FROM pm WHERE id = 1").fetchone() == ("1 day 02:03:00",)

    conn.execute("DROP TABLE pm")
    print(f"psycopg {psycopg.__version__} pipelines: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
