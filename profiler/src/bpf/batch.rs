//! The map syscalls aya does not wrap: reading and emptying a whole hash
//! map (`BPF_MAP_LOOKUP_AND_DELETE_BATCH`, for the drain), and emptying an
//! entry of an array of maps (`BPF_MAP_DELETE_ELEM`, to free an unwind
//! table). One batch call moves many entries where one entry each took
//! three syscalls (next key, lookup, delete). It falls back to entries one
//! by one where the kernel refuses the batch.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use anyhow::{Context, Result};
use aya::{
    Pod,
    maps::{HashMap, Map, MapData, MapError},
};

const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;

/// Empties entry `index` of an array of maps: the kernel drops its
/// reference to the inner map, freed once no program is using it.
pub(super) fn delete_map_of_maps_entry(fd: BorrowedFd, index: u32) -> std::io::Result<()> {
    /// The `map_elem` member of `union bpf_attr`.
    #[repr(C)]
    struct ElemAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        _pad: 0,
        key: std::ptr::from_ref(&index) as u64,
        value: 0,
        flags: 0,
    };
    // SAFETY: the key points at `index`, alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_DELETE_ELEM,
            &mut attr as *mut ElemAttr,
            size_of::<ElemAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Entries per lookup-and-delete call: few calls per drain, and a buffer
/// of a MiB for the largest values (stacks).
const TAKE_CHUNK: usize = 1024;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

impl BatchAttr {
    fn new(fd: BorrowedFd, keys: u64, values: u64, count: usize) -> BatchAttr {
        BatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys,
            values,
            count: count as u32,
            map_fd: fd.as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        }
    }

    /// Runs `command`; the errno when it fails.
    fn call(&mut self, command: libc::c_long) -> Result<(), i32> {
        // SAFETY: every pointer in the attr points at a buffer the caller
        // keeps alive for the call, of `count` elements of the map's key
        // and value sizes (and a u64 for the batch tokens).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                command,
                self as *mut BatchAttr,
                size_of::<BatchAttr>(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        }
    }
}

/// Reads and empties a hash map nothing writes to, passing each entry to
/// `each`: by BPF_MAP_LOOKUP_AND_DELETE_BATCH, and one entry at a time for
/// whatever a refused batch left (every entry is passed once: what a batch
/// returned is gone from the map).
pub(super) fn take_all<K: Pod, V: Pod>(map: &mut Map, each: &mut impl FnMut(K, &V)) -> Result<()> {
    // Checks the map's type and its key and value sizes against K and V.
    HashMap::<&mut MapData, K, V>::try_from(&mut *map)?;
    if let Map::HashMap(data) | Map::LruHashMap(data) = &*map
        && take_batched(data.fd().as_fd(), each).is_ok()
    {
        return Ok(());
    }
    take_one_by_one(map, each)
}

/// The batched way; Err when the kernel refused a call (entries passed
/// before are gone from the map, the rest are still there).
fn take_batched<K: Pod, V: Pod>(fd: BorrowedFd, each: &mut impl FnMut(K, &V)) -> Result<(), i32> {
    // SAFETY: K and V are plain data, for which all zeroes is a value.
    let mut keys: Vec<K> = vec![unsafe { std::mem::zeroed() }; TAKE_CHUNK];
    let mut values: Vec<V> = vec![unsafe { std::mem::zeroed() }; TAKE_CHUNK];
    // Where the next call resumes (a bucket, for hash maps); none at first.
    let mut resume: Option<u64> = None;
    let mut next: u64 = 0;
    loop {
        let mut attr = BatchAttr::new(
            fd,
            keys.as_mut_ptr() as u64,
            values.as_mut_ptr() as u64,
            TAKE_CHUNK,
        );
        attr.in_batch = resume.as_ref().map_or(0, |r| r as *const u64 as u64);
        attr.out_batch = &raw mut next as u64;
        let result = attr.call(BPF_MAP_LOOKUP_AND_DELETE_BATCH);
        // The count is the entries returned when the call succeeded or
        // reached the end; on any other error it may not have been set.
        if matches!(result, Ok(()) | Err(libc::ENOENT)) {
            let returned = (attr.count as usize).min(TAKE_CHUNK);
            for (key, value) in keys.iter().zip(&values).take(returned) {
                each(*key, value);
            }
        }
        match result {
            // A call that returned nothing without reaching the end would
            // repeat forever: left to the slow way.
            Ok(()) if attr.count == 0 => return Err(libc::EAGAIN),
            Ok(()) => resume = Some(next),
            Err(libc::ENOENT) => return Ok(()),
            Err(errno) => return Err(errno),
        }
    }
}

fn take_one_by_one<K: Pod, V: Pod>(map: &mut Map, each: &mut impl FnMut(K, &V)) -> Result<()> {
    let mut map: HashMap<&mut MapData, K, V> = HashMap::try_from(map)?;
    let keys: Vec<K> = map.keys().collect::<Result<_, _>>()?;
    for key in keys {
        match map.get(&key, 0) {
            Ok(value) => each(key, &value),
            // Gone since the keys were read: nothing to take.
            Err(MapError::KeyNotFound) => continue,
            Err(err) => return Err(err).context("reading a drained map"),
        }
        map.remove(&key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_HASH;
    use profiler_common::Stack;

    use super::*;

    /// `BPF_F_NO_PREALLOC`, as the drained maps are made.
    const NO_PREALLOC: u32 = 1;

    fn new_map<K, V>(map_type: u32, entries: u32, flags: u32) -> Map {
        let obj = aya_obj::Map::new_from_params(
            map_type,
            size_of::<K>() as u32,
            size_of::<V>() as u32,
            entries,
            flags,
        );
        Map::from_map_data(MapData::create(obj, "bpfprof_test", None).unwrap()).unwrap()
    }

    fn stack(id: i64) -> Stack {
        let mut stack = Stack {
            len: 3,
            flags: 0,
            image: 0,
            ips: [0; profiler_common::MAX_STACK_DEPTH],
        };
        stack.ips[..3].copy_from_slice(&[id as u64, 2 * id as u64, 3 * id as u64]);
        stack
    }

    /// Several batches' worth of stacks come out once each, whole, and the
    /// map is left empty; so do they taken one by one (the fallback).
    #[test]
    #[ignore = "needs root: creates BPF maps"]
    fn a_hash_map_is_taken_whole_and_emptied() {
        let count = 3 * TAKE_CHUNK as i64 + 17;
        let mut map = new_map::<i64, Stack>(BPF_MAP_TYPE_HASH as u32, 8192, NO_PREALLOC);
        for batched in [true, false] {
            let mut hash: HashMap<&mut MapData, i64, Stack> = HashMap::try_from(&mut map).unwrap();
            for id in 1..=count {
                hash.insert(id, stack(id), 0).unwrap();
            }
            let mut taken = std::collections::HashMap::new();
            let mut each =
                |id: i64, s: &Stack| assert!(taken.insert(id, *s).is_none(), "{id} twice");
            if batched {
                let Map::HashMap(data) = &map else {
                    unreachable!()
                };
                take_batched(data.fd().as_fd(), &mut each).expect("the kernel takes batches");
            } else {
                take_one_by_one(&mut map, &mut each).unwrap();
            }
            assert_eq!(taken.len() as i64, count, "batched: {batched}");
            assert!(
                taken
                    .iter()
                    .all(|(&id, s)| s.ips[..3] == stack(id).ips[..3])
            );
            let hash: HashMap<&mut MapData, i64, Stack> = HashMap::try_from(&mut map).unwrap();
            assert_eq!(hash.keys().count(), 0, "emptied (batched: {batched})");
        }
    }
}
