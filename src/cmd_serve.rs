//! `media-processor serve`: run the media processor (its reactor threads on one UDP
//! port) with an echo or listen-only bot, printing each session's blob and the
//! certificate fingerprint.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use harness::app::{ServeOptions, serve};
use platform::{Certificate, Codec, MediaPlatformSettings, ServerIdentity};
use uuid::Uuid;

/// Arguments of `media-processor serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// JSON settings file (keys as the long options in camelCase, e.g.
    /// `{"bind":"127.0.0.1:8445","publicHost":"127.0.0.1","echo":true}`); options given
    /// on the command line win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// UDP address to listen on.
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Host name or address peers use (the blob's mpUri host; default: the bind IP).
    #[arg(long)]
    pub public_host: Option<String>,
    /// Port in the mpUri (default: the bound port).
    #[arg(long)]
    pub public_port: Option<u16>,
    /// PEM certificate chain (with --key).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key (with --cert).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Use a development self-signed certificate (the default without --cert).
    #[arg(long, conflicts_with = "cert")]
    pub dev_cert: bool,
    /// Echo bot: every received frame is sent back (else the bot only listens).
    #[arg(long)]
    pub echo: bool,
    /// Bind each call's audio to the default audio devices: what the call receives is
    /// played on the output, what the input captures is sent (at the devices' own
    /// formats, through `devices::DeviceBridge`).
    #[arg(long, conflicts_with = "echo")]
    pub devices: bool,
    /// Most sessions at once.
    #[arg(long)]
    pub max_sessions: Option<usize>,
    /// Graph call id of the first session (a GUID; default: a fresh one).
    #[arg(long)]
    pub call_id: Option<Uuid>,
    /// Write each session's blob to this file.
    #[arg(long)]
    pub blob_out: Option<PathBuf>,
    /// Codecs accepted, most preferred first: pcm, opus (repeatable; default pcm, opus).
    #[arg(long = "codec", value_parser = parse_codec)]
    pub codecs: Vec<Codec>,
    /// Jitter buffer minimum delay in ms.
    #[arg(long)]
    pub jitter_min_ms: Option<u64>,
    /// Idle timeout in ms: how fast a vanished peer is detected (default 5000).
    #[arg(long)]
    pub idle_timeout_ms: Option<u64>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Stop after this many calls have ended.
    #[arg(long)]
    pub calls: Option<usize>,
    /// Reactor threads: each owns a socket on the port, its connections and their calls
    /// (default: one per CPU).
    #[arg(long)]
    pub reactor_threads: Option<usize>,
}

/// Parses `pcm` / `opus` (also the wire names `pcm16k` / `opus16k`).
pub fn parse_codec(s: &str) -> Result<Codec, String> {
    s.parse()
}

/// The JSON settings file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    public_host: Option<String>,
    public_port: Option<u16>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    dev_cert: Option<bool>,
    echo: Option<bool>,
    max_sessions: Option<usize>,
    call_id: Option<Uuid>,
    blob_out: Option<PathBuf>,
    codecs: Option<Vec<String>>,
    jitter_min_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    seconds: Option<f64>,
    calls: Option<usize>,
    reactor_threads: Option<usize>,
}

/// The serve options the arguments (and the settings file) describe.
pub fn options(args: &ServeArgs) -> anyhow::Result<ServeOptions> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--config {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("--config {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let mut s = MediaPlatformSettings::dev_loopback();
    s.bind = args
        .bind
        .or(file.bind)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8445)));
    s.public_host = args
        .public_host
        .clone()
        .or(file.public_host)
        .unwrap_or_else(|| s.bind.ip().to_string());
    s.public_port = args.public_port.or(file.public_port);
    let cert = args.cert.clone().or(file.cert);
    let key = args.key.clone().or(file.key);
    let dev = args.dev_cert || file.dev_cert.unwrap_or(false);
    s.certificate = match (cert, key, dev) {
        (Some(_), _, true) => anyhow::bail!("--cert and --dev-cert exclude each other"),
        (Some(c), Some(k), false) => Certificate::Identity(
            ServerIdentity::from_pem_files(&c, &k)
                .with_context(|| format!("loading {} / {}", c.display(), k.display()))?,
        ),
        (Some(_), None, _) | (None, Some(_), _) => anyhow::bail!("--cert and --key go together"),
        (None, None, _) => Certificate::DevSelfSigned,
    };
    if let Some(m) = args.max_sessions.or(file.max_sessions) {
        s.limits.max_sessions = m;
    }
    let codecs = if !args.codecs.is_empty() {
        args.codecs.clone()
    } else if let Some(names) = &file.codecs {
        names
            .iter()
            .map(|n| parse_codec(n).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?
    } else {
        vec![Codec::Pcm16k, Codec::Opus16k]
    };
    s.codecs = codecs;
    if let Some(n) = args.reactor_threads.or(file.reactor_threads) {
        s.reactor_threads = n;
    }
    if let Some(ms) = args.jitter_min_ms.or(file.jitter_min_ms) {
        s.receive.jitter.min_delay = Duration::from_millis(ms);
        s.receive.jitter.start_delay = s.receive.jitter.start_delay.max(s.receive.jitter.min_delay);
    }
    if let Some(ms) = args.idle_timeout_ms.or(file.idle_timeout_ms) {
        s.transport = s
            .transport
            .clone()
            .with_idle_timeout(Duration::from_millis(ms));
    }
    let seconds = args.seconds.or(file.seconds);
    if let Some(sec) = seconds {
        anyhow::ensure!(sec.is_finite() && sec > 0.0, "--seconds must be positive");
    }
    Ok(ServeOptions {
        settings: s,
        echo: args.echo || file.echo.unwrap_or(false),
        call_id: args.call_id.or(file.call_id),
        blob_out: args.blob_out.clone().or(file.blob_out),
        run_for: seconds.map(Duration::from_secs_f64),
        max_calls: args.calls.or(file.calls),
        on_session: args.devices.then(devices_hook),
    })
}

/// Binds a session to the default output and input devices for its call.
fn devices_hook() -> harness::app::SessionHook {
    std::sync::Arc::new(|socket: &mut platform::AudioSocket| {
        let frames = socket
            .take_frames()
            .ok_or("the session's frames are already taken")?;
        let device = devices::StreamFormat::default();
        let bridge = devices::DeviceBridge::builder(devices::BridgeConfig::default())
            .playback(
                devices::PlaybackEnd::device(&devices::DeviceSelector::default(), device)
                    .map_err(|e| e.to_string())?,
                devices::FrameInput::Channel(frames),
            )
            .capture(
                devices::CaptureEnd::device(&devices::DeviceSelector::default(), device)
                    .map_err(|e| e.to_string())?,
                socket.sender(),
            )
            .start()
            .map_err(|e| e.to_string())?;
        if let (Some((out, out_dev)), Some((inp, in_dev))) =
            (bridge.playback_format(), bridge.capture_format())
        {
            println!(
                "devices: playing on {out_dev} ({} Hz, {} ch), capturing from {in_dev} ({} Hz, {} ch)",
                out.rate, out.channels, inp.rate, inp.channels
            );
        }
        Ok(Box::new(bridge) as Box<dyn Send>)
    })
}

/// Runs the processor until Ctrl-C (or `--seconds` / `--calls`).
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let opts = options(args)?;
    serve(opts)?;
    Ok(())
}
