//! The real `terraform` binary, run in a working directory of the test's own with a
//! generated CLI configuration whose `dev_overrides` point `cacheplane/cacheplane` at the
//! provider this crate built, so Terraform never downloads anything (no `terraform init`
//! either: with dev_overrides it is not needed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `terraform` on PATH. Panics, saying how to get it, when it is missing: these tests
/// never pass without running it.
pub fn require_terraform() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("terraform"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "terraform is not installed (not on PATH): the provider tests run the real \
                 Terraform CLI (1.x). Install it from HashiCorp's releases and put it on PATH"
            )
        })
}

/// What one terraform command did.
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Both outputs, for assertion messages.
    pub fn both(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A Terraform working directory using the provider binary of this crate.
pub struct Terraform {
    bin: PathBuf,
    /// The working directory (main.tf, the state).
    pub dir: PathBuf,
    cli_config: PathBuf,
    token: String,
}

impl Terraform {
    /// A fresh working directory, its CLI configuration pointing at `provider_bin`'s
    /// directory, and `token` for the provider (passed as CACHEPLANE_TOKEN, never written
    /// to a file).
    pub fn new(provider_bin: &Path, token: &str) -> Terraform {
        let bin = require_terraform();
        let dir = std::env::temp_dir().join(format!(
            "tf-provider-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("creating the working directory");
        let plugin_dir = provider_bin
            .parent()
            .expect("the provider binary's directory");
        let cli_config = dir.join("terraformrc");
        std::fs::write(
            &cli_config,
            format!(
                "disable_checkpoint = true\n\
                 provider_installation {{\n  \
                   dev_overrides {{\n    \"cacheplane/cacheplane\" = \"{}\"\n  }}\n  \
                   direct {{}}\n\
                 }}\n",
                plugin_dir.display()
            ),
        )
        .expect("writing the CLI configuration");
        Terraform {
            bin,
            dir,
            cli_config,
            token: token.to_string(),
        }
    }

    /// Writes `main.tf`.
    pub fn write_config(&self, main_tf: &str) {
        std::fs::write(self.dir.join("main.tf"), main_tf).expect("writing main.tf");
    }

    /// Runs `terraform ARGS…` in the working directory, without input or colours.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(&self.bin);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("TF_") || k.starts_with("CACHEPLANE_") {
                cmd.env_remove(&key);
            }
        }
        let out = cmd
            .current_dir(&self.dir)
            .args(args)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env("CACHEPLANE_TOKEN", &self.token)
            .output()
            .unwrap_or_else(|e| panic!("running terraform {args:?}: {e}"));
        Run::from(out)
    }

    /// Runs a command that must exit 0.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "terraform {args:?} failed:\n{}", run.both());
        run
    }

    /// `terraform apply -auto-approve -no-color`, which must succeed.
    #[track_caller]
    pub fn apply(&self) -> Run {
        self.ok(&["apply", "-auto-approve", "-no-color"])
    }

    /// `terraform plan -detailed-exitcode -no-color`: exit 0 without changes, 2 with.
    pub fn plan(&self) -> Run {
        self.run(&["plan", "-detailed-exitcode", "-no-color"])
    }

    /// The state file, parsed.
    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join("terraform.tfstate"))
            .expect("reading terraform.tfstate");
        serde_json::from_str(&text).expect("terraform.tfstate is JSON")
    }

    /// `terraform output -json`, parsed.
    pub fn outputs(&self) -> serde_json::Value {
        let run = self.ok(&["output", "-json"]);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("output -json: {e}\n{}", run.both()))
    }
}

impl Drop for Terraform {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
