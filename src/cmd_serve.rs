//! `media-processor serve`: run the media processor (its reactor threads on one UDP
//! port) with an echo or listen-only bot, printing each session's blob and the
//! certificate fingerprint.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use platform::{
    AudioEvent, Certificate, Codec, FrameDelivery, Incoming, MediaPlatform, MediaPlatformSettings,
    ServerIdentity,
};
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
    /// Write each session's blob to this file (mode 0600: its session id admits a join).
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
    /// Also serve the platforms' media WebSockets on this TCP address: `/acs`, `/twilio`,
    /// `/vonage` (each stream a call of the same bot; formats in the ws-link crate documentation).
    #[arg(long)]
    pub ws: Option<SocketAddr>,
    /// Forward every call (QUIC, `--ws`, `--whip`) to an external bot's WebSocket at this URL
    /// (`ws://...`, or `wss://...` over TLS), speaking `--bot-dialect`; the bot's audio comes back through the
    /// call's paced send queue, with clear and marks (see the ws-link crate's `bot` module).
    #[arg(long, conflicts_with_all = ["echo", "devices"])]
    pub bot_ws: Option<String>,
    /// The external bot's dialect: twilio (default), acs or vonage.
    #[arg(long, requires = "bot_ws", value_parser = parse_dialect)]
    pub bot_dialect: Option<ws_link::Dialect>,
    /// Credential for the bot's handshake: twilio signs the URL with it
    /// (`X-Twilio-Signature`), acs and vonage send it as a bearer token.
    #[arg(
        long,
        env = "MP_BOT_AUTH_TOKEN",
        hide_env_values = true,
        requires = "bot_ws"
    )]
    pub bot_auth_token: Option<String>,
    /// PEM file of the certificate authorities a `wss://` bot's certificate must chain
    /// to (a private CA, or the bot's self-signed certificate), instead of the Mozilla
    /// roots (webpki-roots).
    #[arg(long, value_name = "FILE", requires = "bot_ws")]
    pub bot_ca: Option<std::path::PathBuf>,
    /// Twilio auth token: `/twilio` handshakes must carry its `X-Twilio-Signature`.
    #[arg(long, env = "MP_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    /// Public URL base Twilio connects to (e.g. `wss://media.example.com`), for the
    /// signature behind a proxy (default: the request's Host).
    #[arg(long, env = "MP_TWILIO_PUBLIC_URL")]
    pub twilio_public_url: Option<String>,
    /// Bearer token `/vonage` handshakes must carry (the NCCO's `headers`).
    #[arg(long, env = "MP_VONAGE_TOKEN", hide_env_values = true)]
    pub vonage_token: Option<String>,
    /// ACS resource id: `/acs` handshakes must carry a JWT for it (with --acs-jwks-url).
    #[arg(long, env = "MP_ACS_RESOURCE_ID", requires = "acs_jwks_url")]
    pub acs_resource_id: Option<String>,
    /// URL of the key set (JWKS) ACS signs its streaming tokens with.
    #[arg(long, env = "MP_ACS_JWKS_URL", requires = "acs_resource_id")]
    pub acs_jwks_url: Option<String>,
    /// `/acs` streams carry unmixed audio (the subscription's `audioChannelType`
    /// `unmixed`): each participant's chunks become its own unmixed stream (up to 4)
    /// besides the mix.
    #[arg(long, requires = "ws")]
    pub acs_unmixed: bool,
    /// Also serve WebRTC calls signalled by WHIP (RFC 9725) on this TCP address:
    /// `POST /whip` with an SDP offer, and a test page at `/` (microphone -> bot -> back).
    #[arg(long)]
    pub whip: Option<SocketAddr>,
    /// Bearer token WHIP offers (and DELETEs) must carry (default: none, open).
    #[arg(long, env = "MP_WHIP_TOKEN", hide_env_values = true, requires = "whip")]
    pub whip_token: Option<String>,
    /// Address of the WebRTC calls' ICE host candidates (default: the --whip IP, or
    /// for 0.0.0.0 the local address of the route to each client).
    #[arg(long, requires = "whip")]
    pub whip_candidate_ip: Option<std::net::IpAddr>,
}

/// Parses a dialect name: `twilio`, `acs`, `vonage`.
pub fn parse_dialect(s: &str) -> Result<ws_link::Dialect, String> {
    s.parse()
}

/// The external bot of `--bot-ws`, checked.
fn bot_config(args: &ServeArgs) -> anyhow::Result<Option<ws_link::BotLinkConfig>> {
    let Some(url) = &args.bot_ws else {
        return Ok(None);
    };
    let mut config =
        ws_link::BotLinkConfig::new(url, args.bot_dialect.unwrap_or(ws_link::Dialect::Twilio));
    config.auth_token = args.bot_auth_token.clone();
    config.validate().context("--bot-ws")?;
    if let Some(ca) = &args.bot_ca {
        config.trust_ca_file(ca).context("--bot-ca")?;
    }
    Ok(Some(config))
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
        bot: bot_config(args)?,
        ws: args.ws.map(|addr| WsOptions {
            addr,
            auth: ws_link::WsAuthConfig {
                acs: args
                    .acs_resource_id
                    .as_deref()
                    .zip(args.acs_jwks_url.as_deref())
                    .map(|(id, url)| ws_link::WsAuthConfig::acs(id, url)),
                twilio_auth_token: args.twilio_auth_token.clone(),
                twilio_public_url: args.twilio_public_url.clone(),
                vonage_token: args.vonage_token.clone(),
            },
            acs_audio: if args.acs_unmixed {
                platform::AudioStreams::mixed_and_unmixed(4)
            } else {
                platform::AudioStreams::MIXED
            },
        }),
        whip: args.whip.map(|addr| WhipOptions {
            addr,
            token: args.whip_token.clone(),
            candidate_ip: args.whip_candidate_ip,
        }),
    })
}

/// Binds a session to the default output and input devices for its call.
fn devices_hook() -> SessionHook {
    Arc::new(|socket: &mut platform::AudioSocket| {
        let frames = socket
            .take_frames()
            .ok_or("the session's frames are already taken")?;
        let device = devices::StreamFormat::default();
        let bridge = devices::DeviceBridge::builder(devices::BridgeConfig::default())
            .playback(
                devices::PlaybackEnd::device(&devices::DeviceSelector::default(), device)?,
                devices::FrameInput::Channel(frames),
            )
            .capture(
                devices::CaptureEnd::device(&devices::DeviceSelector::default(), device)?,
                socket.sender(),
            )
            .start()?;
        if let (Some((out, out_dev)), Some((inp, in_dev))) =
            (bridge.playback_format(), bridge.capture_format())
        {
            println!(
                "devices: playing on {out_dev} ({} Hz, {} ch), capturing from {in_dev} ({} Hz, {} ch)",
                out.rate, out.channels, inp.rate, inp.channels
            );
        }
        Ok(Box::new(ReportedBridge(bridge)) as Box<dyn Send>)
    })
}

/// A session's device bridge; prints its statistics (slips, drops, underruns, levels)
/// as one JSON line when the session releases it.
struct ReportedBridge(devices::DeviceBridge);

impl Drop for ReportedBridge {
    fn drop(&mut self) {
        let stats = self.0.stats();
        match serde_json::to_string(&stats) {
            Ok(json) => println!("devices stats: {json}"),
            Err(e) => println!("devices stats: cannot be serialised: {e}"),
        }
    }
}

/// Forwards one session's call to the external bot until it ends; true if Ctrl-C or
/// the deadline came first (the call is hung up).
async fn forward_session(
    socket: platform::AudioSocket,
    call_id: Uuid,
    bot: ws_link::BotLinkConfig,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    let info = ws_link::BotCallInfo::for_call(call_id);
    let forwarding = tokio::spawn(ws_link::forward(socket, info, bot, None));
    let until =
        deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => true,
        _ = tokio::time::sleep_until(until) => true,
        r = forwarding => {
            print_forwarded(&format!("call {call_id}"), r);
            false
        }
    }
}

/// Prints how a call forwarded to the external bot ended.
fn print_forwarded(
    what: &str,
    r: Result<Result<ws_link::BotLinkReport, ws_link::BotLinkError>, tokio::task::JoinError>,
) {
    match r {
        Ok(Ok(report)) => {
            let by = if report.call_ended {
                "the call"
            } else {
                "the bot"
            };
            println!("{what}: bot link ended by {by}: {:?}", report.stats);
        }
        Ok(Err(e)) => eprintln!("{what}: bot link failed: {e}"),
        Err(e) => eprintln!("{what}: bot link task failed: {e}"),
    }
}

/// Runs the processor until Ctrl-C (or `--seconds` / `--calls`).
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let opts = options(args)?;
    serve(opts)?;
    Ok(())
}

/// Attaches something to each new session's socket before its call starts (e.g. audio
/// devices: take its frames, send through its sender) and returns what must live as
/// long as the call; dropped when the call ends. An error is printed and the session
/// served without it.
pub type SessionHook = Arc<
    dyn Fn(&mut platform::AudioSocket) -> Result<Box<dyn Send>, Box<dyn std::error::Error>>
        + Send
        + Sync,
>;

/// What [`serve`] runs.
#[derive(Clone)]
pub struct ServeOptions {
    /// Platform settings.
    pub settings: MediaPlatformSettings,
    /// Echo every received frame back (else: listen only, send nothing).
    pub echo: bool,
    /// Graph call id of the first session (default: a fresh one).
    pub call_id: Option<uuid::Uuid>,
    /// Also write each session's blob to this file.
    pub blob_out: Option<PathBuf>,
    /// Stop after this long (default: until Ctrl-C).
    pub run_for: Option<Duration>,
    /// Stop after this many calls ended (default: never).
    pub max_calls: Option<usize>,
    /// Run for each session before its call (e.g. bind it to audio devices).
    pub on_session: Option<SessionHook>,
    /// Forward every call to this external bot (instead of the echo or listen-only bot).
    pub bot: Option<ws_link::BotLinkConfig>,
    /// Also serve the platforms' media WebSockets.
    pub ws: Option<WsOptions>,
    /// Also serve WebRTC calls signalled by WHIP.
    pub whip: Option<WhipOptions>,
}

/// The WHIP endpoint of `serve --whip`.
#[derive(Debug, Clone)]
pub struct WhipOptions {
    /// TCP address to listen on.
    pub addr: SocketAddr,
    /// Bearer token offers must carry (none: open).
    pub token: Option<String>,
    /// Address of the calls' ICE host candidates (none: chosen per client).
    pub candidate_ip: Option<std::net::IpAddr>,
}

/// The platforms' media WebSocket endpoint of `serve --ws`.
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// TCP address to listen on.
    pub addr: SocketAddr,
    /// Credentials per dialect (none: served unauthenticated).
    pub auth: ws_link::WsAuthConfig,
    /// What `/acs` streams' calls receive (`--acs-unmixed`: each participant's own
    /// stream besides the mix).
    pub acs_audio: platform::AudioStreams,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("settings", &self.settings)
            .field("echo", &self.echo)
            .field("call_id", &self.call_id)
            .field("blob_out", &self.blob_out)
            .field("run_for", &self.run_for)
            .field("max_calls", &self.max_calls)
            .field("on_session", &self.on_session.is_some())
            .field("bot", &self.bot.as_ref().map(|b| (&b.url, b.dialect)))
            .field("ws", &self.ws.as_ref().map(|w| w.addr))
            .field("whip", &self.whip.as_ref().map(|w| w.addr))
            .finish()
    }
}

/// A multi-threaded runtime for the command's control plane.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// Runs a media processor with one bot session at a time: prints the blob and the
/// certificate fingerprint, serves the call (echo or listen-only), prints its events
/// and QoE, then offers a new session. Blocks until Ctrl-C, `run_for` or `max_calls`.
pub fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let platform = MediaPlatform::start(opts.settings.clone())?;
        println!("media processor listening on {} ({})", platform.local_addr(), platform.mp_uri());
        println!("certificate fingerprint: {}", platform.certificate_fingerprint());
        let platform = Arc::new(platform);
        let _ws = match &opts.ws {
            Some(ws) => Some(serve_ws(&platform, ws, opts.echo, opts.bot.clone()).await?),
            None => None,
        };
        let whip = match &opts.whip {
            Some(w) => Some(
                serve_whip(&platform, w, opts.echo, opts.on_session.clone(), opts.bot.clone())
                    .await?,
            ),
            None => None,
        };
        let deadline = opts.run_for.map(|d| tokio::time::Instant::now() + d);
        let mut call_id = opts.call_id.unwrap_or_else(uuid::Uuid::new_v4);
        let mut ended = 0usize;
        loop {
            let delivery = if opts.bot.is_some() {
                FrameDelivery::Channel(50)
            } else if opts.echo {
                FrameDelivery::Callback(Box::new(|f, tx| {
                    let _ = tx.enqueue(&f.samples);
                }))
            } else {
                FrameDelivery::Channel(50)
            };
            let (blob, mut socket) = platform.create_media_configuration_with(call_id, delivery)?;
            let _attached = match &opts.on_session {
                Some(hook) => match hook(&mut socket) {
                    Ok(guard) => Some(guard),
                    Err(e) => {
                        eprintln!("session {call_id}: {e}; serving it without");
                        None
                    }
                },
                None => None,
            };
            let json = blob.to_json();
            println!("blob: {json}");
            if let Some(path) = &opts.blob_out {
                // The session id in the blob admits a join: owner-only file.
                crate::private_file::write_private(path, json.as_bytes())
                    .with_context(|| format!("--blob-out {}", path.display()))?;
                println!("blob written to {}", path.display());
            }
            if let Some(bot) = &opts.bot {
                if forward_session(socket, call_id, bot.clone(), deadline).await {
                    break;
                }
                ended += 1;
                if opts.max_calls.is_some_and(|m| ended >= m) {
                    break;
                }
                call_id = uuid::Uuid::new_v4();
                continue;
            }
            let mut stats = tokio::time::interval(Duration::from_secs(5));
            stats.tick().await;
            let stop = loop {
                let sleep_until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break true,
                    _ = tokio::time::sleep_until(sleep_until) => break true,
                    _ = stats.tick() => {
                        if socket.state() == platform::CallState::Connected {
                            let q = socket.qoe();
                            println!(
                                "qoe: rx {} tx {} loss {:.2} % jitter {:.2} ms rtt {:.2} ms jb target {:.0} ms",
                                q.packets_received, q.packets_sent, q.loss_pct, q.inbound_jitter_ms,
                                q.rtt_ms, q.jitter_buffer.target_delay_ms
                            );
                        }
                    }
                    incoming = socket.recv() => match incoming {
                        Some(Incoming::Event(e)) => {
                            println!("event: {e:?}");
                            if matches!(e, AudioEvent::Ended { .. } | AudioEvent::MediaStreamFailure { .. }) {
                                let q = socket.qoe();
                                println!("call ended: {q:?}");
                                break false;
                            }
                        }
                        Some(Incoming::Frame(_)) => {}
                        None => break false,
                    },
                }
            };
            if stop {
                break;
            }
            ended += 1;
            if opts.max_calls.is_some_and(|m| ended >= m) {
                break;
            }
            call_id = uuid::Uuid::new_v4();
        }
        if let Some(ws) = _ws {
            ws.shutdown().await;
        }
        if let Some(whip) = whip {
            whip.shutdown().await;
        }
        match Arc::try_unwrap(platform) {
            Ok(platform) => platform.shutdown().await,
            Err(_) => eprintln!("media WebSocket calls still run: the platform stops with the process"),
        }
        Ok(())
    })
}

/// Starts the media WebSocket endpoint: each stream a call of the same bot (echo or
/// listen-only), its events printed; prints the three endpoint URLs.
async fn serve_ws(
    platform: &Arc<MediaPlatform>,
    ws: &WsOptions,
    echo: bool,
    bot: Option<ws_link::BotLinkConfig>,
) -> anyhow::Result<ws_link::WsServer> {
    let to_bot = bot.is_some();
    let delivery = move |_: &ws_link::StreamInfo| {
        if to_bot {
            FrameDelivery::Channel(50)
        } else if echo {
            FrameDelivery::Callback(Box::new(|f, tx| {
                let _ = tx.enqueue(&f.samples);
            }))
        } else {
            FrameDelivery::Callback(Box::new(|_, _| {}))
        }
    };
    let (streams, mut incoming) = ws_link::PlatformStreams::new(platform.clone(), delivery);
    let config = ws_link::WsConfig {
        auth: ws.auth.clone(),
        acs_audio: ws.acs_audio,
        ..ws_link::WsConfig::default()
    };
    let server = ws_link::WsServer::bind(ws.addr, config, Arc::new(streams))
        .await
        .with_context(|| format!("--ws {}", ws.addr))?;
    for d in ws_link::Dialect::ALL {
        let open = if server.is_open(d) {
            " (no authentication configured)"
        } else {
            ""
        };
        println!("{d} media WebSocket: {}{open}", server.url(d));
    }
    tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            let bot = bot.clone();
            tokio::spawn(async move {
                let ws_link::IncomingStream {
                    info,
                    mut socket,
                    playback,
                    ..
                } = call;
                println!(
                    "{} stream {} started ({:?})",
                    info.dialect, info.stream_id, info.encoding
                );
                if let Some(bot) = bot {
                    let to = ws_link::BotCallInfo::for_call(Uuid::new_v4());
                    let r = tokio::spawn(ws_link::forward(socket, to, bot, Some(playback))).await;
                    print_forwarded(&format!("{} stream {}", info.dialect, info.stream_id), r);
                    return;
                }
                while let Some(e) = socket.next_event().await {
                    println!("{} stream {}: event: {e:?}", info.dialect, info.stream_id);
                }
                println!(
                    "{} stream {} ended: {:?}",
                    info.dialect,
                    info.stream_id,
                    socket.qoe()
                );
            });
        }
    });
    Ok(server)
}

/// Starts the WHIP endpoint: each offer a WebRTC call of the same bot (echo,
/// listen-only, the audio devices of `--devices`, or the external bot of `--bot-ws`),
/// its events printed; prints the endpoint's and the test page's URLs.
async fn serve_whip(
    platform: &Arc<MediaPlatform>,
    whip: &WhipOptions,
    echo: bool,
    on_session: Option<SessionHook>,
    bot: Option<ws_link::BotLinkConfig>,
) -> anyhow::Result<webrtc_link::WhipServer> {
    let devices = on_session.is_some();
    let to_bot = bot.is_some();
    let delivery = move |_: &webrtc_link::WhipCallInfo| {
        if to_bot {
            FrameDelivery::Channel(50)
        } else if echo {
            FrameDelivery::Callback(Box::new(|f, tx| {
                let _ = tx.enqueue(&f.samples);
            }))
        } else if devices {
            FrameDelivery::Channel(50)
        } else {
            FrameDelivery::Callback(Box::new(|_, _| {}))
        }
    };
    let (calls, mut incoming) = webrtc_link::PlatformCalls::new(platform.clone(), delivery);
    let config = webrtc_link::WhipConfig {
        bearer_token: whip.token.clone(),
        candidate_ip: whip.candidate_ip,
        ..webrtc_link::WhipConfig::default()
    };
    let server = webrtc_link::WhipServer::bind(whip.addr, config, Arc::new(calls))
        .await
        .with_context(|| format!("--whip {}", whip.addr))?;
    let open = if server.is_open() {
        " (no bearer token configured)"
    } else {
        ""
    };
    println!("WHIP endpoint: {}{open}", server.url());
    println!("WHIP test page: {}", server.page_url());
    tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            let hook = on_session.clone();
            let bot = bot.clone();
            tokio::spawn(async move {
                let webrtc_link::IncomingCall { info, mut socket } = call;
                let _attached = match &hook {
                    Some(hook) => match hook(&mut socket) {
                        Ok(guard) => Some(guard),
                        Err(e) => {
                            eprintln!("WHIP call {}: {e}; serving it without", info.session_id);
                            None
                        }
                    },
                    None => None,
                };
                println!(
                    "WHIP call {} started ({}, media on {}, client {})",
                    info.session_id, info.codec, info.media_addr, info.client
                );
                if let Some(bot) = bot {
                    let to = ws_link::BotCallInfo::for_call(Uuid::new_v4());
                    let r = tokio::spawn(ws_link::forward(socket, to, bot, None)).await;
                    print_forwarded(&format!("WHIP call {}", info.session_id), r);
                    return;
                }
                while let Some(e) = socket.next_event().await {
                    println!("WHIP call {}: event: {e:?}", info.session_id);
                }
                println!("WHIP call {} ended: {:?}", info.session_id, socket.qoe());
            });
        }
    });
    Ok(server)
}
