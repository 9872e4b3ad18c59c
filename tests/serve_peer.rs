//! The standalone processor and the reference far end, as a user runs them: two
//! processes of the real binary, `media-processor serve --echo` and `media-processor
//! peer`, talking QUIC over 127.0.0.1 with the fingerprint `serve` prints.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
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

/// A running `serve` and what it printed up to its blob.
struct Served {
    server: Server,
    lines: mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
    /// What serve wrote to stderr (its logs), also echoed to this test's stderr.
    logs: Arc<Mutex<Vec<String>>>,
    blob: std::path::PathBuf,
    fingerprint: String,
    dir: std::path::PathBuf,
}

/// Starts `serve --calls 1 <extra>` with `envs` and waits for its blob.
fn serve(tag: &str, extra: &[&str], envs: &[(&str, String)]) -> Served {
    let dir = std::env::temp_dir().join(format!("mp-serve-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let blob = dir.join("blob.json");
    let mut server = Server(
        bin()
            .args(["serve", "--calls", "1", "--seconds", "60"])
            .args(extra)
            .args(["--bind", "127.0.0.1:0", "--blob-out"])
            .arg(&blob)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts"),
    );
    let stderr = server.0.stderr.take().expect("stderr is piped");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let kept = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            kept.lock().expect("log lines").push(line);
        }
    });
    // Read serve's stdout on a thread: the fingerprint, then the blob file's path.
    let stdout = server.0.stdout.take().expect("stdout is piped");
    let (tx, lines) = mpsc::channel::<String>();
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
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("serve printed no blob ({e}); so far: {seen:#?}"));
        if let Some(fp) = line.strip_prefix("certificate fingerprint: ") {
            fingerprint = Some(fp.trim().to_string());
        }
        seen.push(line);
    }
    Served {
        server,
        lines,
        reader,
        logs,
        blob,
        fingerprint: fingerprint.expect("serve printed its certificate fingerprint"),
        dir,
    }
}

impl Served {
    /// Runs `peer` (PCM, `seconds`) against it; its JSON summary.
    fn peer(&self, seconds: &str) -> serde_json::Value {
        let record = self.dir.join("echo.wav");
        let peer = bin()
            .args([
                "peer",
                "--seconds",
                seconds,
                "--json",
                "--codec",
                "pcm",
                "--blob",
            ])
            .arg(&self.blob)
            .args(["--fingerprint", &self.fingerprint, "--record"])
            .arg(&record)
            .output()
            .expect("peer runs");
        let out = String::from_utf8_lossy(&peer.stdout);
        assert!(
            peer.status.success(),
            "peer failed: {}\n{out}",
            String::from_utf8_lossy(&peer.stderr)
        );
        assert!(
            std::fs::metadata(&record).map(|m| m.len()).unwrap_or(0) > 44 + 100 * 640,
            "the peer recorded the echo"
        );
        let summary: serde_json::Value = serde_json::from_str(&out).expect("peer --json");
        eprintln!("peer summary: {summary}");
        summary
    }

    /// One call ended: serve exits by itself, successfully; what it printed after
    /// the blob.
    fn finish(mut self) -> Vec<String> {
        let status = (0..300)
            .find_map(|_| match self.server.0.try_wait() {
                Ok(Some(s)) => Some(s),
                _ => {
                    std::thread::sleep(Duration::from_millis(50));
                    None
                }
            })
            .expect("serve exits after --calls 1");
        assert!(status.success(), "serve exit {status}");
        let _ = self.reader.join();
        let rest: Vec<String> = self.lines.try_iter().collect();
        assert!(
            rest.iter().any(|l| l.starts_with("call ended:")),
            "serve reported the call: {rest:#?}"
        );
        let _ = std::fs::remove_dir_all(&self.dir);
        rest
    }
}

fn figures(summary: &serde_json::Value) -> (u64, f64, f64) {
    let received = summary["packets_received"]
        .as_u64()
        .expect("packets_received");
    let latency = summary["echo_latency_ms"]
        .as_f64()
        .expect("an echo was found");
    // Segment by segment: the whole-call figure (`echo_correlation`) drops whenever a
    // jitter buffer on the way time-stretches, which the processor's adaptive one does.
    let matched = summary["echo_segments_matched_pct"]
        .as_f64()
        .expect("segments with signal");
    (received, latency, matched)
}

#[test]
fn serve_echoes_what_peer_sends_and_ends_after_the_call() {
    // Two reactor threads on the port, as a two-CPU machine runs it by default.
    let served = serve("echo", &["--echo", "--reactor-threads", "2"], &[]);
    // The blob's session id admits a join: its file is the owner's only.
    let mode = std::fs::metadata(&served.blob)
        .expect("blob file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600,
        "--blob-out must write mode 0600"
    );
    let summary = served.peer("4");
    let (received, latency, matched) = figures(&summary);
    eprintln!(
        "serve --echo: {received} packets back, latency {latency} ms, {matched} % of segments echo"
    );
    assert!(received > 150, "{summary}");
    assert!(matched >= 70.0, "{matched} % of segments echo: {summary}");
    assert!(latency < 500.0, "{summary}");
    served.finish();
}

#[test]
fn serve_devices_plays_the_call_and_sends_what_the_input_captures() {
    // The default output is PulseAudio's null sink `loop`, the default input its
    // monitor: what the call receives is played, captured again and sent back.
    let served = serve(
        "devices",
        &["--devices"],
        &[("PULSE_SERVER", devices::testing::pulse_server())],
    );
    let summary = served.peer("6");
    let (received, latency, matched) = figures(&summary);
    // The devices' path resamples to follow the sound server's clock (up to ±1 %) and
    // slips whole frames when a device ring runs over: the waveform of a 250 ms segment
    // does not survive that (`matched`, shown only), the envelope of each second does.
    let envelope = summary["echo_segment_envelope_median"]
        .as_f64()
        .expect("segments with signal");
    eprintln!(
        "serve --devices: {received} packets back, latency {latency} ms, envelope median \
         {envelope:.3} over 1 s segments, {matched} % of 250 ms segments match the waveform"
    );
    assert!(received > 250, "{summary}");
    assert!(
        envelope >= 0.9,
        "the echo through the devices: envelope median {envelope:.3}: {summary}"
    );
    assert!(latency < 1_000.0, "{summary}");
    let printed = served.finish();
    eprintln!("serve: {printed:#?}");
}

#[test]
fn serve_logs_json_lines_with_the_call_id() {
    let served = serve(
        "logs",
        &["--echo", "--log-format", "json"],
        &[("RUST_LOG", "info".to_string())],
    );
    let blob: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&served.blob).expect("blob")).expect("json");
    let call_id = blob["callId"].as_str().expect("callId").to_string();
    served.peer("3");
    let logs = served.logs.clone();
    served.finish();
    let lines = logs.lock().expect("log lines").clone();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let in_call: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["span"]["name"] == "call" && e["span"]["call_id"] == call_id.as_str())
        .collect();
    assert!(
        in_call
            .iter()
            .any(|e| e["fields"]["message"] == "join accepted"),
        "the join is logged inside the call's span: {lines:#?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["level"].is_string() && e["timestamp"].is_string()),
        "{lines:#?}"
    );
}

#[test]
fn an_invalid_rust_log_is_an_error_naming_it() {
    let out = bin()
        .args([
            "blob",
            "--mp-uri",
            "quic://127.0.0.1:1/MediaProcessor",
            "--call-id",
        ])
        .arg("8a87a4f9-2ca1-4c47-9d2b-b5ac4e4b1d26")
        .env("RUST_LOG", "transport=loud")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RUST_LOG") && err.contains("transport=loud"),
        "{err}"
    );
}
