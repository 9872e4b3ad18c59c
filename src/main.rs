//! `media-processor`: the standalone binary of the open app-hosted media engine.
//!
//! Subcommands:
//! - `blob` builds a media session configuration (the `mediaConfig.blob` of an
//!   app-hosted call) and prints it, plain or embedded.
//! - `request` prints the create-call body of one of the ten Graph scenarios and the
//!   permissions it needs.
//! - `inspect` reads a JSON document (blob, create-call request, call, notifications),
//!   says what it is, validates it and summarises it.
//! - `jb-eval` evaluates the adaptive jitter buffer over impaired-network profiles.
//! - `serve` runs the media processor; `peer` is the reference far end; `loadtest`
//!   measures calls per core.
//! - `devices` lists audio devices; `loopback` measures a device round trip.
//! - `emulator` runs the local Graph calling API emulator.
//! - `demo` runs the main job end to end on embedded defaults.
//! - `host` runs a bot service from a configuration file: Graph callbacks, media, an
//!   echo bot for many calls, metrics and probes, graceful drain on SIGTERM.
//!
//! Logs go to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON lines
//! (`--log-format`); a call's events carry its `call_id` and `session` (the `call` span).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_blob;
mod cmd_demo;
mod cmd_devices;
mod cmd_emulator;
mod cmd_host;
mod cmd_inspect;
mod cmd_jb_eval;
mod cmd_loadtest;
mod cmd_peer;
mod cmd_request;
mod cmd_serve;
mod logging;
mod private_file;

/// Open, Linux-native application-hosted real-time media engine for calling bots.
#[derive(Debug, Parser)]
#[command(name = "media-processor", version, about)]
struct Cli {
    /// Log format on stderr: text or json (one object per line). Filter with RUST_LOG
    /// (default info), e.g. `RUST_LOG=transport=debug`.
    #[arg(long, global = true, default_value = "text", value_parser = logging::parse_format)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a media session configuration (the app-hosted media blob) and print it.
    Blob(cmd_blob::BlobArgs),
    /// Print the create-call request body of a Graph scenario and its permissions.
    Request(cmd_request::RequestArgs),
    /// Identify, validate and summarise a JSON document (file or `-` for stdin).
    Inspect(cmd_inspect::InspectArgs),
    /// Evaluate the adaptive jitter buffer over impaired-network profiles.
    JbEval(cmd_jb_eval::JbEvalArgs),
    /// Run the media processor (QUIC media server; `--echo` for an echo bot).
    Serve(Box<cmd_serve::ServeArgs>),
    /// Run the reference far end: connect to a processor, send audio, record what comes back.
    Peer(cmd_peer::PeerArgs),
    /// Run N full-duplex calls over loopback QUIC and report the cost per call.
    Loadtest(cmd_loadtest::LoadtestArgs),
    /// List the audio devices (PulseAudio and ALSA hosts).
    Devices(cmd_devices::DevicesArgs),
    /// Play a known signal to an output device, capture it from an input device, and
    /// report the round-trip latency and how well the capture matches.
    Loopback(cmd_devices::LoopbackArgs),
    /// Run the local Graph calling API emulator until Ctrl-C.
    Emulator(cmd_emulator::EmulatorArgs),
    /// Run the end-to-end demo on embedded defaults.
    Demo(cmd_demo::DemoArgs),
    /// Run a bot service from a TOML configuration file until SIGTERM, then drain.
    Host(cmd_host::HostArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_format) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match &cli.command {
        Command::Blob(args) => cmd_blob::run(args),
        Command::Request(args) => cmd_request::run(args),
        Command::Inspect(args) => cmd_inspect::run(args),
        Command::JbEval(args) => cmd_jb_eval::run(args),
        Command::Serve(args) => cmd_serve::run(args),
        Command::Peer(args) => cmd_peer::run(args),
        Command::Loadtest(args) => cmd_loadtest::run(args),
        Command::Devices(args) => cmd_devices::run_devices(args),
        Command::Loopback(args) => cmd_devices::run_loopback(args),
        Command::Emulator(args) => cmd_emulator::run(args),
        Command::Demo(args) => cmd_demo::run(args),
        Command::Host(args) => cmd_host::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
