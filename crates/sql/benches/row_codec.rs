//! Micro-benchmarks of the row codec: how a SQL row becomes a KV pair on
//! every write, and how scanned KV pairs become the Arrow batches
//! DataFusion executes on.
//!
//! The table is shaped like sysbench's `sbtest` (`id integer primary key,
//! k integer, c char(120), pad char(60)`). `encode` builds a row's key and
//! value, `decode` turns one pair back into datums, and `batch_1000` builds
//! the Arrow batch of 1,000 scanned rows, column by column, as a table scan
//! does. Run with `cargo bench -p shoal-sql --bench row_codec`; `cargo test
//! --benches` runs each case once.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::arrow::datatypes::{Field, Schema};
use shoal_sql::descriptor::{ColumnDescriptor, TableDescriptor};
use shoal_sql::row::{decode_row, encode_key, encode_value};
use shoal_sql::scan::batch_from_pairs;
use shoal_sql::types::{Datum, SqlType};

fn sbtest() -> TableDescriptor {
    let column = |name: &str, ty: SqlType| ColumnDescriptor {
        nullable: false,
        ..ColumnDescriptor::plain(name, ty)
    };
    TableDescriptor {
        id: 104,
        database: "shoal".into(),
        schema: "public".into(),
        name: "sbtest1".into(),
        columns: vec![
            column("id", SqlType::Integer),
            column("k", SqlType::Integer),
            column("c", SqlType::Char(120)),
            column("pad", SqlType::Char(60)),
        ],
        primary_key: vec![0],
        version: 1,
        indexes: Vec::new(),
        next_index_id: 2,
        checks: Vec::new(),
        foreign_keys: Vec::new(),
        referenced_by: Vec::new(),
    }
}

fn row(id: i64) -> Vec<Datum> {
    let digits = |n: usize| {
        (0..n)
            .map(|g| format!("{:011}", (id * 7_919 + g as i64) % 100_000_000_000))
            .collect::<Vec<_>>()
            .join("-")
    };
    vec![
        Datum::Int(id),
        Datum::Int(id * 31 % 100_000),
        Datum::Text(digits(10)),
        Datum::Text(digits(5)),
    ]
}

fn codec(c: &mut Criterion) {
    let desc = sbtest();
    let one = row(4_242);
    c.bench_function("row/encode", |b| {
        b.iter(|| {
            let row = black_box(&one);
            (encode_key(&desc, row), encode_value(&desc, row))
        })
    });
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (1..=1000)
        .filter_map(|id| {
            let r = row(id);
            Some((encode_key(&desc, &r).ok()?, encode_value(&desc, &r)))
        })
        .collect();
    let Some((key, value)) = pairs.first().cloned() else {
        return eprintln!("row_codec: no rows encoded");
    };
    c.bench_function("row/decode", |b| {
        b.iter(|| decode_row(&desc, black_box(&key), black_box(&value)))
    });
    let output: Vec<usize> = (0..desc.columns.len()).collect();
    let schema = Arc::new(Schema::new(
        desc.columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.arrow_type(), c.nullable))
            .collect::<Vec<_>>(),
    ));
    c.bench_function("row/batch_1000", |b| {
        b.iter(|| batch_from_pairs(&desc, &output, &schema, black_box(&pairs)))
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
