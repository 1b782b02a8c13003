//! A Python process's memory, read through /proc/PID/mem: every read is
//! bounded by its caller, and fails (None) rather than reading garbage
//! when the process is gone or the address is unmapped. The process is
//! untrusted: nothing read here is believed without a bound.

use std::{fs::File, os::unix::fs::FileExt};

pub(crate) struct ProcessMemory {
    mem: File,
}

/// The most any one read takes (a code object's line table, a name).
pub(crate) const MAX_READ: usize = 64 * 1024;

impl ProcessMemory {
    pub(crate) fn open(tgid: u32) -> Option<ProcessMemory> {
        let mem = File::open(format!("/proc/{tgid}/mem")).ok()?;
        Some(ProcessMemory { mem })
    }

    /// `len` bytes at `address` (at most `MAX_READ`), all or nothing.
    pub(crate) fn bytes(&self, address: u64, len: usize) -> Option<Vec<u8>> {
        if len > MAX_READ || address == 0 {
            return None;
        }
        let mut buffer = vec![0; len];
        self.mem.read_exact_at(&mut buffer, address).ok()?;
        Some(buffer)
    }

    pub(crate) fn u64(&self, address: u64) -> Option<u64> {
        let mut word = [0; 8];
        self.mem.read_exact_at(&mut word, address).ok()?;
        Some(u64::from_le_bytes(word))
    }

    pub(crate) fn u32(&self, address: u64) -> Option<u32> {
        let mut word = [0; 4];
        self.mem.read_exact_at(&mut word, address).ok()?;
        Some(u32::from_le_bytes(word))
    }

    pub(crate) fn i32(&self, address: u64) -> Option<i32> {
        self.u32(address).map(|w| w as i32)
    }
}
