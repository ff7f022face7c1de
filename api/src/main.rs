//! `cacheplane-api`: parse the configuration and run the server.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = cacheplane_api::config::Config::parse();
    cacheplane_api::init_logging(&config.log_format);
    cacheplane_api::run(config).await
}
