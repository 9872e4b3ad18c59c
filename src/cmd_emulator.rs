//! `media-processor emulator`: run the local Graph calling API emulator until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use emulator::{EmulatorConfig, EmulatorHandle, RegisteredApp, Timing};

/// Options of `media-processor emulator`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on (use 127.0.0.1 unless the bot runs elsewhere).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Base URL to advertise (Location headers, jwks_uri); default http://{bind}.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Tenant id of the registered app.
    #[arg(long, default_value = RegisteredApp::DEMO_TENANT)]
    pub tenant: String,
    /// Application (client) id of the registered app.
    #[arg(long, default_value = RegisteredApp::DEMO_CLIENT_ID)]
    pub app_id: String,
    /// Client secret of the registered app (better from the environment: arguments are
    /// visible to every user in `ps`). Only the public demo secret is ever printed.
    #[arg(long, env = "MP_EMULATOR_APP_SECRET", hide_env_values = true,
          default_value = RegisteredApp::DEMO_SECRET)]
    pub app_secret: String,
    /// Bearer token of the `/_emulator/*` control endpoints (at least 16 characters);
    /// a random one when not given. Never printed.
    #[arg(long, env = "MP_EMULATOR_CONTROL_TOKEN", hide_env_values = true)]
    pub control_token: Option<String>,
    /// Write the control token to this file (mode 0600), for scripts that inject faults
    /// or hang calls up.
    #[arg(long)]
    pub control_token_file: Option<PathBuf>,
    /// Offer a call to the bot whose callback URL this is, once the emulator listens
    /// (start the bot first). Later calls: `POST /_emulator/calls/incoming` with
    /// `{"callbackUri": URL}`.
    #[arg(long, value_name = "CALLBACK_URL")]
    pub ring: Option<String>,
    /// Display name of the app's identity in calls.
    #[arg(long, default_value = "Calling Bot")]
    pub app_name: String,
    /// Seconds without keepAlive before a call ends (Graph: 2700).
    #[arg(long, default_value_t = 2700)]
    pub keepalive_timeout_s: u64,
    /// Lifetime of issued access tokens, seconds.
    #[arg(long, default_value_t = 3599)]
    pub token_lifetime_s: u64,
    /// Delay between scripted call steps (notifications), milliseconds.
    #[arg(long, default_value_t = 100)]
    pub step_delay_ms: u64,
    /// How long a guest waits in the lobby, milliseconds.
    #[arg(long, default_value_t = 500)]
    pub lobby_delay_ms: u64,
    /// Largest request body accepted, bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
}

impl EmulatorArgs {
    /// The emulator configuration these options describe (no media connector: the
    /// caller plugs one in).
    pub fn config(&self) -> anyhow::Result<EmulatorConfig> {
        anyhow::ensure!(
            self.keepalive_timeout_s > 0 && self.token_lifetime_s > 0,
            "--keepalive-timeout-s and --token-lifetime-s must be positive"
        );
        let app = RegisteredApp::new(&self.tenant, &self.app_id, &self.app_secret)
            .display_name(&self.app_name);
        Ok(EmulatorConfig {
            bind: self.bind,
            public_base_url: self.public_url.clone(),
            apps: vec![app],
            token_lifetime: Duration::from_secs(self.token_lifetime_s),
            keepalive_timeout: Duration::from_secs(self.keepalive_timeout_s),
            timing: Timing {
                step_delay: Duration::from_millis(self.step_delay_ms),
                lobby_delay: Duration::from_millis(self.lobby_delay_ms),
                ..Timing::default()
            },
            max_body_bytes: self.max_body_bytes,
            control_token: self.control_token.clone(),
            ..EmulatorConfig::default()
        })
    }
}

/// What the emulator prints once it listens.
pub fn banner(emu: &EmulatorHandle) -> String {
    let mut out = format!(
        "Graph calling API emulator listening on {}\n",
        emu.base_url()
    );
    out += &format!("  token endpoint   POST {}\n", emu.token_url());
    out += &format!("  graph v1.0       {}\n", emu.graph_v1_url());
    out += &format!("  graph beta       {}\n", emu.graph_beta_url());
    out += &format!("  openid config    {}\n", emu.openid_url());
    out += &format!("  jwks             {}\n", emu.jwks_url());
    out += &format!(
        "  control          {0}/_emulator/faults  {0}/_emulator/calls  \
         {0}/_emulator/calls/incoming (Authorization: Bearer <control token>)\n",
        emu.base_url()
    );
    for app in emu.apps() {
        // A real secret stays off the terminal and out of logs; the demo one is public.
        let secret = if app.client_secret == RegisteredApp::DEMO_SECRET {
            RegisteredApp::DEMO_SECRET
        } else {
            "(as given; not shown)"
        };
        out += &format!(
            "  app              tenant={} client_id={} client_secret={secret}\n",
            app.tenant_id, app.client_id
        );
    }
    out += "Ctrl-C to stop.";
    out
}

/// Run the emulator (its own tokio runtime) until Ctrl-C.
pub fn run(args: &EmulatorArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let token_file = args.control_token_file.clone();
    let ring = args.ring.clone();
    let report = emulator::run_until_ctrl_c(config, |emu| {
        println!("{}", banner(emu));
        if let Some(url) = &ring {
            match emu.ring(&emulator::IncomingCall::to(url.clone())) {
                Ok(id) => println!("ringing the bot at {url}: call {id}"),
                Err(e) => eprintln!("--ring {}: {e}", media_blob::excerpt(url)),
            }
        }
        if let Some(path) = &token_file {
            match crate::private_file::write_private(path, emu.control_token().as_bytes()) {
                Ok(()) => println!("control token written to {} (mode 0600)", path.display()),
                Err(e) => eprintln!("--control-token-file {}: {e}", path.display()),
            }
        }
    })
    .context("running the Graph emulator")?;
    println!(
        "stopped: {} live call(s) ended, {} task(s) left",
        report.live_calls, report.tasks_left
    );
    Ok(())
}
