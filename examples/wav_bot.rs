//! A bot that plays a WAV into a call and records the other side, against the local
//! Graph emulator (`harness::Local` starts emulator, bot and far end in one go).
//!
//! Run: `cargo run --example wav_bot [prompt.wav]` (default: a generated speech-like
//! prompt). Writes into `out/wav_bot/`: the bot's recording of the far end, and what
//! the far end heard of the bot's WAV.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bot::WavBot;
use harness::{Local, LocalConfig};
use signaling::Scenario;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from("out/wav_bot");
    std::fs::create_dir_all(&out)?;

    // What the bot plays: a WAV from the command line, or 4 s of built-in speech.
    let bot = match std::env::args().nth(1) {
        Some(path) => WavBot::from_file(path.as_ref(), Some(out.clone()))?,
        None => WavBot::new(
            media_core::speech::speech_like(4 * 16_000, 3),
            Some(out.clone()),
        ),
    };

    // Emulator + bot + far end; the far end speaks over a Wi-Fi-like network.
    let mut config = LocalConfig::new(Arc::new(bot));
    config.far_end.profile = media_core::sim::Profile::named("wifi").ok_or("profile")?;
    let local = Local::start(config).await?;

    let call = local.place(Scenario::P2pVoipApp).await?;
    println!("call {} placed; the bot plays its prompt", call.call_id);
    tokio::time::sleep(Duration::from_secs(5)).await;
    local.bot.runtime().hang_up(&call.call_id).await?;

    // The bot's recording is written when its media ends.
    if let Some(session) = call.session_id
        && let Some(report) = local
            .bot
            .sessions()
            .wait_report(session, Duration::from_secs(5))
            .await
    {
        println!(
            "bot: sent {} frames, received {} ({} concealed){}",
            report.last.counters.frames_sent,
            report.last.counters.frames_received,
            report.last.counters.frames_concealed,
            report
                .finish_error
                .map(|e| format!(", recording failed: {e}"))
                .unwrap_or_default()
        );
        println!(
            "bot's recording: {}",
            out.join(format!("{}.received.wav", call.call_id)).display()
        );
    }
    // What the far end heard of the prompt (after network and jitter buffer).
    if let Some(far) = local
        .far_end
        .wait_report(&call.call_id, Duration::from_secs(5))
        .await
    {
        let path = out.join("farend_heard.wav");
        harness::report::write_wav(&path, &far.received)?;
        println!(
            "far end heard: {} ({} packets)",
            path.display(),
            far.stats.packets_received
        );
    }
    local.shutdown().await;
    Ok(())
}
