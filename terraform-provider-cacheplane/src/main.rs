//! `terraform-provider-cacheplane`: the Cacheplane Terraform provider, a plugin that
//! Terraform starts and speaks to over its plugin protocol 6 (through the `tf-provider`
//! crate). Run by hand it only says so; see docs/terraform.md for how to point Terraform
//! at it.

mod client;
mod data_sources;
mod diags;
mod names;
mod operations;
mod provider;
mod resources;
mod schema;
mod timeouts;

use provider::CacheplaneProvider;

fn main() -> anyhow::Result<()> {
    // Terraform starts plugins with this cookie; without it there is no one to talk to.
    if std::env::var_os("TF_PLUGIN_MAGIC_COOKIE").is_none() {
        eprintln!(
            "terraform-provider-cacheplane is a Terraform plugin: Terraform starts it. \
             See docs/terraform.md for the `dev_overrides` that point Terraform at this binary."
        );
        std::process::exit(1);
    }
    // tf-provider attaches a backtrace to every diagnostic when backtraces are on
    // (RUST_BACKTRACE, which test runners set): users get the message alone.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(tf_provider::serve(
            "cacheplane",
            CacheplaneProvider::default(),
        ))
}
