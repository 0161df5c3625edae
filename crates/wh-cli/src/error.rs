//! The one error type of `wh` and the exit code each kind maps to (BSD sysexits where one fits).

/// What went wrong, as the user should hear it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Wrong flags or arguments (exit 64).
    #[error("{0}")]
    Usage(String),
    /// Not signed in, or the API refused the credentials (exit 77).
    #[error("{0}")]
    Auth(String),
    /// The API cannot be reached (exit 69).
    #[error("cannot reach the WiseHosting API at {url}: {why}")]
    Unreachable { url: String, why: String },
    /// The API answered with an error (exit 1, or 65 for a validation error).
    #[error("{message}{}", field.as_deref().map(|f| format!(" ({f})")).unwrap_or_default())]
    Api { status: u16, code: String, message: String, field: Option<String> },
    /// A deploy ended without going live (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Local trouble: files, processes, the embedded database (exit 70 or 74).
    #[error("{0}")]
    Local(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 64,
            CliError::Auth(_) => 77,
            CliError::Unreachable { .. } => 69,
            CliError::Api { status: 401 | 403, .. } => 77,
            CliError::Api { status: 422, .. } => 65,
            CliError::Api { .. } | CliError::Failed(_) => 1,
            CliError::Local(_) => 70,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Local(e.to_string())
    }
}
