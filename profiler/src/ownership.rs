//! Files written under sudo belong to the user who ran sudo, not to root,
//! so they can be moved, edited and deleted without sudo.

use std::{os::unix::fs::chown, path::Path};

/// The invoking user's uid and gid when running under sudo.
pub fn invoking_user() -> Option<(u32, u32)> {
    let id = |name: &str| std::env::var(name).ok()?.parse::<u32>().ok();
    let (uid, gid) = (id("SUDO_UID")?, id("SUDO_GID")?);
    // SUDO_UID=0 means root ran sudo: nothing to hand over.
    (uid != 0).then_some((uid, gid))
}

/// Gives `path` and everything below it to the invoking user; best effort.
pub fn give_to_invoking_user(path: &Path) {
    if let Some((uid, gid)) = invoking_user() {
        chown_tree(path, uid, gid);
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let _ = chown(path, Some(uid), Some(gid));
    if path.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for entry in entries.flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}
