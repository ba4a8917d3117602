//! What can go wrong in the store, and whether it is the database being away (503) or a fault.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("applying migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database has not applied every migration this build needs; run `twenty-mirror migrate`")]
    MigrationsPending,
    #[error("the database holds a value the mirror cannot read: {0}")]
    Corrupt(String),
    #[error("the reconciler's lease expired while it ran; another reconciler may have taken over")]
    LockLost,
}

impl StoreError {
    /// Whether the database could not be reached or is refusing work for now (the answer is 503),
    /// as opposed to a fault in what we asked of it.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database { source, .. } = self else { return false };
        match source {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(e) => {
                // A FATAL error ends the session: the server refused or dropped the connection
                // (shutting down, not accepting connections, too many clients).
                let fatal = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some_and(|pg| {
                    matches!(
                        pg.severity(),
                        sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
                    )
                });
                let code = e.code().unwrap_or_default();
                // PostgreSQL: connection exceptions (08), insufficient resources (53), operator
                // intervention such as a shutdown or a terminated backend (57). SQLite: BUSY (5) and
                // LOCKED (6), which outlast the busy timeout only when something holds the database.
                fatal
                    || code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57")
                    || matches!(code.as_ref(), "5" | "6" | "517" | "262")
            }
            _ => false,
        }
    }
}

/// Names what the store was doing when sqlx failed: `query.await.context("reading a record")?`.
pub(crate) trait Context<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Database { context, source })
    }
}
