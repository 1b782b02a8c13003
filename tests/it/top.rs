//! `bpfprof top` in a real terminal (tmux, 80x24): the busy workload's hot
//! function with its share within 5 s, a screen that refreshes, the keys
//! (s, t, p, o, Enter, q, Ctrl-C), resizes, SIGTERM, and a terminal given
//! back clean; -o writes the outputs, and nothing is written without it.

use std::{path::Path, thread, time::Duration};

use integration_tests::{Workload, bpfprof_bin, output_dir, require_bpf, tmux::Tmux};

const SOON: Duration = Duration::from_secs(5);

/// `bpfprof top ARGS` in a new 80x24 terminal, from `dir`.
fn top(name: &str, dir: &Path, args: &str) -> Tmux {
    std::fs::create_dir_all(dir).expect("the test's directory");
    let command = format!(
        "cd {} && {} top {args}",
        dir.display(),
        bpfprof_bin().display()
    );
    Tmux::start(name, 80, 24, &command)
}

/// The share printed on the table row of `function`, if it is shown.
fn self_share(screen: &str, function: &str) -> Option<f64> {
    let row = screen
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some(function))?;
    row.split_whitespace()
        .nth(1)?
        .trim_end_matches('%')
        .parse()
        .ok()
}

/// The table's rows, as (function, whole row): the lines under its
/// header up to the first blank, the function read at its column (the
/// numbers before it may be times, of two words).
fn table_rows(screen: &str) -> Vec<(String, String)> {
    let mut lines = screen.lines().skip_while(|l| !l.contains("function ("));
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let at = header
        .find("function (")
        .map_or(0, |b| header[..b].chars().count());
    lines
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let function: String = l.chars().skip(at).collect();
            let function = function.split_whitespace().next()?.to_string();
            Some((function, l.to_string()))
        })
        .collect()
}

fn table_functions(screen: &str) -> Vec<String> {
    table_rows(screen).into_iter().map(|(f, _)| f).collect()
}

fn table_row(screen: &str, function: &str) -> Option<String> {
    table_rows(screen)
        .into_iter()
        .find(|(f, _)| f == function)
        .map(|(_, row)| row)
}

/// Types one key and lets the view draw it (Escape alone: followed at
/// once by another key it would read as Alt).
fn key(term: &Tmux, key: &str) {
    term.keys(&[key]);
    thread::sleep(Duration::from_millis(400));
}

/// Quits with q and checks the terminal is given back: status 0, the
/// normal screen, the cursor shown, none of the view left on it.
fn quit_cleanly(term: &Tmux) {
    key(term, "q");
    let screen = term.wait_for("the exit status", SOON, |s| s.contains("exited "));
    assert!(screen.contains("exited 0"), "{screen}");
    assert_eq!(
        term.format("#{alternate_on}"),
        "0",
        "alternate screen left on"
    );
    assert_eq!(term.format("#{cursor_flag}"), "1", "cursor hidden");
    assert!(
        !screen.contains("self%"),
        "the view is left on screen:\n{screen}"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn shows_the_hot_function_with_its_share_and_keeps_refreshing() {
    let _bpf = require_bpf();
    let ratio = Workload::start("wl-ratio", &[]);
    let dir = output_dir("top-hot");
    let term = top("top-hot", &dir, &format!("--pid {}", ratio.pid()));
    let first = term.wait_for("hot_a with its share", SOON, |s| {
        self_share(s, "hot_a").is_some_and(|share| share > 0.0)
    });
    assert!(
        first.contains("99 Hz") && first.contains("on-CPU"),
        "{first}"
    );
    // A second later: more samples, and hot_a's share near its 75%.
    thread::sleep(Duration::from_millis(1500));
    let later = term.screen();
    assert_ne!(first, later, "the screen did not change");
    let share = self_share(&later, "hot_a").unwrap_or_else(|| panic!("{later}"));
    assert!(
        (65.0..=85.0).contains(&share),
        "hot_a at {share}%:\n{later}"
    );
    assert!(later.contains("wl-ratio"), "process table: {later}");
    quit_cleanly(&term);
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "nothing is written without -o"
    );
}

#[test]
#[ignore = "needs root and BPF"]
fn s_and_t_sort_by_self_and_total_and_enter_shows_callers_and_callees() {
    let _bpf = require_bpf();
    let ratio = Workload::start("wl-ratio", &[]);
    let term = top(
        "top-sort",
        &output_dir("top-sort"),
        &format!("--pid {}", ratio.pid()),
    );
    term.wait_for("samples", SOON, |s| self_share(s, "hot_b").is_some());
    key(&term, "t");
    let by_total = table_functions(&term.screen());
    assert!(
        ["main", "run_workload", "_start"]
            .iter()
            .any(|f| by_total[..4].contains(&f.to_string())),
        "by total, the callers lead: {by_total:?}"
    );
    key(&term, "s");
    let by_self = table_functions(&term.screen());
    assert_eq!(by_self[..2], ["hot_a", "hot_b"], "by self: {by_self:?}");
    // The cursor starts on the first row: hot_a.
    key(&term, "Enter");
    let detail = term.screen();
    assert!(detail.contains("┌ hot_a ─"), "{detail}");
    let callers = detail
        .lines()
        .skip_while(|l| !l.contains("callers"))
        .nth(1)
        .unwrap_or("");
    assert!(
        callers.contains("run_workload") && callers.contains("100.0%"),
        "{detail}"
    );
    // hot_a calls nothing: its only callees are interrupts that land in it.
    let callees: Vec<f64> = detail
        .lines()
        .skip_while(|l| !l.contains("callees"))
        .skip(1)
        .filter_map(|l| l.split('%').next()?.split_whitespace().last()?.parse().ok())
        .collect();
    assert!(
        detail.contains("calls no function") || callees.iter().all(|&share| share < 10.0),
        "hot_a's callees: {detail}"
    );
    key(&term, "Escape");
    quit_cleanly(&term);
}

#[test]
#[ignore = "needs root and BPF"]
fn p_filters_to_the_process_chosen_from_the_list() {
    let _bpf = require_bpf();
    let ratio = Workload::start("wl-ratio", &[]);
    let spin = Workload::start("wl-spin", &[]);
    let pids = format!("--pid {},{}", ratio.pid(), spin.pid());
    let term = top("top-p", &output_dir("top-p"), &pids);
    term.wait_for("both processes", SOON, |s| {
        self_share(s, "hot_a").is_some() && self_share(s, "spin_leaf").is_some()
    });
    key(&term, "p");
    let list = term.screen();
    let entries: Vec<&str> = list
        .lines()
        .skip_while(|l| !l.contains("process: "))
        .skip(1)
        .take_while(|l| !l.contains('└'))
        .collect();
    assert!(entries[0].contains("all processes"), "{list}");
    let spin_at = entries
        .iter()
        .position(|l| l.contains(&spin.pid().to_string()) && l.contains("wl-spin"))
        .unwrap_or_else(|| panic!("wl-spin is not listed:\n{list}"));
    for _ in 0..spin_at {
        key(&term, "Down");
    }
    key(&term, "Enter");
    let screen = term.screen();
    assert!(
        screen.contains(&format!("process wl-spin (pid {})", spin.pid())),
        "{screen}"
    );
    let shown = table_functions(&screen);
    assert!(shown.contains(&"spin_leaf".to_string()), "{shown:?}");
    assert!(
        !shown.contains(&"hot_a".to_string()),
        "filtered out: {shown:?}"
    );
    quit_cleanly(&term);
}

#[test]
#[ignore = "needs root and BPF"]
fn o_switches_between_on_cpu_off_cpu_and_wall() {
    let _bpf = require_bpf();
    let sleeps = Workload::start("wl-sleeps", &[]);
    let args = format!("--pid {} --off-cpu", sleeps.pid());
    let term = top("top-o", &output_dir("top-o"), &args);
    term.wait_for("the on-CPU view", SOON, |s| s.contains("function (on-CPU"));
    key(&term, "o");
    // Off-CPU, the sleeps' time, as times: nearly all of it in nanosleep.
    let off = term.wait_for("nanosleep's off-CPU time", SOON, |s| {
        s.contains("function (off-CPU") && table_row(s, "hrtimer_nanosleep").is_some()
    });
    let row = table_row(&off, "hrtimer_nanosleep").unwrap_or_default();
    assert!(row.contains(" s ") || row.contains(" ms "), "times: {row}");
    let total_share: f64 = row
        .split('%')
        .nth(1)
        .and_then(|t| t.split_whitespace().last())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{off}"));
    assert!(total_share > 90.0, "nanosleep's share of the waits: {off}");
    key(&term, "o");
    term.wait_for("the wall view", SOON, |s| s.contains("function (wall"));
    key(&term, "o");
    term.wait_for("on-CPU again", SOON, |s| s.contains("function (on-CPU"));
    quit_cleanly(&term);
}

#[test]
#[ignore = "needs root and BPF"]
fn follows_resizes_and_gives_the_terminal_back_on_ctrl_c_and_sigterm() {
    let _bpf = require_bpf();
    let ratio = Workload::start("wl-ratio", &[]);
    let dir = output_dir("top-signals");
    let pid = ratio.pid();
    let term = top(
        "top-resize",
        &dir,
        &format!("--pid {pid} -o {}/out", dir.display()),
    );
    term.wait_for("samples", SOON, |s| self_share(s, "hot_a").is_some());
    term.resize(120, 40);
    let wide = term.wait_for("a wider screen", SOON, |s| {
        s.lines()
            .any(|l| l.chars().count() > 80 && l.contains("module"))
    });
    assert!(wide.lines().count() >= 30, "{wide}");
    term.resize(80, 24);
    key(&term, "C-c");
    let screen = term.wait_for("the exit status", SOON * 3, |s| s.contains("exited "));
    assert!(screen.contains("exited 0"), "{screen}");
    assert_eq!(term.format("#{alternate_on}"), "0");
    // -o: the usual outputs, written when it ends.
    for file in ["report.json", "on-cpu.folded", "on-cpu.svg"] {
        assert!(
            dir.join("out").join(file).is_file(),
            "{file} in {}",
            dir.display()
        );
    }
    drop(term);

    let term = top("top-term", &output_dir("top-term"), &format!("--pid {pid}"));
    term.wait_for("samples", SOON, |s| self_share(s, "hot_a").is_some());
    let bpfprof = term.format("#{pane_pid}");
    let killed = std::process::Command::new("pkill")
        .args(["-TERM", "-P", &bpfprof, "-x", "bpfprof"])
        .status()
        .unwrap();
    assert!(
        killed.success(),
        "no bpfprof under the pane's shell {bpfprof}"
    );
    let screen = term.wait_for("the exit status", SOON * 3, |s| s.contains("exited "));
    assert!(screen.contains("exited 0"), "{screen}");
    assert_eq!(term.format("#{alternate_on}"), "0");
    assert_eq!(term.format("#{cursor_flag}"), "1");
    drop(term);

    // A terminal that goes away (ssh dropped, the window closed) ends it.
    let term = top(
        "top-hangup",
        &output_dir("top-hangup"),
        &format!("--pid {pid}"),
    );
    term.wait_for("samples", SOON, |s| self_share(s, "hot_a").is_some());
    let shell = term.format("#{pane_pid}");
    let bpfprof = String::from_utf8(
        std::process::Command::new("pgrep")
            .args(["-P", &shell, "-x", "bpfprof"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bpfprof = bpfprof.trim().to_string();
    assert!(!bpfprof.is_empty(), "no bpfprof under the pane's shell");
    drop(term);
    let gone = std::time::Instant::now();
    while Path::new(&format!("/proc/{bpfprof}")).exists() {
        assert!(
            gone.elapsed() < SOON * 2,
            "bpfprof {bpfprof} outlived its terminal"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn flags_that_are_for_a_capture_only_are_refused_in_one_line() {
    let dir = output_dir("top-refused");
    for (args, names) in [
        ("--window 5", "--window"),
        ("--otlp http://127.0.0.1:4318", "--otlp"),
        ("--json", "--json"),
    ] {
        let term = top("top-refused", &dir, args);
        let screen = term.wait_for("the exit status", SOON, |s| s.contains("exited "));
        assert!(screen.contains("exited 2"), "{args}: {screen}");
        let said: Vec<&str> = screen
            .lines()
            .filter(|l| l.starts_with("bpfprof: "))
            .collect();
        assert_eq!(said.len(), 1, "{args}: one line: {screen}");
        assert!(said[0].contains(names), "{args}: {screen}");
    }
}
