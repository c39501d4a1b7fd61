//! Everything that happens on a host: the SSH connection (`host`, its
//! master process `master`), a site's folders and the scripts that build
//! releases in them (`release`), the pristine source a host keeps as the
//! base of delta uploads (`source`),
//! running a step on every host of an environment (`site`), the deploy
//! lock (`locking`), the host-side activation program (`activation`, and
//! its `handover`), a load balancer's leave and join commands (`balancer`)
//! and health checks (`health`, over `http` from here). Imports `base`, `cli`,
//! `config`, `model`, `error` and `ledger`; never `data`, `pipeline` or
//! `commands`.

pub mod activation;
pub mod balancer;
pub mod batch;
pub mod certificate;
pub mod handover;
pub mod health;
pub mod host;
pub mod http;
pub mod inspect;
pub mod local;
pub mod locking;
pub mod master;
pub mod pool;
pub mod prune;
pub mod release;
pub mod site;
pub mod source;
pub mod tls;
