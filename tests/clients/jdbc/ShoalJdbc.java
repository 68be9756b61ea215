// pgjdbc (the PostgreSQL JDBC driver) against a Shoal node, unmodified, the
// way a Java service uses it: DatabaseMetaData, SERIAL/BIGSERIAL keys read
// back by RETURNING and getGeneratedKeys, batches (plain and rewritten into
// multi-row inserts), parameters of the common Java types, a prepared
// statement reused past prepareThreshold (server-side named statements and
// binary results), transactions with savepoints, isolation and read-only
// mode, cursors by fetch size, SQLSTATEs on errors, update counts.
//
// Run by tests/tests/clients.rs as
//   javac -d DIR -cp postgresql.jar ShoalJdbc.java
//   java -cp DIR:postgresql.jar ShoalJdbc HOST PORT
// Every step runs even when an earlier one failed; a failed step prints
// FAIL with its SQLSTATE and the program exits non-zero. The last line
// names the driver and Java versions that ran.

import java.math.BigDecimal;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.UUID;

public class ShoalJdbc {
    interface Step {
        void run() throws Exception;
    }

    static String url;
    static Connection conn;
    static final List<String> failures = new ArrayList<>();

    static Connection connect(String extra) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", "shoal");
        return DriverManager.getConnection(url + extra, props);
    }

    /** Runs one step; a failure is recorded, and the next step gets a new connection. */
    static void step(String name, Step body) {
        try {
            body.run();
            System.out.println("ok   " + name);
        } catch (Throwable e) {
            failures.add(name);
            System.out.println("FAIL " + name + ": " + describe(e));
            for (StackTraceElement f : e.getStackTrace()) {
                if (f.getClassName().startsWith("ShoalJdbc")) {
                    System.out.println("       at " + f);
                }
            }
            // A fresh connection for the next step, so one failure (say, a
            // protocol desync) does not fail the steps after it.
            try {
                if (conn != null) {
                    conn.close();
                }
            } catch (SQLException ignored) {
                // already broken
            }
            try {
                conn = connect("");
            } catch (SQLException again) {
                System.out.println("     (cannot reconnect: " + describe(again) + ")");
            }
        }
    }

    static String describe(Throwable e) {
        StringBuilder s = new StringBuilder();
        if (e instanceof SQLException) {
            SQLException q = (SQLException) e;
            s.append("[SQLSTATE ").append(q.getSQLState()).append("] ");
        } else if (!(e instanceof AssertionError)) {
            s.append(e.getClass().getName()).append(": ");
        }
        s.append(e.getMessage());
        if (e instanceof SQLException && ((SQLException) e).getNextException() != null) {
            s.append(" / next: ").append(describe(((SQLException) e).getNextException()));
        }
        return s.toString();
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    static void eq(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual)) {
            throw new AssertionError(what + ": expected <" + expected + "> but was <" + actual + ">");
        }
    }

    /** Runs `body`, which must fail with SQLSTATE `state`. */
    static SQLException expectState(String state, Step body) throws Exception {
        try {
            body.run();
        } catch (SQLException e) {
            eq(state, e.getSQLState(), "SQLSTATE of " + e.getMessage());
            return e;
        }
        throw new AssertionError("expected an error with SQLSTATE " + state);
    }

    static void exec(String sql) throws SQLException {
        try (Statement st = conn.createStatement()) {
            st.execute(sql);
        }
    }

    static long queryLong(String sql) throws SQLException {
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            check(rs.next(), "a row from " + sql);
            long v = rs.getLong(1);
            check(!rs.next(), "one row from " + sql);
            return v;
        }
    }

    static final String INSERT =
            "INSERT INTO jdbc_items (sku, qty, weight, price, seen, day, ratio, active, blob, token, note)"
                    + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

    static final Timestamp SEEN = Timestamp.valueOf("2026-01-02 03:04:05.123456");
    static final byte[] BLOB = {0, 1, 2, (byte) 0xfe, (byte) 0xff, '\\', '\''};
    static final UUID TOKEN = UUID.fromString("0d6a4d3e-2f7c-4c61-9d0e-3b1f5a7c9e21");

    /** Binds the item columns of INSERT: sku, then values derived from n. */
    static void bindItem(PreparedStatement ps, String sku, int n) throws SQLException {
        ps.setString(1, sku);
        ps.setInt(2, n);
        ps.setLong(3, 10_000_000_000L + n);
        ps.setBigDecimal(4, new BigDecimal(n + ".25"));
        ps.setTimestamp(5, SEEN);
        ps.setDate(6, java.sql.Date.valueOf(LocalDate.of(2026, 1, 2).plusDays(n)));
        ps.setDouble(7, n / 4.0);
        ps.setBoolean(8, n % 2 == 0);
        ps.setBytes(9, BLOB);
        ps.setObject(10, TOKEN);
        ps.setNull(11, Types.VARCHAR);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: ShoalJdbc HOST PORT");
            System.exit(2);
        }
        url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/shoal";
        String[] versions = new String[2];

        step("connect and server/driver metadata", () -> {
            conn = connect("");
            DatabaseMetaData md = conn.getMetaData();
            System.out.println("     server: " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
            eq("PostgreSQL", md.getDatabaseProductName(), "product name");
            check(md.getDatabaseMajorVersion() >= 10, "server major version " + md.getDatabaseMajorVersion());
            versions[0] = md.getDriverVersion();
            check(conn.isValid(5), "isValid");
            eq("public", conn.getSchema(), "current schema");
            eq("shoal", md.getUserName(), "user name");
        });
        if (conn == null) {
            System.out.println("cannot connect; giving up");
            System.exit(1);
        }

        step("DDL: BIGSERIAL and SERIAL keys, UNIQUE, foreign key, index", () -> {
            exec("DROP TABLE IF EXISTS jdbc_events");
            exec("DROP TABLE IF EXISTS jdbc_items");
            try (Statement st = conn.createStatement()) {
                int n = st.executeUpdate("CREATE TABLE jdbc_items ("
                        + "id BIGSERIAL PRIMARY KEY, sku varchar(32) NOT NULL UNIQUE,"
                        + " qty integer NOT NULL DEFAULT 0, weight bigint, price numeric(10,2),"
                        + " seen timestamp, day date, ratio double precision,"
                        + " active boolean NOT NULL DEFAULT true, blob bytea, token uuid, note text)");
                eq(0, n, "update count of CREATE TABLE");
                st.executeUpdate("CREATE TABLE jdbc_events ("
                        + "id SERIAL PRIMARY KEY,"
                        + " item_id bigint NOT NULL REFERENCES jdbc_items (id) ON DELETE CASCADE,"
                        + " kind text NOT NULL, at timestamptz)");
                st.executeUpdate("CREATE INDEX jdbc_events_item ON jdbc_events (item_id)");
            }
        });

        step("DatabaseMetaData.getTables", () -> {
            DatabaseMetaData md = conn.getMetaData();
            Map<String, String> found = new HashMap<>();
            try (ResultSet rs = md.getTables(null, "public", "jdbc_%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    found.put(rs.getString("TABLE_NAME"), rs.getString("TABLE_TYPE"));
                    eq("public", rs.getString("TABLE_SCHEM"), "schema of " + rs.getString("TABLE_NAME"));
                }
            }
            eq("TABLE", found.get("jdbc_items"), "jdbc_items in getTables " + found);
            eq("TABLE", found.get("jdbc_events"), "jdbc_events in getTables " + found);
        });

        step("DatabaseMetaData.getColumns", () -> {
            DatabaseMetaData md = conn.getMetaData();
            List<String> names = new ArrayList<>();
            Map<String, Integer> types = new HashMap<>();
            Map<String, String> typeNames = new HashMap<>();
            Map<String, String> nullable = new HashMap<>();
            Map<String, String> autoinc = new HashMap<>();
            Map<String, Integer> sizes = new HashMap<>();
            Map<String, Integer> digits = new HashMap<>();
            Map<String, String> defaults = new HashMap<>();
            try (ResultSet rs = md.getColumns(null, "public", "jdbc_items", "%")) {
                while (rs.next()) {
                    String c = rs.getString("COLUMN_NAME");
                    names.add(c);
                    eq(names.size(), rs.getInt("ORDINAL_POSITION"), "position of " + c);
                    types.put(c, rs.getInt("DATA_TYPE"));
                    typeNames.put(c, rs.getString("TYPE_NAME"));
                    nullable.put(c, rs.getString("IS_NULLABLE"));
                    autoinc.put(c, rs.getString("IS_AUTOINCREMENT"));
                    sizes.put(c, rs.getInt("COLUMN_SIZE"));
                    digits.put(c, rs.getInt("DECIMAL_DIGITS"));
                    defaults.put(c, rs.getString("COLUMN_DEF"));
                }
            }
            eq(Arrays.asList("id", "sku", "qty", "weight", "price", "seen", "day", "ratio", "active", "blob", "token", "note"),
                    names, "columns");
            eq(Types.BIGINT, types.get("id"), "type of id");
            eq("bigserial", typeNames.get("id"), "type name of id");
            eq("YES", autoinc.get("id"), "id is auto-increment");
            eq("NO", autoinc.get("qty"), "qty is not auto-increment");
            eq(Types.VARCHAR, types.get("sku"), "type of sku");
            eq(32, sizes.get("sku"), "size of sku");
            eq("NO", nullable.get("sku"), "sku is NOT NULL");
            eq("YES", nullable.get("weight"), "weight is nullable");
            eq(Types.INTEGER, types.get("qty"), "type of qty");
            eq("0", defaults.get("qty"), "default of qty");
            eq(Types.BIGINT, types.get("weight"), "type of weight");
            eq(Types.NUMERIC, types.get("price"), "type of price");
            eq(10, sizes.get("price"), "precision of price");
            eq(2, digits.get("price"), "scale of price");
            eq(Types.TIMESTAMP, types.get("seen"), "type of seen");
            eq(Types.DATE, types.get("day"), "type of day");
            eq(Types.DOUBLE, types.get("ratio"), "type of ratio");
            eq(Types.BIT, types.get("active"), "type of active (pgjdbc reports boolean as BIT)");
            eq(Types.BINARY, types.get("blob"), "type of blob");
            eq(Types.OTHER, types.get("token"), "type of token");
            eq("uuid", typeNames.get("token"), "type name of token");
            eq(Types.VARCHAR, types.get("note"), "type of note");
        });

        step("DatabaseMetaData.getPrimaryKeys", () -> {
            try (ResultSet rs = conn.getMetaData().getPrimaryKeys(null, "public", "jdbc_items")) {
                check(rs.next(), "a primary key column");
                eq("id", rs.getString("COLUMN_NAME"), "key column");
                eq("jdbc_items_pkey", rs.getString("PK_NAME"), "key name");
                eq(1, rs.getInt("KEY_SEQ"), "key sequence");
                check(!rs.next(), "one key column");
            }
        });

        step("DatabaseMetaData.getIndexInfo", () -> {
            Map<String, Boolean> nonUnique = new HashMap<>();
            Map<String, String> columns = new HashMap<>();
            try (ResultSet rs = conn.getMetaData().getIndexInfo(null, "public", "jdbc_items", false, false)) {
                while (rs.next()) {
                    nonUnique.put(rs.getString("INDEX_NAME"), rs.getBoolean("NON_UNIQUE"));
                    columns.put(rs.getString("INDEX_NAME"), rs.getString("COLUMN_NAME"));
                }
            }
            eq(false, nonUnique.get("jdbc_items_pkey"), "primary key index is unique " + nonUnique);
            eq("id", columns.get("jdbc_items_pkey"), "primary key index column");
            eq(false, nonUnique.get("jdbc_items_sku_key"), "sku index is unique " + nonUnique);
            eq("sku", columns.get("jdbc_items_sku_key"), "sku index column");
            boolean seen = false;
            try (ResultSet rs = conn.getMetaData().getIndexInfo(null, "public", "jdbc_events", false, false)) {
                while (rs.next()) {
                    if ("jdbc_events_item".equals(rs.getString("INDEX_NAME"))) {
                        seen = true;
                        eq(true, rs.getBoolean("NON_UNIQUE"), "jdbc_events_item is not unique");
                        eq("item_id", rs.getString("COLUMN_NAME"), "jdbc_events_item column");
                    }
                }
            }
            check(seen, "jdbc_events_item in getIndexInfo");
        });

        step("DatabaseMetaData.getImportedKeys", () -> {
            try (ResultSet rs = conn.getMetaData().getImportedKeys(null, "public", "jdbc_events")) {
                check(rs.next(), "a foreign key");
                eq("jdbc_items", rs.getString("PKTABLE_NAME"), "referenced table");
                eq("id", rs.getString("PKCOLUMN_NAME"), "referenced column");
                eq("item_id", rs.getString("FKCOLUMN_NAME"), "referencing column");
                eq(DatabaseMetaData.importedKeyCascade, rs.getInt("DELETE_RULE"), "ON DELETE CASCADE");
                check(!rs.next(), "one foreign key");
            }
        });

        step("INSERT ... RETURNING with parameters of every type", () -> {
            try (PreparedStatement ps = conn.prepareStatement(INSERT + " RETURNING id, qty, active")) {
                bindItem(ps, "tea", 1);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "a returned row");
                    eq(1L, rs.getLong("id"), "first BIGSERIAL id");
                    eq(1, rs.getInt("qty"), "returned qty");
                    eq(false, rs.getBoolean("active"), "returned active");
                    check(!rs.next(), "one returned row");
                }
            }
        });

        step("getGeneratedKeys (by column name, and RETURN_GENERATED_KEYS)", () -> {
            try (PreparedStatement ps = conn.prepareStatement(INSERT, new String[] {"id"})) {
                bindItem(ps, "coffee", 2);
                eq(1, ps.executeUpdate(), "update count");
                try (ResultSet keys = ps.getGeneratedKeys()) {
                    check(keys.next(), "a generated key");
                    eq(2L, keys.getLong(1), "second id");
                }
            }
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO jdbc_items (sku) VALUES (?)", Statement.RETURN_GENERATED_KEYS)) {
                ps.setString(1, "water");
                eq(1, ps.executeUpdate(), "update count");
                try (ResultSet keys = ps.getGeneratedKeys()) {
                    check(keys.next(), "a generated row");
                    eq(3L, keys.getLong("id"), "third id");
                    eq(0, keys.getInt("qty"), "default qty");
                    eq(true, keys.getBoolean("active"), "default active");
                    keys.getString("note");
                    check(keys.wasNull(), "note is NULL");
                }
            }
        });

        step("batch insert (addBatch/executeBatch)", () -> {
            try (PreparedStatement ps = conn.prepareStatement(INSERT)) {
                for (int i = 0; i < 20; i++) {
                    bindItem(ps, "batch-" + i, 100 + i);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                eq(20, counts.length, "batch results");
                for (int c : counts) {
                    eq(1, c, "batch row count");
                }
            }
            eq(23L, queryLong("SELECT count(*) FROM jdbc_items"), "rows after the batch");
        });

        step("batch insert with generated keys", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO jdbc_events (item_id, kind, at) VALUES (?, ?, ?)", new String[] {"id"})) {
                OffsetDateTime at = OffsetDateTime.of(2026, 3, 4, 5, 6, 7, 0, ZoneOffset.UTC);
                for (int i = 0; i < 3; i++) {
                    ps.setLong(1, 1);
                    ps.setString(2, "e" + i);
                    ps.setObject(3, at.plusMinutes(i));
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                eq(3, counts.length, "batch results");
                List<Integer> ids = new ArrayList<>();
                try (ResultSet keys = ps.getGeneratedKeys()) {
                    while (keys.next()) {
                        ids.add(keys.getInt(1));
                    }
                }
                eq(Arrays.asList(1, 2, 3), ids, "SERIAL ids of the batch");
            }
        });

        step("batch of plain statements (Statement.addBatch)", () -> {
            try (Statement st = conn.createStatement()) {
                st.addBatch("UPDATE jdbc_items SET note = 'b' WHERE sku LIKE 'batch-1%'");
                st.addBatch("UPDATE jdbc_items SET note = 'tea' WHERE sku = 'tea'");
                st.addBatch("INSERT INTO jdbc_events (item_id, kind) VALUES (2, 'plain')");
                int[] counts = st.executeBatch();
                eq("[11, 1, 1]", Arrays.toString(counts), "batch update counts");
            }
        });

        step("rewritten batch insert (reWriteBatchedInserts=true)", () -> {
            try (Connection rw = connect("?reWriteBatchedInserts=true");
                    PreparedStatement ps = rw.prepareStatement(INSERT)) {
                for (int i = 0; i < 10; i++) {
                    bindItem(ps, "rw-" + i, 200 + i);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                eq(10, counts.length, "batch results");
                for (int c : counts) {
                    check(c == Statement.SUCCESS_NO_INFO || c == 1, "batch row count " + c);
                }
            }
            eq(10L, queryLong("SELECT count(*) FROM jdbc_items WHERE sku LIKE 'rw-%'"), "rewritten rows");
        });

        step("SELECT with parameters of every type, typed getters", () -> {
            String sql = "SELECT id, sku, qty, weight, price, seen, day, ratio, active, blob, token, note"
                    + " FROM jdbc_items WHERE qty = ? AND weight = ? AND sku = ? AND price = ? AND seen = ?"
                    + " AND day = ? AND ratio = ? AND active = ? AND blob = ? AND token = ?";
            try (PreparedStatement ps = conn.prepareStatement(sql)) {
                ps.setInt(1, 2);
                ps.setLong(2, 10_000_000_002L);
                ps.setString(3, "coffee");
                ps.setBigDecimal(4, new BigDecimal("2.25"));
                ps.setTimestamp(5, SEEN);
                ps.setDate(6, java.sql.Date.valueOf("2026-01-04"));
                ps.setDouble(7, 0.5);
                ps.setBoolean(8, true);
                ps.setBytes(9, BLOB);
                ps.setObject(10, TOKEN);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "the row");
                    eq(2L, rs.getLong("id"), "id");
                    eq("coffee", rs.getString("sku"), "sku");
                    eq(2, rs.getInt("qty"), "qty");
                    eq(10_000_000_002L, rs.getLong("weight"), "weight");
                    eq(new BigDecimal("2.25"), rs.getBigDecimal("price"), "price");
                    eq(SEEN, rs.getTimestamp("seen"), "seen");
                    eq(java.sql.Date.valueOf("2026-01-04"), rs.getDate("day"), "day");
                    eq(0.5, rs.getDouble("ratio"), "ratio");
                    eq(true, rs.getBoolean("active"), "active");
                    check(Arrays.equals(BLOB, rs.getBytes("blob")), "blob: " + Arrays.toString(rs.getBytes("blob")));
                    eq(TOKEN, rs.getObject("token"), "token");
                    eq(null, rs.getString("note"), "note");
                    check(rs.wasNull(), "wasNull after a NULL");
                    eq(Long.class, rs.getObject("id").getClass(), "getObject(id)");
                    eq(Integer.class, rs.getObject("qty").getClass(), "getObject(qty)");
                    eq(BigDecimal.class, rs.getObject("price").getClass(), "getObject(price)");
                    eq(Timestamp.class, rs.getObject("seen").getClass(), "getObject(seen)");
                    eq(Boolean.class, rs.getObject("active").getClass(), "getObject(active)");
                    eq(byte[].class, rs.getObject("blob").getClass(), "getObject(blob)");
                    eq(LocalDateTime.of(2026, 1, 2, 3, 4, 5, 123_456_000),
                            rs.getObject("seen", LocalDateTime.class), "getObject(seen, LocalDateTime)");
                    eq(LocalDate.of(2026, 1, 4), rs.getObject("day", LocalDate.class), "getObject(day, LocalDate)");
                    check(!rs.next(), "one row");
                }
            }
            // java.time parameters, and a timestamptz read back as OffsetDateTime.
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT count(*) FROM jdbc_items WHERE seen = ? AND day > ?")) {
                ps.setObject(1, LocalDateTime.of(2026, 1, 2, 3, 4, 5, 123_456_000));
                ps.setObject(2, LocalDate.of(2026, 1, 3));
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "a count");
                    eq(31L, rs.getLong(1), "rows matched by java.time parameters");
                }
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT at FROM jdbc_events WHERE kind = ?")) {
                ps.setString(1, "e1");
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "an event");
                    eq(OffsetDateTime.of(2026, 3, 4, 5, 7, 7, 0, ZoneOffset.UTC).toInstant(),
                            rs.getObject(1, OffsetDateTime.class).toInstant(), "timestamptz");
                }
            }
        });

        step("ResultSetMetaData", () -> {
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT id, sku, price, active, qty AS amount FROM jdbc_items LIMIT 1")) {
                ResultSetMetaData md = rs.getMetaData();
                eq(5, md.getColumnCount(), "column count");
                eq("id", md.getColumnName(1), "name 1");
                eq("amount", md.getColumnLabel(5), "label 5");
                eq(Types.BIGINT, md.getColumnType(1), "type 1");
                eq("varchar", md.getColumnTypeName(2), "type name 2");
                eq(Types.NUMERIC, md.getColumnType(3), "type 3");
                eq(Types.BIT, md.getColumnType(4), "type 4");
                // These look the columns up in pg_attribute/pg_class by the
                // table OID and column number of RowDescription.
                eq("jdbc_items", md.getTableName(1), "table of id");
                eq(ResultSetMetaData.columnNoNulls, md.isNullable(2), "sku is NOT NULL");
                eq(true, md.isAutoIncrement(1), "id is auto-increment");
            }
        });

        step("prepared statement reused 12 times (server-side named after prepareThreshold=5)", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT id, sku, qty, weight, price, seen, day, ratio, active, blob, token FROM jdbc_items WHERE sku = ?")) {
                for (int i = 0; i < 12; i++) {
                    int n = 100 + i;
                    ps.setString(1, "batch-" + i);
                    try (ResultSet rs = ps.executeQuery()) {
                        String at = "execution " + (i + 1) + ": ";
                        check(rs.next(), at + "a row");
                        eq(4L + i, rs.getLong("id"), at + "id");
                        eq("batch-" + i, rs.getString("sku"), at + "sku");
                        eq(n, rs.getInt("qty"), at + "qty");
                        eq(10_000_000_000L + n, rs.getLong("weight"), at + "weight");
                        eq(new BigDecimal(n + ".25"), rs.getBigDecimal("price"), at + "price");
                        eq(SEEN, rs.getTimestamp("seen"), at + "seen");
                        eq(java.sql.Date.valueOf(LocalDate.of(2026, 1, 2).plusDays(n)), rs.getDate("day"), at + "day");
                        eq(n / 4.0, rs.getDouble("ratio"), at + "ratio");
                        eq(n % 2 == 0, rs.getBoolean("active"), at + "active");
                        check(Arrays.equals(BLOB, rs.getBytes("blob")), at + "blob " + Arrays.toString(rs.getBytes("blob")));
                        eq(TOKEN, rs.getObject("token"), at + "token");
                        check(!rs.next(), at + "one row");
                    }
                }
            }
            try (PreparedStatement ps = conn.prepareStatement("UPDATE jdbc_items SET qty = qty + ? WHERE id = ?")) {
                for (int i = 0; i < 12; i++) {
                    ps.setInt(1, 1000);
                    ps.setLong(2, 4 + i);
                    eq(1, ps.executeUpdate(), "update count of execution " + (i + 1));
                }
            }
            eq(12L, queryLong("SELECT count(*) FROM jdbc_items WHERE qty >= 1100"), "rows the reused UPDATE changed");
        });

        step("transactions: rollback, commit, savepoints", () -> {
            long before = queryLong("SELECT count(*) FROM jdbc_items");
            conn.setAutoCommit(false);
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO jdbc_items (sku, qty) VALUES (?, ?)")) {
                ps.setString(1, "rolled-back");
                ps.setInt(2, 1);
                eq(1, ps.executeUpdate(), "insert in a transaction");
                eq(before + 1, queryLong("SELECT count(*) FROM jdbc_items"), "own insert visible");
                conn.rollback();
                eq(before, queryLong("SELECT count(*) FROM jdbc_items"), "after rollback");
                ps.setString(1, "kept");
                ps.executeUpdate();
                Savepoint sp = conn.setSavepoint();
                ps.setString(1, "undone");
                ps.executeUpdate();
                conn.rollback(sp);
                ps.setString(1, "kept-too");
                ps.executeUpdate();
                Savepoint named = conn.setSavepoint("named");
                conn.releaseSavepoint(named);
                conn.commit();
            }
            conn.setAutoCommit(true);
            eq(before + 2, queryLong("SELECT count(*) FROM jdbc_items"), "after commit");
            eq(0L, queryLong("SELECT count(*) FROM jdbc_items WHERE sku IN ('rolled-back', 'undone')"), "undone rows");
        });

        step("isolation levels and read-only transactions", () -> {
            // Shoal's default is SERIALIZABLE, PostgreSQL's READ COMMITTED.
            int initial = conn.getTransactionIsolation();
            check(initial == Connection.TRANSACTION_SERIALIZABLE
                    || initial == Connection.TRANSACTION_READ_COMMITTED, "default isolation " + initial);
            conn.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
            eq(Connection.TRANSACTION_READ_COMMITTED, conn.getTransactionIsolation(), "READ COMMITTED");
            conn.setAutoCommit(false);
            eq(1L, queryLong("SELECT count(*) FROM jdbc_items WHERE sku = 'tea'"), "read in READ COMMITTED");
            conn.commit();
            conn.setAutoCommit(true);
            conn.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
            eq(Connection.TRANSACTION_SERIALIZABLE, conn.getTransactionIsolation(), "back to SERIALIZABLE");
            conn.setAutoCommit(false);
            conn.setReadOnly(true);
            eq(1L, queryLong("SELECT count(*) FROM jdbc_items WHERE sku = 'tea'"), "read in a read-only transaction");
            expectState("25006", () -> exec("UPDATE jdbc_items SET qty = 0 WHERE sku = 'tea'"));
            conn.rollback();
            conn.setReadOnly(false);
            conn.setAutoCommit(true);
        });

        step("errors carry SQLSTATEs; the connection goes on", () -> {
            SQLException dup = expectState("23505", () -> {
                try (PreparedStatement ps = conn.prepareStatement("INSERT INTO jdbc_items (sku) VALUES (?)")) {
                    ps.setString(1, "tea");
                    ps.executeUpdate();
                }
            });
            System.out.println("     unique violation: " + dup.getMessage().replace('\n', ' '));
            expectState("23503", () -> exec("INSERT INTO jdbc_events (item_id, kind) VALUES (999, 'x')"));
            expectState("23502", () -> exec("INSERT INTO jdbc_items (sku, qty) VALUES ('nn', NULL)"));
            expectState("42P01", () -> exec("SELECT * FROM jdbc_no_such_table"));
            expectState("42703", () -> exec("SELECT no_such_column FROM jdbc_items"));
            expectState("42601", () -> exec("SELEC 1"));
            expectState("22012", () -> exec("SELECT 1 / 0"));
            eq(1L, queryLong("SELECT 1"), "connection usable after errors");
            // An error inside a transaction aborts it until ROLLBACK.
            conn.setAutoCommit(false);
            expectState("23505", () -> exec("INSERT INTO jdbc_items (sku) VALUES ('tea')"));
            expectState("25P02", () -> queryLong("SELECT 1"));
            conn.rollback();
            eq(1L, queryLong("SELECT 1"), "transaction usable after rollback");
            conn.commit();
            conn.setAutoCommit(true);
            // A batch that hits a duplicate fails as a BatchUpdateException.
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO jdbc_items (sku) VALUES (?)")) {
                ps.setString(1, "fresh");
                ps.addBatch();
                ps.setString(1, "tea");
                ps.addBatch();
                try {
                    ps.executeBatch();
                    throw new AssertionError("the batch must fail");
                } catch (BatchUpdateException e) {
                    SQLException cause = e.getNextException() != null ? e.getNextException() : e;
                    eq("23505", cause.getSQLState(), "SQLSTATE in the batch: " + describe(e));
                }
            }
            // The batch was one transaction, as in PostgreSQL: the row
            // before the duplicate went with it.
            eq(0L, queryLong("SELECT count(*) FROM jdbc_items WHERE sku = 'fresh'"),
                    "rows of a batch that failed");
            // After an error the server skips the batch's later statements
            // up to Sync.
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO jdbc_items (sku) VALUES (?)")) {
                ps.setString(1, "tea");
                ps.addBatch();
                ps.setString(1, "after-the-error");
                ps.addBatch();
                try {
                    ps.executeBatch();
                    throw new AssertionError("the batch must fail");
                } catch (BatchUpdateException e) {
                    SQLException cause = e.getNextException() != null ? e.getNextException() : e;
                    eq("23505", cause.getSQLState(), "SQLSTATE in the batch: " + describe(e));
                }
            }
            eq(0L, queryLong("SELECT count(*) FROM jdbc_items WHERE sku = 'after-the-error'"),
                    "rows after the failing statement of a batch");
        });

        step("UPDATE/DELETE update counts (executeUpdate, execute + getUpdateCount)", () -> {
            try (PreparedStatement ps = conn.prepareStatement("UPDATE jdbc_items SET note = ? WHERE sku LIKE ?")) {
                ps.setString(1, "rewritten");
                ps.setString(2, "rw-%");
                eq(10, ps.executeUpdate(), "updated rows");
            }
            try (PreparedStatement ps = conn.prepareStatement("UPDATE jdbc_items SET qty = 0, weight = 0 WHERE sku = ?")) {
                ps.setString(1, "coffee");
                eq(1, ps.executeUpdate(), "row with two columns set to one value");
            }
            try (Statement st = conn.createStatement()) {
                check(!st.execute("DELETE FROM jdbc_items WHERE sku LIKE 'rw-%' AND qty < 205"), "DELETE has no result set");
                eq(5, st.getUpdateCount(), "deleted rows");
                eq(0, st.executeUpdate("DELETE FROM jdbc_items WHERE sku = 'nothing'"), "nothing deleted");
                eq(1, st.executeUpdate("DELETE FROM jdbc_items WHERE id = 1"), "deleted with its events");
                eq(0L, queryLong("SELECT count(*) FROM jdbc_events WHERE item_id = 1"), "ON DELETE CASCADE");
                check(st.execute("SELECT 1 AS one; UPDATE jdbc_items SET qty = qty WHERE id = 2"), "first result is rows");
                try (ResultSet rs = st.getResultSet()) {
                    check(rs.next(), "a row");
                    eq(1, rs.getInt("one"), "one");
                }
                check(!st.getMoreResults(), "second result is a count");
                eq(1, st.getUpdateCount(), "count of the second statement");
            }
        });

        step("cursor by fetch size (portal suspended and resumed), setMaxRows", () -> {
            long total = queryLong("SELECT count(*) FROM jdbc_items");
            conn.setAutoCommit(false);
            try (PreparedStatement ps = conn.prepareStatement("SELECT id, sku FROM jdbc_items WHERE id > ? ORDER BY id")) {
                ps.setFetchSize(4);
                ps.setLong(1, 0);
                long rows = 0;
                long last = 0;
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        check(rs.getLong(1) > last, "ids in order");
                        last = rs.getLong(1);
                        rows++;
                    }
                }
                eq(total, rows, "rows fetched 4 at a time");
            }
            conn.commit();
            conn.setAutoCommit(true);
            try (Statement st = conn.createStatement()) {
                st.setMaxRows(3);
                int rows = 0;
                try (ResultSet rs = st.executeQuery("SELECT id FROM jdbc_items ORDER BY id")) {
                    while (rs.next()) {
                        rows++;
                    }
                }
                eq(3, rows, "setMaxRows");
            }
        });

        step("drop the tables", () -> {
            exec("DROP TABLE jdbc_events");
            exec("DROP TABLE jdbc_items");
        });

        versions[1] = System.getProperty("java.version");
        if (conn != null) {
            conn.close();
        }
        if (!failures.isEmpty()) {
            System.out.println(failures.size() + " step(s) failed: " + failures);
            System.exit(1);
        }
        System.out.println("pgjdbc " + versions[0] + " on Java " + versions[1] + ": ok");
    }
}
