//! Connections for the worker's per-job statements (claim, acknowledge), kept beside the pool.
//!
//! sqlx pings a connection each time it goes back to its pool: a round trip after every
//! statement, on both sides of the socket. The worker's claims and acknowledgements are most
//! of the queue's statements and all of its hot ones; here a connection goes back as it is,
//! once its statement succeeded. After an error, or a statement cut off by a cancelled
//! future, the connection is closed instead, so nothing half-read is ever reused.

use std::sync::Mutex;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::Result;
use crate::postgres::SESSION_SETUP;

/// At most `max` connections, opened when first needed and kept while they work.
#[derive(Debug)]
pub(crate) struct Direct {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    slots: Semaphore,
}

/// A connection lent out. Dropped without `give_back`, it is closed.
pub(crate) struct Lent<'a> {
    conn: Option<PgConnection>,
    home: &'a Direct,
    _slot: SemaphorePermit<'a>,
}

impl Direct {
    pub(crate) fn new(options: PgConnectOptions, max: u32) -> Direct {
        Direct {
            options,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(max.max(1) as usize),
        }
    }

    /// An idle connection, or a new one when none is idle and fewer than `max` are open.
    pub(crate) async fn get(&self) -> Result<Lent<'_>> {
        let slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.lock().pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let mut c = PgConnection::connect_with(&self.options).await?;
                c.execute(SESSION_SETUP).await?;
                c
            }
        };
        Ok(Lent {
            conn: Some(conn),
            home: self,
            _slot: slot,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PgConnection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Lent<'_> {
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        // Only `give_back` takes it, and that consumes the Lent.
        self.conn
            .as_mut()
            .expect("a lent connection is present until given back")
    }

    /// Returns the connection for reuse: only after its statement completed without error.
    pub(crate) fn give_back(mut self) {
        if let Some(c) = self.conn.take() {
            self.home.lock().push(c);
        }
    }
}
