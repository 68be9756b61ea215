//! The order-preserving key decoder on any bytes: an error, never a panic.
//! What it does decode must encode back to a key that decodes to the same
//! values (the decoder may accept spellings the encoder never writes, but
//! never misreads one it does).
#![no_main]

use shoal_storage::keycode::{decode_key, encode_key};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(datums) = decode_key(data) else {
        return;
    };
    let encoded = encode_key(&datums);
    // Compared as bytes, not values: a float NaN is unequal to itself.
    match decode_key(&encoded) {
        Ok(again) => assert!(
            encode_key(&again) == encoded,
            "re-encoded key decodes differently: {datums:?} vs {again:?}"
        ),
        Err(e) => panic!("a key the encoder wrote does not decode: {e}"),
    }
});
