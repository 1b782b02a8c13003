//! Offsets of kernel struct fields, read from the kernel's own BTF
//! (/sys/kernel/btf/vmlinux), for the BPF programs to read task fields
//! that no tracepoint hands them. aya-ebpf has no CO-RE relocations, so
//! userspace finds each offset here and sets it as a global at load time.
//! Only what a member lookup needs is parsed: the types, their members,
//! and the names.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
const MAGIC: u16 = 0xeb9f;

// Kinds (`info >> 24 & 0x1f`) and how many bytes of their own follow the
// 12-byte common header (`vlen` is `info & 0xffff`).
const INT: u32 = 1;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC_PROTO: u32 = 13;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const DECL_TAG: u32 = 17;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

/// The kernel's types, enough to find struct members.
pub(crate) struct KernelTypes {
    /// Type ids start at 1; index 0 stands for void.
    types: Vec<Type>,
    names: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
}

#[derive(Default, Clone)]
struct Type {
    kind: u32,
    name_off: u32,
    /// The referenced type, for typedefs and qualifiers.
    type_id: u32,
    members: Vec<Member>,
}

#[derive(Clone, Copy)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

impl KernelTypes {
    pub(crate) fn load() -> Result<KernelTypes> {
        let data = std::fs::read(VMLINUX).with_context(|| format!("reading {VMLINUX}"))?;
        KernelTypes::parse(&data).with_context(|| format!("parsing {VMLINUX}"))
    }

    fn parse(data: &[u8]) -> Result<KernelTypes> {
        let word = |at: usize| -> Result<u32> {
            let bytes = data.get(at..at + 4).context("truncated")?;
            Ok(u32::from_le_bytes(bytes.try_into().unwrap_or_default()))
        };
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            bail!("not little-endian BTF");
        }
        let header_len = word(4)? as usize;
        let (type_off, type_len) = (word(8)? as usize, word(12)? as usize);
        let (str_off, str_len) = (word(16)? as usize, word(20)? as usize);
        let names = data
            .get(header_len + str_off..header_len + str_off + str_len)
            .context("string section out of bounds")?
            .to_vec();
        let start = header_len + type_off;
        let end = start + type_len;
        let mut types = vec![Type::default()];
        let mut at = start;
        while at < end {
            let (name_off, info, size_or_type) = (word(at)?, word(at + 4)?, word(at + 8)?);
            at += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let bitfields = info >> 31 == 1;
            let mut ty = Type {
                kind,
                name_off,
                type_id: size_or_type,
                members: Vec::new(),
            };
            match kind {
                STRUCT | UNION => {
                    for i in 0..vlen {
                        let m = at + 12 * i;
                        let offset = word(m + 8)?;
                        ty.members.push(Member {
                            name_off: word(m)?,
                            type_id: word(m + 4)?,
                            // With kflag the high byte is a bitfield's size.
                            bit_offset: if bitfields {
                                offset & 0xff_ffff
                            } else {
                                offset
                            },
                        });
                    }
                    at += 12 * vlen;
                }
                INT | VAR | DECL_TAG => at += 4,
                ARRAY => at += 12,
                ENUM | FUNC_PROTO => at += 8 * vlen,
                DATASEC | ENUM64 => at += 12 * vlen,
                _ => {}
            }
            types.push(ty);
        }
        let mut structs_by_name = HashMap::new();
        for (id, ty) in types.iter().enumerate() {
            if ty.kind == STRUCT && ty.name_off != 0 {
                let name = name_at(&names, ty.name_off).to_owned();
                structs_by_name.entry(name).or_insert(id as u32);
            }
        }
        Ok(KernelTypes {
            types,
            names,
            structs_by_name,
        })
    }

    /// The byte offset of `path` (members, outermost first) in `struct
    /// name`, looking through anonymous structs and unions as C does.
    pub(crate) fn member_offset(&self, name: &str, path: &[&str]) -> Result<u32> {
        let mut type_id = *self
            .structs_by_name
            .get(name)
            .with_context(|| format!("the kernel has no struct {name}"))?;
        let mut bits = 0;
        for member in path {
            let (offset, member_type) = self
                .find_member(type_id, member, 0)
                .with_context(|| format!("struct {name} has no member {}", path.join(".")))?;
            bits += offset;
            type_id = member_type;
        }
        if bits % 8 != 0 {
            bail!("{name}.{} is a bitfield", path.join("."));
        }
        Ok(bits / 8)
    }

    /// The bit offset and type of member `name` of the struct or union
    /// `type_id` (through typedefs and qualifiers).
    fn find_member(&self, type_id: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        let ty = self.types.get(self.resolve(type_id) as usize)?;
        if depth > 8 {
            return None;
        }
        for member in &ty.members {
            if member.name_off == 0 {
                if let Some((inner, found)) = self.find_member(member.type_id, name, depth + 1) {
                    return Some((member.bit_offset + inner, found));
                }
            } else if name_at(&self.names, member.name_off) == name {
                return Some((member.bit_offset, member.type_id));
            }
        }
        None
    }

    fn resolve(&self, mut type_id: u32) -> u32 {
        for _ in 0..16 {
            match self.types.get(type_id as usize) {
                Some(ty) if matches!(ty.kind, TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG) => {
                    type_id = ty.type_id;
                }
                _ => break,
            }
        }
        type_id
    }
}

fn name_at(names: &[u8], offset: u32) -> &str {
    let rest = names.get(offset as usize..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_task_fields_in_the_running_kernel() {
        let types = KernelTypes::load().unwrap();
        // `pid` and `tgid` are adjacent pid_t fields in every kernel.
        let pid = types.member_offset("task_struct", &["pid"]).unwrap();
        let tgid = types.member_offset("task_struct", &["tgid"]).unwrap();
        assert_eq!(tgid, pid + 4);
        let exec_id = types
            .member_offset("task_struct", &["self_exec_id"])
            .unwrap();
        let parent_exec_id = types
            .member_offset("task_struct", &["parent_exec_id"])
            .unwrap();
        assert_eq!(exec_id, parent_exec_id + 8);
        // A nested path, and a struct's first member at its own offset.
        let thread = types.member_offset("task_struct", &["thread"]).unwrap();
        let fsbase = types
            .member_offset("task_struct", &["thread", "fsbase"])
            .unwrap();
        assert!(fsbase > thread && fsbase < thread + 256);
        let sp = types
            .member_offset("thread_struct", &["sp"])
            .unwrap_or(u32::MAX);
        assert!(sp < 256);
    }

    #[test]
    fn names_what_it_cannot_find() {
        let types = KernelTypes::load().unwrap();
        let err = types
            .member_offset("task_struct", &["no_such_field"])
            .unwrap_err();
        assert!(err.to_string().contains("no member no_such_field"), "{err}");
        let err = types.member_offset("no_such_struct", &["x"]).unwrap_err();
        assert!(
            err.to_string().contains("no struct no_such_struct"),
            "{err}"
        );
        assert!(KernelTypes::parse(b"not btf at all, not at all").is_err());
    }
}
