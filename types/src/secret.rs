//! Secrets handed to the programs (the admin token, a host token, the database URL with
//! its password): taken from an environment variable or a file, never from a
//! command-line flag, which any local user can read in `/proc/PID/cmdline` and `ps`.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A secret string (a token, a password, a database URL): serialized as it is, but never
/// shown by `Debug`, so no log line or panic message can carry it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a secret could not be had.
#[derive(Debug, PartialEq, Eq)]
pub struct SecretError(pub String);

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SecretError {}

/// The secret in environment variable `var`, else the first line of `file` (trailing
/// whitespace removed). Both given, or neither, or an empty value, is an error naming
/// the variable and the flag (`file_flag`, e.g. `--token-file`).
pub fn from_env_or_file(
    var: &str,
    file: Option<&Path>,
    file_flag: &str,
) -> Result<Secret, SecretError> {
    let from_env = std::env::var(var).ok().filter(|v| !v.is_empty());
    let value = match (from_env, file) {
        (Some(_), Some(_)) => {
            return Err(SecretError(format!(
                "both {var} and {file_flag} are set: give one"
            )))
        }
        (Some(v), None) => v,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| SecretError(format!("{file_flag} {}: {e}", path.display())))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_string(),
        (None, None) => {
            return Err(SecretError(format!(
                "set {var} in the environment or pass {file_flag} FILE (secrets are not \
                 taken as command-line flags)"
            )))
        }
    };
    if value.is_empty() {
        return Err(SecretError(format!(
            "{var}/{file_flag}: the secret is empty"
        )));
    }
    Ok(Secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_a_file_its_first_line() {
        let path = std::env::temp_dir().join(format!("cp-secret-{}", std::process::id()));
        std::fs::write(&path, "s3cret  \nignored\n").expect("writes");
        let got = from_env_or_file("CP_TEST_SECRET_UNSET_1", Some(&path), "--x-file");
        std::fs::remove_file(&path).ok();
        assert_eq!(
            got.map(|s| s.expose().to_string()),
            Ok("s3cret".to_string())
        );
    }

    #[test]
    fn neither_nor_an_empty_file_is_an_error_naming_both_ways() {
        let err = from_env_or_file("CP_TEST_SECRET_UNSET_2", None, "--x-file").unwrap_err();
        assert!(err.0.contains("CP_TEST_SECRET_UNSET_2") && err.0.contains("--x-file"));
        let path = std::env::temp_dir().join(format!("cp-secret-e-{}", std::process::id()));
        std::fs::write(&path, "\n").expect("writes");
        let got = from_env_or_file("CP_TEST_SECRET_UNSET_3", Some(&path), "--x-file");
        std::fs::remove_file(&path).ok();
        assert!(got.unwrap_err().0.contains("empty"));
    }

    #[test]
    fn debug_hides_the_value() {
        assert!(!format!("{:?}", Secret::new("s3cret")).contains("s3cret"));
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = from_env_or_file(
            "CP_TEST_SECRET_UNSET_4",
            Some(Path::new("/nonexistent/t")),
            "--x-file",
        )
        .unwrap_err();
        assert!(err.0.contains("/nonexistent/t"));
    }
}
