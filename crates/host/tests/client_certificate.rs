//! App credentials by certificate: a host whose Graph client authenticates with a
//! client assertion (`graph.client_certificate_file` / `graph.client_key_file`) gets a
//! token from the Graph emulator (the app registered with that certificate) and places
//! a call that is established; a certificate the app does not have is refused
//! `invalid_client` with an AADSTS description, a replayed assertion too; mixing the
//! two kinds of credential is refused naming the key.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use emulator::{Emulator, EmulatorConfig, RegisteredApp};
use graph::{ClientCertificate, GraphClient, GraphConfig};
use host::{Host, HostConfig};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

/// A temp directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mp-host-cc-{}-{name}", std::process::id()));
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

/// A self-signed RSA certificate and its PKCS#8 key, PEM.
fn rsa_cert() -> (String, String) {
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key");
    let key_pem = key.to_pkcs8_pem(LineEnding::LF).expect("PEM").to_string();
    let pair = rcgen::KeyPair::from_pem(&key_pem).expect("rcgen key");
    let cert = rcgen::CertificateParams::new(vec!["bot.example".to_owned()])
        .expect("params")
        .self_signed(&pair)
        .expect("certificate");
    (cert.pem(), key_pem)
}

fn config_text(emu: &emulator::EmulatorHandle, credential: &str) -> String {
    let app = &emu.apps()[0];
    format!(
        r#"
[graph]
base_url = "{graph}"
token_url = "{token}"
client_id = "{client}"
{credential}
[callback]
bind = "127.0.0.1:0"
openid_url = "{openid}"
[admin]
bind = "127.0.0.1:0"
[drain]
deadline_s = 0
linger_ms = 200
[routing]
instance_id = "cc"
"#,
        graph = emu.graph_v1_url(),
        token = emu.token_url_for(&app.tenant_id),
        client = app.client_id,
        openid = emu.openid_url(),
    )
}

fn files(dir: &TempDir, tag: &str, cert: &str, key: &str) -> String {
    let c = dir.write(&format!("{tag}-cert.pem"), cert);
    let k = dir.write(&format!("{tag}-key.pem"), key);
    format!(
        "client_certificate_file = {:?}\nclient_key_file = {:?}",
        c.display().to_string(),
        k.display().to_string()
    )
}

fn load(text: &str) -> Result<HostConfig, host::ConfigError> {
    HostConfig::from_toml(text, Vec::<(String, String)>::new(), "host.toml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_credential_places_a_call_and_a_wrong_one_is_refused() {
    let dir = TempDir::new("e2e");
    let (cert, key) = rsa_cert();
    let (other_cert, other_key) = rsa_cert();
    let emu = Emulator::start(EmulatorConfig {
        apps: vec![RegisteredApp::demo().certificate(cert.clone())],
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let app = emu.apps()[0].clone();

    let config = load(&config_text(&emu, &files(&dir, "good", &cert, &key))).expect("config");
    assert!(config.graph.client_certificate.is_some());
    assert!(config.graph.client_secret.is_empty());
    let host = Host::start(config).await.expect("host starts");
    host.place(signaling::Scenario::P2pVoipApp).await;
    let calls = emu.calls();
    assert_eq!(calls.len(), 1, "placed with a token got by certificate");
    let call_id = calls[0].id.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !emu.call(&call_id).is_some_and(|c| {
        c.notifications
            .iter()
            .any(|n| n.state.as_deref() == Some("established") && n.delivered)
    }) {
        assert!(Instant::now() < deadline, "not established in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counters = emu.counters();
    assert!(counters.tokens_issued >= 1, "{counters:?}");
    assert_eq!(counters.tokens_rejected, 0, "{counters:?}");

    // A certificate the app does not have: invalid_client, AADSTS700027.
    let wrong = GraphClient::new(
        GraphConfig::new(
            emu.graph_v1_url(),
            emu.token_url_for(&app.tenant_id),
            app.client_id.clone(),
            "",
        )
        .client_certificate(ClientCertificate::from_pem(&other_cert, &other_key).expect("loads")),
    )
    .expect("client");
    let e = wrong.access_token().await.expect_err("refused").to_string();
    assert!(
        e.contains("AADSTS700027") && e.contains("not registered"),
        "{e}"
    );

    // The same assertion twice: the second is a replay.
    let good = ClientCertificate::from_pem(&cert, &key).expect("loads");
    let token_url = emu.token_url_for(&app.tenant_id);
    let assertion = good.assertion(&app.client_id, &token_url).expect("signed");
    let http = reqwest::Client::new();
    let post = || {
        http.post(&token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app.client_id.as_str()),
                ("client_assertion_type", graph::assertion::ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
    };
    assert_eq!(post().await.expect("answered").status().as_u16(), 200);
    let r = post().await.expect("answered");
    assert_eq!(r.status().as_u16(), 401);
    let body: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS700027") && d.contains("replayed")),
        "{body}"
    );

    let report = host.run(async {}).await;
    assert_eq!(report.left, 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn one_kind_of_credential_named_in_errors() {
    let dir = TempDir::new("config");
    let (cert, key) = rsa_cert();
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let pair = files(&dir, "a", &cert, &key);
    let not_pem = dir.write("not.pem", "hello");
    let cases = [
        (
            format!("client_secret = 's'\n{pair}"),
            "graph.client_secret: set together",
        ),
        (String::new(), "graph.client_secret: missing"),
        (
            pair.lines().next().expect("line").to_owned(),
            "graph.client_key_file: missing",
        ),
        (
            format!(
                "client_certificate_file = {:?}\nclient_key_file = {:?}",
                not_pem.display().to_string(),
                not_pem.display().to_string()
            ),
            "graph.client_certificate_file: ",
        ),
        (
            format!(
                "client_certificate_file = {:?}\nclient_key_file = {:?}",
                dir.0.join("a-cert.pem").display().to_string(),
                not_pem.display().to_string()
            ),
            "graph.client_key_file: ",
        ),
    ];
    for (credential, want) in cases {
        let e = load(&config_text(&emu, &credential))
            .expect_err(want)
            .to_string();
        assert!(e.starts_with(want), "{want:?} not in {e:?}");
    }
    emu.shutdown().await;
}
