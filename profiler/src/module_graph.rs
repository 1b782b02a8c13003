//! Tests of the crate's structure: data flows one way between its
//! top-level modules (no module reaches, through `crate::` paths in its
//! code, tests left out, a module that reaches it back), and `bpf` is the
//! only door to the kernel's BPF side (no other module uses aya).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Each top-level module and the top-level modules its code names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = src();
    let mut files = Vec::new();
    collect_files(&src, &mut files);
    let module_of = |file: &Path| {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap();
        let name = first.as_os_str().to_string_lossy();
        name.trim_end_matches(".rs").to_string()
    };
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        let text = std::fs::read_to_string(file).unwrap();
        // Test modules may reach anywhere.
        let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
        for to in named_modules(code) {
            if to != from && modules.contains(&to) {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

fn collect_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path
                .file_name()
                .is_some_and(|n| n != "tests.rs" && n != "module_graph.rs")
        {
            files.push(path);
        }
    }
}

/// The first segments after `crate::` in code (not comments), braces of a
/// `use crate::{a, b::c}` included.
fn named_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in code.lines().map(str::trim_start) {
        if line.starts_with("//") {
            continue;
        }
        names.extend(line.split("crate::").skip(1).filter_map(first_word));
    }
    // `use crate::{` groups: every item at the group's top level.
    for group in code.split("crate::{").skip(1) {
        let mut depth = 0;
        let mut item_start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && !c.is_whitespace() => {
                    item_start = false;
                    names.extend(first_word(&group[i..]));
                }
                _ => {}
            }
        }
    }
    names
}

fn first_word(text: &str) -> Option<String> {
    let word: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// The modules on a cycle through `start`, if there is one.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in graph.get(last).into_iter().flatten() {
            if next == start {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_module_reaches_back_into_one_that_reaches_it() {
    let graph = graph();
    assert!(
        graph["capture"].contains("bpf") && graph["unwind"].contains("bpf"),
        "the graph is read: {graph:?}"
    );
    let cycles: Vec<Vec<String>> = graph
        .keys()
        .filter_map(|module| cycle_through(&graph, module))
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:?}");
}

#[test]
fn only_bpf_uses_aya() {
    let src = src();
    let mut files = Vec::new();
    collect_files(&src, &mut files);
    let bpf = src.join("bpf");
    let outside: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(&bpf))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
            code.lines()
                .map(str::trim_start)
                .filter(|l| !l.starts_with("//"))
                .any(|l| l.contains("aya::") || l.contains("aya_obj::") || l.contains("aya_log::"))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(outside.is_empty(), "aya used outside src/bpf/: {outside:?}");
}
