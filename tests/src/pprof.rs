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

/// A repeated integer field, packed or not.
pub fn varints(message: &[u8], number: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for (n, value) in fields(message) {
        match value {
            Field::Varint(v) if n == number => out.push(v),
            Field::Bytes(packed) if n == number => {
                let mut at = 0;
                while at < packed.len() {
                    out.push(varint(packed, &mut at));
                }
            }
            _ => {}
        }
    }
    out
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

/// The parts of a profile the tests check, decoded.
pub struct Profile {
    /// (type, unit) of each value of a sample.
    pub sample_types: Vec<(String, String)>,
    pub samples: Vec<Sample>,
    pub mappings: Vec<Mapping>,
    pub locations: Vec<Location>,
    pub functions: Vec<Function>,
    pub default_sample_type: String,
}

pub struct Mapping {
    pub id: u64,
    pub start: u64,
    pub limit: u64,
    pub file_offset: u64,
    pub filename: String,
}

pub struct Sample {
    /// Leaf first.
    pub location_ids: Vec<u64>,
    pub values: Vec<i64>,
    pub labels: Vec<Label>,
}

pub struct Label {
    pub key: String,
    pub str: String,
    pub num: i64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&Label> {
        self.labels.iter().find(|l| l.key == key)
    }
}

pub struct Location {
    pub id: u64,
    pub mapping_id: u64,
    pub address: u64,
    /// (function id, line), innermost first.
    pub lines: Vec<(u64, i64)>,
}

pub struct Function {
    pub id: u64,
    pub name: String,
    pub system_name: String,
    pub filename: String,
}

impl Profile {
    pub fn read(path: &std::path::Path) -> Profile {
        let bytes = read(path);
        let strings: Vec<String> = messages(&bytes, 6)
            .into_iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        let string = |m: &[u8], n| strings[varint_field(m, n) as usize].clone();
        let mappings = messages(&bytes, 3)
            .into_iter()
            .map(|m| Mapping {
                id: varint_field(m, 1),
                start: varint_field(m, 2),
                limit: varint_field(m, 3),
                file_offset: varint_field(m, 4),
                filename: string(m, 5),
            })
            .collect();
        let locations = messages(&bytes, 4)
            .into_iter()
            .map(|m| Location {
                id: varint_field(m, 1),
                mapping_id: varint_field(m, 2),
                address: varint_field(m, 3),
                lines: messages(m, 4)
                    .into_iter()
                    .map(|l| (varint_field(l, 1), varint_field(l, 2) as i64))
                    .collect(),
            })
            .collect();
        let functions = messages(&bytes, 5)
            .into_iter()
            .map(|m| Function {
                id: varint_field(m, 1),
                name: string(m, 2),
                system_name: string(m, 3),
                filename: string(m, 4),
            })
            .collect();
        let default_sample_type = strings[varint_field(&bytes, 14) as usize].clone();
        let sample_types = messages(&bytes, 1)
            .into_iter()
            .map(|m| (string(m, 1), string(m, 2)))
            .collect();
        let samples = messages(&bytes, 2)
            .into_iter()
            .map(|m| Sample {
                location_ids: varints(m, 1),
                values: varints(m, 2).into_iter().map(|v| v as i64).collect(),
                labels: messages(m, 3)
                    .into_iter()
                    .map(|l| Label {
                        key: string(l, 1),
                        str: string(l, 2),
                        num: varint_field(l, 3) as i64,
                    })
                    .collect(),
            })
            .collect();
        Profile {
            sample_types,
            samples,
            mappings,
            locations,
            functions,
            default_sample_type,
        }
    }

    pub fn function(&self, id: u64) -> &Function {
        self.functions.iter().find(|f| f.id == id).unwrap()
    }

    pub fn mapping(&self, id: u64) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.id == id)
    }

    pub fn location(&self, id: u64) -> &Location {
        self.locations.iter().find(|l| l.id == id).unwrap()
    }

    /// The index in each sample's values of the sample type `kind`.
    pub fn value_index(&self, kind: &str) -> Option<usize> {
        self.sample_types.iter().position(|(t, _)| t == kind)
    }

    /// A sample's function names, root first (inlined functions in call
    /// order).
    pub fn stack(&self, sample: &Sample) -> Vec<&str> {
        let mut names = Vec::new();
        for &id in sample.location_ids.iter().rev() {
            for &(function, _) in self.location(id).lines.iter().rev() {
                names.push(self.function(function).name.as_str());
            }
        }
        names
    }
}
