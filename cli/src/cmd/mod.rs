//! The commands, one module per resource group, and what they share: the resolved
//! settings (`Ctx`), resource references, flag parsers and the delete confirmation.

pub mod admin;
pub mod catalog;
pub mod config;
pub mod connectors;
pub mod instances;
pub mod list;
#[cfg(unix)]
pub mod local;
pub mod memcache;
pub mod networks;
pub mod operations;

use std::io::{BufRead, IsTerminal};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::output::Format;

/// What every API command needs: the client and the resolved project, region and format.
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// `--project`, `CACHECTL_PROJECT` or the config file.
    pub project: Option<String>,
    /// `--region`, `CACHECTL_REGION` or the config file.
    pub region: Option<String>,
    /// `--format`.
    pub format: Format,
}

impl Ctx {
    /// The project, or a usage error saying how to set one.
    pub fn project(&self) -> Result<&str> {
        self.project.as_deref().ok_or_else(|| {
            Error::Usage(
                "no project: pass --project P, set CACHECTL_PROJECT or run \
                 `cachectl config set project P`"
                    .into(),
            )
        })
    }

    /// The region, or a usage error saying how to set one.
    pub fn region(&self) -> Result<&str> {
        self.region.as_deref().ok_or_else(|| {
            Error::Usage(
                "no region: pass --region R, set CACHECTL_REGION or run \
                 `cachectl config set region R` (`cachectl regions list` shows them)"
                    .into(),
            )
        })
    }

    /// The region for list commands: `-` (every region) when none is set.
    pub fn region_or_all(&self) -> &str {
        self.region.as_deref().unwrap_or("-")
    }

    /// The path of a collection of the project in the region, or in every region (`-`)
    /// when none is set: `["v1", "projects", P, "locations", R, collection]`.
    pub fn list_path<'a>(&'a self, collection: &'a str) -> Result<[&'a str; 6]> {
        Ok([
            "v1",
            "projects",
            self.project()?,
            "locations",
            self.region_or_all(),
            collection,
        ])
    }

    /// A resource of the project and region: `id`, or its full name
    /// `projects/P/locations/R/{collection}/ID`, which wins over the settings.
    pub fn located(&self, collection: &str, id: &str) -> Result<Located> {
        if id.contains('/') {
            let parts: Vec<&str> = id.split('/').collect();
            return match parts.as_slice() {
                ["projects", p, "locations", r, c, i]
                    if *c == collection && ![p, r, i].iter().any(|s| s.is_empty()) =>
                {
                    Ok(Located {
                        project: p.to_string(),
                        region: r.to_string(),
                        id: i.to_string(),
                    })
                }
                _ => Err(Error::Usage(format!(
                    "'{id}' is neither an id nor a name such as \
                     projects/P/locations/R/{collection}/ID"
                ))),
            };
        }
        Ok(Located {
            project: self.project()?.to_string(),
            region: self.region()?.to_string(),
            id: id.to_string(),
        })
    }
}

/// A resource inside a project's region (an instance or an operation).
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// Project id.
    pub project: String,
    /// Region id.
    pub region: String,
    /// The resource's id.
    pub id: String,
}

impl Located {
    /// `["v1", "projects", P, "locations", R, collection]`.
    pub fn collection<'a>(&'a self, collection: &'a str) -> Vec<&'a str> {
        vec![
            "v1",
            "projects",
            &self.project,
            "locations",
            &self.region,
            collection,
        ]
    }

    /// `["v1", "projects", P, "locations", R, collection, ID]`.
    pub fn path<'a>(&'a self, collection: &'a str) -> Vec<&'a str> {
        let mut p = self.collection(collection);
        p.push(&self.id);
        p
    }
}

/// Parses `K=V` (for `--labels`, `--redis-config`, …).
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

pub use cacheplane_types::duration::parse_duration;

/// Asks "`question` [y/N]" on the terminal unless `quiet`. Without a terminal it never
/// blocks: it refuses (a usage error) and says to pass `--quiet`, so a script cannot
/// hang on a question nobody sees, nor delete something by accident.
pub fn confirm(question: &str, quiet: bool) -> Result<()> {
    if quiet {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "{question}? Not asked, since standard input is not a terminal: pass --quiet \
             to go ahead without asking"
        )));
    }
    eprint!("{question}? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(anyhow::Error::from)?;
    if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(anyhow::anyhow!("aborted: nothing was changed").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(project: Option<&str>, region: Option<&str>) -> Ctx {
        Ctx {
            client: Client::new("http://127.0.0.1:1", None).unwrap(),
            project: project.map(String::from),
            region: region.map(String::from),
            format: Format::Table,
        }
    }

    #[test]
    fn ids_and_full_names() {
        let c = ctx(Some("p"), Some("local"));
        let l = c.located("instances", "x").unwrap();
        assert_eq!(
            l.path("instances"),
            [
                "v1",
                "projects",
                "p",
                "locations",
                "local",
                "instances",
                "x"
            ]
        );
        let l = c
            .located("instances", "projects/q/locations/eu/instances/y")
            .unwrap();
        assert_eq!(
            (l.project.as_str(), l.region.as_str(), l.id.as_str()),
            ("q", "eu", "y")
        );
        assert!(c
            .located("instances", "projects/q/locations/eu/operations/y")
            .is_err());
        assert!(matches!(
            ctx(None, Some("r")).located("instances", "x"),
            Err(Error::Usage(_))
        ));
        // A full name needs no settings.
        assert!(ctx(None, None)
            .located("operations", "projects/q/locations/eu/operations/y")
            .is_ok());
    }

    #[test]
    fn flag_parsers() {
        assert_eq!(parse_kv("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_kv("=x").is_err());
        assert!(parse_kv("x").is_err());
    }
}
