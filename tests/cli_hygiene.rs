//! Hostile documents through the real binary: blob rules are the media port's,
//! error lines are bounded, and nothing from a document reaches the terminal
//! unescaped.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_media-processor"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

/// A file in the temp dir holding `text`, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("mp-cli-hygiene-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("temp file written");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const GUID_A: &str = "14778cc4-f54c-43c7-989f-9092e34ef784";
const GUID_B: &str = "a5dcfc9b-5a54-48ef-86f5-1fdd8508741a";

/// A valid current-form blob as a JSON object.
fn blob() -> Value {
    json!({
        "mpUri": "quic://127.0.0.1:8445/MediaProcessor",
        "audioRenderContexts": [GUID_A],
        "videoRenderContexts": [],
        "audioSourceContexts": [GUID_B],
        "videoSourceContexts": [],
        "dataRenderContexts": null,
        "dataSourceContexts": null,
        "supportedAudioFormat": "Pcm16K",
        "videoSinkEncodingFormats": [],
        "mpMediaSessionId": "2379cf46-acf3-4fef-a914-be9627075320",
        "regionAffinity": null,
        "skypeMediaBotsVersion": "1.11.1.0086",
        "mediaStackVersion": "2018.53.1.1",
        "mpVersion": "7.2.0.3881",
        "callId": "1b69b141-7f1a-4033-9c34-202737190a20"
    })
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The blob variants the media port refuses, with what the error must say.
fn refused_blobs() -> Vec<(&'static str, Value, &'static str)> {
    let mut none = blob();
    none["audioRenderContexts"] = json!([]);
    none["audioSourceContexts"] = json!([]);
    let mut seventeen = blob();
    seventeen["audioSourceContexts"] = Value::Array(
        (0..16)
            .map(|i| json!(format!("00000000-0000-4000-8000-{i:012}")))
            .collect(),
    );
    let mut twice = blob();
    twice["audioSourceContexts"] = json!([GUID_A]);
    let mut duplicates = blob();
    duplicates["audioSourceContexts"] = Value::Array(vec![json!(GUID_B); 200_000]);
    vec![
        ("0 contexts", none, "1 to 16 audio contexts in all, got 0"),
        (
            "17 contexts",
            seventeen,
            "1 to 16 audio contexts in all, got 17",
        ),
        ("a repeated GUID", twice, "appears twice"),
        ("200,000 duplicates", duplicates, "more than the 16 allowed"),
    ]
}

#[test]
fn inspect_request_and_blob_refuse_what_the_media_port_refuses() {
    for (what, doc, says) in refused_blobs() {
        let f = TempFile::new("refused.json", &doc.to_string());
        let o = run(&["inspect", "--max-bytes", "30000000", f.path()]);
        assert!(!o.status.success(), "inspect accepted {what}");
        assert!(stderr(&o).contains(says), "{what}: {}", stderr(&o));
        // The same blob as the JSON text `request --blob` takes.
        let arg = format!("@{}", f.path());
        let o = run(&["request", "p2p-voip-app", "--blob", &arg]);
        assert!(!o.status.success(), "request accepted {what}");
        assert!(o.stdout.is_empty(), "{what}: a request was printed");
        let err = stderr(&o);
        assert!(err.len() < 300, "{what}: {} bytes: {err}", err.len());
    }
    let o = run(&[
        "blob",
        "--mp-uri",
        "quic://127.0.0.1:8445/MediaProcessor",
        "--call-id",
        GUID_B,
        "--audio-source-context",
        GUID_A,
        "--audio-render-context",
        GUID_A,
    ]);
    assert!(!o.status.success(), "blob built a repeated GUID");
    assert!(stderr(&o).contains("appears twice"), "{}", stderr(&o));
}

#[test]
fn a_10_mb_mp_uri_gives_a_short_error_line() {
    let huge = format!("quic://127.0.0.1:8445/{}", "x".repeat(10 << 20));
    let mut object = blob();
    object["mpUri"] = json!(huge);
    // As an object (older form), as the blob string, and inside a request.
    let request = json!({
        "@odata.type": "#microsoft.graph.call",
        "callbackUri": "https://bot.example.com/callback",
        "requestedModalities": ["audio"],
        "mediaConfig": {
            "@odata.type": "#microsoft.graph.appHostedMediaConfig",
            "blob": object.to_string()
        },
        "source": {"@odata.type": "#microsoft.graph.participantInfo",
            "identity": {"@odata.type": "#microsoft.graph.identitySet",
                "application": {"@odata.type": "#microsoft.graph.identity", "id": GUID_A}}},
        "targets": [{"@odata.type": "#microsoft.graph.invitationParticipantInfo",
            "identity": {"@odata.type": "#microsoft.graph.identitySet",
                "user": {"@odata.type": "#microsoft.graph.identity", "id": GUID_B}}}],
        "tenantId": GUID_B
    });
    let docs = [
        ("object", object.to_string()),
        ("string", Value::String(object.to_string()).to_string()),
        ("request", request.to_string()),
    ];
    for (what, doc) in docs {
        let f = TempFile::new("huge.json", &doc);
        let o = run(&["inspect", "--max-bytes", "30000000", f.path()]);
        assert!(!o.status.success(), "{what}: accepted");
        let err = stderr(&o);
        let longest = err.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 200, "{what}: a {longest}-byte line: {:.300}", err);
        assert!(
            err.contains("mpUri") || err.contains("blob"),
            "{what}: {err}"
        );
    }
    let f = TempFile::new("huge-blob.json", &object.to_string());
    let arg = format!("@{}", f.path());
    let o = run(&["request", "p2p-voip-app", "--blob", &arg]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.len() < 200, "{} bytes: {:.300}", err.len(), err);
}

#[test]
fn inspect_prints_control_characters_escaped() {
    let doc = json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [{
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "updated",
            "resourceUrl": "/communications/calls/\u{1b}[2J\rowned\n",
            "resourceData": {
                "@odata.type": "#microsoft.graph.call",
                "state": "established",
                "id": "call\u{1b}[31m\u{9b}1m"
            }
        }]
    });
    let f = TempFile::new("escapes.json", &doc.to_string());
    let o = run(&["inspect", f.path()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).expect("utf-8");
    assert!(
        out.contains(r"/communications/calls/\u001b[2J\rowned\n"),
        "{out}"
    );
    assert!(out.contains(r"call\u001b[31m\u009b1m"), "{out}");
    let raw = out.replace('\n', "");
    assert!(
        !raw.contains(|c: char| c.is_control()),
        "a control character reached stdout: {out:?}"
    );
    // Errors too: an unknown document's summary quotes its keys escaped.
    let f = TempFile::new("unknown.json", r#"{"\u001b[2J\r":1}"#);
    let o = run(&["inspect", f.path()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(!err.contains(['\u{1b}', '\r']), "{err:?}");
    assert!(err.contains(r"\u001b[2J\r"), "{err}");
}

#[test]
fn inspect_reads_at_most_max_bytes() {
    let doc = blob().to_string();
    let f = TempFile::new("small.json", &doc);
    let o = run(&["inspect", "--max-bytes", "100", f.path()]);
    assert!(!o.status.success(), "read past --max-bytes");
    let err = stderr(&o);
    assert!(
        err.contains("is larger than 100 bytes (--max-bytes)"),
        "{err}"
    );
    let limit = doc.len().to_string();
    let o = run(&["inspect", "--max-bytes", &limit, f.path()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The default (4 MiB) refuses a 5 MB document without parsing it.
    let big = format!("[{}0]", "0,".repeat(2_500_000));
    let f = TempFile::new("big.json", &big);
    let o = run(&["inspect", f.path()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is larger than 4194304 bytes (--max-bytes)"),
        "{}",
        stderr(&o)
    );
}

/// A notifications document of `n` participant updates (about 360 bytes each).
fn notifications(n: usize) -> String {
    let one = json!({
        "changeType": "updated",
        "resourceUrl": "/communications/calls/c1/participants",
        "resourceData": [{
            "@odata.type": "#microsoft.graph.participant",
            "id": "p1",
            "isMuted": true,
            "mediaStreams": [{"mediaType": "audio", "sourceId": "10", "direction": "sendReceive"}],
            "info": {"identity": {"user": {"id": "u1", "displayName": "Someone"}}}
        }]
    })
    .to_string();
    let entries = vec![one; n].join(",");
    format!(r##"{{"@odata.type":"#microsoft.graph.commsNotifications","value":[{entries}]}}"##)
}

#[test]
fn inspect_reads_notifications_one_at_a_time() {
    // 16 MB of notifications under a 128 MB address-space limit (8x the document):
    // holding them all as JSON values took about 500 MB.
    let doc = notifications(50_000);
    assert!(doc.len() > 15_000_000, "{}", doc.len());
    let f = TempFile::new("many-notifications.json", &doc);
    let script = format!(
        "ulimit -v 128000; exec \"$0\" inspect --max-bytes 20000000 {}",
        f.path()
    );
    let o = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_media-processor")])
        .output()
        .expect("bash runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("commsNotifications"));
    assert_eq!(lines.next(), Some("  50000 notification(s)"));
    assert_eq!(lines.clone().count(), 50_000);
    assert!(
        lines
            .all(|l| l
                .contains("updated /communications/calls/c1/participants: participant Someone")),
        "every notification summarised"
    );
}

#[test]
fn inspect_refuses_repeated_keys_and_names_the_entry() {
    let doc = r##"{"@odata.type":"#microsoft.graph.commsNotifications","value":[
        {"changeType":"updated","resourceUrl":"/communications/calls/c1"},
        {"changeType":"updated","resourceUrl":"/communications/calls/c1","resourceUrl":"/x"}]}"##;
    let f = TempFile::new("twice.json", doc);
    let o = run(&["inspect", f.path()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(r#"value[1] does not fit the notifications model: duplicate key "resourceUrl" in the document"#),
        "{err}"
    );
    let top = r#"{"callbackUri":"https://a.example/cb","callbackUri":"https://b.example/cb"}"#;
    let f = TempFile::new("twice-top.json", top);
    let o = run(&["inspect", f.path()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(r#"duplicate key "callbackUri" in the document"#),
        "{}",
        stderr(&o)
    );
}

#[test]
fn inspect_stops_quietly_when_the_reader_does() {
    // `inspect ... | head -1`: the rest of the report meets a closed pipe.
    let f = TempFile::new("head.json", &notifications(20_000));
    let mut child = bin()
        .args(["inspect", "--max-bytes", "20000000", f.path()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut first,
    )
    .expect("a first line");
    assert_eq!(first, "commsNotifications\n");
    let o = child.wait_with_output().expect("exits");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("panicked"), "{err}");
}
