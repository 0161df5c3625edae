//! The testkit's one error type.

/// Why a test component could not be provided.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A program the component needs is not installed.
    #[error("{program} not found: {hint}")]
    Missing { program: String, hint: String },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {output}")]
    Command { command: String, status: String, output: String },
    /// A component did not become ready in time.
    #[error("{0} did not become ready in time")]
    NotReady(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Other(String),
}
