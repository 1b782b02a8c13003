//! A decoder of just enough protobuf to read profile.pb.gz in tests,
//! written here so a test does not trust bpfprof's own encoder.

use std::io::Read;

/// One field of a protobuf message: its number and its value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
    }
    value
}

fn fields(bytes: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let key = varint(bytes, &mut at);
        let value = match key & 7 {
            0 => Field::Varint(varint(bytes, &mut at)),
            2 => {
                let len = varint(bytes, &mut at) as usize;
                at += len;
                Field::Bytes(&bytes[at - len..at])
            }
            1 => {
                at += 8;
                continue;
            }
            5 => {
                at += 4;
                continue;
            }
            wire => panic!("wire type {wire} in a pprof file"),
        };
        out.push((key >> 3, value));
    }
    out
}

pub fn varint_field(message: &[u8], number: u64) -> u64 {
    fields(message)
        .into_iter()
        .find_map(|(n, v)| match v {
            Field::Varint(v) if n == number => Some(v),
            _ => None,
        })
        .unwrap_or(0)
}

pub fn messages(message: &[u8], number: u64) -> Vec<&[u8]> {
    fields(message)
        .into_iter()
        .filter_map(|(n, v)| match v {
            Field::Bytes(b) if n == number => Some(b),
            _ => None,
        })
        .collect()
}

/// profile.pb.gz, unzipped.
pub fn read(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}
