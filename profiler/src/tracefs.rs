//! tracefs: making sure it is mounted, and reading tracepoint field offsets
//! from the events' format files, so no record layout is hard-coded.

use std::{ffi::CString, path::Path};

use anyhow::{Context, Result, bail};

const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs at /sys/kernel/tracing when it is missing (root only).
pub(crate) fn ensure_mounted() -> Result<()> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    let target = CString::new(TRACEFS).expect("no NUL in a constant");
    let fstype = CString::new("tracefs").expect("no NUL in a constant");
    // SAFETY: plain mount(2) with NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "tracefs is not mounted at {TRACEFS} and mounting it failed ({}); run `mount -t tracefs tracefs {TRACEFS}` as root",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Byte offset of `field` in the record of tracepoint `category:event`.
pub(crate) fn field_offset(category: &str, event: &str, field: &str) -> Result<u32> {
    let path = Path::new(TRACEFS).join(format!("events/{category}/{event}/format"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading tracepoint format {}", path.display()))?;
    parse_field_offset(&text, field)
        .with_context(|| format!("{}: no field `{field}`", path.display()))
}

fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';').map(str::trim);
        let decl = parts.next()?.strip_prefix("field:")?;
        let name = decl.rsplit([' ', '*']).next()?.split('[').next()?;
        if name != field {
            return None;
        }
        parts.find_map(|p| p.strip_prefix("offset:")?.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::parse_field_offset;

    const FORK: &str = "name: sched_process_fork
ID: 316
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;
";

    #[test]
    fn finds_offsets_by_exact_field_name() {
        assert_eq!(parse_field_offset(FORK, "child_pid"), Some(44));
        assert_eq!(parse_field_offset(FORK, "parent_pid"), Some(24));
        assert_eq!(parse_field_offset(FORK, "child_comm"), Some(28));
        assert_eq!(parse_field_offset(FORK, "pid"), None);
    }
}
