//! The queue's Postgres types: a job's state (`job_state`) and its kind (`job_kind`), the only
//! place their names are written. SQL binds them instead of spelling them.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};
use wh_wsproto::job::JobKind;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "job_state", rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to be claimed (from `run_after` on).
    Pending,
    /// Held by a claimer under a lease.
    Claimed,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// The states a job has not ended in.
    pub const OPEN: [JobState; 2] = [JobState::Pending, JobState::Claimed];
}

/// A job's kind as the `job_kind` column holds it: the wire crate's [`JobKind`], whose names
/// are the enum's labels (`wh-wsproto` does no I/O, so the mapping lives here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind(pub JobKind);

impl From<Kind> for JobKind {
    fn from(k: Kind) -> JobKind {
        k.0
    }
}

impl From<JobKind> for Kind {
    fn from(k: JobKind) -> Kind {
        Kind(k)
    }
}

impl Type<Postgres> for Kind {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("job_kind")
    }
}

impl PgHasArrayType for Kind {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("_job_kind")
    }
}

impl Encode<'_, Postgres> for Kind {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.0.as_str(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for Kind {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let name = <&str as Decode<Postgres>>::decode(value)?;
        JobKind::parse(name).map(Kind).ok_or_else(|| format!("unknown job kind `{name}`").into())
    }
}
