//! Order-preserving ("memcomparable") encoding of typed key values.
//!
//! SQL primary keys and index keys are tuples of typed values, but the engine
//! only orders raw bytes. This module maps a tuple to bytes such that
//! comparing two encodings with `memcmp` gives the same answer as comparing
//! the tuples value by value, in PostgreSQL's order. Range scans over a key
//! prefix then become byte-range scans.
//!
//! # Format
//!
//! Every datum is a **tag byte** followed by a payload:
//!
//! | type        | asc tag | payload                                         |
//! |-------------|---------|-------------------------------------------------|
//! | `Bool`      | `0x10`  | `0x00` false, `0x01` true                       |
//! | `Int`       | `0x11`  | 8 bytes big-endian, sign bit flipped            |
//! | `Float`     | `0x12`  | 8 bytes, IEEE bits transformed (see below)      |
//! | `Text`      | `0x13`  | UTF-8 bytes, escaped and terminated (see below) |
//! | `Bytes`     | `0x14`  | raw bytes, escaped and terminated               |
//! | `Date`      | `0x15`  | 4 bytes big-endian, sign bit flipped            |
//! | `Timestamp` | `0x16`  | 8 bytes big-endian, sign bit flipped            |
//! | `Uuid`      | `0x17`  | the 16 bytes as-is                              |
//! | `Null`      | `0x7f`  | none                                            |
//!
//! * Flipping the sign bit of a two's-complement integer makes unsigned
//!   big-endian order equal signed order.
//! * Floats: a negative number has all bits inverted (larger magnitude sorts
//!   first), a non-negative one gets its sign bit set (above every negative).
//!   `-0.0` is written as `0.0` because SQL treats them as equal, and every
//!   NaN is written as the canonical positive NaN, which lands above `+inf`:
//!   PostgreSQL sorts NaN greater than every number.
//! * Variable-length strings escape `0x00` as `0x00 0xff` and end with
//!   `0x00 0x01`. The terminator sorts below every escaped or ordinary byte,
//!   so a string sorts before its extensions ("a" < "a\0" < "ab").
//! * `Null` has the greatest ascending tag: PostgreSQL's default is
//!   `NULLS LAST` for ascending order.
//!
//! Every datum encoding is **prefix-free** (fixed width, or terminated), so
//! the concatenation of several encodings compares component by component:
//! this is how composite keys are built.
//!
//! **Descending** components invert every byte of the ascending encoding,
//! tag included. This reverses the order of that component (and so puts
//! `Null` first, matching PostgreSQL's `DESC NULLS FIRST` default) while
//! keeping it prefix-free. Ascending tags are all below `0x80`, so the tag
//! alone tells the decoder which direction a datum was written in.
//!
//! Only datums of the same type are meant to be compared; across types the
//! order is simply the tag order.

use crate::error::{Result, StorageError};

const TAG_BOOL: u8 = 0x10;
const TAG_INT: u8 = 0x11;
const TAG_FLOAT: u8 = 0x12;
const TAG_TEXT: u8 = 0x13;
const TAG_BYTES: u8 = 0x14;
const TAG_DATE: u8 = 0x15;
const TAG_TIMESTAMP: u8 = 0x16;
const TAG_UUID: u8 = 0x17;
/// Greatest ascending tag: NULLS LAST ascending, NULLS FIRST descending.
const TAG_NULL: u8 = 0x7f;
/// Ascending tags are below this; inverted (descending) tags are at or above.
const DESC_TAG_MIN: u8 = 0x80;

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xff;
const TERMINATOR: u8 = 0x01;

/// A typed value that can be part of a key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyDatum {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// Appends the encoding of `d` to `out`, inverted when `descending`.
pub fn encode_datum(d: &KeyDatum, descending: bool, out: &mut Vec<u8>) {
    let begin = out.len();
    match d {
        KeyDatum::Null => out.push(TAG_NULL),
        KeyDatum::Bool(b) => {
            out.push(TAG_BOOL);
            out.push(u8::from(*b));
        }
        KeyDatum::Int(v) => {
            out.push(TAG_INT);
            out.extend_from_slice(&flip_i64(*v).to_be_bytes());
        }
        KeyDatum::Float(f) => {
            out.push(TAG_FLOAT);
            out.extend_from_slice(&float_to_ordered(*f).to_be_bytes());
        }
        KeyDatum::Text(s) => {
            out.push(TAG_TEXT);
            encode_bytes_escaped(s.as_bytes(), out);
        }
        KeyDatum::Bytes(b) => {
            out.push(TAG_BYTES);
            encode_bytes_escaped(b, out);
        }
        KeyDatum::Date(days) => {
            out.push(TAG_DATE);
            out.extend_from_slice(&((*days as u32) ^ (1 << 31)).to_be_bytes());
        }
        KeyDatum::Timestamp(us) => {
            out.push(TAG_TIMESTAMP);
            out.extend_from_slice(&flip_i64(*us).to_be_bytes());
        }
        KeyDatum::Uuid(u) => {
            out.push(TAG_UUID);
            out.extend_from_slice(u);
        }
    }
    if descending {
        for b in &mut out[begin..] {
            *b = !*b;
        }
    }
}

/// Decodes one datum from the front of `input` and advances past it.
pub fn decode_datum(input: &mut &[u8]) -> Result<KeyDatum> {
    decode_datum_with_direction(input).map(|(d, _)| d)
}

/// Like [`decode_datum`], also reporting whether the datum was encoded
/// descending.
pub fn decode_datum_with_direction(input: &mut &[u8]) -> Result<(KeyDatum, bool)> {
    let raw_tag = take(input, 1)?[0];
    let descending = raw_tag >= DESC_TAG_MIN;
    let mut r = Reader {
        input,
        invert: descending,
    };
    let tag = if descending { !raw_tag } else { raw_tag };
    let datum = match tag {
        TAG_NULL => KeyDatum::Null,
        TAG_BOOL => match r.array::<1>()?[0] {
            0 => KeyDatum::Bool(false),
            1 => KeyDatum::Bool(true),
            other => return Err(invalid(format!("bad boolean byte {other:#04x}"))),
        },
        TAG_INT => KeyDatum::Int(unflip_i64(u64::from_be_bytes(r.array()?))),
        TAG_FLOAT => KeyDatum::Float(ordered_to_float(u64::from_be_bytes(r.array()?))),
        TAG_TEXT => {
            let bytes = r.escaped()?;
            let s =
                String::from_utf8(bytes).map_err(|e| invalid(format!("text is not UTF-8: {e}")))?;
            KeyDatum::Text(s)
        }
        TAG_BYTES => KeyDatum::Bytes(r.escaped()?),
        TAG_DATE => KeyDatum::Date((u32::from_be_bytes(r.array()?) ^ (1 << 31)) as i32),
        TAG_TIMESTAMP => KeyDatum::Timestamp(unflip_i64(u64::from_be_bytes(r.array()?))),
        TAG_UUID => KeyDatum::Uuid(r.array()?),
        other => {
            return Err(invalid(format!(
                "unknown tag {raw_tag:#04x} ({other:#04x})"
            )));
        }
    };
    Ok((datum, descending))
}

/// Encodes a composite key: each datum with its direction, concatenated.
pub fn encode_key(datums: &[(KeyDatum, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (d, desc) in datums {
        encode_datum(d, *desc, &mut out);
    }
    out
}

/// Decodes a whole composite key produced by [`encode_key`].
pub fn decode_key(mut input: &[u8]) -> Result<Vec<(KeyDatum, bool)>> {
    let mut datums = Vec::new();
    while !input.is_empty() {
        datums.push(decode_datum_with_direction(&mut input)?);
    }
    Ok(datums)
}

/// Appends `bytes` escaped (`0x00` → `0x00 0xff`) and terminated
/// (`0x00 0x01`), an order-preserving, prefix-free encoding.
pub fn encode_bytes_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    for &b in bytes {
        if b == ESCAPE {
            out.extend_from_slice(&[ESCAPE, ESCAPED_ZERO]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[ESCAPE, TERMINATOR]);
}

/// Decodes an [`encode_bytes_escaped`] string from the front of `input` and
/// advances past its terminator.
pub fn decode_bytes_escaped(input: &mut &[u8]) -> Result<Vec<u8>> {
    Reader {
        input,
        invert: false,
    }
    .escaped()
}

fn flip_i64(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

fn unflip_i64(v: u64) -> i64 {
    (v ^ (1 << 63)) as i64
}

fn float_to_ordered(f: f64) -> u64 {
    let f = if f.is_nan() {
        f64::NAN
    } else if f == 0.0 {
        0.0 // folds -0.0 into 0.0
    } else {
        f
    };
    let bits = f.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn ordered_to_float(v: u64) -> f64 {
    let bits = if v >> 63 == 1 { v ^ (1 << 63) } else { !v };
    f64::from_bits(bits)
}

fn invalid(msg: String) -> StorageError {
    StorageError::InvalidKey(msg)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(invalid(format!(
            "truncated: need {n} bytes, have {}",
            input.len()
        )));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// Reads payload bytes, undoing the descending inversion on the fly.
struct Reader<'i, 'a> {
    input: &'i mut &'a [u8],
    invert: bool,
}

impl Reader<'_, '_> {
    fn byte(&mut self) -> Result<u8> {
        let b = take(self.input, 1)?[0];
        Ok(if self.invert { !b } else { b })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(take(self.input, N)?);
        if self.invert {
            for b in &mut a {
                *b = !*b;
            }
        }
        Ok(a)
    }

    fn escaped(&mut self) -> Result<Vec<u8>> {
        // As stored, the escape byte is inverted too in a descending key.
        let stored_escape = if self.invert { !ESCAPE } else { ESCAPE };
        let mut out = Vec::new();
        loop {
            // The bytes up to the next escape are payload: copied in one go
            // (every scanned row's key passes here).
            let input: &[u8] = self.input;
            let run = input
                .iter()
                .position(|&b| b == stored_escape)
                .unwrap_or(input.len());
            let (payload, rest) = input.split_at(run);
            if self.invert {
                out.extend(payload.iter().map(|b| !b));
            } else {
                out.extend_from_slice(payload);
            }
            *self.input = rest;
            // The escape itself (past the end: the truncation error).
            self.byte()?;
            match self.byte()? {
                ESCAPED_ZERO => out.push(0),
                TERMINATOR => return Ok(out),
                other => {
                    return Err(invalid(format!("bad escape sequence 0x00 {other:#04x}")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
