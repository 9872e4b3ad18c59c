//! A real browser talks to the echo bot: headless Chromium (Debian's `chromium`, driven
//! by Playwright for Python) opens the test page of `media-processor serve --echo
//! --whip`, sends spoken words (espeak-ng, Chromium's fake microphone) through WHIP
//! with a bearer token, records what comes back, and reports `getStats`. The echo must
//! follow the speech's energy envelope (waveform correlation is a poor judge through
//! two Opus encodings at browser bitrates), packets must flow both ways with a
//! loopback round trip, and the DELETE must end the call.
//!
//! Needs python3 with playwright and numpy, chromium and espeak-ng
//! (scripts/install-deps.sh); outside CI the test is skipped without them, in CI
//! (`CI` set) it fails.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Kills the server if the test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `None` (skip) when a client part is missing outside CI; panics in CI.
fn clients_present() -> Option<()> {
    let python = Command::new("python3")
        .args(["-c", "import numpy, playwright.sync_api"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let chromium = std::path::Path::new("/usr/bin/chromium").exists();
    let espeak = Command::new("espeak-ng")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if python && chromium && espeak {
        return Some(());
    }
    let what = format!(
        "python3 with playwright and numpy: {python}, /usr/bin/chromium: {chromium}, espeak-ng: {espeak}"
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "the WHIP browser test needs these (scripts/install-deps.sh installs them): {what}"
    );
    eprintln!("skipped: {what}");
    None
}

#[test]
fn chromium_hears_itself_through_serve_echo_whip() {
    if clients_present().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("mp-whip-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let wav = dir.join("speech.wav");
    let spoken = Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg("The quick brown fox jumps over the lazy dog. Media processor speaking, one two three four five.")
        .status()
        .expect("espeak-ng runs");
    assert!(spoken.success(), "espeak-ng wrote the speech");

    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_media-processor"))
            .args(["serve", "--echo", "--seconds", "60"])
            .args(["--bind", "127.0.0.1:0", "--whip", "127.0.0.1:0"])
            .args(["--whip-token", "browser-secret"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts"),
    );
    let stdout = server.0.stdout.take().expect("stdout is piped");
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("serve: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let page = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("serve prints the WHIP test page's URL");
        if let Some(url) = line.strip_prefix("WHIP test page: ") {
            break url.trim().to_owned();
        }
    };

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/webrtc-link/tests/clients/chromium_whip.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(&page)
        .arg(&wav)
        .args(["6", "browser-secret"])
        .output()
        .expect("the Chromium client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Chromium client failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .last()
            .expect("the client prints its report"),
    )
    .expect("a JSON report");
    println!("Chromium report: {report}");
    let num = |path: &[&str]| {
        let mut v = &report;
        for k in path {
            v = &v[*k];
        }
        v.as_f64()
            .unwrap_or_else(|| panic!("{path:?} in the report: {report}"))
    };
    assert_eq!(num(&["deleteStatus"]), 200.0, "DELETE ends the session");
    // About 300 packets of 20 ms each way in 6 s.
    assert!(num(&["stats", "packetsSent"]) >= 200.0, "{report}");
    assert!(num(&["stats", "packetsReceived"]) >= 200.0, "{report}");
    let rtt = num(&["stats", "remoteRttMs"]);
    assert!((0.0..50.0).contains(&rtt), "RTCP round trip {rtt} ms");
    let corr = num(&["envelopeCorrelation"]);
    assert!(corr >= 0.8, "echo envelope correlation {corr:.3}: {report}");
    let level = num(&["echoRms"]) / num(&["refRms"]);
    assert!(level > 0.5, "the echo comes back at {level:.2} of the level sent");

    // The server saw the call end by the DELETE.
    let ended = (0..50).find_map(|_| {
        let line = lines.recv_timeout(Duration::from_millis(200)).ok()?;
        line.contains("Ended { reason: PeerLeft { reason: \"the WHIP session was deleted\"")
            .then_some(line)
    });
    assert!(ended.is_some(), "serve reports the call ended by DELETE");
    let _ = std::fs::remove_dir_all(&dir);
}
