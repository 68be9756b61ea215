//! How rows become key-value pairs.
//!
//! Key layout (all keys the SQL layer writes):
//!
//! ```text
//! 0x01 'i'                              -> next table id (u32 BE)
//! 0x01 'd' <table id u32 BE>            -> table descriptor (JSON)
//! 0x01 'n' <database> <schema> <name>   -> table id (u32 BE); strings escaped, see keycode
//! 0x02 <table id u32 BE> <index id u8> <key columns, memcomparable>  -> row value
//! ```
//!
//! The primary index has id 1. Key columns are encoded with the storage
//! layer's order-preserving keycode, so a range of primary key values is a
//! contiguous range of KV keys and a point lookup is one KV get.
//!
//! A row value holds the non-key columns only (key columns are decoded back
//! out of the key): a format byte, the descriptor version it was written
//! under, the number of columns, then each non-key column in declaration
//! order as a tag byte and a payload. Columns added after the row was written
//! are missing from the end and read as NULL.

use shoal_kv::Txn;
use shoal_storage::keycode::{self, KeyDatum};

use crate::descriptor::TableDescriptor;
use crate::error::{Result, SqlError};
use crate::types::{Datum, SqlType};

/// Prefix byte of catalog keys.
pub const CATALOG_PREFIX: u8 = 0x01;
/// Prefix byte of table data keys.
pub const TABLE_PREFIX: u8 = 0x02;
/// Index id of the primary index.
pub const PRIMARY_INDEX: u8 = 1;

const ROW_FORMAT: u8 = 1;

/// The prefix of every key of the table (all its indexes).
pub fn table_prefix(table_id: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(5);
    k.push(TABLE_PREFIX);
    k.extend_from_slice(&table_id.to_be_bytes());
    k
}

/// The length of [`index_prefix`]: the tag, the table id, the index id.
const INDEX_PREFIX_LEN: usize = 1 + 4 + 1;

/// The first key of the table's primary index.
pub fn index_prefix(table_id: u32) -> Vec<u8> {
    let mut k = table_prefix(table_id);
    k.push(PRIMARY_INDEX);
    debug_assert_eq!(k.len(), INDEX_PREFIX_LEN);
    k
}

/// The key just past every key with the given prefix.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    // A prefix of only 0xFF bytes has no successor of the same length; the
    // caller only builds prefixes starting with TABLE_PREFIX, so never here.
    vec![0xFF; prefix.len() + 1]
}

/// Converts a datum of a key column into its keycode form.
pub fn key_datum(d: &Datum, ty: &SqlType) -> Result<KeyDatum> {
    Ok(match (d, ty) {
        (Datum::Null, _) => KeyDatum::Null,
        (Datum::Bool(b), _) => KeyDatum::Bool(*b),
        (Datum::Int(i), _) => KeyDatum::Int(*i),
        (Datum::Float(f), _) => KeyDatum::Float(*f),
        (Datum::Text(s), _) => KeyDatum::Text(s.clone()),
        (Datum::Bytes(b), _) => KeyDatum::Bytes(b.clone()),
        (Datum::Date(d), _) => KeyDatum::Date(*d),
        (Datum::Timestamp(t), _) => KeyDatum::Timestamp(*t),
        (Datum::Uuid(u), _) => KeyDatum::Uuid(*u),
        (Datum::Decimal(_), _) => {
            return Err(SqlError::NotSupported("numeric primary key columns".into()));
        }
        (Datum::Interval { .. } | Datum::Array(_), _) => {
            return Err(SqlError::NotSupported(format!(
                "{} key or index columns",
                ty.pg_name()
            )));
        }
    })
}

fn datum_from_key(k: KeyDatum, ty: &SqlType) -> Result<Datum> {
    Ok(match (k, ty) {
        (KeyDatum::Null, _) => Datum::Null,
        (KeyDatum::Bool(b), _) => Datum::Bool(b),
        (KeyDatum::Int(i), _) => Datum::Int(i),
        (KeyDatum::Float(f), _) => Datum::Float(f),
        (KeyDatum::Text(s), _) => Datum::Text(s),
        (KeyDatum::Bytes(b), _) => Datum::Bytes(b),
        (KeyDatum::Date(d), _) => Datum::Date(d),
        (KeyDatum::Timestamp(t), _) => Datum::Timestamp(t),
        (KeyDatum::Uuid(u), _) => Datum::Uuid(u),
    })
}

/// The KV key of the row whose key column values are `key_values` (in
/// primary key order).
pub fn encode_key_values(desc: &TableDescriptor, key_values: &[Datum]) -> Result<Vec<u8>> {
    let mut key = index_prefix(desc.id);
    for (pos, d) in desc.primary_key.iter().zip(key_values) {
        let kd = key_datum(d, &desc.columns[*pos].ty)?;
        keycode::encode_datum(&kd, false, &mut key);
    }
    Ok(key)
}

/// The KV key of a full row (datums in column order).
pub fn encode_key(desc: &TableDescriptor, row: &[Datum]) -> Result<Vec<u8>> {
    let values: Vec<Datum> = desc.primary_key.iter().map(|i| row[*i].clone()).collect();
    encode_key_values(desc, &values)
}

/// The KV value of a full row (datums in column order).
pub fn encode_value(desc: &TableDescriptor, row: &[Datum]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + row.len() * 8);
    out.push(ROW_FORMAT);
    out.extend_from_slice(&desc.version.to_le_bytes());
    let non_key: Vec<usize> = (0..desc.columns.len())
        .filter(|i| !desc.is_key_column(*i))
        .collect();
    out.extend_from_slice(&(non_key.len() as u16).to_le_bytes());
    for i in non_key {
        encode_datum(&row[i], &mut out);
    }
    out
}

fn encode_datum(d: &Datum, out: &mut Vec<u8>) {
    match d {
        Datum::Null => out.push(0),
        Datum::Bool(b) => {
            out.push(1);
            out.push(*b as u8);
        }
        Datum::Int(i) => {
            out.push(2);
            put_varint(out, ((*i << 1) ^ (*i >> 63)) as u64);
        }
        Datum::Float(f) => {
            out.push(3);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Datum::Decimal(v) => {
            out.push(4);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Datum::Text(s) => {
            out.push(5);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Datum::Bytes(b) => {
            out.push(6);
            put_varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        Datum::Date(d) => {
            out.push(7);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Datum::Timestamp(t) => {
            out.push(8);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Datum::Uuid(u) => {
            out.push(9);
            out.extend_from_slice(u);
        }
        Datum::Interval {
            months,
            days,
            micros,
        } => {
            out.push(10);
            out.extend_from_slice(&months.to_le_bytes());
            out.extend_from_slice(&days.to_le_bytes());
            out.extend_from_slice(&micros.to_le_bytes());
        }
        Datum::Array(items) => {
            out.push(11);
            put_varint(out, items.len() as u64);
            for item in items {
                encode_datum(item, out);
            }
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn corrupt() -> SqlError {
        SqlError::Internal("corrupt row value".into())
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Self::corrupt());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| Self::corrupt())
    }
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7F) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Self::corrupt())
    }
    fn datum(&mut self) -> Result<Datum> {
        Ok(match self.byte()? {
            0 => Datum::Null,
            1 => Datum::Bool(self.byte()? != 0),
            2 => {
                let z = self.varint()?;
                Datum::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            3 => Datum::Float(f64::from_le_bytes(self.array()?)),
            4 => Datum::Decimal(i128::from_le_bytes(self.array()?)),
            5 => {
                let n = self.varint()? as usize;
                let b = self.take(n)?;
                Datum::Text(String::from_utf8(b.to_vec()).map_err(|_| Self::corrupt())?)
            }
            6 => {
                let n = self.varint()? as usize;
                Datum::Bytes(self.take(n)?.to_vec())
            }
            7 => Datum::Date(i32::from_le_bytes(self.array()?)),
            8 => Datum::Timestamp(i64::from_le_bytes(self.array()?)),
            9 => Datum::Uuid(self.array()?),
            10 => Datum::Interval {
                months: i32::from_le_bytes(self.array()?),
                days: i32::from_le_bytes(self.array()?),
                micros: i64::from_le_bytes(self.array()?),
            },
            11 => {
                let n = self.varint()? as usize;
                // Each element takes at least a byte: a count beyond the
                // bytes left is corrupt, not an allocation to make.
                if n > self.buf.len() {
                    return Err(Self::corrupt());
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.datum()?);
                }
                Datum::Array(items)
            }
            _ => return Err(Self::corrupt()),
        })
    }
}

/// The table a row key belongs to, if it is one.
pub fn table_of_key(key: &[u8]) -> Option<u32> {
    match key.split_first() {
        Some((&TABLE_PREFIX, rest)) => rest.first_chunk::<4>().map(|id| u32::from_be_bytes(*id)),
        _ => None,
    }
}

/// Decodes the primary key columns of a row key into `row` (in column
/// order; other columns untouched).
pub fn decode_key_into(desc: &TableDescriptor, key: &[u8], row: &mut [Datum]) -> Result<()> {
    // Every row is decoded here: the prefix's length is known, not built.
    let Some(mut rest) = key.get(INDEX_PREFIX_LEN..) else {
        return Err(SqlError::Internal("row key shorter than its prefix".into()));
    };
    for pos in &desc.primary_key {
        let kd = keycode::decode_datum(&mut rest)
            .map_err(|e| SqlError::Internal(format!("corrupt row key: {e}")))?;
        row[*pos] = datum_from_key(kd, &desc.columns[*pos].ty)?;
    }
    Ok(())
}

/// Decodes a stored row into datums in column order.
pub fn decode_row(desc: &TableDescriptor, key: &[u8], value: &[u8]) -> Result<Vec<Datum>> {
    let mut row = vec![Datum::Null; desc.columns.len()];
    decode_key_into(desc, key, &mut row)?;
    let mut r = Reader { buf: value };
    if r.byte()? != ROW_FORMAT {
        return Err(Reader::corrupt());
    }
    let _version = u32::from_le_bytes(r.array()?);
    let stored = u16::from_le_bytes(r.array()?) as usize;
    let non_key = (0..desc.columns.len()).filter(|i| !desc.is_key_column(*i));
    for (n, i) in non_key.enumerate() {
        row[i] = if n < stored {
            r.datum()?
        } else {
            // Added after the row was written: the value the column was
            // added with, if any (`ALTER TABLE … ADD COLUMN … DEFAULT`).
            match &desc.columns[i].missing {
                Some(bytes) => Reader { buf: bytes }.datum()?,
                None => Datum::Null,
            }
        };
    }
    Ok(row)
}

/// A datum in its stored form (a column's `missing` value).
pub fn encode_stored_datum(d: &Datum) -> Vec<u8> {
    let mut out = Vec::new();
    encode_datum(d, &mut out);
    out
}

/// Rows of a table read per chunk by [`scan_rows`].
const SCAN_CHUNK: usize = 1024;

/// Hands the rows of `desc` whose keys lie in `[start, end)` to `f` in key
/// order, reading them a chunk at a time, until `f` returns false.
pub fn scan_rows(
    txn: &Txn,
    desc: &TableDescriptor,
    start: &[u8],
    end: &[u8],
    mut f: impl FnMut(&[u8], Vec<Datum>) -> Result<bool>,
) -> Result<()> {
    let mut from = start.to_vec();
    loop {
        let chunk = txn.scan(&from, end, SCAN_CHUNK)?;
        let done = chunk.len() < SCAN_CHUNK;
        for (key, value) in &chunk {
            if !f(key, decode_row(desc, key, value)?)? {
                return Ok(());
            }
        }
        match chunk.last() {
            Some((last, _)) if !done => {
                from = last.clone();
                from.push(0);
            }
            _ => return Ok(()),
        }
    }
}

/// [`scan_rows`] over every row of the table.
pub fn scan_table(
    txn: &Txn,
    desc: &TableDescriptor,
    f: impl FnMut(&[u8], Vec<Datum>) -> Result<bool>,
) -> Result<()> {
    let start = index_prefix(desc.id);
    scan_rows(txn, desc, &start, &prefix_end(&start), f)
}

/// A key as people read it: `/Table/<id>/<index>/<key values…>` for table
/// keys (CockroachDB's notation), `/Catalog/…` for catalog keys,
/// `/Meta/<range id>` for directory records (`shoal_kv::keys::meta_key`), `/Min`
/// for the empty key; bytes that do not decode are shown escaped.
pub fn pretty_key(key: &[u8]) -> String {
    use std::fmt::Write as _;
    let escaped = shoal_kv::error::printable_key;
    let Some((&first, rest)) = key.split_first() else {
        return "/Min".to_string();
    };
    match first {
        0x00 if rest.len() == 9 && rest[0] == b'm' => {
            let mut id = [0u8; 8];
            id.copy_from_slice(&rest[1..]);
            format!("/Meta/{}", u64::from_be_bytes(id))
        }
        0x00 if rest.first() == Some(&b'm') => format!("/Meta/{}", escaped(&rest[1..])),
        CATALOG_PREFIX => format!("/Catalog/{}", escaped(rest)),
        TABLE_PREFIX => {
            let Some((id, mut rest)) = rest.split_first_chunk::<4>() else {
                return escaped(key);
            };
            let mut out = format!("/Table/{}", u32::from_be_bytes(*id));
            if let Some((&index, tail)) = rest.split_first() {
                let _ = write!(out, "/{index}");
                rest = tail;
                while !rest.is_empty() {
                    let before = rest;
                    match keycode::decode_datum(&mut rest) {
                        Ok(datum) => {
                            let _ = write!(out, "/{}", pretty_datum(&datum));
                        }
                        Err(_) => {
                            let _ = write!(out, "/{}", escaped(before));
                            break;
                        }
                    }
                }
            }
            out
        }
        _ => escaped(key),
    }
}

fn pretty_datum(d: &KeyDatum) -> String {
    match d {
        KeyDatum::Null => "NULL".to_string(),
        KeyDatum::Bool(b) => b.to_string(),
        KeyDatum::Int(i) => i.to_string(),
        KeyDatum::Float(f) => f.to_string(),
        KeyDatum::Text(s) => format!("{s:?}"),
        KeyDatum::Bytes(b) => shoal_kv::error::printable_key(b),
        KeyDatum::Date(days) => format!("date {days}"),
        KeyDatum::Timestamp(us) => format!("timestamp {us}"),
        KeyDatum::Uuid(u) => uuid::Uuid::from_bytes(*u).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::ColumnDescriptor;

    #[test]
    fn keys_print_as_table_index_and_values() {
        let d = desc();
        let key = encode_key_values(&d, &[Datum::Int(5), Datum::Text("x".into())]).unwrap();
        assert_eq!(pretty_key(&key), "/Table/7/1/5/\"x\"");
        assert_eq!(pretty_key(&table_prefix(7)), "/Table/7");
        assert_eq!(pretty_key(&[]), "/Min");
        assert_eq!(pretty_key(&shoal_kv::keys::meta_key(12)), "/Meta/12");
        assert_eq!(pretty_key(&[0, b'm']), "/Meta/");
        assert_eq!(pretty_key(&[CATALOG_PREFIX, b'n']), "/Catalog/n");
        assert_eq!(pretty_key(&[TABLE_PREFIX, 0]), "\\x02\\x00");
    }

    fn desc() -> TableDescriptor {
        let col = ColumnDescriptor::plain;
        TableDescriptor {
            id: 7,
            database: "shoal".into(),
            schema: "public".into(),
            name: "t".into(),
            columns: vec![
                col("a", SqlType::Integer),
                col("b", SqlType::Text),
                col("c", SqlType::Double),
                col("d", SqlType::Uuid),
                col(
                    "e",
                    SqlType::Numeric {
                        precision: 10,
                        scale: 2,
                    },
                ),
            ],
            primary_key: vec![1, 0],
            version: 1,
            indexes: Vec::new(),
            next_index_id: 2,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
        }
    }

    #[test]
    fn intervals_and_arrays_round_trip() -> Result<()> {
        let mut d = desc();
        d.columns
            .push(ColumnDescriptor::plain("f", SqlType::Interval));
        d.columns.push(ColumnDescriptor::plain(
            "g",
            SqlType::Array(Box::new(SqlType::Text)),
        ));
        let row = vec![
            Datum::Int(1),
            Datum::Text("k".into()),
            Datum::Null,
            Datum::Null,
            Datum::Null,
            Datum::Interval {
                months: -14,
                days: 3,
                micros: 7_200_000_001,
            },
            Datum::Array(vec![
                Datum::Text("a".into()),
                Datum::Null,
                Datum::Text(String::new()),
            ]),
        ];
        let key = encode_key(&d, &row)?;
        let value = encode_value(&d, &row);
        assert_eq!(decode_row(&d, &key, &value)?, row);
        // A corrupt element count is an error, not a huge allocation.
        let mut bad = value.clone();
        let at = bad.len() - 6;
        bad.truncate(at);
        bad.extend_from_slice(&[11, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert!(decode_row(&d, &key, &bad).is_err());
        Ok(())
    }

    #[test]
    fn row_round_trip() -> Result<()> {
        let d = desc();
        let row = vec![
            Datum::Int(-42),
            Datum::Text("héllo\0x".into()),
            Datum::Float(1.5),
            Datum::Uuid([7; 16]),
            Datum::Decimal(-12345),
        ];
        let key = encode_key(&d, &row)?;
        let value = encode_value(&d, &row);
        assert_eq!(decode_row(&d, &key, &value)?, row);
        let with_nulls = vec![
            Datum::Int(1),
            Datum::Text(String::new()),
            Datum::Null,
            Datum::Null,
            Datum::Null,
        ];
        let key = encode_key(&d, &with_nulls)?;
        assert_eq!(
            decode_row(&d, &key, &encode_value(&d, &with_nulls))?,
            with_nulls
        );
        Ok(())
    }

    #[test]
    fn keys_sort_by_primary_key() -> Result<()> {
        let d = desc();
        let k = |b: &str, a: i64| {
            encode_key(
                &d,
                &[
                    Datum::Int(a),
                    Datum::Text(b.into()),
                    Datum::Null,
                    Datum::Null,
                    Datum::Null,
                ],
            )
        };
        assert!(k("a", 5)? < k("b", 1)?);
        assert!(k("a", -1)? < k("a", 0)?);
        assert!(k("a", 0)? < k("ab", -100)?);
        Ok(())
    }

    #[test]
    fn truncated_value_is_an_error_not_a_panic() -> Result<()> {
        let d = desc();
        let row = vec![
            Datum::Int(1),
            Datum::Text("x".into()),
            Datum::Float(2.0),
            Datum::Null,
            Datum::Null,
        ];
        let key = encode_key(&d, &row)?;
        let value = encode_value(&d, &row);
        for cut in 0..value.len() {
            assert!(decode_row(&d, &key, &value[..cut]).is_err());
        }
        Ok(())
    }
}
