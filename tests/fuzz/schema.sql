-- tests/fuzz/schema.sql — the tables sqlsmith's queries run over.
-- Loaded into the Shoal node under test and, when sqlsmith has to take its
-- schema from a PostgreSQL server (see sqlsmith.sh), into that server too, so
-- it must run unchanged on both. Deterministic data: a few hundred rows per
-- table, every column NULL in some rows.

CREATE TABLE fz_items (
  id      int PRIMARY KEY,
  big     bigint,
  small   smallint,
  name    text,
  label   varchar(20),
  code    char(3),
  flag    bool,
  ratio   float8,
  ratio4  real,
  amount  numeric(12,3),
  day     date,
  at      timestamp,
  at_tz   timestamptz,
  span    interval,
  doc     jsonb,
  raw     bytea,
  uid     uuid,
  tags    int[]
);
CREATE INDEX fz_items_name_idx ON fz_items (name);
CREATE INDEX fz_items_day_idx ON fz_items (day, id);

CREATE TABLE fz_orders (
  order_id bigint PRIMARY KEY,
  item_id  int,
  qty      int NOT NULL,
  price    numeric,
  note     text,
  placed   timestamptz,
  shipped  bool,
  meta     json,
  UNIQUE (item_id, order_id)
);
CREATE INDEX fz_orders_item_idx ON fz_orders (item_id);

CREATE TABLE fz_pairs (
  a int,
  b text,
  c float8,
  d date,
  e bigint,
  PRIMARY KEY (a, b)
);

CREATE VIEW fz_shipped AS
  SELECT o.order_id, o.qty, i.name, i.amount
  FROM fz_orders o JOIN fz_items i ON i.id = o.item_id
  WHERE o.shipped;

INSERT INTO fz_items
SELECT g,
       CASE WHEN g % 13 = 0 THEN NULL ELSE g * 1000000007::bigint - 150000000000 END,
       CASE WHEN g % 17 = 0 THEN NULL ELSE (g % 200 - 100)::smallint END,
       CASE WHEN g % 7 = 0 THEN NULL WHEN g % 29 = 0 THEN '' ELSE 'item ' || g END,
       CASE WHEN g % 9 = 0 THEN NULL ELSE 'L' || (g % 10) END,
       CASE WHEN g % 8 = 0 THEN NULL ELSE chr(65 + g % 26) || 'x' END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE g % 2 = 0 END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE (g - 150) / 7.0 END,
       CASE WHEN g % 12 = 0 THEN NULL ELSE (g * 0.25)::real END,
       CASE WHEN g % 10 = 0 THEN NULL ELSE ((g - 100) * 12.345)::numeric(12,3) END,
       CASE WHEN g % 14 = 0 THEN NULL ELSE date '2020-01-01' + g * 3 END,
       CASE WHEN g % 15 = 0 THEN NULL ELSE timestamp '2020-01-01 00:00:00' + g * interval '97 minutes' END,
       CASE WHEN g % 16 = 0 THEN NULL ELSE timestamptz '2021-06-01 12:00:00+00' - g * interval '5 hours' END,
       CASE WHEN g % 18 = 0 THEN NULL ELSE g * interval '1 minute' END,
       CASE WHEN g % 3 = 0 THEN NULL
            ELSE ('{"k": ' || g || ', "s": "v' || (g % 4) || '", "arr": [1, 2, ' || g || '], "nested": {"x": ' || (g % 5 = 0) || '}}')::jsonb END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
       CASE WHEN g % 19 = 0 THEN NULL ELSE md5('u' || g)::uuid END,
       CASE WHEN g % 6 = 0 THEN NULL ELSE ARRAY[g, g % 10, -g] END
FROM generate_series(1, 300) AS g;

INSERT INTO fz_orders
SELECT g,
       CASE WHEN g % 23 = 0 THEN NULL ELSE (g * 7) % 320 END,
       g % 9,
       CASE WHEN g % 10 = 0 THEN NULL ELSE (g % 97) * 1.01 END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE 'note ' || (g % 37) END,
       CASE WHEN g % 21 = 0 THEN NULL ELSE timestamptz '2022-01-01 00:00:00+00' + g * interval '3 hours' END,
       CASE WHEN g % 6 = 0 THEN NULL ELSE g % 3 <> 0 END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE ('{"o": ' || g || ', "tag": "t' || (g % 3) || '"}')::json END
FROM generate_series(1, 500) AS g;

INSERT INTO fz_pairs
SELECT g % 50,
       'b' || (g / 50),
       CASE WHEN g % 7 = 0 THEN NULL ELSE g * 1.5 END,
       CASE WHEN g % 9 = 0 THEN NULL ELSE date '2019-12-31' - g END,
       CASE WHEN g % 8 = 0 THEN NULL ELSE g * g END
FROM generate_series(0, 199) AS g;
