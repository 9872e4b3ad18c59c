//! The standalone processor and the reference far end, as a user runs them: two
//! processes of the real binary, `media-processor serve --echo` and `media-processor
//! peer`, talking QUIC over 127.0.0.1 with the fingerprint `serve` prints.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_media-processor"))
}

/// Kills the server if the test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_echoes_what_peer_sends_and_ends_after_the_call() {
    let dir = std::env::temp_dir().join(format!("mp-serve-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let blob_path = dir.join("blob.json");
    let record = dir.join("echo.wav");
    let mut server = Server(
        bin()
            .args(["serve", "--echo", "--calls", "1", "--seconds", "60"])
            .args(["--bind", "127.0.0.1:0", "--blob-out"])
            .arg(&blob_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("serve starts"),
    );
    // Read serve's stdout on a thread: the fingerprint, then the blob file's path.
    let stdout = server.0.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut fingerprint = None;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("blob written to"))
    {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("serve printed no blob ({e}); so far: {seen:#?}"));
        if let Some(fp) = line.strip_prefix("certificate fingerprint: ") {
            fingerprint = Some(fp.trim().to_string());
        }
        seen.push(line);
    }
    let fingerprint = fingerprint.expect("serve printed its certificate fingerprint");

    let peer = bin()
        .args([
            "peer",
            "--seconds",
            "4",
            "--json",
            "--codec",
            "pcm",
            "--blob",
        ])
        .arg(&blob_path)
        .args(["--fingerprint", &fingerprint, "--record"])
        .arg(&record)
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
    let received = summary["packets_received"]
        .as_u64()
        .expect("packets_received");
    let latency = summary["echo_latency_ms"]
        .as_f64()
        .expect("an echo was found");
    // Segment by segment: the whole-call figure (`echo_correlation`) drops whenever the
    // peer's jitter buffer time-stretches, which it may on a busy machine.
    let matched = summary["echo_segments_matched_pct"]
        .as_f64()
        .expect("segments with signal");
    assert!(received > 150, "{summary}");
    assert!(matched >= 80.0, "{matched} % of segments echo: {summary}");
    assert!(latency < 500.0, "{summary}");
    assert!(
        std::fs::metadata(&record).map(|m| m.len()).unwrap_or(0) > 44 + 100 * 640,
        "the peer recorded the echo"
    );

    // One call ended: serve reports it and exits by itself, successfully.
    let status = (0..300)
        .find_map(|_| match server.0.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                std::thread::sleep(Duration::from_millis(50));
                None
            }
        })
        .expect("serve exits after --calls 1");
    assert!(status.success(), "serve exit {status}");
    let _ = reader.join();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.starts_with("call ended:")),
        "serve reported the call: {rest:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
