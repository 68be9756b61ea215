//! What a new connection may send first — an SSL or GSS encryption
//! request, then a startup packet or a cancel request — decoded as the
//! server walks it: negotiation messages while it still awaits one, then
//! the startup. Any bytes: a message, "need more", or an error; never a
//! panic, never a read past the buffer.
#![no_main]

use bytes::BytesMut;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut ctx = DecodeContext::default();
    let mut buf = BytesMut::from(data);
    // A client may ask for encryption more than once (SSL refused, then
    // GSS); the walk is bounded all the same.
    for _ in 0..8 {
        let before = buf.len();
        let Ok(Some(message)) = PgWireFrontendMessage::decode(&mut buf, &ctx) else {
            return;
        };
        match message {
            PgWireFrontendMessage::SslNegotiation(_) if ctx.awaiting_frontend_ssl => {
                ctx.awaiting_frontend_ssl = false;
            }
            PgWireFrontendMessage::Startup(_) | PgWireFrontendMessage::CancelRequest(_) => return,
            _ if buf.len() == before => return,
            _ => {}
        }
    }
});
