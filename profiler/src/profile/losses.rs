//! What a run could not record whole, by cause: one counter per [`Loss`],
//! which also names its key under report.json's `errors` and its line in
//! the Quality block.

use std::{
    collections::BTreeMap,
    fmt,
    ops::{Index, IndexMut},
};

use profiler_common::Loss;
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{IgnoredAny, MapAccess, Visitor},
    ser::SerializeMap,
};

/// Samples and stacks the run could not record whole, by cause; indexed
/// by [`Loss`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Losses {
    /// On-CPU samples, the base of the shares the Quality block shows.
    pub(crate) samples: u64,
    counts: [u64; Loss::ALL.len()],
    /// `Loss::UnknownFrames`, per module the unnamed frames are in.
    pub(crate) unknown_frames_by_module: BTreeMap<String, u64>,
    /// `Loss::UnwindTablesNotLoaded`: each binary, with its table's rows.
    pub(crate) unwind_tables_not_loaded_by_binary: BTreeMap<String, u64>,
    /// `Loss::PythonProcessesNotWalked`: each process (`name (pid N)`),
    /// with its version and why.
    pub(crate) python_not_walked_by_process: BTreeMap<String, String>,
}

const SAMPLES_KEY: &str = "samples";
const BY_MODULE_KEY: &str = "unknown_frames_by_module";
const BY_BINARY_KEY: &str = "unwind_tables_not_loaded_by_binary";
const BY_PYTHON_KEY: &str = "python_processes_not_walked_by_process";

impl Index<Loss> for Losses {
    type Output = u64;
    fn index(&self, loss: Loss) -> &u64 {
        &self.counts[loss as usize]
    }
}

impl IndexMut<Loss> for Losses {
    fn index_mut(&mut self, loss: Loss) -> &mut u64 {
        &mut self.counts[loss as usize]
    }
}

impl Losses {
    /// Adds what reading perf maps cost since the last call.
    pub(crate) fn add_perf_map_losses(&mut self, perf_maps: super::PerfMapLosses) {
        self[Loss::PerfMapsIgnored] += perf_maps.ignored;
        self[Loss::PerfMapLinesSkipped] += perf_maps.lines_skipped;
        self[Loss::PerfMapsCut] += perf_maps.cut;
    }

    /// Adds the binaries whose unwind tables did not fit since the last call.
    pub(crate) fn add_unwind_tables_not_loaded(&mut self, binaries: BTreeMap<String, u64>) {
        self[Loss::UnwindTablesNotLoaded] += binaries.len() as u64;
        self.unwind_tables_not_loaded_by_binary.extend(binaries);
    }

    /// Adds the Python processes found not walkable since the last call.
    pub(crate) fn add_python_not_walked(&mut self, processes: BTreeMap<String, String>) {
        self[Loss::PythonProcessesNotWalked] += processes.len() as u64;
        self.python_not_walked_by_process.extend(processes);
    }

    /// Adds another window's counts to these.
    pub(crate) fn add(&mut self, other: &Losses) {
        self.samples += other.samples;
        for loss in Loss::ALL {
            self[loss] += other[loss];
        }
        for (module, n) in &other.unknown_frames_by_module {
            *self
                .unknown_frames_by_module
                .entry(module.clone())
                .or_default() += n;
        }
        self.unwind_tables_not_loaded_by_binary
            .extend(other.unwind_tables_not_loaded_by_binary.clone());
        self.python_not_walked_by_process
            .extend(other.python_not_walked_by_process.clone());
    }

    /// True when nothing was lost and every frame was named.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries().all(|(_, n)| n == 0)
    }

    /// Every counter with its value, in the Quality block's order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Loss, u64)> + '_ {
        Loss::ALL.into_iter().map(|loss| (loss, self[loss]))
    }
}

/// report.json's `errors`: `samples`, then every counter under its key in
/// the Quality block's order, with the per-module split after the count
/// of samples with unnamed frames.
impl Serialize for Losses {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Loss::ALL.len() + 4))?;
        map.serialize_entry(SAMPLES_KEY, &self.samples)?;
        for (loss, n) in self.entries() {
            map.serialize_entry(loss.json_key(), &n)?;
            if loss == Loss::UnknownFrames {
                map.serialize_entry(BY_MODULE_KEY, &self.unknown_frames_by_module)?;
            }
            if loss == Loss::UnwindTablesNotLoaded {
                map.serialize_entry(BY_BINARY_KEY, &self.unwind_tables_not_loaded_by_binary)?;
            }
            if loss == Loss::PythonProcessesNotWalked {
                map.serialize_entry(BY_PYTHON_KEY, &self.python_not_walked_by_process)?;
            }
        }
        map.end()
    }
}

/// Reads what `Serialize` writes, as saved runs have it: a missing counter
/// is 0, and keys of other versions are skipped.
impl<'de> Deserialize<'de> for Losses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Losses, D::Error> {
        deserializer.deserialize_map(LossesVisitor)
    }
}

struct LossesVisitor;

impl<'de> Visitor<'de> for LossesVisitor {
    type Value = Losses;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of loss counters")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Losses, A::Error> {
        let mut losses = Losses::default();
        while let Some(key) = map.next_key::<String>()? {
            if key == SAMPLES_KEY {
                losses.samples = map.next_value()?;
            } else if key == BY_MODULE_KEY {
                losses.unknown_frames_by_module = map.next_value()?;
            } else if key == BY_BINARY_KEY {
                losses.unwind_tables_not_loaded_by_binary = map.next_value()?;
            } else if key == BY_PYTHON_KEY {
                losses.python_not_walked_by_process = map.next_value()?;
            } else if let Some(loss) = Loss::ALL.into_iter().find(|l| l.json_key() == key) {
                losses[loss] = map.next_value()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(losses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// report.json's `errors` keys as reports have always had them.
    const KEYS: [&str; 26] = [
        "samples",
        "stack_collisions",
        "stack_map_full",
        "user_stack_missing",
        "stack_errors_other",
        "counts_map_full",
        "follow_map_full",
        "pending_map_full",
        "wakers_map_full",
        "truncated_stacks",
        "samples_with_unknown_frames",
        "unknown_frames_by_module",
        "perf_maps_ignored",
        "perf_map_lines_skipped",
        "perf_maps_cut",
        "stacks_lost_in_drain",
        "process_events_lost",
        "stack_reuse_mismatches",
        "incomplete_unwinds",
        "stacks_walked_before_unwind_tables",
        "unwind_tables_not_loaded",
        "unwind_tables_not_loaded_by_binary",
        "python_frames_unread",
        "python_code_events_lost",
        "python_processes_not_walked",
        "python_processes_not_walked_by_process",
    ];

    fn sample() -> Losses {
        let mut losses = Losses {
            samples: 1000,
            ..Losses::default()
        };
        for (i, loss) in Loss::ALL.into_iter().enumerate() {
            losses[loss] = i as u64 + 1;
        }
        losses
            .unknown_frames_by_module
            .insert("libfoo.so".into(), 7);
        losses
            .unwind_tables_not_loaded_by_binary
            .insert("/usr/lib/libbig.so".into(), 1 << 20);
        losses.python_not_walked_by_process.insert(
            "python2.7 (pid 12)".into(),
            "CPython 2.7: not supported".into(),
        );
        losses
    }

    #[test]
    fn errors_keep_their_keys_and_values_and_read_back() {
        let losses = sample();
        let json = serde_json::to_value(&losses).unwrap();
        let object = json.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = KEYS.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(json["samples"], 1000);
        assert_eq!(json["samples_with_unknown_frames"], 1);
        let reuse = Loss::ALL
            .iter()
            .position(|&l| l == Loss::StackReuseMismatch);
        assert_eq!(json["stack_reuse_mismatches"], reuse.unwrap() as u64 + 1);
        assert_eq!(json["unknown_frames_by_module"]["libfoo.so"], 7);
        let back: Losses = serde_json::from_value(json).unwrap();
        assert_eq!(back, losses);
    }

    #[test]
    fn a_saved_errors_object_of_another_version_reads() {
        // As an older bpfprof wrote it: fewer counters, one since dropped.
        let saved = serde_json::json!({
            "samples": 50,
            "stack_map_full": 3,
            "unknown_frames_by_module": { "[no file]": 4 },
            "a_counter_of_another_version": 9,
        });
        let losses: Losses = serde_json::from_value(saved).unwrap();
        assert_eq!(losses.samples, 50);
        assert_eq!(losses[Loss::StackMapFull], 3);
        assert_eq!(losses[Loss::CountsMapFull], 0);
        assert_eq!(losses.unknown_frames_by_module["[no file]"], 4);
        assert!(serde_json::from_value::<Losses>(serde_json::json!({ "samples": -1 })).is_err());
    }

    #[test]
    fn add_sums_every_counter() {
        let mut total = sample();
        total.add(&sample());
        for loss in Loss::ALL {
            assert_eq!(total[loss], 2 * sample()[loss], "{loss:?}");
        }
        assert_eq!(total.samples, 2000);
        assert_eq!(total.unknown_frames_by_module["libfoo.so"], 14);
        assert!(!total.is_empty());
        assert!(Losses::default().is_empty());
    }
}
