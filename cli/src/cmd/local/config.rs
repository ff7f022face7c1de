//! Pointing cachectl's configuration file at the local stack, so that every other
//! command reaches it without flags.

use super::{say, Globals, DEFAULT_PROJECT, REGION};
use crate::config::FileConfig;
use crate::error::Result;

/// Points the configuration file at the stack: its URL, the admin token, region `local`
/// and a project (the flag's, else the file's, else demo-project). Answers the project.
pub fn write_config(g: &Globals, api_url: &str, token: &str) -> Result<String> {
    let mut file = FileConfig::load(&g.config_path)?;
    let project = g
        .project
        .clone()
        .or(file.project.take())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PROJECT.to_string());
    if let Some(r) = g.region.as_deref().filter(|r| *r != REGION) {
        say(&format!(
            "note: the local stack's only region is {REGION}, not {r}"
        ));
    }
    file.api_url = Some(api_url.to_string());
    file.token = Some(token.to_string());
    file.project = Some(project.clone());
    file.region = Some(REGION.to_string());
    file.save(&g.config_path)?;
    for (var, ours) in [("CACHECTL_API_URL", api_url), ("CACHECTL_TOKEN", token)] {
        if std::env::var(var).is_ok_and(|v| !v.is_empty() && v != ours) {
            say(&format!(
                "note: {var} is set and wins over the configuration file: unset it to reach \
                 the local stack"
            ));
        }
    }
    Ok(project)
}
