//! Fuzzes the RESP request decoder: arbitrary bytes, fed in arbitrary splits, must never panic,
//! must decode the same commands however they are split, and must never keep more than the
//! configured limits.
#![no_main]

use bytes::BytesMut;
use kvd::resp::{Decoded, Decoder, Limits};
use libfuzzer_sys::fuzz_target;

fn limits() -> Limits {
    Limits {
        max_bulk_len: 1 << 20,
        max_arg_len: 4096,
        max_args: 1024,
        max_inline_len: 1024,
    }
}

/// Decodes everything `data` holds when fed in chunks of `step` bytes.
fn decode_all(data: &[u8], step: usize) -> (Vec<Decoded>, bool) {
    let mut d = Decoder::new(limits());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in data.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(cmd)) => {
                    if let Decoded::Command(args) = &cmd {
                        assert!(args.len() <= 1024);
                        assert!(args.iter().all(|a| a.len() <= 4096));
                    }
                    out.push(cmd);
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
        // Never buffers more than one bounded request plus the chunk just read.
        assert!(buf.len() <= (1 << 20) + 4096 + step.max(1) + 64 * 1024);
    }
    (out, false)
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else {
        return;
    };
    let (whole, err_whole) = decode_all(data, data.len().max(1));
    let (pieces, err_pieces) = decode_all(data, split as usize % 7 + 1);
    assert_eq!(err_whole, err_pieces);
    assert_eq!(whole, pieces);
});
