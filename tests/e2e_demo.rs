//! `media-processor demo` end to end as a user runs it: the binary starts the Graph
//! emulator, the echo bot and the far end, holds an app-hosted call over an impaired
//! network and writes its report; a service-hosted scenario runs signaling only.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mp-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn demo(args: &[&str]) -> (String, Duration) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_media-processor"))
        .arg("demo")
        .args(args)
        .output()
        .expect("run media-processor demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, t0.elapsed())
}

#[test]
fn e2e_demo_app_hosted_call_over_wifi() {
    let dir = out_dir("app");
    let out = dir.to_str().expect("utf-8 path");
    let (stdout, took) = demo(&["--duration-s", "2", "--profile", "wifi", "--out", out]);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(stdout.contains("established"), "{stdout}");
    assert!(stdout.contains("final state terminated"), "{stdout}");
    for f in [
        "report.json",
        "plot.png",
        "farend_sent.wav",
        "bot_received.wav",
        "bot_sent.wav",
        "farend_received.wav",
    ] {
        let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "{f}: {len} bytes");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).expect("report"))
            .expect("report JSON");
    assert_eq!(report["scenario"]["name"], "p2p-voip-app");
    assert_eq!(report["call"]["finalState"], "terminated");
    let received = report["media"]["bot"]["counters"]["framesReceived"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        (70..=160).contains(&received),
        "bot received {received} frames in 2 s"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn e2e_demo_service_hosted_is_signaling_only() {
    let dir = out_dir("svc");
    let out = dir.to_str().expect("utf-8 path");
    let (stdout, _) = demo(&[
        "--scenario",
        "meeting-service",
        "--duration-s",
        "1",
        "--out",
        out,
    ]);
    assert!(stdout.contains("signaling only"), "{stdout}");
    assert!(stdout.contains("participant joined"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).expect("report"))
            .expect("report JSON");
    assert_eq!(report["scenario"]["appHosted"], false);
    assert!(report["media"].is_null());
    assert_eq!(report["call"]["finalState"], "terminated");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn e2e_demo_rejects_unknown_names() {
    let out = Command::new(env!("CARGO_BIN_EXE_media-processor"))
        .args(["demo", "--profile", "moon"])
        .output()
        .expect("run media-processor demo");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown profile") && err.contains("wifi"),
        "{err}"
    );
}
