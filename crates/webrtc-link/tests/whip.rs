//! The WHIP endpoint over real HTTP and real UDP on 127.0.0.1: refusals (auth, CORS,
//! content type, SDP problems) and whole calls from a str0m peer (Opus and PCMU) to
//! an echo bot on the media platform, with bad offers arriving while a call runs.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use media_core::control::DtmfTone;
use platform::{AudioEvent, FrameDelivery, MediaPlatform, MediaPlatformSettings, QoeStats};
use tokio::sync::mpsc;
use webrtc_link::{AudioCodec, IncomingCall, PlatformCalls, WhipConfig, WhipServer};

use crate::common::envelope_correlation;

/// An echo bot behind a WHIP endpoint; each call's QoE and the RTCP reports its bot
/// saw come out of the receiver when the call ends.
struct Echo {
    server: WhipServer,
    ended: mpsc::UnboundedReceiver<(IncomingCall, QoeStats, Vec<f32>, Vec<DtmfTone>)>,
    _platform: Arc<MediaPlatform>,
}

async fn echo_server(config: WhipConfig) -> Echo {
    let platform =
        Arc::new(MediaPlatform::start(MediaPlatformSettings::dev_loopback()).expect("platform"));
    let echo = |_: &webrtc_link::WhipCallInfo| {
        FrameDelivery::Callback(Box::new(|f, tx| {
            let _ = tx.enqueue(&f.samples);
        }))
    };
    let (calls, mut incoming) = PlatformCalls::new(platform.clone(), echo);
    let server = WhipServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        config,
        Arc::new(calls),
    )
    .await
    .expect("bind");
    let (tx, ended) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(mut call) = incoming.recv().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut rtts = Vec::new();
                let mut tones = Vec::new();
                while let Some(e) = call.socket.next_event().await {
                    if let AudioEvent::PeerStats(r) = e {
                        rtts.push(r.rtt_ms);
                    }
                    // Each tone heard is sent back (RFC 4733 both ways).
                    if let AudioEvent::ToneReceived { tone, .. } = e {
                        tones.push(tone);
                        let _ = call.socket.send_dtmf(tone, 120);
                    }
                    if matches!(
                        e,
                        AudioEvent::Ended { .. } | AudioEvent::MediaStreamFailure { .. }
                    ) {
                        break;
                    }
                }
                let qoe = call.socket.qoe();
                let _ = tx.send((call, qoe, rtts, tones));
            });
        }
    });
    Echo {
        server,
        ended,
        _platform: platform,
    }
}

async fn post(url: &str, content_type: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("Content-Type", content_type)
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("POST");
    (res.status().as_u16(), res.text().await.expect("body"))
}

/// A real browser-style offer but with only the codecs given.
fn offer_with(codecs: &[(u8, &str)]) -> String {
    let pts: Vec<String> = codecs.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut sdp = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF {}\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n\
         a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
         a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
         a=setup:actpass\r\na=rtcp-mux\r\n",
        pts.join(" ")
    );
    for (pt, map) in codecs {
        sdp.push_str(&format!("a=rtpmap:{pt} {map}\r\n"));
    }
    sdp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_problem_and_cors_is_served() {
    let echo = echo_server(WhipConfig {
        bearer_token: Some("s3cret".into()),
        ..WhipConfig::default()
    })
    .await;
    let url = echo.server.url();
    let good = offer_with(&[(111, "opus/48000/2")]);

    let (s, body) = post(&url, "application/sdp", &good, None).await;
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("Bearer token is required"), "{body}");
    let (s, body) = post(&url, "application/sdp", &good, Some("wrong")).await;
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("not valid"), "{body}");

    let t = Some("s3cret");
    let (s, body) = post(&url, "application/json", "{}", t).await;
    assert_eq!(s, 415, "{body}");
    assert!(body.contains("application/sdp"), "{body}");
    let (s, body) = post(&url, "application/sdp", "hello, server", t).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("not an SDP offer"), "{body}");
    let video = good.replace("m=audio", "m=video");
    let (s, body) = post(&url, "application/sdp", &video, t).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("no audio m-line"), "{body}");
    let g722 = offer_with(&[(9, "G722/8000"), (13, "CN/8000")]);
    let (s, body) = post(&url, "application/sdp", &g722, t).await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body.contains("no common audio codec") && body.contains("G722/8000"),
        "{body}"
    );
    let big = format!("{good}{}", "a=x-padding:0123456789\r\n".repeat(4000));
    let (s, _) = post(&url, "application/sdp", &big, t).await;
    assert_eq!(s, 413, "an offer over 64 KiB");

    let http = reqwest::Client::new();
    let res = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "http://elsewhere.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .expect("OPTIONS");
    assert_eq!(res.status().as_u16(), 204);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    let methods = h["access-control-allow-methods"].to_str().expect("ascii");
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed = h["access-control-allow-headers"].to_str().expect("ascii");
    assert!(allowed.contains("Authorization") && allowed.contains("Content-Type"));
    assert_eq!(h["accept-post"], "application/sdp");

    let gone = format!("{url}/{}", uuid::Uuid::new_v4());
    let res = http
        .delete(&gone)
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status().as_u16(), 404);
    let res = http.delete(&gone).send().await.expect("DELETE");
    assert_eq!(res.status().as_u16(), 401, "DELETE needs the token too");
    let res = http
        .patch(&gone)
        .header("Content-Type", "application/trickle-ice-sdpfrag")
        .send()
        .await
        .expect("PATCH");
    assert_eq!(res.status().as_u16(), 405);

    let page = http
        .get(echo.server.page_url())
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("page");
    assert!(html.contains("RTCPeerConnection") && html.contains("getStats"));

    let st = echo.server.stats();
    assert_eq!(st.unauthorized, 3);
    assert_eq!(st.offers_refused, 4, "{st:?}");
    assert_eq!(st.calls_started, 0);
    assert_eq!(echo.server.calls(), 0, "refusals leave nothing behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opus_call_echoes_while_bad_offers_are_refused() {
    let mut echo = echo_server(WhipConfig::default()).await;
    let url = echo.server.url();
    let call = tokio::spawn({
        let url = url.clone();
        async move { common::client_call(&url, AudioCodec::Opus, 3.0, None).await }
    });
    // While the call runs: junk offers, each refused, none disturbing it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for body in ["v=0\r\n", "garbage", &offer_with(&[(9, "G722/8000")])] {
        let (s, _) = post(&url, "application/sdp", body, None).await;
        assert!((400..500).contains(&s), "{s}");
    }
    let call = call.await.expect("client");
    assert_eq!(call.status, 201, "{}", call.answer);
    assert!(call.answer.contains("a=ice-lite"), "ICE-lite answer");
    assert!(call.answer.contains("opus/48000/2"));
    assert!(!call.answer.contains("PCMU"), "one codec answered");
    assert_eq!(call.delete_status, 200);
    let (corr, lag) = envelope_correlation(&call.sent, &call.received, 50);
    println!(
        "opus echo: {} packets back, envelope correlation {corr:.3} at {} ms",
        call.packets_received,
        lag * 20
    );
    assert!(
        call.packets_received >= 130,
        "{} packets",
        call.packets_received
    );
    assert!(corr > 0.85, "envelope correlation {corr:.3}");

    let (incoming, qoe, rtts, tones) =
        tokio::time::timeout(Duration::from_secs(5), echo.ended.recv())
            .await
            .expect("the call ends")
            .expect("a call");
    println!("server QoE: {qoe:?}; RTCP RTTs the bot saw: {rtts:?}; tones {tones:?}");
    assert_eq!(tones, [DtmfTone::Tone5], "the bot hears the DTMF tone once");
    assert_eq!(call.tones, [5], "the bot's DTMF tone reaches the peer");
    assert_eq!(incoming.info.codec, AudioCodec::Opus);
    assert!(
        qoe.packets_received >= 140 && qoe.packets_sent >= 140,
        "{qoe:?}"
    );
    assert!(qoe.loss_pct < 1.0, "{qoe:?}");
    assert!(
        qoe.rtt_ms > 0.0 && qoe.rtt_ms < 50.0,
        "RTT from RTCP: {qoe:?}"
    );
    assert!(
        !rtts.is_empty(),
        "the far end's receiver reports reach the bot"
    );
    let st = echo.server.stats();
    assert_eq!((st.calls_started, st.deleted, st.offers_refused), (1, 1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pcmu_only_peer_gets_pcmu_and_hears_itself() {
    let mut echo = echo_server(WhipConfig::default()).await;
    let call = common::client_call(&echo.server.url(), AudioCodec::Pcmu, 2.0, None).await;
    assert_eq!(call.status, 201, "{}", call.answer);
    assert!(call.answer.contains("PCMU/8000") && !call.answer.contains("opus"));
    let (corr, lag) = envelope_correlation(&call.sent, &call.received, 50);
    println!(
        "pcmu echo: {} packets back, envelope correlation {corr:.3} at {} ms",
        call.packets_received,
        lag * 20
    );
    assert!(
        call.packets_received >= 80,
        "{} packets",
        call.packets_received
    );
    assert!(corr > 0.85, "envelope correlation {corr:.3}");
    let (incoming, qoe, _, _) = tokio::time::timeout(Duration::from_secs(5), echo.ended.recv())
        .await
        .expect("the call ends")
        .expect("a call");
    assert_eq!(incoming.info.codec, AudioCodec::Pcmu);
    assert!(qoe.packets_received >= 90, "{qoe:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_connects_ends_as_vanished() {
    let mut echo = echo_server(WhipConfig {
        idle_timeout: Duration::from_millis(700),
        ..WhipConfig::default()
    })
    .await;
    // A well-formed offer whose peer never sends a STUN check.
    let addr: SocketAddr = echo.server.local_addr();
    let (s, answer) = post(
        &format!("http://{addr}/whip"),
        "application/sdp",
        &offer_with(&[(0, "PCMU/8000")]),
        None,
    )
    .await;
    assert_eq!(s, 201, "{answer}");
    let (_, qoe, _, _) = tokio::time::timeout(Duration::from_secs(5), echo.ended.recv())
        .await
        .expect("the call ends")
        .expect("a call");
    assert_eq!(qoe.packets_received, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(echo.server.calls(), 0);
    assert_eq!(echo.server.stats().calls_ended, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_beyond_the_call_limit_is_told_to_retry() {
    let echo = echo_server(WhipConfig {
        max_calls: 1,
        idle_timeout: Duration::from_secs(3),
        ..WhipConfig::default()
    })
    .await;
    let url = echo.server.url();
    let offer = offer_with(&[(0, "PCMU/8000")]);
    let (s, answer) = post(&url, "application/sdp", &offer, None).await;
    assert_eq!(s, 201, "{answer}");
    let res = reqwest::Client::new()
        .post(&url)
        .header("Content-Type", "application/sdp")
        .body(offer)
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    let body = res.text().await.expect("body");
    assert!(body.contains("maximum of 1 calls"), "{body}");
    assert_eq!(echo.server.stats().calls_refused, 1);
    assert_eq!(echo.server.calls(), 1, "the first call runs on");
}
