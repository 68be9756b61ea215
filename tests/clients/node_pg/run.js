// node-postgres against a Shoal node, unmodified: simple and parameterized
// queries (the extended protocol), prepared statements by name,
// transactions, typed results, SQLSTATEs on errors, a pool.
//
// Run by tests/tests/clients.rs as `node run.js HOST PORT`; a failed check
// exits non-zero, the last line names the version that ran.

const assert = require("assert");
const { Client, Pool } = require("pg");
const version = require("pg/package.json").version;

async function main(host, port) {
  const config = { host, port: Number(port), user: "shoal", database: "shoal" };
  const client = new Client(config);
  await client.connect();
  await client.query("DROP TABLE IF EXISTS node_items");
  await client.query(
    "CREATE TABLE node_items (id serial PRIMARY KEY, name text NOT NULL UNIQUE, qty integer CHECK (qty >= 0), price numeric(8,2), seen timestamptz, ok boolean)"
  );

  const inserted = await client.query(
    "INSERT INTO node_items (name, qty, price, seen, ok) VALUES ($1, $2, $3, $4, $5) RETURNING id, name",
    ["tea", 3, "4.50", new Date("2026-01-02T03:04:05Z"), true]
  );
  assert.strictEqual(inserted.rowCount, 1);
  assert.strictEqual(inserted.rows[0].name, "tea");
  const id = inserted.rows[0].id;

  // A named prepared statement, executed twice.
  const byName = { name: "item-by-name", text: "SELECT id, qty, price, seen, ok FROM node_items WHERE name = $1" };
  for (let i = 0; i < 2; i++) {
    const r = await client.query({ ...byName, values: ["tea"] });
    assert.strictEqual(r.rows.length, 1);
    assert.strictEqual(r.rows[0].id, id);
    assert.strictEqual(r.rows[0].qty, 3);
    assert.strictEqual(r.rows[0].price, "4.50");
    assert.strictEqual(r.rows[0].seen.toISOString(), "2026-01-02T03:04:05.000Z");
    assert.strictEqual(r.rows[0].ok, true);
  }

  // Errors carry PostgreSQL's codes.
  await assert.rejects(client.query("INSERT INTO node_items (name, qty) VALUES ('tea', 1)"), (e) => e.code === "23505");
  await assert.rejects(client.query("INSERT INTO node_items (name, qty) VALUES ('pot', -1)"), (e) => e.code === "23514");
  await assert.rejects(client.query("SELECT * FROM no_such_table"), (e) => e.code === "42P01");
  await assert.rejects(client.query("SELECT 1/0"), (e) => e.code === "22012");

  // A transaction rolled back leaves nothing; a committed one stays.
  await client.query("BEGIN");
  await client.query("INSERT INTO node_items (name, qty) VALUES ($1, $2)", ["cup", 1]);
  await client.query("ROLLBACK");
  await client.query("BEGIN");
  await client.query("INSERT INTO node_items (name, qty) VALUES ($1, $2)", ["pot", 2]);
  await client.query("UPDATE node_items SET qty = qty + $1 WHERE name = $2", [5, "tea"]);
  await client.query("COMMIT");
  const all = await client.query("SELECT name, qty FROM node_items ORDER BY name");
  assert.deepStrictEqual(all.rows, [{ name: "pot", qty: 2 }, { name: "tea", qty: 8 }]);

  // A pool of connections, queries in parallel.
  const pool = new Pool({ ...config, max: 4 });
  const counts = await Promise.all(
    [1, 2, 3, 4, 5, 6, 7, 8].map((n) => pool.query("SELECT count(*)::int AS n FROM node_items WHERE qty > $1", [n]))
  );
  assert.deepStrictEqual(counts.map((r) => r.rows[0].n), [2, 1, 1, 1, 1, 1, 1, 0]);
  await pool.end();

  await client.query("DROP TABLE node_items");
  await client.end();
  console.log(`node-postgres ${version} on Node.js ${process.version}: ok`);
}

main(process.argv[2], process.argv[3]).catch((e) => {
  console.error(e);
  process.exit(1);
});
