//! What can go wrong, and the exit code each kind maps to, so that scripts can tell a
//! typo from a refusal by the API from an operation that is still running.

use cacheplane_types::Status;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line (or the settings behind it) cannot work: exit 2, as clap's own
    /// usage errors.
    #[error("{0}")]
    Usage(String),
    /// The API refused a call, or an operation ended with an error: exit 3.
    #[error("{}", api_message(.context, .status))]
    Api {
        /// What was being done, e.g. `operation projects/p/…/operations/x failed`.
        context: Option<String>,
        /// The API's status, with its field details.
        status: Status,
    },
    /// An operation did not finish in time (it keeps running on the server): exit 4.
    #[error("{0}")]
    Timeout(String),
    /// Anything else (the API unreachable, an answer that does not parse, I/O): exit 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An API error without context.
    pub fn api(status: Status) -> Error {
        Error::Api {
            context: None,
            status,
        }
    }

    /// The process exit code for this error.
    pub fn code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Api { .. } => 3,
            Error::Timeout(_) => 4,
            Error::Other(_) => 1,
        }
    }
}

/// `404 NOT_FOUND: instance 'x' not found`, then one indented line per field at fault.
fn api_message(context: &Option<String>, status: &Status) -> String {
    let mut out = String::new();
    if let Some(c) = context {
        out.push_str(c);
        out.push_str(": ");
    }
    out.push_str(&format!(
        "{} {}: {}",
        status.code, status.status, status.message
    ));
    for d in &status.details {
        let line = format!("{}: {}", d.field, d.description);
        // The API often makes a single violation its message; do not say it twice.
        if line != status.message {
            out.push_str(&format!("\n  {line}"));
        }
    }
    if status.code == 401 {
        out.push_str(
            "\n  (check the token: --token, CACHECTL_TOKEN or `cachectl config set token T`)",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use cacheplane_types::FieldViolation;

    use super::*;

    #[test]
    fn api_errors_show_status_message_and_fields() {
        let e = Error::api(Status {
            code: 400,
            status: "INVALID_ARGUMENT".into(),
            message: "the request is invalid".into(),
            details: vec![
                FieldViolation {
                    field: "memorySizeGb".into(),
                    description: "must be from 1 to 300, not 0".into(),
                },
                FieldViolation {
                    field: "x".into(),
                    description: "the request is invalid".into(),
                },
            ],
        });
        assert_eq!(
            e.to_string(),
            "400 INVALID_ARGUMENT: the request is invalid\n  memorySizeGb: must be from 1 to 300, not 0\n  x: the request is invalid"
        );
        let single = Error::api(Status {
            code: 400,
            status: "INVALID_ARGUMENT".into(),
            message: "size: too big".into(),
            details: vec![FieldViolation {
                field: "size".into(),
                description: "too big".into(),
            }],
        });
        assert_eq!(single.to_string(), "400 INVALID_ARGUMENT: size: too big");
        assert_eq!(e.code(), 3);
        assert_eq!(Error::Usage("x".into()).code(), 2);
        assert_eq!(Error::Timeout("x".into()).code(), 4);
    }
}
