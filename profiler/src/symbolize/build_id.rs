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

/// Note segments are a few hundred bytes; a larger one is not read.
const MAX_NOTE_SEGMENT: u64 = 64 * 1024;

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
    for segment in header.program_headers(endian, data).ok()? {
        let size: u64 = segment.p_filesz(endian).into();
        if segment.p_type(endian) != elf::PT_NOTE || size > MAX_NOTE_SEGMENT {
            continue;
        }
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
}
