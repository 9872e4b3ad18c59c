//! The `/twilio` handshake against Twilio's own signing code: the PyPI `twilio`
//! package's `RequestValidator.compute_signature` signs the stream URL (with its
//! query) as Twilio does, and the endpoint takes the stream; a signature over another
//! URL or with another token gets 401.

use std::process::{Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use platform::FrameDelivery;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
mod common;

use ws_link::{Dialect, WsAuthConfig, WsConfig};

const TOKEN: &str = "12345678901234567890123456789012";

/// `X-Twilio-Signature` of `url` (no POST parameters) by the `twilio` package, or
/// `None` where it is missing outside CI.
fn twilio_signs(token: &str, url: &str) -> Option<String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; from twilio.request_validator import RequestValidator as V; \
             print(V(sys.argv[1]).compute_signature(sys.argv[2], {}))",
            token,
            url,
        ])
        .stderr(Stdio::inherit())
        .output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3 with the PyPI package twilio is needed (scripts/install-deps.sh)"
            );
            eprintln!("skipped: python3 with twilio is not installed");
            None
        }
    }
}

#[test]
fn a_stream_signed_by_twilios_validator_is_taken_and_a_wrong_one_refused() {
    common::rt().block_on(async {
        let config = WsConfig {
            auth: WsAuthConfig {
                twilio_auth_token: Some(TOKEN.into()),
                ..WsAuthConfig::default()
            },
            ..WsConfig::default()
        };
        let (server, mut incoming, _platform) =
            common::endpoint(config, |_| FrameDelivery::Callback(Box::new(|_, _| {}))).await;
        let url = format!("{}?From=%2B15551234567&call=42", server.url(Dialect::Twilio));
        let Some(good) = twilio_signs(TOKEN, &url) else {
            return;
        };
        let other_url = twilio_signs(TOKEN, &format!("{url}&x=1")).expect("signed");
        let other_token = twilio_signs("another-token", &url).expect("signed");
        let request = |signature: &str| {
            let mut r = url.as_str().into_client_request().expect("request");
            r.headers_mut()
                .insert("x-twilio-signature", signature.parse().expect("header"));
            r
        };
        for bad in [&other_url, &other_token] {
            let err = tokio_tungstenite::connect_async(request(bad))
                .await
                .expect_err("refused");
            assert!(
                matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 401),
                "{err}"
            );
        }
        let (ws, resp) = tokio_tungstenite::connect_async(request(&good))
            .await
            .expect("the twilio package's signature is taken");
        assert_eq!(resp.status(), 101);
        let (mut tx, mut rx) = ws.split();
        tx.send(Message::text(r#"{"event":"start","start":{"streamSid":"MZ9","callSid":"CA9","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ9"}"#))
            .await
            .expect("start");
        let call = tokio::time::timeout(std::time::Duration::from_secs(10), incoming.recv())
            .await
            .expect("a call in time")
            .expect("a call");
        assert_eq!(call.info.stream_id, "MZ9");
        tx.send(Message::text(r#"{"event":"stop","streamSid":"MZ9"}"#))
            .await
            .expect("stop");
        while let Some(Ok(m)) = rx.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
        let stats = server.stats();
        assert_eq!((stats.unauthorized, stats.calls_started), (2, 1));
    });
}
