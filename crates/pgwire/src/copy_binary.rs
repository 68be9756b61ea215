//! PostgreSQL's binary COPY format: its framing in and out.
//!
//! The stream starts with an 11-byte signature, a flags word and a header
//! extension; each row is a 16-bit field count followed by each field as a
//! 32-bit length (-1 for NULL) and the value's binary form (the types'
//! send/receive functions, as in the extended protocol); a count of -1
//! ends the data. Rows coming in are decoded by the target columns' types
//! into the text of each value, which the SQL layer inserts as it does
//! text and CSV COPY data (`shoal_sql::copy`); rows going out are the
//! result columns' binary values.

use bytes::{Buf, Bytes};
use pgwire::api::Type;
use pgwire::api::results::FieldFormat;
use shoal_sql::SqlError;
use shoal_sql::time_zone::TimeZone;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Flag bit of the header: each row carries an OID (not supported).
const WITH_OIDS: u32 = 1 << 16;

/// The header of binary COPY output.
pub fn header() -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out
}

/// The end of binary COPY data.
pub fn trailer() -> [u8; 2] {
    (-1i16).to_be_bytes()
}

/// One row of binary COPY output.
pub fn row(fields: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + fields.len() * 8);
    out.extend_from_slice(&(fields.len() as i16).to_be_bytes());
    for f in fields {
        match f {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

fn bad(what: &str) -> SqlError {
    SqlError::BadCopyFile(format!("invalid COPY file: {what}"))
}

/// Takes `n` bytes off the front of `data`.
fn take(data: &mut Bytes, n: usize, what: &str) -> Result<Bytes, SqlError> {
    if data.remaining() < n {
        return Err(bad(&format!("unexpected end of data in {what}")));
    }
    Ok(data.split_to(n))
}

/// The rows of binary COPY data for columns of `types` (`pg_type` OIDs):
/// each value decoded by its column's type and given as PostgreSQL's text
/// of it (`None`: NULL).
pub fn parse(
    data: &[u8],
    types: &[u32],
    zone: &TimeZone,
) -> Result<Vec<Vec<Option<String>>>, SqlError> {
    let types: Vec<Type> = types
        .iter()
        .map(|oid| Type::from_oid(*oid).unwrap_or(Type::TEXT))
        .collect();
    let mut data = Bytes::copy_from_slice(data);
    if take(&mut data, SIGNATURE.len(), "the signature")? != SIGNATURE {
        return Err(bad("COPY signature not recognized"));
    }
    let flags = take(&mut data, 4, "the header")?.get_u32();
    if flags & WITH_OIDS != 0 {
        return Err(SqlError::NotSupported("binary COPY data with OIDs".into()));
    }
    let extension = take(&mut data, 4, "the header")?.get_i32();
    let extension = usize::try_from(extension).map_err(|_| bad("negative header extension"))?;
    take(&mut data, extension, "the header extension")?;
    let mut rows = Vec::new();
    loop {
        if !data.has_remaining() {
            // The trailer is optional when the data simply ends.
            return Ok(rows);
        }
        let count = take(&mut data, 2, "a row")?.get_i16();
        if count == -1 {
            return Ok(rows);
        }
        if count as usize != types.len() || count < 0 {
            return Err(SqlError::BadCopyFile(format!(
                "row field count is {count}, expected {}",
                types.len()
            )));
        }
        let mut row = Vec::with_capacity(types.len());
        for ty in &types {
            let len = take(&mut data, 4, "a field")?.get_i32();
            if len == -1 {
                row.push(None);
                continue;
            }
            let len = usize::try_from(len).map_err(|_| bad("negative field length"))?;
            let bytes = take(&mut data, len, "a field")?;
            let value = crate::params::decode(Some(&bytes), FieldFormat::Binary, ty, None, zone)?;
            let text = crate::encode::scalar_text(&value, zone)
                .map_err(|e| SqlError::BadCopyFile(e.to_string()))?;
            row.push(text);
        }
        rows.push(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() -> Result<(), SqlError> {
        let mut data = header();
        data.extend(row(&[Some(7i32.to_be_bytes().to_vec()), None]));
        data.extend(row(&[
            Some((-1i32).to_be_bytes().to_vec()),
            Some(b"hi".to_vec()),
        ]));
        data.extend_from_slice(&(-1i16).to_be_bytes());
        let rows = parse(&data, &[23, 25], &TimeZone::default())?;
        assert_eq!(
            rows,
            vec![
                vec![Some("7".to_string()), None],
                vec![Some("-1".to_string()), Some("hi".to_string())]
            ]
        );
        Ok(())
    }

    #[test]
    fn bad_data_is_refused() {
        assert!(parse(b"PGCOPY\n", &[23], &TimeZone::default()).is_err());
        let mut data = header();
        data.extend(row(&[None, None]));
        assert!(matches!(
            parse(&data, &[23], &TimeZone::default()),
            Err(SqlError::BadCopyFile(_))
        ));
        let mut data = header();
        data.extend_from_slice(&1i16.to_be_bytes());
        data.extend_from_slice(&10i32.to_be_bytes());
        assert!(parse(&data, &[23], &TimeZone::default()).is_err());
    }
}
