//! Everything that happens on a host: the SSH connection (`host`), a site's
//! folders and the scripts that build releases in them (`release`), running
//! a step on every host of an environment (`site`), the deploy lock
//! (`locking`), the host-side activation program (`activation`) and health
//! checks (`health`). Imports `base`, `cli`, `config`, `model`, `error` and
//! `ledger`; never `data`, `pipeline` or `commands`.

pub mod activation;
pub mod batch;
pub mod health;
pub mod host;
pub mod inspect;
pub mod locking;
pub mod pool;
pub mod prune;
pub mod release;
pub mod site;
