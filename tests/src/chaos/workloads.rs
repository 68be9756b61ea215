//! The workloads of a chaos run: what clients do, and what must hold of
//! the history they record.
//!
//! | workload | operations | checked |
//! |---|---|---|
//! | `bank` | transfers between 8 accounts in explicit transactions; reads of every balance | every read sums to the total and shows no negative balance; every node ends with the same balances |
//! | `set` | inserts of unique values | every acknowledged insert is in the final read (no lost insert); nothing in it was never inserted |
//! | `register` | reads, writes and compare-and-sets of 3 keys | each key's history is linearizable (`crate::linearizable`, Wing–Gong–Lowe) |
//! | `sequence` | `nextval` of one sequence | no value handed out twice; each session's values strictly increase |
//! | `list-append` | serializable transactions of appends and reads over 6 lists | no G0, G1a, G1b, G1c, G-single, G2 or forked list (`crate::list_append`) |
//!
//! Values written are unique across the run (one shared counter), so a
//! read names the operation that wrote what it saw. Operations whose
//! outcome is unknown (`info`, `history.rs`) may or may not have taken
//! effect: every check allows both.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tokio_postgres::Client;

use super::history::{Kind, Op, classify, describe};
use crate::linearizable::{self, Call, Outcome as CallOutcome, RegOp, Verdict};
use crate::list_append;

const ACCOUNTS: i32 = 8;
const INITIAL: i64 = 100;
const REGISTERS: i32 = 3;
const LISTS: i32 = 6;
/// Search states the linearizability checker may explore per key.
const SEARCH_BUDGET: u64 = 5_000_000;

/// A workload (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Bank,
    Set,
    Register,
    Sequence,
    ListAppend,
}

/// What one operation did, before it is timed into an [`Op`].
pub struct Done {
    pub f: &'static str,
    pub invoke: Value,
    pub value: Value,
    pub kind: Kind,
    pub error: Option<String>,
}

impl Done {
    fn ok(f: &'static str, invoke: Value, value: Value) -> Done {
        Done {
            f,
            invoke,
            value,
            kind: Kind::Ok,
            error: None,
        }
    }

    fn failed(f: &'static str, invoke: Value, kind: Kind, error: &tokio_postgres::Error) -> Done {
        Done {
            f,
            value: invoke.clone(),
            invoke,
            kind,
            error: Some(describe(error)),
        }
    }
}

/// Values unique across a run.
#[derive(Debug, Default)]
pub struct Counter(AtomicI64);

impl Counter {
    fn next(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 5] = [
        Workload::Bank,
        Workload::Set,
        Workload::Register,
        Workload::Sequence,
        Workload::ListAppend,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Bank => "bank",
            Workload::Set => "set",
            Workload::Register => "register",
            Workload::Sequence => "sequence",
            Workload::ListAppend => "list-append",
        }
    }

    /// The workload called `name`.
    pub fn parse(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Creates and fills the workload's table.
    pub async fn setup(self, client: &Client) -> Result<(), tokio_postgres::Error> {
        let sql = match self {
            Workload::Bank => format!(
                "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
                 INSERT INTO accounts SELECT n, {INITIAL} FROM generate_series(0, {}) AS g(n);",
                ACCOUNTS - 1
            ),
            Workload::Set => "CREATE TABLE set_items (v bigint PRIMARY KEY);".to_string(),
            Workload::Register => format!(
                "CREATE TABLE registers (k int PRIMARY KEY, v bigint NOT NULL);
                 INSERT INTO registers SELECT n, 0 FROM generate_series(0, {}) AS g(n);",
                REGISTERS - 1
            ),
            Workload::Sequence => "CREATE SEQUENCE chaos_seq;".to_string(),
            Workload::ListAppend => format!(
                "CREATE TABLE lists (k int PRIMARY KEY, v text NOT NULL);
                 INSERT INTO lists SELECT n, '' FROM generate_series(0, {}) AS g(n);",
                LISTS - 1
            ),
        };
        client.batch_execute(&sql).await
    }

    /// The statement prefix and key count a split storm uses.
    pub fn splits(self) -> Option<(&'static str, i64)> {
        match self {
            Workload::Bank => Some(("ALTER TABLE accounts", ACCOUNTS.into())),
            Workload::Register => Some(("ALTER TABLE registers", REGISTERS.into())),
            Workload::ListAppend => Some(("ALTER TABLE lists", LISTS.into())),
            Workload::Set => Some(("ALTER TABLE set_items", 1_000)),
            Workload::Sequence => None,
        }
    }

    /// Chooses one random operation.
    pub fn plan(self, rng: &mut StdRng, unique: &Counter) -> Planned {
        match self {
            Workload::Bank if rng.gen_bool(0.2) => Planned::ReadBalances,
            Workload::Bank => {
                let from = rng.gen_range(0..ACCOUNTS);
                let to = (from + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
                Planned::Transfer {
                    from,
                    to,
                    amount: rng.gen_range(1..=20),
                }
            }
            Workload::Set => Planned::Add(unique.next()),
            Workload::Register => {
                let k = rng.gen_range(0..REGISTERS);
                match rng.gen_range(0..10) {
                    0..4 => Planned::Read(k),
                    4..7 => Planned::Write(k, unique.next()),
                    _ => {
                        // A value written lately, so that some swaps match.
                        let from = (unique.peek() - rng.gen_range(0..4)).max(0);
                        Planned::Cas(k, from, unique.next())
                    }
                }
            }
            Workload::Sequence => Planned::NextVal,
            Workload::ListAppend => Planned::Txn(
                (0..rng.gen_range(1..=4))
                    .map(|_| {
                        let key = rng.gen_range(0..LISTS).unsigned_abs();
                        if rng.gen_bool(0.5) {
                            let value = u32::try_from(unique.next()).unwrap_or(u32::MAX);
                            list_append::Op::Append { key, value }
                        } else {
                            list_append::Op::Read { key, list: None }
                        }
                    })
                    .collect(),
            ),
        }
    }

    /// The state at the end, read through `client` (`None` for workloads
    /// that check their history only).
    pub async fn final_read(self, client: &Client) -> Result<Option<Value>, tokio_postgres::Error> {
        let query = match self {
            Workload::Bank => "SELECT balance FROM accounts ORDER BY id",
            Workload::Set => "SELECT v FROM set_items ORDER BY v",
            Workload::Register => "SELECT v FROM registers ORDER BY k",
            Workload::ListAppend => "SELECT v FROM lists ORDER BY k",
            Workload::Sequence => return Ok(None),
        };
        let rows = client.query(query, &[]).await?;
        Ok(Some(match self {
            Workload::ListAppend => rows.iter().map(|r| json!(r.get::<_, String>(0))).collect(),
            _ => rows.iter().map(|r| json!(r.get::<_, i64>(0))).collect(),
        }))
    }

    /// What is wrong with a history and the final reads of every node
    /// (empty: nothing), plus notes on what could not be checked.
    pub fn check(self, ops: &[Op], finals: &[Value]) -> (Vec<String>, Vec<String>) {
        let mut anomalies = Vec::new();
        let mut notes = Vec::new();
        if finals.windows(2).any(|w| w[0] != w[1]) {
            anomalies.push(format!("nodes disagree on the final state: {finals:?}"));
        }
        match self {
            Workload::Bank => check_bank(ops, finals, &mut anomalies),
            Workload::Set => check_set(ops, finals, &mut anomalies),
            Workload::Register => check_registers(ops, &mut anomalies, &mut notes),
            Workload::Sequence => check_sequence(ops, &mut anomalies),
            Workload::ListAppend => {
                for anomaly in list_append::check(&list_txns(ops)) {
                    anomalies.push(format!("{}: {anomaly:?}", anomaly.name()));
                }
            }
        }
        (anomalies, notes)
    }
}

impl Counter {
    fn peek(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One operation, chosen before it runs (so that an operation that never
/// answers is still recorded with what it asked).
#[derive(Debug, Clone)]
pub enum Planned {
    ReadBalances,
    Transfer { from: i32, to: i32, amount: i64 },
    Add(i64),
    Read(i32),
    Write(i32, i64),
    Cas(i32, i64, i64),
    NextVal,
    Txn(Vec<list_append::Op>),
}

impl Planned {
    /// Its function name in the history.
    pub fn f(&self) -> &'static str {
        match self {
            Planned::ReadBalances | Planned::Read(_) => "read",
            Planned::Transfer { .. } => "transfer",
            Planned::Add(_) => "add",
            Planned::Write(..) => "write",
            Planned::Cas(..) => "cas",
            Planned::NextVal => "nextval",
            Planned::Txn(_) => "txn",
        }
    }

    /// What it asks, as the history records it.
    pub fn invoke(&self) -> Value {
        match self {
            Planned::ReadBalances | Planned::NextVal => Value::Null,
            Planned::Transfer { from, to, amount } => {
                json!({"from": from, "to": to, "amount": amount})
            }
            Planned::Add(v) => json!(v),
            Planned::Read(k) => json!([k, null]),
            Planned::Write(k, v) => json!([k, v]),
            Planned::Cas(k, from, to) => json!([k, [from, to]]),
            Planned::Txn(ops) => list_json(ops, false),
        }
    }

    /// Runs it through `client`.
    pub async fn execute(&self, client: &Client) -> Done {
        match self {
            Planned::ReadBalances => read_balances(client).await,
            Planned::Transfer { from, to, amount } => transfer(client, *from, *to, *amount).await,
            Planned::Add(v) => {
                let invoke = self.invoke();
                match client
                    .execute("INSERT INTO set_items VALUES ($1)", &[v])
                    .await
                {
                    Ok(_) => Done::ok("add", invoke.clone(), invoke),
                    Err(e) => Done::failed("add", invoke, classify(&e, true), &e),
                }
            }
            Planned::Read(k) => register_read(client, *k).await,
            Planned::Write(k, v) => register_write(client, *k, *v).await,
            Planned::Cas(k, from, to) => register_cas(client, *k, *from, *to).await,
            Planned::NextVal => match client.query_one("SELECT nextval('chaos_seq')", &[]).await {
                Ok(row) => Done::ok("nextval", Value::Null, json!(row.get::<_, i64>(0))),
                Err(e) => Done::failed("nextval", Value::Null, classify(&e, true), &e),
            },
            Planned::Txn(ops) => list_txn(client, ops.clone()).await,
        }
    }
}

async fn read_balances(client: &Client) -> Done {
    match client
        .query("SELECT balance FROM accounts ORDER BY id", &[])
        .await
    {
        Ok(rows) => {
            let balances: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            Done::ok("read", Value::Null, json!(balances))
        }
        Err(e) => Done::failed("read", Value::Null, Kind::Fail, &e),
    }
}

/// Moves up to `amount` from `from` to `to` (never below zero) in one
/// explicit transaction that reads the balance first. On error, the error
/// and whether it was COMMIT that failed (before COMMIT nothing was
/// written; at COMMIT the outcome may be unknown).
pub async fn move_money(
    client: &Client,
    from: i32,
    to: i32,
    amount: i64,
) -> Result<(), (tokio_postgres::Error, bool)> {
    let before_commit = async {
        client.batch_execute("BEGIN").await?;
        let row = client
            .query_one("SELECT balance FROM accounts WHERE id = $1", &[&from])
            .await?;
        let amount = amount.min(row.get(0));
        client
            .execute(
                "UPDATE accounts SET balance = balance - $1 WHERE id = $2",
                &[&amount, &from],
            )
            .await?;
        client
            .execute(
                "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
                &[&amount, &to],
            )
            .await
    };
    if let Err(e) = before_commit.await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err((e, false));
    }
    client.batch_execute("COMMIT").await.map_err(|e| (e, true))
}

async fn transfer(client: &Client, from: i32, to: i32, amount: i64) -> Done {
    let invoke = json!({"from": from, "to": to, "amount": amount});
    match move_money(client, from, to, amount).await {
        Ok(()) => Done::ok("transfer", invoke.clone(), invoke),
        Err((e, at_commit)) => Done::failed("transfer", invoke, classify(&e, at_commit), &e),
    }
}

async fn register_read(client: &Client, k: i32) -> Done {
    let invoke = json!([k, null]);
    match client
        .query_opt("SELECT v FROM registers WHERE k = $1", &[&k])
        .await
    {
        Ok(row) => Done::ok("read", invoke, json!([k, row.map(|r| r.get::<_, i64>(0))])),
        Err(e) => Done::failed("read", invoke, Kind::Fail, &e),
    }
}

async fn register_write(client: &Client, k: i32, v: i64) -> Done {
    let invoke = json!([k, v]);
    match client
        .execute("UPDATE registers SET v = $2 WHERE k = $1", &[&k, &v])
        .await
    {
        Ok(_) => Done::ok("write", invoke.clone(), invoke),
        Err(e) => Done::failed("write", invoke, classify(&e, true), &e),
    }
}

async fn register_cas(client: &Client, k: i32, from: i64, to: i64) -> Done {
    let invoke = json!([k, [from, to]]);
    match client
        .execute(
            "UPDATE registers SET v = $3 WHERE k = $1 AND v = $2",
            &[&k, &from, &to],
        )
        .await
    {
        Ok(1) => Done::ok("cas", invoke.clone(), invoke),
        Ok(_) => Done {
            f: "cas",
            value: invoke.clone(),
            invoke,
            kind: Kind::Fail,
            error: Some("no match".into()),
        },
        Err(e) => Done::failed("cas", invoke, classify(&e, true), &e),
    }
}

/// One list-append transaction; its value is elle's `[[f, k, v], …]`.
async fn list_txn(client: &Client, mut ops: Vec<list_append::Op>) -> Done {
    let invoke = list_json(&ops, false);
    let before_commit = async {
        client
            .batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            .await?;
        for op in &mut ops {
            match op {
                list_append::Op::Append { key, value } => {
                    let k = i32::try_from(*key).unwrap_or(i32::MAX);
                    client
                        .execute(
                            "UPDATE lists SET v = v || $2 WHERE k = $1",
                            &[&k, &format!(" {value}")],
                        )
                        .await?;
                }
                list_append::Op::Read { key, list } => {
                    let k = i32::try_from(*key).unwrap_or(i32::MAX);
                    let row = client
                        .query_one("SELECT v FROM lists WHERE k = $1", &[&k])
                        .await?;
                    *list = Some(parse_list(row.get(0)));
                }
            }
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    if let Err(e) = before_commit.await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Done::failed("txn", invoke, Kind::Fail, &e);
    }
    match client.batch_execute("COMMIT").await {
        Ok(()) => Done::ok("txn", invoke, list_json(&ops, true)),
        Err(e) => Done::failed("txn", invoke, classify(&e, true), &e),
    }
}

fn parse_list(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn list_json(ops: &[list_append::Op], with_reads: bool) -> Value {
    ops.iter()
        .map(|op| match op {
            list_append::Op::Append { key, value } => json!(["append", key, value]),
            list_append::Op::Read { key, list } if with_reads => json!(["r", key, list]),
            list_append::Op::Read { key, .. } => json!(["r", key, null]),
        })
        .collect()
}

/// The list-append transactions of a history, for the checker.
fn list_txns(ops: &[Op]) -> Vec<list_append::Txn> {
    ops.iter()
        .filter(|op| op.f == "txn")
        .map(|op| {
            let parsed = op
                .value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|step| {
                    let key = u32::try_from(step.get(1)?.as_u64()?).ok()?;
                    match step.get(0)?.as_str()? {
                        "append" => Some(list_append::Op::Append {
                            key,
                            value: u32::try_from(step.get(2)?.as_u64()?).ok()?,
                        }),
                        _ => Some(list_append::Op::Read {
                            key,
                            list: step.get(2)?.as_array().map(|l| {
                                l.iter()
                                    .filter_map(|v| u32::try_from(v.as_u64()?).ok())
                                    .collect()
                            }),
                        }),
                    }
                })
                .collect();
            list_append::Txn {
                ops: parsed,
                outcome: match op.kind {
                    Kind::Ok => list_append::Outcome::Committed,
                    Kind::Fail => list_append::Outcome::Aborted,
                    Kind::Info => list_append::Outcome::Unknown,
                },
            }
        })
        .collect()
}

fn check_bank(ops: &[Op], finals: &[Value], anomalies: &mut Vec<String>) {
    let total = i64::from(ACCOUNTS) * INITIAL;
    let reads = ops
        .iter()
        .filter(|op| op.f == "read" && op.kind == Kind::Ok)
        .map(|op| &op.value)
        .chain(finals);
    for read in reads {
        let balances: Vec<i64> = read
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        let sum: i64 = balances.iter().sum();
        if balances.len() != ACCOUNTS as usize || sum != total || balances.iter().any(|&b| b < 0) {
            anomalies.push(format!("bank read {read} (sum {sum}, expected {total})"));
        }
    }
}

fn check_set(ops: &[Op], finals: &[Value], anomalies: &mut Vec<String>) {
    let attempted: HashSet<i64> = ops.iter().filter_map(|op| op.invoke.as_i64()).collect();
    let acknowledged: Vec<i64> = ops
        .iter()
        .filter(|op| op.kind == Kind::Ok)
        .filter_map(|op| op.value.as_i64())
        .collect();
    for read in finals {
        let present: HashSet<i64> = read
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        let lost: Vec<i64> = acknowledged
            .iter()
            .copied()
            .filter(|v| !present.contains(v))
            .collect();
        if !lost.is_empty() {
            anomalies.push(format!(
                "lost {} acknowledged inserts: {lost:?}",
                lost.len()
            ));
        }
        let mut unexpected: Vec<i64> = present.difference(&attempted).copied().collect();
        unexpected.sort_unstable();
        if !unexpected.is_empty() {
            anomalies.push(format!("values never inserted are present: {unexpected:?}"));
        }
    }
}

fn check_registers(ops: &[Op], anomalies: &mut Vec<String>, notes: &mut Vec<String>) {
    let mut by_key: BTreeMap<i64, Vec<Call>> = BTreeMap::new();
    for op in ops {
        let Some(key) = op.invoke.get(0).and_then(Value::as_i64) else {
            continue;
        };
        let reg_op = match op.f {
            "read" => RegOp::Read {
                seen: op.value.get(1).and_then(Value::as_i64),
            },
            "write" => match op.invoke.get(1).and_then(Value::as_i64) {
                Some(value) => RegOp::Write { value },
                None => continue,
            },
            _ => match op.invoke.get(1).and_then(Value::as_array).map(|p| {
                (
                    p.first().and_then(Value::as_i64),
                    p.get(1).and_then(Value::as_i64),
                )
            }) {
                Some((Some(from), Some(to))) => RegOp::Cas { from, to },
                _ => continue,
            },
        };
        by_key.entry(key).or_default().push(Call {
            process: op.process,
            op: reg_op,
            invoked: op.invoked,
            outcome: match op.kind {
                Kind::Ok => CallOutcome::Ok {
                    returned: op.completed,
                },
                Kind::Fail => CallOutcome::Failed,
                Kind::Info => CallOutcome::Unknown,
            },
        });
    }
    for (key, calls) in by_key {
        match linearizable::check(Some(0), &calls, SEARCH_BUDGET) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { explanation } => {
                anomalies.push(format!("register {key} is not linearizable: {explanation}"));
            }
            Verdict::GaveUp { explored } => notes.push(format!(
                "register {key}: the checker gave up after {explored} states ({} calls)",
                calls.len()
            )),
        }
    }
}

fn check_sequence(ops: &[Op], anomalies: &mut Vec<String>) {
    let mut seen: HashMap<i64, u64> = HashMap::new();
    let mut last: HashMap<u64, (i64, u64)> = HashMap::new();
    let mut ok: Vec<&Op> = ops.iter().filter(|op| op.kind == Kind::Ok).collect();
    ok.sort_by_key(|op| op.invoked);
    for op in ok {
        let Some(v) = op.value.as_i64() else { continue };
        if let Some(other) = seen.insert(v, op.process) {
            anomalies.push(format!(
                "nextval gave {v} twice (processes {other} and {})",
                op.process
            ));
        }
        if let Some(&(prev, at)) = last.get(&op.process)
            && prev >= v
        {
            anomalies.push(format!(
                "process {} got {v} after {prev} (at {at} ns): not increasing",
                op.process
            ));
        }
        last.insert(op.process, (v, op.invoked));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        f: &'static str,
        process: u64,
        invoke: Value,
        value: Value,
        kind: Kind,
        times: (u64, u64),
    ) -> Op {
        Op {
            process,
            f,
            invoke,
            value,
            kind,
            error: None,
            invoked: times.0,
            completed: times.1,
        }
    }

    #[test]
    fn checks_find_what_they_are_for() {
        // A lost insert and a phantom value.
        let ops = vec![
            op("add", 0, json!(1), json!(1), Kind::Ok, (0, 1)),
            op("add", 0, json!(2), json!(2), Kind::Info, (2, 3)),
        ];
        let (anomalies, _) = Workload::Set.check(&ops, &[json!([2, 7])]);
        assert_eq!(anomalies.len(), 2, "{anomalies:?}");
        assert!(Workload::Set.check(&ops, &[json!([1])]).0.is_empty());

        // A bank read with money created.
        let ops = vec![op(
            "read",
            0,
            Value::Null,
            json!([100, 100, 100, 100, 100, 100, 100, 101]),
            Kind::Ok,
            (0, 1),
        )];
        assert_eq!(Workload::Bank.check(&ops, &[]).0.len(), 1);

        // A duplicate and a decreasing sequence value.
        let ops = vec![
            op("nextval", 0, Value::Null, json!(5), Kind::Ok, (0, 1)),
            op("nextval", 0, Value::Null, json!(3), Kind::Ok, (2, 3)),
            op("nextval", 1, Value::Null, json!(5), Kind::Ok, (4, 5)),
        ];
        assert_eq!(Workload::Sequence.check(&ops, &[]).0.len(), 2);

        // A stale register read after a completed write.
        let ops = vec![
            op("write", 0, json!([1, 7]), json!([1, 7]), Kind::Ok, (0, 10)),
            op(
                "read",
                1,
                json!([1, null]),
                json!([1, 0]),
                Kind::Ok,
                (20, 30),
            ),
        ];
        assert_eq!(Workload::Register.check(&ops, &[]).0.len(), 1);

        // A list read that forks from another.
        let ops = vec![
            op(
                "txn",
                0,
                Value::Null,
                json!([["append", 1, 1]]),
                Kind::Ok,
                (0, 1),
            ),
            op(
                "txn",
                1,
                Value::Null,
                json!([["append", 1, 2]]),
                Kind::Ok,
                (0, 1),
            ),
            op(
                "txn",
                2,
                Value::Null,
                json!([["r", 1, [1, 2]]]),
                Kind::Ok,
                (2, 3),
            ),
            op(
                "txn",
                3,
                Value::Null,
                json!([["r", 1, [2, 1]]]),
                Kind::Ok,
                (2, 3),
            ),
        ];
        assert!(!Workload::ListAppend.check(&ops, &[]).0.is_empty());
    }
}
