//! Runs `testdata/keycode.txt`: key encodings recorded as hex, decodings, and
//! sort orders. See `script/mod.rs` for the file format.
//!
//! Commands:
//! * `encode <datum>...` — the composite key, as hex.
//! * `decode <hex>` — the datums of a composite key, or the decoding error.
//! * `sort <datum>...` — each datum encoded alone, then sorted by bytes.
//!
//! A datum is `null`, `bool=true`, `int=-5`, `float=1.5` (also `NaN`, `inf`,
//! `-inf`, `-0`), `text=abc` or `text="a b"`, `bytes=00ff` (hex),
//! `date=<days>`, `ts=<µs>`, or `uuid=<32 hex digits>`, optionally prefixed
//! with `desc:`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal_datadriven as script;

use shoal_storage::keycode::{KeyDatum, decode_key, encode_datum, encode_key};

fn parse_hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_datum(token: &str) -> (KeyDatum, bool) {
    let (desc, token) = match token.strip_prefix("desc:") {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    if token == "null" {
        return (KeyDatum::Null, desc);
    }
    let (kind, value) = token
        .split_once('=')
        .unwrap_or_else(|| panic!("bad datum {token:?}"));
    let datum = match kind {
        "bool" => KeyDatum::Bool(value.parse().unwrap()),
        "int" => KeyDatum::Int(value.parse().unwrap()),
        "float" => KeyDatum::Float(value.parse().unwrap()),
        "text" => KeyDatum::Text(value.to_string()),
        "bytes" => KeyDatum::Bytes(parse_hex(value)),
        "date" => KeyDatum::Date(value.parse().unwrap()),
        "ts" => KeyDatum::Timestamp(value.parse().unwrap()),
        "uuid" => KeyDatum::Uuid(parse_hex(value).try_into().unwrap()),
        other => panic!("unknown datum kind {other:?}"),
    };
    (datum, desc)
}

fn format_datum((d, desc): &(KeyDatum, bool)) -> String {
    let body = match d {
        KeyDatum::Null => "null".to_string(),
        KeyDatum::Bool(b) => format!("bool={b}"),
        KeyDatum::Int(i) => format!("int={i}"),
        KeyDatum::Float(f) => format!("float={f:?}"),
        KeyDatum::Text(s) => format!("text={s:?}"),
        KeyDatum::Bytes(b) => format!("bytes={}", hex(b).replace(' ', "")),
        KeyDatum::Date(d) => format!("date={d}"),
        KeyDatum::Timestamp(t) => format!("ts={t}"),
        KeyDatum::Uuid(u) => format!("uuid={}", hex(u).replace(' ', "")),
    };
    if *desc { format!("desc:{body}") } else { body }
}

fn run(line: &str) -> String {
    let tokens = script::tokenize(line);
    let (command, args) = tokens.split_first().expect("empty command");
    match command.as_str() {
        "encode" => {
            let datums: Vec<_> = args.iter().map(|a| parse_datum(a)).collect();
            hex(&encode_key(&datums))
        }
        "decode" => match decode_key(&parse_hex(&args.join(""))) {
            Ok(datums) => datums
                .iter()
                .map(format_datum)
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => format!("error: {e}"),
        },
        "sort" => {
            let mut keyed: Vec<_> = args
                .iter()
                .map(|a| {
                    let (d, desc) = parse_datum(a);
                    let mut out = Vec::new();
                    encode_datum(&d, desc, &mut out);
                    (out, (d, desc))
                })
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            keyed
                .iter()
                .map(|(_, d)| format_datum(d))
                .collect::<Vec<_>>()
                .join("\n")
        }
        other => panic!("unknown command {other:?}"),
    }
}

#[test]
fn keycode_script() {
    let path = shoal_datadriven::package_dir(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/keycode.txt");
    script::run_script(&path, run);
}
