//! `media-processor demo`: the main job on embedded defaults.
//!
//! Today it walks the signaling half of an app-hosted call on this machine: it builds
//! the media session configuration the processor would advertise, embeds it in the
//! create-call request of every app-hosted Graph scenario, validates each request the
//! way Graph would, and prints the permissions each needs.

use media_blob::{MediaSessionConfig, MpUri};
use signaling::Scenario;
use uuid::Uuid;

/// Arguments of `media-processor demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the processor listens (the blob's mpUri).
    #[arg(long, default_value = crate::cmd_request::DEFAULT_MP_URI)]
    pub mp_uri: String,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let mp_uri: MpUri = args.mp_uri.parse()?;
    println!("== 1. media session configuration for a new call (media-blob)");
    let config = MediaSessionConfig::builder(mp_uri, Uuid::new_v4()).build();
    config.validate()?;
    println!("{}", config.to_json());
    let back = MediaSessionConfig::from_embedded(&config.to_embedded())?;
    anyhow::ensure!(back == config, "embedded blob did not round-trip");
    println!("   embedded and parsed back: identical");

    println!("\n== 2. create-call requests carrying it (signaling)");
    for scenario in Scenario::ALL {
        let blob = scenario.is_app_hosted().then(|| config.to_json());
        let call = scenario.seed_example(blob);
        signaling::validate_create_call(&call)?;
        println!(
            "   {:<22} valid, {} bytes, needs {}",
            scenario.name(),
            call.to_json().len(),
            call.required_permissions()
        );
    }

    println!("\n== 3. what Graph would reject");
    let mut bad = Scenario::P2pVoipApp.seed_example(None);
    for problem in signaling::create_call_problems(&bad) {
        println!("   placeholder blob -> {problem}");
    }
    bad.callback_uri = signaling::Field::Value("http://bot.example.com/callback".into());
    for problem in signaling::create_call_problems(&bad) {
        println!("   plain-http callback -> {problem}");
    }
    Ok(())
}
