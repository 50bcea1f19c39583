//! How a command fails: a message for people and an exit code for scripts.
//!
//! Scripts around `tikaconf` must tell "fix your input" from "retry later" from
//! "someone else's write won" without parsing English, so every failure carries
//! one of a few distinct exit codes (listed in `--help`). The library's errors are
//! mapped here, in one place, so that a code means the same for every command.

use std::fmt;
use std::process::ExitCode;

use tikaconf::{Error, WriteError};

/// The exit codes; `--help` documents the same table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Other = 1,
    BadInput = 2,
    UnknownRoot = 3,
    Conflict = 4,
    Timeout = 5,
    Connect = 6,
    /// Redis refused the command (an ACL without the right): retrying will not
    /// help, the credentials must change.
    Refused = 7,
    /// `get`'s JSON Pointer does not resolve in the document. A code of its own,
    /// not "bad input" (2): an absent key is an ordinary answer that a script
    /// branches on (use a default), as `git config --get` exits 1 for a missing
    /// key, while 2 means the command itself is wrong and should stop the script.
    NotFound = 8,
    /// `verify` found a broken link: the stored chain was altered or damaged.
    /// A code of its own so that a scheduled check alerts on exactly that,
    /// not on a server that could not be reached (6) or a store that failed (1).
    Broken = 9,
}

/// A failed command: what to print on stderr and how to exit.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: Code, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
        }
    }

    pub fn bad_input(error: impl Into<anyhow::Error>) -> Failure {
        Failure::new(Code::BadInput, error)
    }

    /// See [`Code::NotFound`].
    pub fn not_found(error: impl Into<anyhow::Error>) -> Failure {
        Failure::new(Code::NotFound, error)
    }

    pub fn other(error: impl Into<anyhow::Error>) -> Failure {
        Failure::new(Code::Other, error)
    }

    /// Adds context to the message, keeping the code.
    pub fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Failure {
        Failure {
            code: self.code,
            error: self.error.context(context),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code as u8)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let code = match &e {
            Error::Connect(_) => Code::Connect,
            Error::UnknownRoot(_) => Code::UnknownRoot,
            Error::LoadTimeout(_) => Code::Timeout,
            Error::Write(w) => write_code(w),
            Error::TooManyConflicts => Code::Conflict,
            _ => Code::Other,
        };
        Failure::new(code, e)
    }
}

impl From<WriteError> for Failure {
    fn from(e: WriteError) -> Failure {
        Failure::new(write_code(&e), e)
    }
}

fn write_code(e: &WriteError) -> Code {
    match e {
        WriteError::Conflict { .. } | WriteError::HeadMoved => Code::Conflict,
        WriteError::Timeout { .. } => Code::Timeout,
        WriteError::Rejected(_) => Code::BadInput,
        WriteError::Disconnected => Code::Connect,
        WriteError::Refused { .. } => Code::Refused,
        _ => Code::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tikaconf::Hash;

    #[test]
    fn library_errors_map_to_distinct_codes() {
        let h = Hash::of_canonical_bytes(b"{}");
        let code = |e: Error| Failure::from(e).code;
        assert_eq!(
            code(Error::Connect(tikaconf::bus::BusError::Disconnected)),
            Code::Connect
        );
        assert_eq!(code(Error::UnknownRoot(h)), Code::UnknownRoot);
        assert_eq!(
            code(Error::LoadTimeout(Duration::from_secs(1))),
            Code::Timeout
        );
        assert_eq!(code(Error::Closed), Code::Other);
        let write = |e: WriteError| Failure::from(e).code;
        let conflict = WriteError::Conflict {
            attempted: h,
            winner: h,
        };
        assert_eq!(write(conflict), Code::Conflict);
        assert_eq!(write(WriteError::Timeout { attempted: h }), Code::Timeout);
        let rejected = tikaconf::InvalidPatch::Decode(tikaconf::proto::DecodeError::NotAnObject);
        assert_eq!(write(WriteError::Rejected(rejected)), Code::BadInput);
        assert_eq!(write(WriteError::Disconnected), Code::Connect);
        let refused = WriteError::Refused {
            attempted: h,
            source: tikaconf::bus::BusError::Disconnected,
        };
        let failure = Failure::from(refused);
        assert_eq!(failure.code, Code::Refused);
        assert_eq!(failure.exit_code(), ExitCode::from(7));
        assert_eq!(
            Failure::from(Error::Write(WriteError::HeadMoved)).code,
            Code::Conflict
        );
        let absent = Failure::not_found(anyhow::anyhow!("no value"));
        assert_eq!(absent.exit_code(), ExitCode::from(8));
    }
}
