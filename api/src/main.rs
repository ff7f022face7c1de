//! `cacheplane-api`: parse the configuration and run the server.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use cacheplane_api::config::{Config, LoadError};
    let config = match Config::load(std::env::args_os()) {
        Ok(c) => c,
        Err(LoadError::Args(e)) => e.exit(),
        Err(LoadError::Secret(e)) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    cacheplane_api::init_logging(&config.log_format);
    cacheplane_api::run(config).await
}
