//! Files written under sudo belong to the user who ran sudo, not to root,
//! so they can be moved, edited and deleted without sudo. Only what bpfprof
//! creates is handed over, by descriptor (see `output::dir`).

/// The invoking user's uid and gid when running under sudo.
pub(crate) fn invoking_user() -> Option<(u32, u32)> {
    let id = |name: &str| std::env::var(name).ok()?.parse::<u32>().ok();
    let (uid, gid) = (id("SUDO_UID")?, id("SUDO_GID")?);
    // SUDO_UID=0 means root ran sudo: nothing to hand over.
    (uid != 0).then_some((uid, gid))
}
