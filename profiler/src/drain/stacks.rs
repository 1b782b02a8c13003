//! The stacks of drained generations, kept while something may still
//! refer to them: off-CPU intervals can end, and wakers be counted, several
//! drains after their stacks were recorded.

use std::collections::{BTreeMap, HashMap, HashSet};

use profiler_common::StackKey;

use super::{INCOMPLETE_MARK, RawStack, RawStacks, is_before_run};

/// The stack of a thread that was already blocked when the run started,
/// read from /proc: kernel function names (leaf first) and the user PC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Seeded {
    pub(crate) kernel: Vec<String>,
    pub(crate) user_pc: Option<u64>,
}

/// A (generation, stack id) that a pending record refers to.
pub(crate) type StackRef = (u32, i64);

/// Stacks by id: kernel ids (bit 61 set) and user ids (bit 62 set), both
/// hashes of the frames made in BPF, never meet, so one map holds both.
pub(crate) type StacksById = HashMap<i64, StoredStack>;

/// A stack as drained: its frames (a walk that stopped part way marked at
/// the end) and, for a user stack, the image they belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StoredStack {
    pub(crate) ips: Vec<u64>,
    pub(crate) image: u16,
}

impl From<Vec<u64>> for StoredStack {
    fn from(ips: Vec<u64>) -> StoredStack {
        StoredStack { ips, image: 0 }
    }
}

pub(crate) struct StackStore {
    generations: BTreeMap<u32, StacksById>,
    /// Kernel stacks of threads blocked before the run, by tid.
    seeded: HashMap<u32, Seeded>,
    /// References seen by the previous pruning, kept one more round:
    /// a record read just before it was consumed still has counts coming.
    previous_refs: HashSet<StackRef>,
}

impl StackStore {
    pub(crate) fn new(seeded: HashMap<u32, Seeded>) -> StackStore {
        StackStore {
            generations: BTreeMap::new(),
            seeded,
            previous_refs: HashSet::new(),
        }
    }

    pub(crate) fn add_generation(&mut self, generation: u32, stacks: StacksById) {
        self.generations.insert(generation, stacks);
    }

    /// Stacks drained in `generation`, while it is kept.
    pub(crate) fn generation_len(&self, generation: u32) -> usize {
        self.generations.get(&generation).map_or(0, HashMap::len)
    }

    /// The stacks of `key`, whose ids belong to `generation`.
    pub(crate) fn resolve(&self, key: &StackKey, generation: u32) -> RawStacks {
        RawStacks {
            key: *key,
            user: self.stack(key, key.user_stack_id, generation, false),
            user_image: self
                .generations
                .get(&generation)
                .and_then(|g| g.get(&key.user_stack_id))
                .map(|s| s.image),
            kernel: self.stack(key, key.kern_stack_id, generation, true),
        }
    }

    fn stack(&self, key: &StackKey, id: i64, generation: u32, kernel: bool) -> RawStack {
        if is_before_run(id) {
            let seeded = self.seeded.get(&key.tid);
            return match (kernel, seeded) {
                (true, Some(s)) => RawStack::KernelNames(s.kernel.clone()),
                (
                    false,
                    Some(Seeded {
                        user_pc: Some(pc), ..
                    }),
                ) => RawStack::Frames(vec![*pc]),
                _ => RawStack::Failed(libc::ENOENT),
            };
        }
        if id < 0 {
            return RawStack::Failed(i32::try_from(-id).unwrap_or(i32::MAX));
        }
        match self.generations.get(&generation).and_then(|g| g.get(&id)) {
            Some(stored) => match stored.ips.split_last() {
                Some((&INCOMPLETE_MARK, walked)) => RawStack::Partial(walked.to_vec()),
                _ => RawStack::Frames(stored.ips.clone()),
            },
            None => RawStack::Lost,
        }
    }

    /// Drops what nothing can refer to any more. The two newest generations
    /// stay whole (counts of the active set may still point into them);
    /// older ones keep only the stacks pending records refer to.
    pub(crate) fn prune(&mut self, newest: u32, refs: HashSet<StackRef>) {
        let keep_whole_from = newest.saturating_sub(1);
        let kept: HashSet<StackRef> = refs.union(&self.previous_refs).copied().collect();
        self.generations.retain(|&generation, stacks| {
            if generation >= keep_whole_from {
                return true;
            }
            stacks.retain(|&id, _| kept.contains(&(generation, id)));
            !stacks.is_empty()
        });
        self.previous_refs = refs;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.generations.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: i64, kern: i64) -> StackKey {
        StackKey {
            tgid: 1,
            tid: 2,
            user_stack_id: user,
            kern_stack_id: kern,
            ..StackKey::default()
        }
    }

    #[test]
    fn resolves_ids_in_their_own_generation() {
        let mut store = StackStore::new(HashMap::new());
        store.add_generation(0, HashMap::from([(5, vec![0xa].into())]));
        store.add_generation(1, HashMap::from([(5, vec![0xb].into())]));
        assert_eq!(
            store.resolve(&key(5, -14), 0).user,
            RawStack::Frames(vec![0xa])
        );
        assert_eq!(
            store.resolve(&key(5, -14), 1).user,
            RawStack::Frames(vec![0xb])
        );
        assert_eq!(store.resolve(&key(5, -14), 1).kernel, RawStack::Failed(14));
        assert_eq!(store.resolve(&key(6, -14), 1).user, RawStack::Lost);
    }

    #[test]
    fn user_stack_ids_never_meet_kernel_ids_or_errnos() {
        for hash in [0, 5, u64::MAX, 1 << 62, 1 << 63] {
            let id = profiler_common::user_stack_id(hash);
            assert!(id >= 1 << 62, "{hash:#x} -> {id:#x}");
        }
        let user = profiler_common::user_stack_id(5);
        let mut store = StackStore::new(HashMap::new());
        store.add_generation(
            0,
            HashMap::from([
                (5, vec![0xffff_ffff_8100_0000].into()),
                (user, vec![0xa].into()),
            ]),
        );
        let stacks = store.resolve(&key(user, 5), 0);
        assert_eq!(stacks.user, RawStack::Frames(vec![0xa]));
        assert_eq!(stacks.kernel, RawStack::Frames(vec![0xffff_ffff_8100_0000]));
    }

    #[test]
    fn pruning_keeps_referenced_stacks_for_one_more_round() {
        let mut store = StackStore::new(HashMap::new());
        for generation in 0..4 {
            store.add_generation(
                generation,
                HashMap::from([(1, vec![1].into()), (2, vec![2].into())]),
            );
        }
        store.prune(3, HashSet::from([(0, 1)]));
        assert_eq!(
            store.len(),
            1 + 2 * 2,
            "gen 0 keeps id 1; gens 2 and 3 stay whole"
        );
        assert_eq!(
            store.resolve(&key(1, -14), 0).user,
            RawStack::Frames(vec![1])
        );
        store.prune(3, HashSet::new());
        assert_eq!(
            store.resolve(&key(1, -14), 0).user,
            RawStack::Frames(vec![1]),
            "kept one more round"
        );
        store.prune(3, HashSet::new());
        assert_eq!(store.resolve(&key(1, -14), 0).user, RawStack::Lost);
    }

    #[test]
    fn threads_blocked_before_the_run_get_their_proc_stack() {
        let seeded = Seeded {
            kernel: vec!["do_nanosleep".into()],
            user_pc: Some(0x7f00),
        };
        let store = StackStore::new(HashMap::from([(2, seeded)]));
        let stacks = store.resolve(&key(-1000, -1000), 0);
        assert_eq!(
            stacks.kernel,
            RawStack::KernelNames(vec!["do_nanosleep".into()])
        );
        assert_eq!(stacks.user, RawStack::Frames(vec![0x7f00]));
    }
}
