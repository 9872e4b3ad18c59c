//! End-to-end tests of the command-line interface: the real binary, real files.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_media-processor"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn run_stdin(args: &[&str], input: &str) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("stdin accepts the document");
    child.wait_with_output().expect("the binary ends")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const CALL_ID: &str = "1b69b141-7f1a-4033-9c34-202737190a20";

#[test]
fn blob_prints_a_blob_that_inspect_accepts() {
    let out = run(&[
        "blob",
        "--mp-uri",
        "quic://127.0.0.1:8445/MediaProcessor",
        "--call-id",
        CALL_ID,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let blob = stdout(&out);
    let v: serde_json::Value = serde_json::from_str(blob.trim()).expect("blob is JSON");
    assert_eq!(v["mpUri"], "quic://127.0.0.1:8445/MediaProcessor");
    assert_eq!(v["callId"], CALL_ID);
    assert_eq!(v["supportedAudioFormat"], "Pcm16K");

    let inspected = run_stdin(&["inspect", "-"], &blob);
    assert!(inspected.status.success(), "{}", stderr(&inspected));
    assert!(
        stdout(&inspected).contains("media session configuration"),
        "{}",
        stdout(&inspected)
    );
}

#[test]
fn blob_embed_is_the_escaped_string_value() {
    let args = [
        "blob",
        "--mp-uri",
        "net.tcp://bot.contoso.com:18732/MediaProcessor",
        "--call-id",
        CALL_ID,
        "--session-id",
        "2379cf46-acf3-4fef-a914-be9627075320",
        "--audio-render-context",
        "14778cc4-f54c-43c7-989f-9092e34ef784",
        "--audio-source-context",
        "a5dcfc9b-5a54-48ef-86f5-1fdd8508741a",
    ];
    let plain = run(&args);
    let embedded = run(&[&args[..], &["--embed"]].concat());
    assert!(plain.status.success() && embedded.status.success());
    let seed = include_str!("../crates/media-blob/tests/fixtures/seed_blob_escaped.txt");
    assert_eq!(
        stdout(&embedded).trim(),
        seed.trim(),
        "byte-for-byte the seed's escaped blob"
    );
    let unescaped: String = serde_json::from_str(&format!("\"{}\"", stdout(&embedded).trim()))
        .expect("embedded form is a JSON string body");
    assert_eq!(unescaped, stdout(&plain).trim());
}

#[test]
fn blob_rejects_a_bad_mp_uri_naming_it() {
    let out = run(&[
        "blob",
        "--mp-uri",
        "quic://host-without-port/MediaProcessor",
        "--call-id",
        CALL_ID,
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("mp-uri") && err.contains("port"), "{err}");
}

#[test]
fn every_scenario_prints_a_request_inspect_accepts() {
    for scenario in signaling::Scenario::names() {
        let out = run(&[
            "request",
            scenario,
            "--mp-uri",
            "quic://127.0.0.1:8445/MediaProcessor",
        ]);
        assert!(out.status.success(), "{scenario}: {}", stderr(&out));
        let body = stdout(&out);
        let v: serde_json::Value = serde_json::from_str(&body).expect("request is JSON");
        assert_eq!(v["@odata.type"], "#microsoft.graph.call", "{scenario}");
        assert!(
            stderr(&out).contains("Calls."),
            "{scenario}: permissions are printed"
        );
        if scenario.ends_with("-app") {
            assert!(stderr(&out).contains("Calls.AccessMedia.All"), "{scenario}");
            assert_eq!(
                v["mediaConfig"]["@odata.type"],
                "#microsoft.graph.appHostedMediaConfig"
            );
        }
        let inspected = run_stdin(&["inspect", "-"], &body);
        assert!(
            inspected.status.success(),
            "{scenario}: {}",
            stderr(&inspected)
        );
        assert!(
            stdout(&inspected).contains("create-call request"),
            "{scenario}"
        );
    }
}

#[test]
fn unknown_scenario_is_a_clear_error() {
    let out = run(&["request", "p2p-carrier-pigeon"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("p2p-carrier-pigeon"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_reads_seed_documents_from_files() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/signaling/tests/fixtures"
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures exist") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let out = run(&["inspect", path.to_str().expect("utf-8 path")]);
        let text = stdout(&out);
        // The seed's app-hosted examples carry a placeholder blob: inspect must say so
        // and fail; every other seed document is valid.
        let raw = std::fs::read_to_string(&path).expect("fixture readable");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if raw.contains("<Media Session Configuration>") && name.ends_with(".request.json") {
            assert!(
                !out.status.success(),
                "{}: placeholder blob must fail",
                path.display()
            );
            assert!(stderr(&out).contains("placeholder"), "{}", stderr(&out));
        } else {
            assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
            assert!(!text.is_empty());
        }
        seen += 1;
    }
    assert!(seen >= 20, "expected every seed example, saw {seen}");
}

#[test]
fn inspect_copes_with_unmodelled_properties_and_rejects_garbage() {
    let doc = r##"{"@odata.type":"#microsoft.graph.commsNotifications","value":[{"@odata.type":"#microsoft.graph.commsNotification","changeType":"updated","resourceUrl":"/communications/calls/abc","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established","futureProperty":{"x":[1,2]},"id":"abc"},"brandNewField":true}]}"##;
    let out = run_stdin(&["inspect", "-"], doc);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("established"), "{}", stdout(&out));

    let out = run_stdin(
        &["inspect", "-"],
        "{\"mpUri\": \"quic://h:1/MediaProcessor\",",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line"), "{}", stderr(&out));

    let out = run(&["inspect", "/nonexistent/file.json"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/file.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn request_joins_a_meeting_by_its_id_and_passcode() {
    let out = run(&[
        "request",
        "meeting-id-app",
        "--join-meeting-id",
        "375029698220440",
        "--passcode",
        "",
        "--compact",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        v["meetingInfo"],
        serde_json::json!({
            "@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo",
            "joinMeetingId": "375029698220440",
            "passcode": null
        })
    );
    assert!(v.get("chatInfo").is_none());
    let err = stderr(&out);
    assert!(
        err.contains("Calls.JoinGroupCall.All") && err.contains("Calls.AccessMedia.All"),
        "{err}"
    );

    // Spaces as Teams prints them: refused, naming the field.
    let out = run(&[
        "request",
        "meeting-id-service",
        "--join-meeting-id",
        "375 029 698",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("meetingInfo.joinMeetingId"),
        "{}",
        stderr(&out)
    );
    // The options belong to the meeting-id scenarios only.
    let out = run(&["request", "pstn-service", "--passcode", "x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("meeting-id-service"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_names_and_checks_in_call_actions() {
    let answer = r##"{"acceptedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}"##;
    let out = run_stdin(&["inspect", "-"], answer);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.starts_with("answer request: valid (POST /communications/calls/{id}/answer)"),
        "{report}"
    );
    assert!(
        report.contains("Calls.JoinGroupCall.All or Calls.JoinGroupCallAsGuest.All"),
        "{report}"
    );

    // Refused as Graph refuses them, naming the property.
    for (body, action, field) in [
        (
            r##"{"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}"##,
            "answer",
            "acceptedModalities",
        ),
        (r##"{"transferTarget":null}"##, "transfer", "transferTarget"),
        (r##"{"targets":[],"timeout":30}"##, "redirect", "targets"),
    ] {
        let out = run_stdin(&["inspect", "-"], body);
        assert!(!out.status.success(), "{body}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("invalid {action} request"))
                && err.contains(&format!("- {field}: ")),
            "{err}"
        );
    }

    // A shape several actions share: each is named, with its verdict.
    let out = run_stdin(&["inspect", "-"], r##"{"clientContext":"c1"}"##);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains("fits 10 actions: transfer, mute, unmute, subscribeToTone"),
        "{report}"
    );
    assert!(
        report.contains("  playPrompt: invalid: prompts: required"),
        "{report}"
    );
}

#[test]
fn emulator_rings_a_bot_with_an_incoming_call() {
    use std::io::{BufRead, BufReader, Read};
    // A stand-in bot callback: answers 202 and keeps the first request it gets.
    let bot = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/api/calls", bot.local_addr().expect("addr"));
    let got = std::thread::spawn(move || {
        let (mut conn, _) = bot.accept().expect("the emulator posts");
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .ok();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&request).contains("\"incoming\"") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = conn.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
        String::from_utf8_lossy(&request).into_owned()
    });
    let mut emulator = bin()
        .args(["emulator", "--bind", "127.0.0.1:0", "--ring", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("emulator starts");
    let stdout = emulator.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ringing = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("ringing the bot at"));
    let request = got.join().expect("the bot thread");
    let _ = emulator.kill();
    let _ = emulator.wait();
    assert!(ringing.is_some_and(|l| l.contains(&url)), "no ringing line");
    assert!(request.starts_with("POST /api/calls"), "{request}");
    assert!(request.contains("\"changeType\":\"created\""), "{request}");
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer "),
        "signed: {request}"
    );
}
