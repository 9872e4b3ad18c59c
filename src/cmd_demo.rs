//! `media-processor demo`: the main job end to end on this machine.
//!
//! Starts the local Graph emulator, an echo bot (Graph call runtime + callback server
//! on 127.0.0.1 + the QUIC media platform) and the emulator's far end; places one call
//! of a seed scenario, speaks into it over an impaired network for `--duration-s`,
//! shows progress once a second, hangs up, and writes `report.json`, `plot.png` and
//! WAVs both ways into `--out`. Service-hosted scenarios run signaling only.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use media_core::sim::Profile;
use signaling::Scenario;

/// Arguments of `media-processor demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Graph scenario (one of the ten seed examples or a join by meeting id; app-hosted
    /// ones carry media).
    #[arg(long, default_value = "p2p-voip-app")]
    pub scenario: String,
    /// Network profile between far end and bot: clean, wifi, cellular,
    /// loss5-jitter40, bursty, spike200, drift+, drift-.
    #[arg(long, default_value = "wifi")]
    pub profile: String,
    /// How long the call is held once established, in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub duration_s: f64,
    /// Codec of the media connection: pcm or opus.
    #[arg(long, default_value = "opus")]
    pub codec: String,
    /// Output directory for report.json, plot.png and the WAVs.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// A WAV file the far end speaks (default: a built-in speech-like signal).
    #[arg(long)]
    pub speech: Option<PathBuf>,
    /// Seed of the network impairment.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Also play the bot's received audio on the default audio device.
    #[arg(long)]
    pub play: bool,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let scenario: Scenario = args.scenario.parse().map_err(|_| {
        anyhow::anyhow!(
            "unknown scenario `{}`; one of: {}",
            args.scenario,
            Scenario::names().join(", ")
        )
    })?;
    let profile = Profile::named(&args.profile).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown profile `{}`; one of: {}",
            args.profile,
            Profile::NAMES.join(", ")
        )
    })?;
    let codec = match args.codec.to_ascii_lowercase().as_str() {
        "pcm" => bot::Codec::Pcm16k,
        "opus" => bot::Codec::Opus16k,
        other => anyhow::bail!("unknown codec `{other}`; pcm or opus"),
    };
    anyhow::ensure!(
        args.duration_s.is_finite() && args.duration_s > 0.0 && args.duration_s <= 3600.0,
        "--duration-s must be in (0, 3600]"
    );
    let mut config = harness::DemoConfig {
        scenario,
        profile,
        duration: Duration::from_secs_f64(args.duration_s),
        codec,
        out: args.out.clone(),
        seed: args.seed,
        speech: args.speech.clone(),
        print: true,
        tap: None,
    };
    let bridge = if args.play {
        start_player().map(|(prod, bridge)| {
            // The tap runs on the bot's call task: an SPSC ring hands frames to the
            // bridge thread, which resamples them to the device's format.
            let prod = std::sync::Mutex::new(prod);
            config.tap = Some(Arc::new(move |frame: &media_core::frame::Pcm16kFrame| {
                if let Ok(mut p) = prod.lock() {
                    use devices::ringbuf::traits::Producer;
                    let _ = p.try_push(*frame);
                }
            }));
            bridge
        })
    } else {
        None
    };
    let result = harness::demo::run_blocking(config);
    if let Some(bridge) = bridge {
        match bridge.stop() {
            Ok(stats) => {
                if let Some(p) = stats.playback {
                    println!(
                        "  played {} frames on the output device ({} padded, {} dropped, \
                         {} start-up slips)",
                        p.frames_played, p.padded_frames, p.dropped_frames, p.recentres
                    );
                }
            }
            Err(e) => eprintln!("  --play: {e}"),
        }
    }
    result.map(|_| ())
}

/// The bot's received audio on the default output device, at the device's own rate
/// and channels: a [`devices::DeviceBridge`] with only its playback half, fed through a
/// ring of one second. `None` (with a message) when there is no usable output.
fn start_player() -> Option<(
    devices::HeapProd<media_core::frame::Pcm16kFrame>,
    devices::DeviceBridge,
)> {
    let opened = devices::PlaybackEnd::device(
        &devices::DeviceSelector::default(),
        devices::StreamFormat::default(),
    )
    .and_then(|end| {
        let (prod, input) = devices::FrameInput::ring(50);
        let bridge = devices::DeviceBridge::builder(devices::BridgeConfig::default())
            .playback(end, input)
            .start()?;
        Ok((prod, bridge))
    });
    match opened {
        Ok((prod, bridge)) => {
            if let Some((format, device)) = bridge.playback_format() {
                println!("  playing the bot's received audio on {device} ({format:?})");
            }
            Some((prod, bridge))
        }
        Err(e) => {
            eprintln!("  --play: no audio output ({e}); continuing without playback");
            None
        }
    }
}
