//! Names as every output can show them. Process and thread names, symbol
//! names (a JIT's perf map too) and file names are chosen by whoever runs
//! or builds the program, and bpfprof prints them on root's terminal and
//! into XML (the flame graphs): a control character could move the cursor
//! or rewrite what root sees, and most of them make the SVG invalid. They
//! are escaped where names enter the profile model, so no renderer can
//! forget to.

use std::borrow::Cow;

/// `name` with every character a terminal or an XML parser would act on
/// written out as an escape: `\x1b` for ASCII controls, `\u{202e}` for the
/// others. A backslash is left as it is, so escaping twice changes nothing
/// (names read back from a saved run go through here again); the price is
/// that a name spelling out `\x1b` itself looks the same as an escaped one.
pub(crate) fn printable(name: &str) -> Cow<'_, str> {
    if !name.chars().any(needs_escape) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if c.is_ascii() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    Cow::Owned(out)
}

/// Replaces `name` with its printable form when it needs one.
pub(crate) fn make_printable(name: &mut String) {
    if let Cow::Owned(escaped) = printable(name) {
        *name = escaped;
    }
}

fn needs_escape(c: char) -> bool {
    // C0, DEL and C1 controls (the C1 CSI also starts terminal sequences);
    // the two non-characters XML forbids; the marks that reorder the rest
    // of a line on display, and the Unicode line breaks.
    c.is_control()
        || matches!(
            c,
            '\u{fffe}'
                | '\u{ffff}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Frame, FrameKind, Profile, StackSite, WakeSite};

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(printable("main"), Cow::Borrowed("main")));
        assert_eq!(
            printable("std::vec::Vec<T>::push &'a \"x\" é"),
            "std::vec::Vec<T>::push &'a \"x\" é"
        );
        assert_eq!(
            printable("\x1b[31mred\x01\x00\x7f"),
            "\\x1b[31mred\\x01\\x00\\x7f"
        );
        assert_eq!(printable("a\tb\nc"), "a\\x09b\\x0ac");
        assert_eq!(printable("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(printable("x\u{ffff}"), "x\\u{ffff}");
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        let once = printable("\x1b[1mbold\u{202e}").into_owned();
        assert_eq!(printable(&once), once);
        let mut name = String::from("ok");
        make_printable(&mut name);
        assert_eq!(name, "ok");
    }

    #[test]
    fn names_enter_the_model_printable() {
        let mut profile = Profile::default();
        profile.name_process(7, || "\x1b[31mapp".into());
        profile.name_thread(7, 8, || "t\x01".into());
        let id = profile.frames.intern(Frame {
            name: "f\x1b]0;title\x07".into(),
            module: Some("lib\u{202e}os.so".into()),
            kind: FrameKind::User,
        });
        profile
            .frames
            .note_module_path("lib\u{202e}os.so", "/tmp/\x1blib");
        profile.add_wake(
            WakeSite {
                blocked: StackSite::default(),
                waker: StackSite::default(),
                waker_name: "w\u{9b}".into(),
            },
            1,
        );
        assert_eq!(profile.process_name(7), "\\x1b[31mapp");
        assert_eq!(profile.threads[&8].name, "t\\x01");
        let frame = profile.frames.get(id);
        assert_eq!(frame.name, "f\\x1b]0;title\\x07");
        assert_eq!(frame.module.as_deref(), Some("lib\\u{202e}os.so"));
        assert_eq!(
            profile.frames.module_paths()["lib\\u{202e}os.so"],
            "/tmp/\\x1blib"
        );
        assert_eq!(profile.wakes.keys().next().unwrap().waker_name, "w\\u{9b}");
        // The same frame given again, raw, is the same frame.
        let again = profile.frames.intern(Frame {
            name: "f\x1b]0;title\x07".into(),
            module: Some("lib\u{202e}os.so".into()),
            kind: FrameKind::User,
        });
        assert_eq!(again, id);
    }
}
