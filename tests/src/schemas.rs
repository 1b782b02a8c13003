//! The outputs' schemas, checked on every run the suite makes: report.json
//! (and `--json`'s stdout) against docs/report.schema.json, the schema its
//! documentation points to; speedscope.json against speedscope's published
//! schema (tests/schemas/, where its source is noted) and the indices its
//! importer follows.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use jsonschema::Validator;
use serde_json::Value;

fn repository_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn validator(cell: &'static OnceLock<Validator>, path: &str) -> &'static Validator {
    cell.get_or_init(|| {
        let path = repository_file(path);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let schema: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{}: not a valid schema: {e}", path.display()))
    })
}

fn report_schema() -> &'static Validator {
    static SCHEMA: OnceLock<Validator> = OnceLock::new();
    validator(&SCHEMA, "docs/report.schema.json")
}

fn speedscope_schema() -> &'static Validator {
    static SCHEMA: OnceLock<Validator> = OnceLock::new();
    validator(&SCHEMA, "tests/schemas/speedscope-file-format-schema.json")
}

/// Panics, naming `what` and where each error is, if `value` does not
/// validate.
fn assert_valid(schema: &Validator, value: &Value, what: &str) {
    let errors: Vec<String> = schema
        .iter_errors(value)
        .take(10)
        .map(|e| format!("  {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema:\n{}",
        errors.join("\n")
    );
}

fn parse(text: &str, what: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
}

/// Checks the text of a report.json.
pub fn check_report(text: &str, what: &str) {
    assert_valid(report_schema(), &parse(text, what), what);
}

/// Checks the text of a speedscope.json: its schema, then what the schema
/// cannot say: one weight per sample, and frame indices that exist.
pub fn check_speedscope(text: &str, what: &str) {
    let doc = parse(text, what);
    assert_valid(speedscope_schema(), &doc, what);
    let frames = doc["shared"]["frames"].as_array().map_or(0, Vec::len);
    for profile in doc["profiles"].as_array().into_iter().flatten() {
        let samples = profile["samples"].as_array().map_or(&[][..], Vec::as_slice);
        let weights = profile["weights"].as_array().map_or(0, Vec::len);
        assert_eq!(samples.len(), weights, "{what}: one weight per sample");
        let indices = samples
            .iter()
            .flat_map(|s| s.as_array().into_iter().flatten());
        for index in indices {
            assert!(
                index.as_u64().is_some_and(|i| i < frames as u64),
                "{what}: frame index {index} of {frames} frames"
            );
        }
    }
}

/// Checks the report.json and speedscope.json in an output directory and
/// in each of its windows. Only regular files are read: a link a test
/// planted is not bpfprof's output.
pub fn check_outputs(dir: &Path) {
    type Check = fn(&str, &str);
    let checks: [(&str, Check); 2] = [
        ("report.json", check_report),
        ("speedscope.json", check_speedscope),
    ];
    for (name, check) in checks {
        let path = dir.join(name);
        let regular = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        if regular {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            check(&text, &path.display().to_string());
        }
    }
    let windows = dir.join("windows");
    if std::fs::symlink_metadata(&windows).is_ok_and(|m| m.is_dir()) {
        for window in std::fs::read_dir(&windows).into_iter().flatten().flatten() {
            if window.file_type().is_ok_and(|t| t.is_dir()) {
                check_outputs(&window.path());
            }
        }
    }
}
