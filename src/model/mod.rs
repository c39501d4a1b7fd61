//! The values every layer passes around and records: a resolved commit and
//! a rehearsal's report, a constraint violation, a lock's record, a history
//! record. Plain data with its wording; imports `base` and `config` only, so
//! `error` can carry these values without depending on who makes them.

pub mod commit;
pub mod history;
pub mod lock;
pub mod violation;
pub mod written;
