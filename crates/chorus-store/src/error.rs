//! [`StoreError`] and its classification for operators, [`StoreCondition`]; and the
//! id checks that raise [`StoreError::InvalidId`], kept here so that the id type
//! itself needs nothing from this module.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::DocId;

/// Errors of this crate. Messages are for logs and operators, not for clients; what to
/// tell a client or a readiness probe is [`StoreError::condition`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O failure opening, reading, writing or flushing. `source` keeps the
    /// [`io::ErrorKind`] (and the OS error number, when there is one), so that a full
    /// disk can be told from a permissions problem; see [`StoreError::condition`].
    #[error("storage i/o error: {context}: {source}")]
    Io {
        /// What the store was doing, naming the path (`flushing /var/lib/chorus`).
        context: String,
        /// The operating system's (or sled's) error.
        #[source]
        source: io::Error,
    },
    /// Checksum mismatch, truncated record or bad metadata.
    #[error("corrupt stored data{}: {detail}", .id.as_ref().map(|id| format!(" for document {id}")).unwrap_or_default())]
    Corrupt {
        /// The document the bad record belongs to, if it belongs to one.
        id: Option<DocId>,
        /// What was wrong and where.
        detail: String,
    },
    /// The data directory cannot be written (found at open).
    #[error("data directory {} is not writable (check permissions, free space and read-only mounts)", .0.display())]
    ReadOnly(PathBuf),
    /// The database server (PostgreSQL) failed a statement, or could not be reached.
    /// `code` is the SQLSTATE the server sent, if it sent one (`None` for a connection
    /// that could not be made or broke).
    #[error("database error: {context}: {detail}")]
    Database {
        /// What the store was doing, naming the server and database
        /// (`committing a group to postgres://chorus@db:5432/chorus`), never a password.
        context: String,
        /// The server's message with its SQLSTATE, or the driver's error chain.
        detail: String,
        /// The SQLSTATE, e.g. `53100` for a full disk.
        code: Option<String>,
        /// The driver's or the pool's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The flush held writes of documents whose lease this node no longer has (or
    /// whose token moved on): nothing of it was written. The documents' owners must
    /// stop; the other documents of the group may retry.
    #[error("lease lost for {}: nothing of this group was written", .lost.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Fenced {
        /// The documents whose lease was lost.
        lost: Vec<DocId>,
    },
    /// A document id containing `'\0'`, which the key layout cannot represent.
    #[error("invalid document id {0:?}: ids must not contain NUL")]
    InvalidId(DocId),
    /// The storage engine failed in a way that is neither I/O nor corruption: sled
    /// reported a bug, an unsupported use or a missing tree, or a transaction aborted.
    /// The message names the operation and the path.
    #[error("storage engine error: {0}")]
    Internal(String),
}

impl StoreError {
    /// An I/O failure while doing `context` (which should name the path).
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// A database failure while doing `context`, keeping the SQLSTATE when `source`
    /// is a driver error that carries one.
    pub fn database(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let source: Box<dyn std::error::Error + Send + Sync> = Box::new(source);
        let db_error = source
            .downcast_ref::<postgres::Error>()
            .and_then(postgres::Error::as_db_error);
        let code = db_error.map(|e| e.code().code().to_owned());
        // The driver's own Display is a bare "db error": the server's words are in
        // its source.
        let detail = match db_error {
            Some(e) => format!("{} (SQLSTATE {})", e.message(), e.code().code()),
            None => {
                let mut chain = source.to_string();
                let mut next = source.source();
                while let Some(e) = next {
                    chain.push_str(": ");
                    chain.push_str(&e.to_string());
                    next = e.source();
                }
                chain
            }
        };
        Self::Database {
            context: context.into(),
            detail,
            code,
            source,
        }
    }

    /// The [`io::ErrorKind`] of an I/O failure; `None` for every other error.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Self::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// What this error means for the service as a whole, for mapping once to an HTTP
    /// status, a readiness text and a log field (see [`StoreCondition`]).
    pub fn condition(&self) -> StoreCondition {
        match self {
            Self::Io { source, .. } => StoreCondition::of_io_error(source),
            Self::ReadOnly(_) => StoreCondition::ReadOnly,
            Self::Corrupt { .. } => StoreCondition::Corrupt,
            Self::Database { code, .. } => StoreCondition::of_sqlstate(code.as_deref()),
            // An invalid id is a caller's bug (the server validates ids first); nothing
            // finer can be said about it here.
            // A lost lease is one document's ownership, not the store's health; it is
            // reported as unavailable only where a condition must be named at all.
            Self::Fenced { .. } | Self::InvalidId(_) | Self::Internal(_) => {
                StoreCondition::Unavailable
            }
        }
    }
}

/// The coarse class of a [`StoreError`]: what an operator has to do about it.
///
/// Each class has a stable kebab-case [`code`](Self::code), also its `Display`, meant
/// for logs, readiness bodies and API error codes:
///
/// | condition     | code                | what it covers |
/// |---------------|---------------------|----------------|
/// | `DiskFull`    | `disk-full`         | [`io::ErrorKind::StorageFull`] or [`io::ErrorKind::QuotaExceeded`] (on Linux also raw `ENOSPC` 28 and `EDQUOT` 122) |
/// | `ReadOnly`    | `store-read-only`   | [`StoreError::ReadOnly`], [`io::ErrorKind::ReadOnlyFilesystem`], [`io::ErrorKind::PermissionDenied`] (on Linux also raw `EROFS` 30) |
/// | `Corrupt`     | `store-corrupt`     | [`StoreError::Corrupt`] |
/// | (database)    | by SQLSTATE         | [`StoreError::Database`]: see [`StoreCondition::of_sqlstate`] |
/// | `Unavailable` | `store-unavailable` | everything else: other I/O failures, [`StoreError::Internal`], [`StoreError::InvalidId`] |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreCondition {
    /// The disk (or the quota) holding the data directory is full.
    DiskFull,
    /// The data directory cannot be written: permissions or a read-only mount.
    ReadOnly,
    /// Stored data failed its checks.
    Corrupt,
    /// Any other failure of the store.
    Unavailable,
}

/// Raw OS error numbers checked besides the kind, in case an error carries the number
/// but a generic kind. Linux numbering (`EDQUOT` differs on other Unixes).
#[cfg(target_os = "linux")]
mod errno {
    pub const ENOSPC: i32 = 28;
    pub const EROFS: i32 = 30;
    pub const EDQUOT: i32 = 122;
}

impl StoreCondition {
    /// The stable code: `disk-full`, `store-read-only`, `store-corrupt` or
    /// `store-unavailable`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::DiskFull => "disk-full",
            Self::ReadOnly => "store-read-only",
            Self::Corrupt => "store-corrupt",
            Self::Unavailable => "store-unavailable",
        }
    }

    /// The class of a database error by its SQLSTATE: `53100` disk full, `53400`
    /// (configured limit, e.g. `temp_file_limit`) counts as full too; `25006` read-only
    /// transaction (a standby, or `default_transaction_read_only`); `XX001`/`XX002`
    /// data or index corrupted; anything else, and no state at all (unreachable), is
    /// unavailable.
    pub fn of_sqlstate(code: Option<&str>) -> Self {
        match code {
            Some("53100" | "53400") => Self::DiskFull,
            Some("25006") => Self::ReadOnly,
            Some("XX001" | "XX002") => Self::Corrupt,
            _ => Self::Unavailable,
        }
    }

    /// The class of an I/O error: by its kind, and on Linux by its raw OS error number.
    pub fn of_io_error(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => return Self::DiskFull,
            io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied => {
                return Self::ReadOnly
            }
            _ => {}
        }
        #[cfg(target_os = "linux")]
        match e.raw_os_error() {
            Some(errno::ENOSPC | errno::EDQUOT) => return Self::DiskFull,
            Some(errno::EROFS) => return Self::ReadOnly,
            _ => {}
        }
        Self::Unavailable
    }
}

impl fmt::Display for StoreCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl DocId {
    /// `Err(InvalidId)` if either part contains `'\0'`, which would make keys ambiguous.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.app.contains('\0') || self.doc.contains('\0') {
            return Err(StoreError::InvalidId(self.clone()));
        }
        Ok(())
    }
}

/// `Err(InvalidId)` if an app id contains `'\0'` (for listings, which take an app
/// alone).
pub(crate) fn check_app(app: &str) -> Result<(), StoreError> {
    if app.contains('\0') {
        return Err(StoreError::InvalidId(DocId::new(app, "")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_condition(kind: io::ErrorKind) -> StoreCondition {
        StoreError::io("flushing /data", kind.into()).condition()
    }

    #[test]
    fn io_kinds_are_classified() {
        use io::ErrorKind as K;
        for (kind, condition) in [
            (K::StorageFull, StoreCondition::DiskFull),
            (K::QuotaExceeded, StoreCondition::DiskFull),
            (K::ReadOnlyFilesystem, StoreCondition::ReadOnly),
            (K::PermissionDenied, StoreCondition::ReadOnly),
            (K::Other, StoreCondition::Unavailable),
            (K::NotFound, StoreCondition::Unavailable),
            (K::NotADirectory, StoreCondition::Unavailable),
            (K::WouldBlock, StoreCondition::Unavailable),
            (K::UnexpectedEof, StoreCondition::Unavailable),
        ] {
            assert_eq!(io_condition(kind), condition, "{kind:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn raw_os_errors_are_classified() {
        for (errno, condition) in [
            (28, StoreCondition::DiskFull),
            (122, StoreCondition::DiskFull),
            (30, StoreCondition::ReadOnly),
            (13, StoreCondition::ReadOnly),
            (5, StoreCondition::Unavailable),
        ] {
            let e = StoreError::io("writing /data", io::Error::from_raw_os_error(errno));
            assert_eq!(e.condition(), condition, "errno {errno}: {e}");
        }
    }

    #[test]
    fn the_other_variants_are_classified() {
        let id = DocId::new("app", "doc");
        let cases = [
            (
                StoreError::ReadOnly("/data".into()),
                StoreCondition::ReadOnly,
            ),
            (
                StoreError::Corrupt {
                    id: Some(id.clone()),
                    detail: "checksum".into(),
                },
                StoreCondition::Corrupt,
            ),
            (StoreError::InvalidId(id), StoreCondition::Unavailable),
            (
                StoreError::Internal("compacting /data: transaction aborted".into()),
                StoreCondition::Unavailable,
            ),
        ];
        for (e, condition) in cases {
            assert_eq!(e.condition(), condition, "{e:?}");
            assert_eq!(e.io_kind(), None);
        }
    }

    #[test]
    fn codes_are_stable_and_are_the_display() {
        for (condition, code) in [
            (StoreCondition::DiskFull, "disk-full"),
            (StoreCondition::ReadOnly, "store-read-only"),
            (StoreCondition::Corrupt, "store-corrupt"),
            (StoreCondition::Unavailable, "store-unavailable"),
        ] {
            assert_eq!(condition.code(), code);
            assert_eq!(condition.to_string(), code);
        }
    }

    #[test]
    fn an_io_error_keeps_its_kind_source_and_context() {
        let e = StoreError::io(
            "flushing /data",
            io::Error::new(io::ErrorKind::StorageFull, "no space left"),
        );
        assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull));
        assert_eq!(
            e.to_string(),
            "storage i/o error: flushing /data: no space left"
        );
        let source = std::error::Error::source(&e).expect("has a source");
        assert_eq!(source.to_string(), "no space left");
    }
}
