//! `media-processor demo`: the main job end to end on this machine.
//!
//! Starts the local Graph emulator, an echo bot (Graph call runtime + callback server
//! on 127.0.0.1 + the QUIC media platform) and the emulator's far end; places one call
//! of a seed scenario, speaks into it over an impaired network for `--duration-s`,
//! shows progress once a second, hangs up, and writes `report.json`, `plot.png` and
//! WAVs both ways into `--out`. Service-hosted scenarios run signaling only.

use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use media_core::sim::Profile;
use signaling::Scenario;

/// Arguments of `media-processor demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Graph scenario (one of the ten seed examples; app-hosted ones carry media).
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
    let mut config = bot::DemoConfig {
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
    let player = if args.play { start_player() } else { None };
    if let Some((tx, _)) = &player {
        let tx = std::sync::Mutex::new(tx.clone());
        config.tap = Some(Arc::new(move |frame: &media_core::frame::Pcm16kFrame| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.try_send(*frame.samples());
            }
        }));
    }
    let result = bot::demo::run_blocking(config);
    if let Some((tx, handle)) = player {
        drop(tx);
        let _ = handle.join();
    }
    result.map(|_| ())
}

type Player = (mpsc::SyncSender<[i16; 320]>, std::thread::JoinHandle<()>);

/// A thread playing 20 ms frames (16 kHz mono) on the default output device.
fn start_player() -> Option<Player> {
    let format = devices::StreamFormat {
        prefill_ms: 60,
        ..devices::StreamFormat::pcm16k_mono()
    };
    let (tx, rx) = mpsc::sync_channel::<[i16; 320]>(100);
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        use devices::SampleSink;
        let mut sink = match devices::DeviceSink::open(&devices::DeviceSelector::default(), format)
        {
            Ok(s) => {
                let _ = ready_tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        while let Ok(frame) = rx.recv() {
            let _ = sink.write(&frame);
        }
        std::thread::sleep(Duration::from_millis(200));
    });
    match ready_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => {
            println!("  playing the bot's received audio on the default output device");
            Some((tx, handle))
        }
        Ok(Err(e)) => {
            eprintln!("  --play: no audio output ({e}); continuing without playback");
            None
        }
        Err(_) => {
            eprintln!("  --play: the audio output did not open in time; continuing without it");
            None
        }
    }
}
