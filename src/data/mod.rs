//! The environment's database and what is built beside it: backups and
//! restores (`database`, `backups`), fingerprints of the real database
//! (`fingerprint`), what a handover runs (`handover`), asking the app which database it opens (`wiring`), the
//! build and migrate steps (`steps`) and rehearsals on a copy
//! (`rehearse`, and what putting a deploy back would do, found there:
//! `foresee`), the schema as objects (`schema`) and how a deploy's
//! migrations are put back (`undo`) and a rollback's (`reversal`). Imports the layers below (`remote` and down); never
//! `pipeline` or `commands`.

pub mod backups;
pub mod checks;
pub mod database;
pub mod env_file;
pub mod fingerprint;
mod foresee;
pub mod handover;
pub mod rehearse;
pub mod restore;
pub mod reversal;
pub mod rows;
pub mod schema;
pub mod steps;
pub mod trial;
pub mod undo;
pub mod wiring;
