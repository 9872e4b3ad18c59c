//! `media-processor host --config FILE.toml`: one bot service process (the `host`
//! crate does the work; keys in docs/host-config.md).

use std::path::PathBuf;

/// Arguments of `media-processor host`.
#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// TOML configuration file (every key in docs/host-config.md; `MP_<SECTION>_<KEY>`
    /// environment variables override it).
    #[arg(long)]
    pub config: PathBuf,
}

/// Runs the host until SIGTERM or Ctrl-C, then drains and returns.
pub fn run(args: &HostArgs) -> anyhow::Result<()> {
    host::run_blocking(&args.config)?;
    Ok(())
}
