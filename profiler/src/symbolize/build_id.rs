//! The GNU build id of a binary frames were named from, for pprof's
//! mappings. Read from its note segments only: a few small reads, however
//! large the binary (some are hundreds of megabytes), through a file opened
//! as files others control are (`untrusted_file`).

use std::{fs::File, path::Path};

use object::{
    Endianness, FileKind,
    elf::{self, FileHeader32, FileHeader64},
    read::{
        ReadCache,
        elf::{FileHeader, ProgramHeader},
    },
};

use crate::untrusted_file;

/// Note segments are a few hundred bytes: what a binary's note segments
/// may hold together before the rest are skipped, so that a crafted file
/// with many large ones cannot make bpfprof read much of it.
const MAX_NOTE_BYTES: u64 = 64 * 1024;

/// The build id of the file at `path`, in hex. `follow_links` only for
/// links the kernel made (/proc/PID/map_files).
pub(crate) fn read(path: &Path, follow_links: bool) -> Option<String> {
    let file = untrusted_file::open(path, follow_links).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let data = ReadCache::new(file);
    let id = match FileKind::parse(&data).ok()? {
        FileKind::Elf32 => note::<FileHeader32<Endianness>>(&data),
        FileKind::Elf64 => note::<FileHeader64<Endianness>>(&data),
        _ => None,
    }?;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

fn note<Elf: FileHeader<Endian = Endianness>>(data: &ReadCache<File>) -> Option<Vec<u8>> {
    let header = Elf::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let mut budget = MAX_NOTE_BYTES;
    for segment in header.program_headers(endian, data).ok()? {
        let size: u64 = segment.p_filesz(endian).into();
        if segment.p_type(endian) != elf::PT_NOTE {
            continue;
        }
        budget = budget.checked_sub(size)?;
        let Ok(Some(mut notes)) = segment.notes(endian, data) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == elf::ELF_NOTE_GNU && note.n_type(endian) == elf::NT_GNU_BUILD_ID {
                return Some(note.desc().to_vec());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use object::Object;

    #[test]
    fn the_notes_give_the_build_id_the_sections_give() {
        // This test binary: the linker gives Rust binaries a build id.
        let exe = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&exe).unwrap();
        let by_sections = object::File::parse(&*bytes).unwrap().build_id().unwrap();
        let hex: String = by_sections
            .expect("the test binary has a build id")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(super::read(&exe, false), Some(hex));
        // Not an ELF file.
        assert_eq!(
            super::read(std::path::Path::new("/proc/self/status"), false),
            None
        );
    }

    /// A minimal ELF64 file whose program headers are a note segment of
    /// `padding` bytes, then one holding the build id 0xab 0xcd.
    fn elf_with_notes(padding: u64) -> Vec<u8> {
        let notes_at = 64 + 2 * 56;
        let build_id_note = [
            &4u32.to_le_bytes()[..],
            &2u32.to_le_bytes(),
            &3u32.to_le_bytes(),
            b"GNU\0",
            &[0xab, 0xcd, 0, 0],
        ]
        .concat();
        let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        // e_type .. e_shstrndx: a shared object for x86-64, two program
        // headers right after this header, no sections.
        let header: [(usize, u64); 13] = [
            (2, 3),
            (2, 62),
            (4, 1),
            (8, 0),
            (8, 64),
            (8, 0),
            (4, 0),
            (2, 64),
            (2, 56),
            (2, 2),
            (2, 64),
            (2, 0),
            (2, 0),
        ];
        for (bytes, field) in header {
            elf.extend_from_slice(&field.to_le_bytes()[..bytes]);
        }
        let segments = [
            (notes_at, padding),
            (notes_at + padding, build_id_note.len() as u64),
        ];
        for (offset, size) in segments {
            // PT_NOTE, PF_R
            elf.extend_from_slice(&4u32.to_le_bytes());
            elf.extend_from_slice(&4u32.to_le_bytes());
            for field in [offset, 0, 0, size, size, 4] {
                elf.extend_from_slice(&field.to_le_bytes());
            }
        }
        // Zeros read as empty notes of type 0.
        elf.resize(elf.len() + padding as usize, 0);
        elf.extend_from_slice(&build_id_note);
        elf
    }

    #[test]
    fn note_segments_are_read_only_up_to_a_bound() {
        let dir = std::env::temp_dir().join(format!("bpfprof-build-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("elf");
        std::fs::write(&file, elf_with_notes(12)).unwrap();
        assert_eq!(super::read(&file, false).as_deref(), Some("abcd"));
        std::fs::write(&file, elf_with_notes(super::MAX_NOTE_BYTES)).unwrap();
        assert_eq!(super::read(&file, false), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
