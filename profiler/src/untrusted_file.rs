//! Reading files that someone else may control (a saved run, a BPF object,
//! the kernel-symbol copy, a profiled process's binary): opened without
//! blocking, so a FIFO or a device in a file's place cannot hang bpfprof
//! and a terminal cannot become its controlling one; read only if it is a
//! regular file; and never past a bound.

use std::{
    fs::{File, FileType},
    io::{self, Read},
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::Path,
};

/// Why a file was not read.
#[derive(Debug)]
pub(crate) enum NotRead {
    Io(io::Error),
    /// Not a regular file: what it is, as [`describe`] says.
    NotRegular(FileType),
    /// Larger than the bound: its size.
    TooLarge(u64),
    /// It was within the bound when looked at, and grew past it.
    Grew,
}

/// Opens `path` for reading without blocking; with `follow_links` false, a
/// link as its last component is refused.
pub(crate) fn open(path: &Path, follow_links: bool) -> io::Result<File> {
    let nofollow = if follow_links { 0 } else { libc::O_NOFOLLOW };
    File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | nofollow)
        .open(path)
}

/// Reads `file` whole if it is a regular file of at most `limit` bytes.
pub(crate) fn read_whole(file: File, limit: u64) -> Result<Vec<u8>, NotRead> {
    let meta = file.metadata().map_err(NotRead::Io)?;
    if !meta.is_file() {
        return Err(NotRead::NotRegular(meta.file_type()));
    }
    if meta.len() > limit {
        return Err(NotRead::TooLarge(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(NotRead::Io)?;
    if bytes.len() as u64 > limit {
        return Err(NotRead::Grew);
    }
    Ok(bytes)
}

/// What a file that is not a regular file is, for a message.
pub(crate) fn describe(kind: FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_bound_are_read() {
        let dir = std::env::temp_dir().join(format!("bpfprof-untrusted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("file");
        std::fs::write(&file, "12345").unwrap();
        let read = |limit| read_whole(open(&file, false).unwrap(), limit);
        assert_eq!(read(5).unwrap(), b"12345");
        assert!(matches!(read(4), Err(NotRead::TooLarge(5))));
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            open(&link, false).unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
        assert!(open(&link, true).is_ok());
        let fifo = dir.join("fifo");
        let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        // Opened at once, refused unread.
        match read_whole(open(&fifo, true).unwrap(), 5) {
            Err(NotRead::NotRegular(kind)) => assert_eq!(describe(kind), "a FIFO"),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
