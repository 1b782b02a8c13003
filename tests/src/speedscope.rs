//! speedscope.json read back as folded stacks, to hold it against the
//! folded files of the same run.

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;

/// Stacks as frame names, root first, to their summed weights.
pub type Stacks = BTreeMap<Vec<String>, u64>;

pub fn read(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The stacks of the profile named `name` ("On-CPU time", "Off-CPU time"),
/// and its unit.
pub fn stacks(doc: &Value, name: &str) -> (String, Stacks) {
    let frames = doc["shared"]["frames"].as_array().expect("shared.frames");
    let profile = doc["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no profile named {name}"));
    let samples = profile["samples"].as_array().expect("samples");
    let weights = profile["weights"].as_array().expect("weights");
    let mut stacks = Stacks::new();
    for (stack, weight) in samples.iter().zip(weights) {
        let names = stack
            .as_array()
            .expect("a stack")
            .iter()
            .map(|i| {
                frames[i.as_u64().unwrap() as usize]["name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        *stacks.entry(names).or_default() += weight.as_u64().expect("an integer weight");
    }
    (
        profile["unit"].as_str().unwrap_or_default().to_string(),
        stacks,
    )
}

/// Folded stacks with the `_[k]` and `_[i]` suffixes, which speedscope's
/// names do not have, taken off, and their counts times `scale`.
pub fn from_folded(folded: &crate::Folded, scale: u64) -> Stacks {
    let mut stacks = Stacks::new();
    for (frames, count) in &folded.stacks {
        let names = frames
            .iter()
            .map(|f| {
                let bare = f.strip_suffix("_[k]").or_else(|| f.strip_suffix("_[i]"));
                bare.unwrap_or(f).to_string()
            })
            .collect();
        *stacks.entry(names).or_default() += count * scale;
    }
    stacks
}
