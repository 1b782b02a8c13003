use super::*;
use crate::cli::{Cli, Format};
use clap::Parser;

fn parse(args: &[&str]) -> Result<Config, String> {
    let cli = Cli::try_parse_from(std::iter::once("bpfprof").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    let mut profile = cli.profile;
    profile.separator = args.contains(&"--");
    validate(
        profile,
        &Limits {
            max_sample_rate: 1000,
            cpus: 2,
        },
        // 42 is a process, 43 one of its threads.
        |pid| [42, 43].contains(&pid).then_some(42),
        || PathBuf::from("default"),
    )
}

#[test]
fn defaults_profile_everything_at_99_hz() {
    let config = parse(&[]).unwrap();
    assert_eq!(config.target, Target::AllProcesses);
    assert_eq!(config.freq, 99);
    assert_eq!(config.interval, Duration::from_secs(1));
    assert_eq!(config.duration, None);
    assert_eq!(config.output_dir, PathBuf::from("default"));
    assert!(config.default_output && !config.force);
}

#[test]
fn frequency_must_be_within_the_kernel_limit() {
    assert!(parse(&["--freq", "0"]).unwrap_err().contains("--freq 0"));
    let err = parse(&["--freq", "1001"]).unwrap_err();
    assert!(err.contains("between 1 and 1000"), "{err}");
    assert_eq!(parse(&["--freq", "1000"]).unwrap().freq, 1000);
}

#[test]
fn durations_accept_units_and_reject_zero() {
    assert_eq!(
        parse(&["-d", "1.5"]).unwrap().duration,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        parse(&["-d", "500ms"]).unwrap().duration,
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        parse(&["-d", "2m"]).unwrap().duration,
        Some(Duration::from_secs(120))
    );
    assert!(parse(&["-d", "0"]).unwrap_err().contains("greater than 0"));
    assert!(
        parse(&["-d", "ten"])
            .unwrap_err()
            .contains("not a duration")
    );
    assert!(parse(&["-d", "-1"]).is_err());
}

#[test]
fn missing_pids_are_named() {
    assert_eq!(
        parse(&["--pid", "42"]).unwrap().target,
        Target::Pids(vec![42])
    );
    let err = parse(&["--pid", "42,44"]).unwrap_err();
    assert_eq!(err, "--pid 44: no such process");
    let err = parse(&["--pid", "43"]).unwrap_err();
    assert_eq!(err, "--pid 43 is a thread of process 42; use --pid 42");
    assert!(parse(&["--pid", "abc"]).is_err());
}

#[test]
fn a_command_after_the_separator_is_the_target() {
    let config = parse(&["--", "sleep", "1"]).unwrap();
    assert_eq!(
        config.target,
        Target::Command(vec!["sleep".into(), "1".into()])
    );
    assert!(parse(&["--pid", "42", "--", "sleep"]).is_err());
    assert_eq!(
        parse(&["--"]).unwrap_err(),
        "`--` must be followed by the COMMAND to run"
    );
}

#[test]
fn off_cpu_settings_are_checked() {
    assert_eq!(parse(&[]).unwrap().off_cpu, None);
    let config = parse(&["--off-cpu"]).unwrap();
    let off = config.off_cpu.unwrap();
    assert_eq!(
        (off.wakers, off.min_block_us, off.max_block_us),
        (false, 1, u64::MAX)
    );
    assert!(
        parse(&["--wakers"]).unwrap().off_cpu.unwrap().wakers,
        "--wakers implies --off-cpu"
    );
    let off = parse(&["--off-cpu", "--min-block-us", "10", "--max-block-us", "20"])
        .unwrap()
        .off_cpu;
    assert_eq!(
        off.map(|o| (o.min_block_us, o.max_block_us)),
        Some((10, 20))
    );
    assert_eq!(
        parse(&["--min-block-us", "5"]).unwrap_err(),
        "--min-block-us needs --off-cpu"
    );
    let err = parse(&["--off-cpu", "--min-block-us", "30", "--max-block-us", "20"]).unwrap_err();
    assert!(err.contains("above --max-block-us"), "{err}");
}

#[test]
fn map_sizes_scale_with_the_machine_and_can_be_set() {
    let small = MapSizes::scaled(2, 99, Duration::from_secs(1));
    assert_eq!((small.stack_map, small.max_stacks), (16384, 65536));
    // A busy 64-CPU machine at 99 Hz: 6336 samples a second, each with
    // up to two stacks, in buckets four times as many.
    let big = MapSizes::scaled(64, 99, Duration::from_secs(1));
    assert_eq!((big.stack_map, big.max_stacks), (32768, 65536));
    let config = parse(&["--stack-map-size", "4096", "--max-stacks", "2048"]).unwrap();
    assert_eq!(
        (config.map_sizes.stack_map, config.map_sizes.max_stacks),
        (4096, 2048)
    );
    assert!(
        parse(&["--stack-map-size", "10"])
            .unwrap_err()
            .contains("--stack-map-size")
    );
    let naming = parse(&["--no-inline", "--raw-names"]).unwrap().naming;
    assert_eq!(
        naming,
        Naming {
            inline: false,
            demangle: false
        }
    );
}

#[test]
fn formats_windows_and_json_are_checked() {
    let config = parse(&[]).unwrap();
    assert_eq!(
        config.render.format,
        [Format::Folded, Format::Svg, Format::Json, Format::Pprof]
    );
    let config = parse(&["--format", "pprof,speedscope", "--json"]).unwrap();
    assert_eq!(config.render.format, [Format::Pprof, Format::Speedscope]);
    assert!(config.render.json);
    assert!(parse(&["--format", "png"]).is_err());
    for bad in ["inf", "NaN", "-1", "wide", "-1%", "inf%", "%", "5%%"] {
        let err = parse(&[&format!("--min-width={bad}")]).unwrap_err();
        assert!(err.contains("--min-width") && err.contains(bad), "{err}");
    }
    let min_width = |arg: &str| parse(&["--min-width", arg]).unwrap().render.min_width;
    assert_eq!(min_width("0"), MinWidth::Pixels(0.0));
    assert_eq!(min_width("2.5"), MinWidth::Pixels(2.5));
    assert_eq!(min_width("0.5%"), MinWidth::Percent(0.5));
    assert_eq!(parse(&[]).unwrap().render.min_width, MinWidth::Pixels(0.1));
    let config = parse(&["--window", "10", "--keep", "3"]).unwrap();
    assert_eq!(
        (config.window, config.keep),
        (Some(Duration::from_secs(10)), Some(3))
    );
    assert!(parse(&["--keep", "3"]).is_err(), "--keep needs --window");
    assert!(
        parse(&["--window", "0.5"])
            .unwrap_err()
            .contains("shorter than --interval")
    );
    assert!(
        parse(&["--window", "10", "--keep", "0"])
            .unwrap_err()
            .contains("--keep")
    );
}

#[test]
fn force_goes_with_a_named_output() {
    let err = parse(&["--force"]).unwrap_err();
    assert!(err.contains("--output"), "{err}");
    let config = parse(&["-o", "out", "--force"]).unwrap();
    assert!(config.force && !config.default_output);
    assert_eq!(config.output_dir, PathBuf::from("out"));
}

#[test]
fn subcommands_parse() {
    let cli = Cli::try_parse_from([
        "bpfprof",
        "diff",
        "a.folded",
        "b.folded",
        "--threshold",
        "2",
    ])
    .unwrap();
    assert!(matches!(cli.command, Some(crate::cli::Command::Diff(ref d)) if d.threshold == 2.0));
    let cli = Cli::try_parse_from(["bpfprof", "report", "dir", "--top", "5"]).unwrap();
    assert!(matches!(cli.command, Some(crate::cli::Command::Report(ref r)) if r.render.top == 5));
    let cli = Cli::try_parse_from(["bpfprof", "--", "diff"]).unwrap();
    assert!(cli.command.is_none() && cli.profile.command == ["diff"]);
}
