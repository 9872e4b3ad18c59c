//! `serve --bot-ws`: a QUIC call of the real binary forwarded to an external bot that
//! speaks Twilio Media Streams (`crates/ws-link/tests/bots/twilio_bot.py`, on PyPI
//! `websockets`, its handshake checked by the `twilio` package's `RequestValidator`).
//! `peer` talks to `serve`; `serve` forwards the call to the bot, which echoes; the
//! echo comes back to `peer` through the call's paced send queue.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const TOKEN: &str = "auth-token-of-the-bot";

/// A child process, killed if the test fails half-way.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines a child prints on stdout, read on a thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for a line starting with `prefix`; every line seen goes to `seen`.
fn wait_line(rx: &mpsc::Receiver<String>, prefix: &str, seen: &mut Vec<String>) -> String {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("no line {prefix:?} ({e}); so far: {seen:#?}"));
        seen.push(line.clone());
        if line.starts_with(prefix) {
            return line;
        }
    }
}

#[test]
fn serve_forwards_a_call_to_a_twilio_bot_and_plays_its_audio_back() {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import websockets.asyncio.server, twilio.request_validator",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with the PyPI packages websockets and twilio is needed (scripts/install-deps.sh)"
        );
        eprintln!("skipped: python3 with websockets and twilio is not installed");
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/ws-link/tests/bots/twilio_bot.py"
    );
    let mut bot = Killed(
        Command::new("python3")
            .args([script, TOKEN])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the bot starts"),
    );
    let bot_lines = lines_of(&mut bot.0);
    let mut bot_seen = Vec::new();
    let port = wait_line(&bot_lines, "LISTENING ", &mut bot_seen)["LISTENING ".len()..].to_owned();

    let dir = std::env::temp_dir().join(format!("mp-serve-bot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let blob = dir.join("blob.json");
    let mut serve = Killed(
        Command::new(env!("CARGO_BIN_EXE_media-processor"))
            .args(["serve", "--calls", "1", "--seconds", "60"])
            .args(["--bot-ws", &format!("ws://127.0.0.1:{port}/media")])
            .args(["--bot-dialect", "twilio", "--bind", "127.0.0.1:0"])
            .env("MP_BOT_AUTH_TOKEN", TOKEN)
            .arg("--blob-out")
            .arg(&blob)
            .stdout(Stdio::piped())
            .spawn()
            .expect("serve starts"),
    );
    let serve_lines = lines_of(&mut serve.0);
    let mut serve_seen = Vec::new();
    let fp = wait_line(&serve_lines, "certificate fingerprint: ", &mut serve_seen);
    let fingerprint = fp["certificate fingerprint: ".len()..].trim().to_owned();
    wait_line(&serve_lines, "blob written to", &mut serve_seen);

    let peer = Command::new(env!("CARGO_BIN_EXE_media-processor"))
        .args([
            "peer",
            "--seconds",
            "4",
            "--json",
            "--codec",
            "pcm",
            "--blob",
        ])
        .arg(&blob)
        .args(["--fingerprint", &fingerprint])
        .output()
        .expect("peer runs");
    let out = String::from_utf8_lossy(&peer.stdout);
    assert!(
        peer.status.success(),
        "peer failed: {}\n{out}",
        String::from_utf8_lossy(&peer.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(&out).expect("peer --json");
    eprintln!("peer summary: {summary}");

    let ended = wait_line(&serve_lines, "call ", &mut serve_seen);
    eprintln!("serve: {ended}");
    assert!(
        ended.contains("bot link ended by the call"),
        "{serve_seen:#?}"
    );
    let status = (0..300)
        .find_map(|_| match serve.0.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                std::thread::sleep(Duration::from_millis(50));
                None
            }
        })
        .expect("serve exits after --calls 1");
    assert!(status.success(), "serve exit {status}");

    // The bot got the call as Twilio gives it, with a valid signature, until `stop`.
    wait_line(&bot_lines, r#"EVENT {"kind": "stop""#, &mut bot_seen);
    let seen = bot_seen.join("\n");
    for kind in ["signature_ok", "connected", "start", "first_media"] {
        assert!(
            seen.contains(&format!(r#""kind": "{kind}""#)),
            "{kind}: {seen}"
        );
    }
    // Its echo (µ-law at 8 kHz both ways) came back into the call, paced.
    let received = summary["packets_received"].as_u64().expect("packets");
    let latency = summary["echo_latency_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("no echo found: {summary}"));
    eprintln!("serve --bot-ws: {received} packets back, echo latency {latency} ms");
    assert!(received > 150, "{summary}");
    assert!(latency < 1000.0, "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}
