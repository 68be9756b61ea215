//! Garbage in, errors out: the decoders a client's bytes reach first
//! never panic, whatever they are given.
//!
//! * the packets that open a connection — SSL or GSS request, startup
//!   packet, cancel request — as pgwire decodes them and Shoal's server
//!   walks through them;
//! * parameters sent in binary or text (`params.rs`, Shoal's own), for
//!   every type a client may declare;
//! * binary `COPY` data (`copy_binary.rs`, Shoal's own).
//!
//! Each is fed random bytes and valid input with bytes changed, as
//! property tests. (pgwire 0.41's decoders of Parse and Bind bodies do
//! panic on some malformed lengths; that panic ends only the connection's
//! task, which `tests/tests/malformed_messages.rs` checks end to end.)

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::api::results::FieldFormat;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage};
use postgres_types::Type;
use proptest::prelude::*;
use shoal_pgwire::{copy_binary, params};
use shoal_sql::time_zone::TimeZone;

/// What a new connection sends before its session starts, walked as the
/// server walks it: SSL negotiation, then the startup packet (or a cancel
/// request). Returns the messages decoded, by name.
fn open_connection(bytes: &[u8]) -> Vec<&'static str> {
    let mut ctx = DecodeContext::default();
    let mut buf = BytesMut::from(bytes);
    let mut seen = Vec::new();
    for _ in 0..8 {
        let before = buf.len();
        let Ok(Some(message)) = PgWireFrontendMessage::decode(&mut buf, &ctx) else {
            break;
        };
        match message {
            PgWireFrontendMessage::SslNegotiation(_) if ctx.awaiting_frontend_ssl => {
                seen.push("negotiation");
                ctx.awaiting_frontend_ssl = false;
            }
            PgWireFrontendMessage::Startup(_) => {
                seen.push("startup");
                break;
            }
            _ => {
                seen.push("other");
                if buf.len() == before {
                    break;
                }
            }
        }
    }
    seen
}

/// The types a client may declare for a binary parameter.
const TYPES: [Type; 18] = [
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::TEXT,
    Type::BYTEA,
    Type::DATE,
    Type::TIME,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::INTERVAL,
    Type::UUID,
    Type::JSONB,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
];

/// The startup packet's parameters.
const STARTUP_PARAMS: &[u8] = b"user\0shoal\0database\0shoal\0\0";

/// A valid startup packet, then Parse, Bind, Execute and Sync messages
/// (what follows the startup packet only has to survive the changes).
fn valid_session() -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_i32(8 + STARTUP_PARAMS.len() as i32);
    out.put_i32(196_608);
    out.put_slice(STARTUP_PARAMS);
    let mut message = |tag: u8, body: &[u8]| {
        out.put_u8(tag);
        out.put_i32(4 + body.len() as i32);
        out.put_slice(body);
    };
    message(b'P', b"s1\0SELECT $1::int\0\0\x01\0\0\0\x17");
    message(
        b'B',
        b"\0s1\0\0\x01\0\x01\0\x01\0\0\0\x04\0\0\0\x2a\0\x01\0\x01",
    );
    message(b'E', b"\0\0\0\0\0");
    message(b'S', b"");
    out.to_vec()
}

proptest! {
    #[test]
    fn random_bytes_never_panic_a_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        ty in 0..TYPES.len(),
    ) {
        open_connection(&bytes);
        let raw = Bytes::from(bytes.clone());
        let _ = params::decode(Some(&raw), FieldFormat::Binary, &TYPES[ty], None, &TimeZone::UTC);
        let _ = params::decode(Some(&raw), FieldFormat::Text, &TYPES[ty], None, &TimeZone::UTC);
        let oids: Vec<u32> = TYPES.iter().take(ty + 1).map(Type::oid).collect();
        let _ = copy_binary::parse(&bytes, &oids, &TimeZone::UTC);
    }

    #[test]
    fn changed_valid_input_never_panics_a_decoder(
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut session = valid_session();
        for (at, byte) in &changes {
            let i = at.index(session.len());
            session[i] = *byte;
        }
        session.truncate(cut.index(session.len() + 1));
        open_connection(&session);

        let mut copy = copy_binary::header();
        copy.extend(copy_binary::row(&[Some(42i32.to_be_bytes().to_vec()), Some(b"x".to_vec())]));
        copy.extend(copy_binary::trailer());
        for (at, byte) in &changes {
            let i = at.index(copy.len());
            copy[i] = *byte;
        }
        let _ = copy_binary::parse(&copy, &[Type::INT4.oid(), Type::TEXT.oid()], &TimeZone::UTC);
    }
}

#[test]
fn a_valid_session_opens() {
    assert_eq!(
        open_connection(&valid_session()),
        ["negotiation", "startup"]
    );
}
