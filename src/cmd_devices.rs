//! `media-processor devices` and `media-processor loopback`: list audio devices, measure a
//! loopback (output -> input) round trip.
//!
//! Both need an audio server; on a headless machine `eval "$(scripts/start-pulse.sh)"` starts
//! PulseAudio with a null sink `loop` (default output) and its monitor `loop.monitor`
//! (default input).

use anyhow::Context;
use devices::{DeviceInfo, DeviceSelector, LoopbackConfig, LoopbackReport, SampleType};

/// Arguments of `media-processor devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Lists the audio devices of the PulseAudio and ALSA hosts.
pub fn run_devices(args: &DevicesArgs) -> anyhow::Result<()> {
    let devices = devices::list_devices();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
        return Ok(());
    }
    if devices.is_empty() {
        println!(
            "no audio devices (is an audio server running? try: eval \"$(scripts/start-pulse.sh)\")"
        );
        return Ok(());
    }
    println!(
        "{:<10} {:<6} {:<3} {:<32} {:<18} DESCRIPTION",
        "HOST", "DIR", "DEF", "ID", "DEFAULT CONFIG"
    );
    for d in &devices {
        println!("{}", device_line(d));
    }
    Ok(())
}

fn device_line(d: &DeviceInfo) -> String {
    let config = d
        .default_config
        .map(|c| format!("{} Hz {} ch {}", c.sample_rate, c.channels, c.sample_format))
        .unwrap_or_else(|| "-".into());
    format!(
        "{:<10} {:<6} {:<3} {:<32} {:<18} {}",
        d.host.name(),
        d.direction.to_string(),
        if d.is_default { "*" } else { "" },
        d.id,
        config,
        d.description
    )
}

/// Arguments of `media-processor loopback`.
#[derive(Debug, clap::Args)]
pub struct LoopbackArgs {
    /// Output device: `default`, an id or description (`loop`), or `host:id`
    /// (`pulseaudio:loop`, `alsa:pulse`).
    #[arg(long, default_value = "default")]
    pub output: String,
    /// Input device, same forms (`loop.monitor`, `pulseaudio:loop.monitor`).
    #[arg(long, default_value = "default")]
    pub input: String,
    /// Sample rate of both streams (default: the output device's rate).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Channels of both streams (default: the output device's channel count).
    #[arg(long)]
    pub channels: Option<u16>,
    /// Length of the test sweep in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Exchange f32 samples with the devices (converted in the callbacks) instead of i16.
    #[arg(long)]
    pub f32: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Plays a sweep to the output, records the input, prints latency and fidelity.
pub fn run_loopback(args: &LoopbackArgs) -> anyhow::Result<()> {
    let parse = |s: &str| -> DeviceSelector { s.parse().unwrap_or_default() };
    let config = LoopbackConfig {
        output: parse(&args.output),
        input: parse(&args.input),
        sample_rate: args.rate,
        channels: args.channels,
        sweep_seconds: args.seconds,
        sample_type: if args.f32 {
            SampleType::F32
        } else {
            SampleType::I16
        },
        ..LoopbackConfig::default()
    };
    let report = devices::run_loopback(&config)
        .with_context(|| format!("loopback {} -> {}", args.output, args.input))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &LoopbackReport) {
    println!("output        {}", r.output_device);
    println!("input         {}", r.input_device);
    println!(
        "format        {} Hz, {} ch, {:?}, {} frames per callback",
        r.sample_rate, r.channels, r.sample_type, r.buffer_frames
    );
    println!("signal        {}", r.signal);
    println!(
        "latency       {:.1} ms round trip (of which {:.1} ms queued for playback; prefill {} ms)",
        r.latency_ms, r.playback_queue_ms, r.prefill_ms
    );
    println!("correlation   {:.4}", r.correlation);
    println!(
        "snr           {:.1} dB (gain {:.2} dB)",
        r.snr_db, r.gain_db
    );
    println!("slips         {}", r.timeline_slips);
    println!(
        "playback      {} callbacks, {} underruns ({} frames), {} errors",
        r.playback.callbacks, r.playback.underruns, r.playback.underrun_frames, r.playback.errors
    );
    println!(
        "capture       {} callbacks, {} overruns ({} frames), {} errors",
        r.capture.callbacks, r.capture.overruns, r.capture.overrun_frames, r.capture.errors
    );
}
