//! Moving a commit through environments: a deploy's phases (`deploy`),
//! verification (`verify`), gates and promotion through the pipeline
//! (`promote`), and the dry run (`plan`). Imports every layer below; only
//! `commands` imports it.

pub mod deploy;
pub mod plan;
pub mod promote;
pub mod summary;
pub mod verify;
