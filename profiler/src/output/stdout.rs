//! stdout, where the tables, `--json`, `diff`, completions and the man page
//! go. `print!` panics when stdout is a full disk or a closed pipe; here a
//! failed write is one line on stderr and the caller exits non-zero.

use std::io::Write;

/// Writes `text` to stdout; on failure says so on stderr and returns false.
pub(crate) fn print(text: impl AsRef<[u8]>) -> bool {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_ref()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("bpfprof: error: writing to stdout: {e}");
            false
        }
    }
}
