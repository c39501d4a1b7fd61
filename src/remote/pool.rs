//! The connections of one Gantry process, kept until it ends: a command
//! that comes back to a host (`release` deploys, rehearses and verifies
//! each environment; a promote verifies after it deploys) reuses the SSH
//! master it opened there, so a host costs one handshake per run.

use std::sync::Mutex;

use crate::remote::host::Connection;

/// Open masters not in use, by host address.
static KEPT: Mutex<Vec<(String, Connection)>> = Mutex::new(Vec::new());

/// A kept connection to `host` that still answers, if there is one.
pub async fn take(host: &str) -> Option<Connection> {
    let conn = {
        let mut kept = KEPT.lock().expect("pool lock");
        let i = kept.iter().position(|(h, _)| h == host)?;
        kept.swap_remove(i).1
    };
    if conn.alive().await {
        Some(conn)
    } else {
        conn.close().await;
        None
    }
}

/// Keeps a connection for the rest of the run.
pub fn keep(host: &str, conn: Connection) {
    if let Connection::Ssh(_) = conn {
        KEPT.lock()
            .expect("pool lock")
            .push((host.to_string(), conn));
    }
}

/// How many connections are kept.
pub fn kept() -> usize {
    KEPT.lock().expect("pool lock").len()
}

/// Closes every kept connection: the end of the run.
pub async fn close_all() {
    let all = std::mem::take(&mut *KEPT.lock().expect("pool lock"));
    futures_util::future::join_all(all.into_iter().map(|(_, c)| c.close())).await;
}
