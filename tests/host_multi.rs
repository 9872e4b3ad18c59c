//! Three `media-processor host` processes behind their callback servers' routing
//! (`[routing]`: each names the other two as peers) and one Graph emulator (in this
//! test process) with its QUIC far end; real HTTP and QUIC on 127.0.0.1.
//!
//! - `a` places two calls and answers one offered at its shared URL; it is drained.
//! - `b` places one call and answers one offered at its shared URL.
//! - `c` places one call whose callbackUri points at `b` (`callback.public_url` is
//!   b's shared URL, so the service posts to `b`'s `/callbacks/c`): every one of its
//!   notifications reaches the wrong instance and is forwarded to `c`.
//! - SIGTERM to `a` in the middle of the calls; a call then offered at `a`'s shared
//!   URL is handed to a ready peer (`b`, else `c`), and all its notifications (sent
//!   to `a`: the emulator keeps the offer's URI) are forwarded to it until the far
//!   end hangs it up; `a`'s own calls run to its drain deadline, are hung up
//!   (`AppHangUp`), and `a` exits 0.
//! - `b`'s and `c`'s calls go on untouched (established, media flowing both ways);
//!   then the far end hangs them up.
//! - No notification lost or misapplied: every one the emulator sent was answered
//!   2xx, each call's last is `terminated`, and each live instance's
//!   `mp_notifications_applied_total` equals the number of notifications of the calls
//!   it owns; the forwarding counters match the misrouted notifications.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use emulator::{CallSummary, Emulator, EmulatorConfig, IncomingCall, MediaStatus};
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

/// One host process; killed if the test fails before it exits.
struct HostProc {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    admin: Option<SocketAddr>,
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
    fn start(name: &'static str, config: &Path, secret: &str) -> HostProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_media-processor"))
            .args(["host", "--config"])
            .arg(config)
            .env("MP_GRAPH_CLIENT_SECRET", secret)
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
            name,
            child,
            lines,
            seen: Vec::new(),
            admin: None,
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
                    "{}: no line with {needle:?} in time; stdout so far:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Reads what stdout has so far.
    fn pump(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Ids of the calls it placed or answered, from its stdout.
    fn owned(&mut self) -> Vec<String> {
        self.pump();
        self.seen
            .iter()
            .filter(|l| l.ends_with("offered: answered") || l.contains(" placed ("))
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect()
    }

    fn scrape(&self) -> Vec<host::metrics::parse::Sample> {
        let admin = self.admin.expect("admin address known");
        let (status, body) = host::admin_get(admin, "/metrics").expect("admin port answers");
        assert_eq!(status, 200, "{body}");
        host::metrics::parse::parse(&body)
            .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{body}"))
    }

    fn metric(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        host::metrics::parse::value(&self.scrape(), name, label)
            .unwrap_or_else(|| panic!("{}: no sample {name} {label:?}", self.name))
    }

    fn sigterm(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `f` every 100 ms until it is true; fails with `what` after `timeout`.
fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "not in {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn notifications_of(calls: &[CallSummary], ids: &[String]) -> usize {
    calls
        .iter()
        .filter(|c| ids.contains(&c.id))
        .map(|c| c.notifications.len())
        .sum()
}

#[test]
fn three_hosts_route_notifications_to_their_owners_and_one_drains() {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _enter = rt.enter();
    let dir = TempDir::new("multi");
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

    let names = ["a", "b", "c"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let base = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let shared = |i: usize| format!("{}/callback", base(i));
    let mut hosts: Vec<HostProc> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let peers: Vec<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| format!("\"{}\"", base(j)))
            .collect();
        let (place, public_url, deadline) = match *name {
            "a" => ("\"p2p-voip-app\", \"p2p-voip-app\"", shared(0), 10),
            "b" => ("\"p2p-voip-app\"", shared(1), 10),
            // c's calls are placed with b's URL: every notification reaches b first.
            _ => ("\"p2p-voip-app\"", shared(1), 10),
        };
        let config = format!(
            r#"
[graph]
base_url = "{graph}"
token_url = "{token}"
client_id = "{client}"

[callback]
bind = "127.0.0.1:{port}"
public_url = "{public_url}"
openid_url = "{openid}"

[media]
bind = "127.0.0.1:0"
cert_file = "{cert}"
key_file = "{key}"
reactor_threads = 1

[admin]
bind = "127.0.0.1:0"

[calls]
place = [{place}]

[drain]
deadline_s = {deadline}
linger_ms = 500

[routing]
instance_id = "{name}"
peers = [{peers}]
"#,
            graph = emu.graph_v1_url(),
            token = emu.token_url_for(&app.tenant_id),
            client = app.client_id,
            port = ports[i],
            openid = emu.openid_url(),
            cert = cert.display(),
            key = key.display(),
            peers = peers.join(", "),
        );
        let path = dir.0.join(format!("{name}.toml"));
        std::fs::write(&path, config).expect("config written");
        hosts.push(HostProc::start(name, &path, &app.client_secret));
    }
    let long = Duration::from_secs(30);
    for h in &mut hosts {
        let admin = h.wait_line("admin port: http://", long);
        h.admin = admin
            .trim_start_matches("admin port: http://")
            .split('/')
            .next()
            .and_then(|a| a.parse().ok());
        let instance = h.wait_line("callbackUri ", long);
        h.wait_line("ready", long);
        let want = if h.name == "a" { 0 } else { 1 };
        assert!(
            instance.ends_with(&format!("{}/callbacks/{}", base(want), h.name)),
            "{instance}"
        );
    }
    // Calls offered at a's and b's shared URLs, answered there.
    let off_a = emu.ring(&IncomingCall::to(shared(0))).expect("ring a");
    let off_b = emu.ring(&IncomingCall::to(shared(1))).expect("ring b");
    hosts[0].wait_line(&format!("call {off_a} offered: answered"), long);
    hosts[1].wait_line(&format!("call {off_b} offered: answered"), long);
    for h in &mut hosts {
        let want = match h.name {
            "a" => 3,
            "b" => 2,
            _ => 1,
        };
        until(&format!("{}'s calls placed", h.name), long, || {
            h.owned().len() >= want
        });
    }
    let owned: Vec<Vec<String>> = hosts.iter_mut().map(HostProc::owned).collect();
    assert_eq!(owned.iter().map(Vec::len).collect::<Vec<_>>(), [3, 2, 1]);
    let connected = |ids: &[String]| {
        let calls = emu.calls();
        ids.iter().all(|id| {
            calls
                .iter()
                .any(|c| c.id == *id && c.media == MediaStatus::Connected)
        })
    };
    let all: Vec<String> = owned.concat();
    until("six calls connected", long, || connected(&all));
    // c's calls took the detour through b.
    for id in &owned[2] {
        let c = emu.call(id).expect("c's call");
        assert_eq!(c.callback_uri, format!("{}/callbacks/c", base(1)));
    }

    // SIGTERM to a in the middle of its calls.
    hosts[0].sigterm();
    let sigterm = Instant::now();
    until("a draining", long, || {
        host::admin_get(hosts[0].admin.expect("admin"), "/readyz").is_ok_and(|r| r.0 == 503)
    });
    // An offer at the draining a is handed to a ready peer (b).
    // (A peer takes it while ready: on a busy machine the platform may say
    // HeavilyLoaded for a moment, so wait for one; a takes b first, else c.)
    until("b or c ready", long, || {
        hosts[1..]
            .iter()
            .any(|h| host::admin_get(h.admin.expect("admin"), "/readyz").is_ok_and(|r| r.0 == 200))
    });
    let late = emu.ring(&IncomingCall::to(shared(0))).expect("ring a");
    let handed = hosts[0].wait_line(&format!("offered call {late} handed to "), long);
    let to = |i: usize| handed.contains(&format!("handed to {} (", base(i)));
    let taker = if to(1) { 1 } else { 2 };
    assert!(to(taker), "{handed}");
    hosts[taker].wait_line(&format!("call {late} offered: answered"), long);
    until("the handed-over call connected", long, || {
        connected(std::slice::from_ref(&late))
    });
    // Its notifications still go to a, which forwards them to b; the far end hangs up.
    assert!(emu.hang_up(&late));
    hosts[taker].wait_line(&format!("call {late} ended: terminated"), long);
    until("the handed-over call's end delivered", long, || {
        emu.call(&late).is_some_and(|c| {
            c.notifications
                .last()
                .is_some_and(|n| n.delivered && n.state.as_deref() == Some("terminated"))
        })
    });
    let a_forwarded = hosts[0].metric("mp_callbacks_forwarded_total", Some(("outcome", "owner")));
    let a_placed = hosts[0].metric(
        "mp_callbacks_forwarded_total",
        Some(("outcome", "incoming_placed")),
    );
    let a_unowned = hosts[0].metric("mp_callbacks_forwarded_total", Some(("outcome", "unowned")));

    // a runs its own calls to the deadline, hangs them up, exits 0.
    let exit = loop {
        if let Some(s) = hosts[0].child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            sigterm.elapsed() < Duration::from_secs(40),
            "a did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let drained_in = sigterm.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    hosts[0].pump();
    let out_a = hosts[0].seen.join("\n");
    assert!(exit.success(), "a: {exit:?}\n{out_a}");
    assert!(
        out_a.contains(
            "drained: 3 call(s) at SIGTERM, 0 ended in time, 3 hung up at the deadline, 0 left"
        ),
        "{out_a}"
    );

    // b's and c's calls go on: established, media flowing both ways.
    let others: Vec<String> = [owned[1].clone(), owned[2].clone()].concat();
    let stats = |id: &String| emu.media_stats(id).expect("media stats");
    let before: Vec<_> = others.iter().map(stats).collect();
    std::thread::sleep(Duration::from_millis(1000));
    for (id, was) in others.iter().zip(&before) {
        let c = emu.call(id).expect("call");
        assert_eq!(c.state, signaling::CallState::Established, "{id}");
        assert_eq!(c.media, MediaStatus::Connected, "{id}");
        let now = stats(id);
        assert!(
            now.packets_sent > was.packets_sent && now.packets_received > was.packets_received,
            "{id}: media stopped: {was:?} then {now:?}"
        );
    }
    assert_eq!(hosts[1].metric("mp_calls_active", None), 2.0);
    assert_eq!(hosts[2].metric("mp_calls_active", None), 1.0);
    // Then the far end hangs them up.
    for id in &others {
        assert!(emu.hang_up(id));
    }
    for (h, ids) in [(1, &owned[1]), (2, &owned[2])] {
        for id in ids {
            hosts[h].wait_line(&format!("call {id} ended: terminated"), long);
        }
    }
    until("every call ended and notified", long, || {
        emu.calls().iter().all(|c| {
            c.termination.is_some()
                && c.notifications.last().and_then(|n| n.state.as_deref()) == Some("terminated")
        })
    });

    // No notification lost or applied to the wrong instance.
    let calls = emu.calls();
    assert_eq!(calls.len(), 7);
    let mut reasons: HashMap<String, String> = HashMap::new();
    for c in &calls {
        assert!(
            c.notifications.iter().all(|n| n.delivered),
            "call {}: {:?}",
            c.id,
            c.notifications
        );
        let t = c.termination.as_ref().expect("ended");
        reasons.insert(c.id.clone(), t.reason.clone());
    }
    for id in &owned[0] {
        assert_eq!(
            reasons[id], "AppHangUp",
            "a's call {id} hung up at the deadline"
        );
    }
    for id in others.iter().chain([&late]) {
        assert_eq!(reasons[id], "RemoteHangUp", "{id}");
    }
    assert_eq!(emu.counters().notifications_failed, 0);
    let mut ids = [owned[1].clone(), owned[2].clone()];
    ids[taker - 1].push(late.clone());
    let b_expected = notifications_of(&calls, &ids[0]);
    let c_expected = notifications_of(&calls, &ids[1]);
    let c_placed = notifications_of(&calls, &owned[2]);
    let late_sent = notifications_of(&calls, std::slice::from_ref(&late));
    until(
        "b's and c's applied counts",
        Duration::from_secs(10),
        || {
            hosts[1].metric("mp_notifications_applied_total", None) == b_expected as f64
                && hosts[2].metric("mp_notifications_applied_total", None) == c_expected as f64
        },
    );
    // Every notification of c's placed call came to b and was forwarded to c; every
    // one of the handed-over call's (after its offer) came to a and was forwarded to
    // its taker.
    let b_forwarded = hosts[1].metric("mp_callbacks_forwarded_total", Some(("outcome", "owner")));
    assert_eq!(b_forwarded, c_placed as f64);
    assert_eq!(a_placed, 1.0);
    assert_eq!(a_forwarded, (late_sent - 1) as f64);
    assert_eq!(a_unowned, 0.0);
    for h in &hosts[1..] {
        assert_eq!(
            h.metric("mp_callbacks_forwarded_total", Some(("outcome", "unowned"))),
            0.0
        );
    }
    // b tried the exited a first for c's last notifications.
    let b_failures = hosts[1].metric("mp_callback_peer_failures_total", None);

    for h in &hosts[1..] {
        h.sigterm();
    }
    for h in &mut hosts[1..] {
        let t0 = Instant::now();
        let exit = loop {
            if let Some(s) = h.child.try_wait().expect("wait") {
                break s;
            }
            assert!(t0.elapsed() < long, "{} did not exit", h.name);
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(exit.success(), "{}: {exit:?}", h.name);
    }
    let total: usize = calls.iter().map(|c| c.notifications.len()).sum();
    println!(
        "7 calls on 3 hosts: {total} notifications, all delivered; b applied {b_expected}, c applied {c_expected}; \
         b forwarded {b_forwarded} of c's to c, a forwarded {a_forwarded} of the handed-over call's to {} (its offer handed over); \
         b found a gone {b_failures} time(s); a drained in {drained_in:?}; test took {:?}",
        names[taker],
        started.elapsed()
    );
    rt.block_on(emu.shutdown());
}
