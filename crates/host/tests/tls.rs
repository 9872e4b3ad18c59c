//! HTTPS for the callback server: a CA and a server certificate for 127.0.0.1 made at
//! test time, a host serving its callbacks with them, the Graph emulator (trusting the
//! test CA) placing and ending a call whose notifications all arrive over HTTPS; a
//! plain-HTTP request to the TLS port fails; configuration errors name the key.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use emulator::{Emulator, EmulatorConfig};
use host::{Host, HostConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A temp directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mp-host-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("written");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test CA (PEM), and a server certificate for 127.0.0.1 it signed with its key
/// (PEM).
fn pki() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "media-processor test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "callback server");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn config_text(emu: &emulator::EmulatorHandle, port: u16, tls: &str) -> String {
    let app = &emu.apps()[0];
    format!(
        r#"
[graph]
base_url = "{graph}"
token_url = "{token}"
client_id = "{client}"
[callback]
bind = "127.0.0.1:{port}"
openid_url = "{openid}"
{tls}
[admin]
bind = "127.0.0.1:0"
[drain]
deadline_s = 0
linger_ms = 200
[routing]
instance_id = "tls"
"#,
        graph = emu.graph_v1_url(),
        token = emu.token_url_for(&app.tenant_id),
        client = app.client_id,
        openid = emu.openid_url(),
    )
}

fn load(text: &str, secret: &str) -> Result<HostConfig, host::ConfigError> {
    HostConfig::from_toml(
        text,
        [("MP_GRAPH_CLIENT_SECRET".to_owned(), secret.to_owned())],
        "host.toml",
    )
}

fn tls_keys(cert: &Path, key: &Path) -> String {
    format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}",
        cert.display().to_string(),
        key.display().to_string()
    )
}

async fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_arrive_over_https() {
    let dir = TempDir::new("e2e");
    let (ca_pem, cert_pem, key_pem) = pki();
    let cert = dir.write("cert.pem", &cert_pem);
    let key = dir.write("key.pem", &key_pem);
    let emu = Emulator::start(EmulatorConfig {
        notification_root_ca_pem: Some(ca_pem.clone()),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let secret = emu.apps()[0].client_secret.clone();
    let port = free_port();
    let config = load(&config_text(&emu, port, &tls_keys(&cert, &key)), &secret).expect("config");
    let host = Host::start(config).await.expect("host starts");
    assert_eq!(
        host.instance_callback_url(),
        format!("https://127.0.0.1:{port}/callbacks/tls")
    );

    host.place(signaling::Scenario::P2pVoipApp).await;
    let calls = emu.calls();
    assert_eq!(calls.len(), 1, "the call was placed");
    let call_id = calls[0].id.clone();
    assert!(calls[0].callback_uri.starts_with("https://"));
    wait_for("established over HTTPS", Duration::from_secs(20), || {
        emu.call(&call_id).is_some_and(|c| {
            c.notifications
                .iter()
                .any(|n| n.state.as_deref() == Some("established") && n.delivered)
        })
    })
    .await;
    assert!(emu.hang_up(&call_id), "the emulator ends the call");
    wait_for("terminated delivered", Duration::from_secs(20), || {
        emu.call(&call_id).is_some_and(|c| {
            c.notifications
                .iter()
                .any(|n| n.state.as_deref() == Some("terminated") && n.delivered)
        })
    })
    .await;
    let summary = emu.call(&call_id).expect("summary");
    assert!(
        summary.notifications.iter().all(|n| n.delivered),
        "{:?}",
        summary.notifications
    );
    let counters = emu.counters();
    assert!(counters.notifications_delivered >= 3, "{counters:?}");
    assert_eq!(counters.notifications_failed, 0, "{counters:?}");

    // Plain HTTP on the TLS port: no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let r = plain
        .post(format!("http://127.0.0.1:{port}/callback"))
        .body("{}")
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP was answered: {r:?}");
    // HTTPS with the CA: the callback server answers (401: no token).
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA"))
        .build()
        .expect("client");
    let r = https
        .post(format!("https://127.0.0.1:{port}/callback"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("HTTPS answered");
    assert_eq!(r.status().as_u16(), 401);

    let report = host.run(async {}).await;
    assert_eq!(report.left, 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn tls_config_errors_name_the_key() {
    let dir = TempDir::new("config");
    let (_, cert_pem, key_pem) = pki();
    let (_, _, other_key_pem) = pki();
    let cert = dir.write("cert.pem", &cert_pem);
    let key = dir.write("key.pem", &key_pem);
    let other_key = dir.write("other-key.pem", &other_key_pem);
    let not_pem = dir.write("not.pem", "hello");
    let missing = dir.0.join("missing.pem");
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let port = free_port();
    let cases: Vec<(String, &str)> = vec![
        (tls_keys(&cert, &other_key), "callback.tls_key_file: "),
        (tls_keys(&missing, &key), "callback.tls_cert_file: "),
        (tls_keys(&not_pem, &key), "callback.tls_cert_file: "),
        (tls_keys(&cert, &not_pem), "callback.tls_key_file: "),
        (
            format!("tls_cert_file = {:?}", cert.display().to_string()),
            "callback.tls_key_file: missing",
        ),
        (
            format!(
                "{}\npublic_url = \"http://example.com/callback\"",
                tls_keys(&cert, &key)
            ),
            "callback.public_url: must be https://",
        ),
    ];
    let wants = [
        "does not match the certificate",
        "cannot read",
        "not PEM",
        "not a PEM private key",
        "missing",
        "https",
    ];
    for ((tls, key_named), want) in cases.iter().zip(wants) {
        let e = load(&config_text(&emu, port, tls), "s")
            .expect_err(key_named)
            .to_string();
        assert!(
            e.starts_with(key_named) && e.contains(want),
            "{key_named:?} / {want:?} not in {e:?}"
        );
    }
    // The matching pair loads.
    load(&config_text(&emu, port, &tls_keys(&cert, &key)), "s").expect("a matching pair");
    emu.shutdown().await;
}
