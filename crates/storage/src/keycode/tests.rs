//! Property tests: encodings round-trip, and memcmp order equals datum order
//! (per type, with NULL, and for composite keys mixing ASC and DESC).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;

use proptest::prelude::*;

use super::*;

/// PostgreSQL's order for two datums of the same type: NULL above every
/// value, NaN above every float, -0.0 equal to 0.0.
fn cmp_datum(a: &KeyDatum, b: &KeyDatum) -> Ordering {
    use KeyDatum::*;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Greater,
        (_, Null) => Ordering::Less,
        (Bool(x), Bool(y)) => x.cmp(y),
        (Int(x), Int(y)) | (Timestamp(x), Timestamp(y)) => x.cmp(y),
        (Float(x), Float(y)) => match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        },
        (Text(x), Text(y)) => x.cmp(y),
        (Bytes(x), Bytes(y)) => x.cmp(y),
        (Date(x), Date(y)) => x.cmp(y),
        (Uuid(x), Uuid(y)) => x.cmp(y),
        _ => panic!("compared datums of different types: {a:?} vs {b:?}"),
    }
}

/// Equality after decoding: floats compare by canonical form (NaN == NaN,
/// -0.0 == 0.0), everything else structurally.
fn same(a: &KeyDatum, b: &KeyDatum) -> bool {
    match (a, b) {
        (KeyDatum::Float(x), KeyDatum::Float(y)) => float_to_ordered(*x) == float_to_ordered(*y),
        _ => a == b,
    }
}

fn arb_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(-f64::MIN_POSITIVE),
        any::<f64>(),
        -1000.0..1000.0f64,
    ]
}

/// Small byte strings biased toward the escape-relevant bytes, so prefixes
/// and embedded zeros are common.
fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(0u8), Just(1u8), Just(0xffu8), any::<u8>()],
        0..6,
    )
}

/// A datum of type number `ty` (0..8), or NULL.
fn arb_datum_of(ty: u8) -> BoxedStrategy<KeyDatum> {
    let value: BoxedStrategy<KeyDatum> = match ty {
        0 => any::<bool>().prop_map(KeyDatum::Bool).boxed(),
        1 => prop_oneof![any::<i64>(), -3i64..3]
            .prop_map(KeyDatum::Int)
            .boxed(),
        2 => arb_float().prop_map(KeyDatum::Float).boxed(),
        3 => prop_oneof!["[a\\x00b]{0,4}", any::<String>()]
            .prop_map(KeyDatum::Text)
            .boxed(),
        4 => arb_bytes().prop_map(KeyDatum::Bytes).boxed(),
        5 => any::<i32>().prop_map(KeyDatum::Date).boxed(),
        6 => any::<i64>().prop_map(KeyDatum::Timestamp).boxed(),
        _ => any::<[u8; 16]>().prop_map(KeyDatum::Uuid).boxed(),
    };
    prop_oneof![1 => Just(KeyDatum::Null), 6 => value].boxed()
}

fn arb_same_type_pair() -> impl Strategy<Value = (KeyDatum, KeyDatum)> {
    (0u8..8).prop_flat_map(|ty| (arb_datum_of(ty), arb_datum_of(ty)))
}

/// Two composite keys following the same schema of (type, descending).
/// A composite key: each datum with its `descending` flag.
type Composite = Vec<(KeyDatum, bool)>;

fn arb_composite_pair() -> impl Strategy<Value = (Composite, Composite)> {
    prop::collection::vec((0u8..8, any::<bool>()), 1..4).prop_flat_map(|schema| {
        let one = schema
            .iter()
            .map(|&(ty, desc)| arb_datum_of(ty).prop_map(move |d| (d, desc)))
            .collect::<Vec<_>>();
        (one.clone(), one)
    })
}

fn encode_one(d: &KeyDatum, desc: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_datum(d, desc, &mut out);
    out
}

proptest! {
    #[test]
    fn datum_round_trips((d, _) in arb_same_type_pair(), desc in any::<bool>(), trailer in arb_bytes()) {
        let mut buf = encode_one(&d, desc);
        buf.extend_from_slice(&trailer);
        let mut input = buf.as_slice();
        let (back, back_desc) = decode_datum_with_direction(&mut input).unwrap();
        prop_assert!(same(&d, &back), "{d:?} decoded as {back:?}");
        prop_assert_eq!(back_desc, desc);
        prop_assert_eq!(input, trailer.as_slice());
    }

    #[test]
    fn datum_order_matches_memcmp((a, b) in arb_same_type_pair()) {
        let want = cmp_datum(&a, &b);
        prop_assert_eq!(encode_one(&a, false).cmp(&encode_one(&b, false)), want, "asc {:?} {:?}", a, b);
        prop_assert_eq!(encode_one(&a, true).cmp(&encode_one(&b, true)), want.reverse(), "desc {:?} {:?}", a, b);
    }

    #[test]
    fn composite_order_matches_memcmp((a, b) in arb_composite_pair()) {
        let want = a
            .iter()
            .zip(&b)
            .map(|((x, desc), (y, _))| {
                let o = cmp_datum(x, y);
                if *desc { o.reverse() } else { o }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal);
        prop_assert_eq!(encode_key(&a).cmp(&encode_key(&b)), want);
    }

    #[test]
    fn composite_round_trips((a, _) in arb_composite_pair()) {
        let back = decode_key(&encode_key(&a)).unwrap();
        prop_assert_eq!(back.len(), a.len());
        for ((x, dx), (y, dy)) in a.iter().zip(&back) {
            prop_assert!(same(x, y) && dx == dy, "{x:?}/{dx} vs {y:?}/{dy}");
        }
    }

    #[test]
    fn escaped_bytes_round_trip_and_order(a in arb_bytes(), b in arb_bytes()) {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        encode_bytes_escaped(&a, &mut ea);
        encode_bytes_escaped(&b, &mut eb);
        prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
        let mut input = ea.as_slice();
        prop_assert_eq!(decode_bytes_escaped(&mut input).unwrap(), a);
        prop_assert!(input.is_empty());
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..24)) {
        let _ = decode_key(&bytes);
    }
}

#[test]
fn rejects_malformed_input() {
    let cases: &[&[u8]] = &[
        &[],                             // no tag
        &[0x11, 0x80],                   // truncated int
        &[0x13, b'a'],                   // unterminated text
        &[0x13, 0x00, 0x05],             // bad escape
        &[0x13, 0xc3, 0x28, 0x00, 0x01], // invalid UTF-8
        &[0x10, 0x02],                   // bad bool
        &[0x42],                         // unknown tag
    ];
    for case in cases {
        let mut input = *case;
        assert!(
            matches!(decode_datum(&mut input), Err(StorageError::InvalidKey(_))),
            "{case:x?} should be rejected"
        );
    }
}
