//! Python frames end to end, for every CPython on these machines: pyenv's
//! 3.8–3.13 (shared libpython) and Debian's /usr/bin/python3.11 (static).
//! The workloads are in tests/workloads/python; their functions are found
//! in the folded stacks as `function (file.py:line)`.

use std::path::{Path, PathBuf};

use integration_tests::{
    Folded, Run,
    pprof::{self, messages, varint_field},
    profile, require_bpf,
};

/// A Python frame's function, from its folded name `function (file:line)`.
fn function(frame: &str) -> Option<&str> {
    frame.strip_suffix(')')?.split_once(" (").map(|(f, _)| f)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("workloads/python")
        .join(name)
}

/// Runs `script args` under `python`, profiled with `extra`.
fn run_python(test: &str, python: &str, extra: &[&str], script_name: &str, args: &[&str]) -> Run {
    assert!(Path::new(python).exists(), "{python} is missing");
    let test = format!("{test}-{}", process_name(python));
    let script = script(script_name);
    let mut argv: Vec<&str> = extra.to_vec();
    argv.extend(["--", python, script.to_str().unwrap()]);
    argv.extend(args);
    let run = profile(&test, &argv);
    run.assert_success();
    run
}

/// Samples (or µs) of `process` whose stack has each of `functions`, in
/// this order from the root, with `below` any frames under the last.
fn chain(folded: &Folded, process: &str, functions: &[&str]) -> u64 {
    folded
        .of_process(process)
        .filter(|(frames, _)| {
            let mut at = 0;
            functions.iter().all(|wanted| {
                let found = frames[at..]
                    .iter()
                    .position(|f| function(f) == Some(wanted));
                found.map(|i| at += i + 1).is_some()
            })
        })
        .map(|(_, n)| n)
        .sum()
}

/// The process name bpfprof gives the interpreter: its comm.
fn process_name(python: &str) -> String {
    Path::new(python)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take(15)
        .collect()
}

fn split_75_25(python: &str) {
    let _bpf = require_bpf();
    let run = run_python("py-ratio", python, &["-F", "997"], "ratio.py", &["3"]);
    let folded = run.folded();
    let process = process_name(python);
    let total = folded.samples_of(&process);
    let a = chain(&folded, &process, &["<module>", "driver", "hot_a", "work"]);
    let b = chain(&folded, &process, &["<module>", "driver", "hot_b", "work"]);
    assert!(
        a + b >= 1000,
        "too few samples to judge: {a} + {b} of {total}"
    );
    let share = a as f64 * 100.0 / (a + b) as f64;
    assert!(
        (72.0..=78.0).contains(&share),
        "hot_a {share:.1}% ({a} / {b})"
    );
    // The whole chain: the native frames above the eval loop first.
    let under_eval = folded
        .of_process(&process)
        .filter(|(frames, _)| {
            let eval = frames.iter().position(|f| f == "_PyEval_EvalFrameDefault");
            let module = frames.iter().position(|f| function(f) == Some("<module>"));
            matches!((eval, module), (Some(e), Some(m)) if e < m)
        })
        .map(|(_, n)| n)
        .sum::<u64>();
    assert!(
        under_eval * 100 >= (a + b) * 95,
        "{under_eval} of {} samples have the eval loop above <module>",
        a + b
    );
    assert!(
        (a + b) * 100 >= total * 90,
        "{} of {total} samples in hot_a or hot_b under driver",
        a + b
    );
    pprof_names_the_file_and_line(&run, "hot_a", "work(3 * units)");
}

/// profile.pb.gz has `function` as a Function of its own, with the script
/// as its file, and its calls at the line of `call` in Line.
fn pprof_names_the_file_and_line(run: &Run, function: &str, call: &str) {
    let text = std::fs::read_to_string(script("ratio.py")).unwrap();
    let expected = text.lines().position(|l| l.contains(call)).unwrap() as u64 + 1;
    let bytes = pprof::read(&run.dir.join("profile.pb.gz"));
    // profile.proto: function 5 (id 1, name 2, filename 4), location 4
    // (line 4: function_id 1, line 2), string_table 6.
    let strings: Vec<String> = messages(&bytes, 6)
        .into_iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let ids: Vec<u64> = messages(&bytes, 5)
        .into_iter()
        .filter(|f| strings[varint_field(f, 2) as usize] == function)
        .filter(|f| strings[varint_field(f, 4) as usize].ends_with("workloads/python/ratio.py"))
        .map(|f| varint_field(f, 1))
        .collect();
    assert!(!ids.is_empty(), "no Function {function} in ratio.py");
    let lines: Vec<u64> = messages(&bytes, 4)
        .into_iter()
        .flat_map(|location| messages(location, 4))
        .filter(|line| ids.contains(&varint_field(line, 1)))
        .map(|line| varint_field(line, 2))
        .collect();
    assert!(
        lines.contains(&expected),
        "{function} at lines {lines:?}, not {expected}"
    );
}

macro_rules! for_every_python {
    ($check:ident: $($name:ident => $python:expr),* $(,)?) => {
        mod $check {
            $(
                #[test]
                #[ignore = "needs root and BPF"]
                fn $name() {
                    super::$check($python);
                }
            )*
        }
    };
}

macro_rules! every_python {
    ($check:ident) => {
        for_every_python!($check:
            python_3_8 => "/root/.pyenv/versions/3.8.18/bin/python3.8",
            python_3_9 => "/root/.pyenv/versions/3.9.18/bin/python3.9",
            python_3_10 => "/root/.pyenv/versions/3.10.13/bin/python3.10",
            python_3_11 => "/root/.pyenv/versions/3.11.7/bin/python3.11",
            python_3_12 => "/root/.pyenv/versions/3.12.1/bin/python3.12",
            python_3_13 => "/root/.pyenv/versions/3.13.0/bin/python3.13",
            debian_python_3_11 => "/usr/bin/python3.11",
        );
    };
}

every_python!(split_75_25);

fn four_threads(python: &str) {
    let _bpf = require_bpf();
    let run = run_python("py-threads", python, &["-F", "499"], "threads.py", &["2"]);
    let folded = run.folded();
    let process = process_name(python);
    let names = ["thread_north", "thread_south", "thread_east", "thread_west"];
    let counts = names.map(|f| chain(&folded, &process, &[f, "spin"]));
    let total: u64 = counts.iter().sum();
    assert!(total >= 200, "too few samples to judge: {counts:?}");
    for (name, count) in names.iter().zip(counts) {
        // Four threads share the GIL: each runs about a quarter of the time.
        assert!(
            count * 100 >= total * 15,
            "{name}: {count} of {total} samples ({counts:?})"
        );
    }
}

fn native_under_python(python: &str) {
    let _bpf = require_bpf();
    let run = run_python("py-native", python, &["-F", "499"], "native.py", &["2"]);
    let folded = run.folded();
    let process = process_name(python);
    let total = folded.samples_of(&process);
    // zlib's deflate, called by compress_all through the zlib module.
    let native = folded
        .of_process(&process)
        .filter(|(frames, _)| {
            let caller = frames
                .iter()
                .position(|f| function(f) == Some("compress_all"));
            let deflate = frames.iter().rposition(|f| f.starts_with("deflate"));
            matches!((caller, deflate), (Some(c), Some(d)) if c < d)
        })
        .map(|(_, n)| n)
        .sum::<u64>();
    assert!(
        native * 100 >= total * 70,
        "{native} of {total} samples in deflate under compress_all"
    );
}

fn off_cpu_2_to_1(python: &str) {
    let _bpf = require_bpf();
    let run = run_python("py-sleeps", python, &["--off-cpu"], "sleeps.py", &["3"]);
    let folded = Folded::read(&run.dir.join("off-cpu.folded"));
    let process = process_name(python);
    let long = chain(&folded, &process, &["driver", "sleep_long"]) as f64;
    let short = chain(&folded, &process, &["driver", "sleep_short"]) as f64;
    assert!(short > 0.0, "no off-CPU time under sleep_short");
    let ratio = long / short;
    assert!(
        (1.8..=2.2).contains(&ratio),
        "sleep_long / sleep_short = {ratio:.2}"
    );
}

fn short_lived(python: &str) {
    let _bpf = require_bpf();
    let run = run_python("py-short", python, &["-F", "997"], "short.py", &[]);
    let folded = run.folded();
    let process = process_name(python);
    // 200 ms at 997 Hz: about 200 samples. Walked from its first
    // milliseconds (libpython is mapped a moment after the exec), not from
    // when bpfprof's loop has nothing else to do.
    let named = chain(&folded, &process, &["<module>", "short_lived_python"]);
    assert!(named >= 100, "{named} samples named in a 200 ms process");
}

every_python!(four_threads);
every_python!(native_under_python);
every_python!(off_cpu_2_to_1);
every_python!(short_lived);

/// A Python bpfprof cannot walk (2.7 is on these machines) keeps its native
/// frames, has no Python frame made up, and is named with the reason.
#[test]
#[ignore = "needs root and BPF"]
fn an_interpreter_not_supported_keeps_native_frames_and_is_named() {
    let python = "/root/.pyenv/versions/2.7.18/bin/python2.7";
    let _bpf = require_bpf();
    let run = run_python("py-unsupported", python, &["-F", "499"], "ratio.py", &["2"]);
    let folded = run.folded();
    let total = folded.samples_of("python2.7");
    let native = folded
        .of_process("python2.7")
        .filter(|(frames, _)| frames.iter().any(|f| f == "PyEval_EvalFrameEx"))
        .map(|(_, n)| n)
        .sum::<u64>();
    assert!(
        native * 100 >= total * 90,
        "{native} of {total} samples in the eval loop"
    );
    let python_frames: Vec<_> = folded
        .of_process("python2.7")
        .flat_map(|(frames, _)| frames.iter())
        .filter(|f| f.contains(".py:") || f.as_str() == "[python code]")
        .collect();
    assert!(python_frames.is_empty(), "{python_frames:?}");
    let errors = &run.report()["errors"];
    assert_eq!(errors["python_processes_not_walked"], 1, "{errors}");
    let named = errors["python_processes_not_walked_by_process"]
        .as_object()
        .unwrap();
    assert!(
        named
            .iter()
            .all(|(process, why)| process.starts_with("python2.7 (pid ")
                && why.as_str().unwrap().contains("CPython 2.7")),
        "{named:?}"
    );
    let quality = run.stdout();
    assert!(
        quality.contains("Python processes without Python frames"),
        "{quality}"
    );
}

/// A Python process already running when bpfprof starts, found by `--pid`
/// and system-wide alike: its 75/25 split under its Python caller.
#[test]
#[ignore = "needs root and BPF"]
fn a_running_python_is_walked_by_pid_and_system_wide() {
    let python = "/root/.pyenv/versions/3.12.1/bin/python3.12";
    let _bpf = require_bpf();
    let running = integration_tests::Workload(
        std::process::Command::new(python)
            .arg(script("ratio.py"))
            .arg("30")
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = running.pid().to_string();
    for (test, target) in [
        ("py-by-pid", vec!["--pid", pid.as_str()]),
        ("py-all", vec![]),
    ] {
        let mut args = vec!["-F", "997", "-d", "3", "--format", "folded,speedscope"];
        args.extend(&target);
        let run = profile(test, &args);
        run.assert_success();
        // speedscope: the function, its file's path and its line.
        let speedscope: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.dir.join("speedscope.json")).unwrap())
                .unwrap();
        let frames = speedscope["shared"]["frames"].as_array().unwrap();
        assert!(
            frames.iter().any(|f| f["name"] == "hot_a"
                && f["file"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("workloads/python/ratio.py"))
                && f["line"].as_u64().is_some()),
            "{test}: no hot_a with its file and line in speedscope.json"
        );
        let folded = run.folded();
        let a = chain(
            &folded,
            "python3.12",
            &["<module>", "driver", "hot_a", "work"],
        );
        let b = chain(
            &folded,
            "python3.12",
            &["<module>", "driver", "hot_b", "work"],
        );
        assert!(a + b >= 500, "{test}: too few samples to judge: {a} + {b}");
        let share = a as f64 * 100.0 / (a + b) as f64;
        assert!(
            (72.0..=78.0).contains(&share),
            "{test}: hot_a {share:.1}% ({a} / {b})"
        );
    }
}
