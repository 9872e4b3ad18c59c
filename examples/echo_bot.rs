//! An echo bot, wired by hand, against the local Graph emulator.
//!
//! The bot is three pieces: the media platform with an echo behaviour
//! (`PlatformSessions`), the Graph call runtime with its callback server (`BotHost`),
//! and a call. The emulator stands in for Graph; its far end connects to the bot's
//! media processor over QUIC (pinning the bot's dev certificate) and speaks.
//!
//! Run: `cargo run --example echo_bot`

use std::sync::Arc;
use std::time::Duration;

use bot::{BotHost, EchoBot, PlatformSessions, SessionOptions};
use emulator::{Emulator, EmulatorConfig};
use harness::local::bot_config_for;
use harness::{FarEndConfig, QuicFarEnd};
use platform::{MediaPlatformSettings, ServerTrust};
use signaling::Scenario;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The media side: a QUIC media processor on 127.0.0.1 whose calls echo.
    let sessions = PlatformSessions::start(
        MediaPlatformSettings::dev_loopback(),
        Arc::new(EchoBot),
        SessionOptions::default(),
    )?;
    println!("media processor at {}", sessions.platform().mp_uri());

    // 2. Graph, emulated. Its far end pins the processor's certificate.
    let far_end = QuicFarEnd::new(FarEndConfig::new(ServerTrust::pinned(
        sessions.fingerprint(),
    )));
    let emulator = Emulator::start(EmulatorConfig {
        media: Arc::new(far_end.clone()),
        ..EmulatorConfig::default()
    })
    .await?;
    println!("Graph emulator at {}", emulator.base_url());

    // 3. The bot: token, calls API and signed callbacks, all against the emulator.
    let app = emulator.apps()[0].clone();
    let bot = BotHost::start(bot_config_for(&emulator, &app), sessions.clone()).await?;
    let mut events = bot.runtime().subscribe();

    // 4. Place an app-hosted P2P call; the runtime puts the media blob into it.
    let call = bot.place(Scenario::P2pVoipApp).await?;
    println!("call {} created", call.call_id);
    let session = call
        .session_id
        .ok_or("an app-hosted call has a media session")?;

    // 5. Watch it for five seconds.
    for second in 1..=5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        while let Ok(e) = events.try_recv() {
            println!("  event: {:?}", e.kind);
        }
        let bot_side = sessions.snapshot(session).unwrap_or_default();
        let far = far_end.stats(&call.call_id).unwrap_or_default();
        println!(
            "  {second}s: bot received {} frames and echoed {}; far end sent {}, got {} back",
            bot_side.counters.frames_received,
            bot_side.counters.frames_sent,
            far.frames_sent,
            far.packets_received
        );
    }

    // 6. Hang up; both sides report what they saw.
    bot.runtime().hang_up(&call.call_id).await?;
    if let Some(r) = sessions.wait_report(session, Duration::from_secs(5)).await {
        println!(
            "bot side: {:?}, media ended: {:?}",
            r.last.counters, r.media_end
        );
    }
    if let Some(r) = far_end
        .wait_report(&call.call_id, Duration::from_secs(5))
        .await
    {
        println!(
            "far end: sent {} packets, received {}, jitter buffer target {:.0} ms",
            r.stats.packets_sent, r.stats.packets_received, r.stats.jitter.target_delay_ms
        );
    }
    bot.shutdown().await;
    emulator.shutdown().await;
    Ok(())
}
