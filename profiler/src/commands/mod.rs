//! Subcommands that do not profile: `diff` and `report` work on saved
//! profiles, `doctor` on the machine, `man` prints the manual.

pub(crate) mod diff;
pub(crate) mod doctor;
pub(crate) mod man;
pub(crate) mod report;
