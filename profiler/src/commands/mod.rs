//! Subcommands that do not profile: `diff` and `report` work on saved
//! profiles, `doctor` on the machine.

pub mod diff;
pub mod doctor;
pub mod report;
