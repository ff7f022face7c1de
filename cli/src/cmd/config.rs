//! `cachectl config …`: the settings file.

use std::path::Path;

use crate::config::{FileConfig, KEYS};
use crate::error::{Error, Result};
use crate::output;

/// The configuration file (`cachectl config path` shows where it is). Flags and the
/// CACHECTL_* environment variables win over it.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Sets a key: api-url, token, project or region.
    #[command(after_help = "Examples:\n  \
        cachectl config set api-url http://127.0.0.1:8080\n  \
        cachectl config set api-url http://10.0.0.1:8080,http://10.0.0.2:8080   # API replicas\n  \
        cachectl config set project my-project\n  \
        cachectl config set region local")]
    Set {
        /// api-url, token, project or region.
        key: String,
        /// The value.
        value: String,
    },
    /// Removes a key.
    #[command(after_help = "Examples:\n  \
        cachectl config unset token")]
    Unset {
        /// api-url, token, project or region.
        key: String,
    },
    /// Shows the file's settings (the token masked).
    #[command(after_help = "Examples:\n  \
        cachectl config list")]
    List,
    /// Prints the file's path.
    Path,
}

/// Runs `config …` on the file at `path`.
pub fn run(path: &Path, cmd: Command) -> Result<()> {
    match cmd {
        Command::Set { key, value } => {
            let mut c = FileConfig::load(path)?;
            if value.is_empty() {
                return Err(Error::Usage(format!(
                    "empty value for '{key}': `cachectl config unset {key}` removes it"
                )));
            }
            *c.slot(&key)? = Some(value);
            c.save(path)
        }
        Command::Unset { key } => {
            let mut c = FileConfig::load(path)?;
            *c.slot(&key)? = None;
            c.save(path)
        }
        Command::List => {
            let mut c = FileConfig::load(path)?;
            let mut pairs = Vec::new();
            for key in KEYS {
                let mut v = c.slot(key)?.clone().unwrap_or_default();
                if *key == "token" && !v.is_empty() {
                    v = format!("{}… (hidden)", v.chars().take(4).collect::<String>());
                }
                pairs.push((*key, v));
            }
            println!("# {}", path.display());
            let text = output::fields(pairs);
            if !text.is_empty() {
                println!("{text}");
            }
            Ok(())
        }
        Command::Path => {
            println!("{}", path.display());
            Ok(())
        }
    }
}
