//! The command line's vocabulary: arguments (`args`), exit codes (`exit`)
//! and the one printer every message goes through (`output`). Imports only
//! `base`; it names commands but never runs them (that is `commands`).

pub mod args;
pub mod exit;
pub mod fleet;
pub mod output;
