//! `media-processor host` as a process, with real parts: the Graph emulator (in this
//! test process) and its QUIC far end, real HTTP and QUIC on 127.0.0.1. Three calls
//! (two placed from the config file, one offered by the emulator and answered), a
//! scrape of `/metrics` (parsed strictly), SIGTERM in the middle: `/readyz` turns 503,
//! a call offered while draining is rejected, the calls end at the drain deadline with
//! the bot's hang-up, every notification is delivered, and the process exits 0.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use emulator::{Emulator, EmulatorConfig, IncomingCall, MediaStatus};
use harness::farend::{FarEndConfig, QuicFarEnd};
use platform::{ServerIdentity, ServerTrust};

/// A temp directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mp-host-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The host process; killed if the test fails before it exits.
struct HostProc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for HostProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl HostProc {
    fn start(config: &std::path::Path, env: &[(&str, &str)]) -> HostProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_media-processor"))
            .args(["host", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let out = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        HostProc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line containing `needle`; returns it.
    fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} in time; stdout so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn drain_lines(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
    }
}

/// `GET path` on `addr`: status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    host::admin_get(addr, path).expect("admin port answers")
}

fn value(samples: &[host::metrics::parse::Sample], name: &str, label: Option<(&str, &str)>) -> f64 {
    host::metrics::parse::value(samples, name, label)
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"))
}

/// Reads `body` with PyPI `prometheus_client`'s parser (installed by
/// scripts/install-deps.sh): each family's name, type and sample count, one a line.
fn prometheus_client_families(body: &str) -> String {
    const READ: &str = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as f\nfor m in f(sys.stdin.read()):\n    print(m.name, m.type, len(m.samples))\n";
    let mut child = Command::new("python3")
        .args(["-c", READ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/install-deps.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(body.as_bytes())
        .expect("body written");
    let out = child.wait_with_output().expect("python3 ends");
    assert!(
        out.status.success(),
        "prometheus_client refused /metrics (or is missing: run scripts/install-deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scrape(addr: SocketAddr) -> Vec<host::metrics::parse::Sample> {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    host::metrics::parse::parse(&body)
        .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{body}"))
}

#[test]
fn host_serves_calls_with_metrics_and_drains_on_sigterm() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The emulator's handle spawns on the current runtime (ring).
    let _enter = rt.enter();
    let dir = TempDir::new("drain");
    // The media server's certificate, pinned by the emulator's far end.
    let identity = ServerIdentity::self_signed(&["127.0.0.1"]).expect("certificate");
    let (cert, key) = (dir.0.join("media.pem"), dir.0.join("media.key"));
    identity.write_pem_files(&cert, &key).expect("PEM files");
    let mut far = FarEndConfig::new(ServerTrust::pinned(identity.fingerprint()));
    far.record = false;
    let far_end = QuicFarEnd::new(far);
    let emu = rt
        .block_on(Emulator::start(EmulatorConfig {
            media: Arc::new(far_end.clone()),
            ..EmulatorConfig::default()
        }))
        .expect("emulator");
    let app = emu.apps()[0].clone();
    let config = format!(
        r#"
[graph]
base_url = "{graph}"
token_url = "{token}"
client_id = "{client}"

[callback]
bind = "127.0.0.1:0"
openid_url = "{openid}"

[media]
bind = "127.0.0.1:0"
cert_file = "{cert}"
key_file = "{key}"
reactor_threads = 1

[admin]
bind = "127.0.0.1:0"

[calls]
place = ["p2p-voip-app", "p2p-voip-app"]

[drain]
deadline_s = 2
linger_ms = 500
"#,
        graph = emu.graph_v1_url(),
        token = emu.token_url_for(&app.tenant_id),
        client = app.client_id,
        openid = emu.openid_url(),
        cert = cert.display(),
        key = key.display(),
    );
    let path = dir.0.join("host.toml");
    std::fs::write(&path, config).expect("config written");
    let mut host = HostProc::start(
        &path,
        &[("MP_GRAPH_CLIENT_SECRET", app.client_secret.as_str())],
    );
    let ready = Duration::from_secs(30);
    let callback = host.wait_line("callback server: ", ready);
    let callback = callback.trim_start_matches("callback server: ").to_owned();
    let admin = host.wait_line("admin port: http://", ready);
    let admin: SocketAddr = admin
        .trim_start_matches("admin port: http://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("admin address");
    host.wait_line("ready", ready);
    // A third call: offered by the service, answered by the host.
    let offered = emu.ring(&IncomingCall::to(callback.clone())).expect("ring");
    host.wait_line(&format!("call {offered} offered: answered"), ready);

    // Three calls with media flowing.
    let t0 = Instant::now();
    let connected = || {
        emu.calls()
            .iter()
            .filter(|c| c.media == MediaStatus::Connected)
            .count()
    };
    while connected() < 3 {
        assert!(
            t0.elapsed() < ready,
            "calls not connected: {:?}",
            emu.calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(admin, "/healthz").0, 200);
    // Ready: Normal health (on a busy machine the platform may report HeavilyLoaded
    // for a moment; then readiness waits for it to fall back).
    let t0 = Instant::now();
    let m = loop {
        let r = get(admin, "/readyz");
        let m = scrape(admin);
        if r == (200, "ready\n".into()) && value(&m, "mp_ready", None) == 1.0 {
            break m;
        }
        assert!(t0.elapsed() < ready, "not ready: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(value(&m, "mp_calls_active", None), 3.0);
    assert_eq!(
        value(&m, "mp_calls_admitted_total", Some(("direction", "placed"))),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "mp_calls_admitted_total",
            Some(("direction", "answered"))
        ),
        1.0
    );
    let states = ["normal", "heavily_loaded", "overloaded"];
    let health: f64 = states
        .iter()
        .map(|s| value(&m, "mp_health", Some(("state", s))))
        .sum();
    assert_eq!(health, 1.0, "one health state at a time");
    // Ticks are counted once a second per call: at least one second of each.
    assert!(
        value(&m, "mp_ticks_total", None) >= 3.0 * 50.0,
        "ticks: {m:?}"
    );

    // The offered call ends on the far side: its end and its QoE are counted.
    assert!(emu.hang_up(&offered));
    host.wait_line(&format!("call {offered} ended: terminated"), ready);
    let t0 = Instant::now();
    let m = loop {
        let m = scrape(admin);
        if value(&m, "mp_call_jitter_buffer_delay_ms_count", None) >= 1.0 || t0.elapsed() > ready {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        value(&m, "mp_calls_ended_total", Some(("reason", "terminated"))),
        1.0
    );
    assert_eq!(value(&m, "mp_call_jitter_buffer_delay_ms_count", None), 1.0);
    assert_eq!(value(&m, "mp_call_loss_percent_count", None), 1.0);
    assert_eq!(value(&m, "mp_call_concealment_percent_count", None), 1.0);
    let jb_ms = value(&m, "mp_call_jitter_buffer_delay_ms_sum", None);
    assert!(
        jb_ms > 0.0 && jb_ms < 500.0,
        "mean jitter-buffer delay {jb_ms} ms"
    );
    // Its media's share of a core and its late ticks: measured, finite.
    assert_eq!(value(&m, "mp_call_cpu_percent_count", None), 1.0);
    assert_eq!(value(&m, "mp_call_late_ticks_percent_count", None), 1.0);
    let cpu = value(&m, "mp_call_cpu_percent_sum", None);
    assert!(
        cpu > 0.0 && cpu < 100.0,
        "the call's media took {cpu} % of a core"
    );
    let late = value(&m, "mp_call_late_ticks_percent_sum", None);
    assert!((0.0..=100.0).contains(&late), "late ticks {late} %");
    // Clean loopback: nothing lost.
    assert_eq!(value(&m, "mp_call_loss_percent_sum", None), 0.0);
    assert_eq!(value(&m, "mp_calls_active", None), 2.0);
    // The reference parser reads the same text: all 17 families, each of its type,
    // histograms with their buckets, +Inf, _sum and _count.
    let families = prometheus_client_families(&get(admin, "/metrics").1);
    for want in [
        "mp_calls_active gauge 1",
        "mp_calls_admitted counter 2",
        "mp_calls_refused counter 4",
        "mp_call_jitter_buffer_delay_ms histogram 13",
        "mp_call_loss_percent histogram 12",
        "mp_call_concealment_percent histogram 12",
        "mp_call_rtt_ms histogram 11",
        "mp_call_late_ticks_percent histogram 12",
        "mp_call_cpu_percent histogram 11",
        "mp_health gauge 3",
        "mp_ready gauge 1",
    ] {
        assert!(
            families.lines().any(|l| l == want),
            "{want:?} not in:\n{families}"
        );
    }
    assert_eq!(families.lines().count(), 17, "{families}");

    // SIGTERM in the middle of the other two calls.
    let pid = host.child.id().to_string();
    let sigterm = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let (status, body) = loop {
        let r = get(admin, "/readyz");
        if r.1 == "not ready: draining\n" || sigterm.elapsed() > Duration::from_secs(5) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!((status, body.as_str()), (503, "not ready: draining\n"));
    let not_ready_after = sigterm.elapsed();
    // A call offered while draining is rejected, with a reason.
    let late = emu
        .ring(&IncomingCall::to(callback))
        .expect("ring while draining");
    host.wait_line(
        &format!("call {late} offered: rejected (draining, reason busy)"),
        ready,
    );
    let m = scrape(admin);
    assert_eq!(value(&m, "mp_draining", None), 1.0);
    assert_eq!(value(&m, "mp_ready", None), 0.0);
    assert_eq!(
        value(&m, "mp_calls_refused_total", Some(("reason", "draining"))),
        1.0
    );
    // The calls run on while draining (the rejected one is followed until its end
    // notification comes).
    assert!(value(&m, "mp_calls_active", None) >= 2.0);
    assert_eq!(connected(), 2, "calls run on while draining");

    // The process ends by itself: calls hung up at the deadline, exit 0.
    let exit = loop {
        if let Some(s) = host.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            sigterm.elapsed() < Duration::from_secs(20),
            "the host did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let drained_in = sigterm.elapsed();
    host.drain_lines();
    assert!(
        exit.success(),
        "exit {exit:?}; stdout:\n{}",
        host.seen.join("\n")
    );
    let out = host.seen.join("\n");
    assert!(
        out.contains(
            "drained: 2 call(s) at SIGTERM, 0 ended in time, 2 hung up at the deadline, 0 left"
        ),
        "{out}"
    );
    assert_eq!(out.matches("ended: drain_deadline").count(), 2, "{out}");
    assert!(
        drained_in >= Duration::from_secs(2),
        "calls ran to the deadline: {drained_in:?}"
    );

    // The service's view: every call ended with a reason, no notification lost.
    let t0 = Instant::now();
    let calls = loop {
        let calls = emu.calls();
        if calls.iter().all(|c| c.termination.is_some()) || t0.elapsed() > Duration::from_secs(5) {
            break calls;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(calls.len(), 4);
    for c in &calls {
        let t = c
            .termination
            .as_ref()
            .unwrap_or_else(|| panic!("call {} not ended", c.id));
        let want = if c.id == late {
            "Rejected"
        } else if c.id == offered {
            "RemoteHangUp"
        } else {
            "AppHangUp"
        };
        assert_eq!(t.reason, want, "call {}: {t:?}", c.id);
        assert!(
            c.notifications.iter().all(|n| n.delivered),
            "call {}: {:?}",
            c.id,
            c.notifications
        );
        assert_eq!(
            c.notifications.last().and_then(|n| n.state.as_deref()),
            Some("terminated"),
            "call {}",
            c.id
        );
    }
    let counters = emu.counters();
    assert_eq!(counters.notifications_failed, 0, "{counters:?}");
    println!("first call's mean jitter-buffer delay {jb_ms:.1} ms");
    println!(
        "not ready {not_ready_after:?} after SIGTERM; exited 0 {drained_in:?} after it; {} notifications delivered",
        counters.notifications_delivered
    );
    rt.block_on(emu.shutdown());
}

#[test]
fn host_refuses_a_bad_configuration_by_name() {
    let dir = TempDir::new("bad");
    let path = dir.0.join("bad.toml");
    std::fs::write(
        &path,
        "[graph]\nbase_url = 'http://127.0.0.1:1/v1.0'\ntoken_url = 'http://127.0.0.1:1/t'\nclient_id = 'a'\nclient_secret = 's'\n[callback]\nallow_unauthenticated = true\n[media]\ncodecs = ['mp3']\n",
    )
    .expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_media-processor"))
        .args(["host", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("media.codecs: \"mp3\""), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_media-processor"))
        .args(["host", "--config"])
        .arg(&path)
        .env("MP_DRAIN_DEADLINE", "3")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MP_DRAIN_DEADLINE: unknown host setting"),
        "{err}"
    );
}
