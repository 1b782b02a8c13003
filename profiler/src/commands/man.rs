//! `bpfprof man`: one page with everything, so `bpfprof man > bpfprof.1`
//! installs the whole manual. clap_mangen's own page would send readers to
//! a page per subcommand (bpfprof-diff(1)...) that nothing installs, leave
//! the subcommands' options out, and fill the examples into prose; here
//! each subcommand gets a subsection with its synopsis and options, and
//! the examples stay one to a line, as written.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_mangen::Man;

use crate::cli::{Cli, EXAMPLES, OUTPUTS};

/// The page, in roff.
pub(crate) fn page() -> io::Result<Vec<u8>> {
    // `bpfprof help` only repeats --help: it gets no subsection.
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let man = Man::new(cli.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    page.extend(section(|w| man.render_name_section(w))?);
    page.extend(section(|w| man.render_synopsis_section(w))?);
    page.extend(section(|w| man.render_description_section(w))?);
    page.extend(section(|w| man.render_options_section(w))?);
    writeln!(page, ".SH SUBCOMMANDS")?;
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand(&mut page, sub)?;
    }
    writeln!(page, ".SH EXAMPLES")?;
    verbatim(&mut page, EXAMPLES)?;
    writeln!(page, ".SH FILES")?;
    writeln!(page, "{}", text_line(OUTPUTS))?;
    page.extend(section(|w| man.render_version_section(w))?);
    Ok(page)
}

/// A subcommand's subsection: what it does, its synopsis, its options.
fn subcommand(page: &mut Vec<u8>, sub: &clap::Command) -> io::Result<()> {
    let name = sub.get_bin_name().unwrap_or_else(|| sub.get_name());
    writeln!(page, ".SS \"{}\"", escape(name))?;
    if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
        writeln!(page, "{}", text_line(&about.to_string()))?;
    }
    let man = Man::new(sub.clone());
    // Its synopsis and options, under this subsection rather than as
    // sections of their own.
    for part in [
        section(|w| man.render_synopsis_section(w))?,
        section(|w| man.render_options_section(w))?,
    ] {
        let text = String::from_utf8_lossy(&part).into_owned();
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with(".SH ")).collect();
        if !body.is_empty() {
            writeln!(page, ".PP\n{}", body.join("\n"))?;
        }
    }
    Ok(())
}

/// One of clap_mangen's sections without the preamble each one repeats
/// (it defines the apostrophe string, already defined by the title's).
fn section(render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    render(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(kept.into_bytes())
}

/// Lines shown as written: no filling, no justification; blank lines kept.
fn verbatim(page: &mut Vec<u8>, text: &str) -> io::Result<()> {
    writeln!(page, ".nf")?;
    for line in text.lines() {
        if line.trim().is_empty() {
            writeln!(page, ".sp")?;
        } else {
            writeln!(page, "{}", not_a_request(escape(line)))?;
        }
    }
    writeln!(page, ".fi")
}

/// Text to fill as one paragraph.
fn text_line(text: &str) -> String {
    not_a_request(escape(
        &text.split_whitespace().collect::<Vec<_>>().join(" "),
    ))
}

/// A line starting with `.` or `'` would be read as a request.
fn not_a_request(line: String) -> String {
    if line.starts_with(['.', '\'']) {
        format!("\\&{line}")
    } else {
        line
    }
}

/// Dashes, quotes and backslashes made to print as themselves: roff may
/// print typographic ones, and a flag pasted from the page with a hyphen
/// (U+2010) for its dashes is no flag to the shell.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('\'', "\\(aq")
        .replace('`', "\\(ga")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn roff() -> String {
        String::from_utf8(page().unwrap()).unwrap()
    }

    /// The page as `man` shows it in a terminal, by groff (in groff-base,
    /// which man-db needs); warnings (-ww) fail the test.
    fn rendered(roff: &str) -> String {
        let mut groff = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("groff renders the page as man does: install groff-base");
        groff
            .stdin
            .take()
            .unwrap()
            .write_all(roff.as_bytes())
            .unwrap();
        let out = groff.wait_with_output().unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && warnings.is_empty(), "{warnings}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn examples_are_shown_as_written() {
        let page = rendered(&roff());
        let first = EXAMPLES.lines().next().unwrap();
        let indent = page
            .lines()
            .find_map(|l| l.strip_suffix(first))
            .unwrap_or_else(|| panic!("`{first}` not on a line of its own:\n{page}"));
        let lines: Vec<&str> = page.lines().collect();
        for example in EXAMPLES.lines().filter(|l| !l.is_empty()) {
            let shown = format!("{indent}{example}");
            assert!(
                lines.contains(&shown.as_str()),
                "`{example}` not on a line of its own, indented as the others:\n{page}"
            );
        }
    }

    #[test]
    fn every_page_referenced_is_this_one() {
        let page = rendered(&roff());
        for (at, _) in page.match_indices('(') {
            let section = page[at + 1..].split(')').next().unwrap();
            if section.len() != 1 || !section.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let name = page[..at]
                .rsplit(|c: char| c.is_whitespace() || c == ',')
                .next()
                .unwrap();
            assert_eq!(
                name, "bpfprof",
                "{name}({section}) is no page bpfprof man writes"
            );
        }
    }

    #[test]
    fn every_subcommand_has_its_options() {
        let roff = roff();
        let cli = Cli::command().disable_help_subcommand(true);
        for sub in cli.get_subcommands() {
            let heading = format!(".SS \"bpfprof {}\"", sub.get_name());
            let (_, after) = roff
                .split_once(&heading)
                .unwrap_or_else(|| panic!("no {heading}:\n{roff}"));
            let body = after.split("\n.S").next().unwrap();
            assert!(
                body.contains(&format!("\\fBbpfprof {}\\fR", sub.get_name())),
                "{body}"
            );
            for arg in sub.get_arguments() {
                let shown = match arg.get_long() {
                    Some(long) => format!("\\-\\-{}", escape(long)),
                    None => arg.get_id().to_string().to_uppercase(),
                };
                assert!(
                    body.contains(&shown),
                    "bpfprof {}: {shown} missing:\n{body}",
                    sub.get_name()
                );
            }
        }
    }
}
