//! Micro-benchmarks of the order-preserving key encoding: what every row
//! write and every point read pays to turn key values into engine bytes
//! and back.
//!
//! Keys are shaped like the benchmark tables' (an integer primary key) and
//! like a composite key with text (`(tenant text, id bigint)`). Run with
//! `cargo bench -p shoal-storage --bench keycode`; under `cargo test
//! --benches` each case runs once, as a check that it still works.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use shoal_storage::{KeyDatum, decode_bytes_escaped, decode_key, encode_bytes_escaped, encode_key};

fn keys(c: &mut Criterion) {
    let int_key = vec![(KeyDatum::Int(48_213), false)];
    let composite = vec![
        (KeyDatum::Text("tenant-0042".to_string()), false),
        (KeyDatum::Int(1_234_567_890), false),
    ];
    c.bench_function("keycode/encode_int", |b| {
        b.iter(|| encode_key(black_box(&int_key)))
    });
    c.bench_function("keycode/encode_text_int", |b| {
        b.iter(|| encode_key(black_box(&composite)))
    });
    let encoded = encode_key(&composite);
    c.bench_function("keycode/decode_text_int", |b| {
        b.iter(|| decode_key(black_box(&encoded)))
    });
    // The escaping MVCC applies to a whole user key to build a version key.
    let user_key = encode_key(&composite);
    c.bench_function("keycode/escape_user_key", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(user_key.len() + 4);
            encode_bytes_escaped(black_box(&user_key), &mut out);
            out
        })
    });
    let mut escaped = Vec::new();
    encode_bytes_escaped(&user_key, &mut escaped);
    c.bench_function("keycode/unescape_user_key", |b| {
        b.iter(|| decode_bytes_escaped(&mut black_box(escaped.as_slice())))
    });
}

criterion_group!(benches, keys);
criterion_main!(benches);
