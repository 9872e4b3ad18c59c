//! What the link tests (and the load example) share: a WHIP call from a
//! [`WhipPeer`] over real HTTP and UDP, and comparing an echo with what was sent by
//! the energy envelope (waveform correlation is a poor judge through Opus).

#![allow(dead_code)] // Each test binary uses its part.

use std::time::{Duration, Instant};

use media_core::frame::FRAME_SAMPLES;
use tokio::net::UdpSocket;
use webrtc_link::AudioCodec;
use webrtc_link::peer::WhipPeer;

/// What a client call saw.
#[derive(Debug, Default)]
pub struct ClientCall {
    /// The POST's status and body (the answer, or why not).
    pub status: u16,
    pub answer: String,
    /// What it sent and what came back, 16 kHz (G.711: upsampled by repetition).
    pub sent: Vec<i16>,
    pub received: Vec<i16>,
    pub frames_sent: u64,
    pub packets_received: u64,
    pub delete_status: u16,
    /// DTMF event codes that came back (one per tone).
    pub tones: Vec<u8>,
    /// Frames sent later than 5 ms after their 20 ms slot.
    pub late_sends: u64,
}

/// A [`WhipPeer`] offering `codec` calls `url`, sends `seconds` of speech-like audio
/// (with the DTMF tone 5 one second in when `tone`), records what comes back when
/// `record`, lingers 600 ms for the last echo, then DELETEs the session.
pub async fn client_call(
    url: &str,
    codec: AudioCodec,
    seconds: f64,
    token: Option<&str>,
) -> ClientCall {
    peer_call(url, codec, seconds, token, true, codec == AudioCodec::Opus).await
}

/// [`client_call`] with the choices spelled out.
pub async fn peer_call(
    url: &str,
    codec: AudioCodec,
    seconds: f64,
    token: Option<&str>,
    record: bool,
    tone: bool,
) -> ClientCall {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    let local = socket.local_addr().expect("local");
    let mut peer = WhipPeer::new(codec, local, Instant::now(), record).expect("a peer");
    let http = reqwest::Client::new();
    let mut req = http
        .post(url)
        .header("Content-Type", "application/sdp")
        .body(peer.offer().to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("POST");
    let mut call = ClientCall {
        status: res.status().as_u16(),
        ..ClientCall::default()
    };
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    call.answer = res.text().await.expect("body");
    if call.status != 201 {
        return call;
    }
    peer.accept_answer(&call.answer).expect("answer accepted");

    let speech = media_core::speech::speech_like((seconds * 16_000.0) as usize + 16_000, 7);
    let frames = (seconds * 50.0) as u64;
    let mut buf = vec![0u8; 2048];
    let mut next_send: Option<Instant> = None;
    let end = Instant::now() + Duration::from_secs_f64(seconds + 5.0);
    let mut linger: Option<Instant> = None;
    loop {
        while let Some(t) = peer.poll_transmit() {
            let _ = socket.send_to(&t.contents, t.destination).await;
        }
        let now = Instant::now();
        if now >= end || linger.is_some_and(|t| now >= t) {
            break;
        }
        if peer.is_connected() && next_send.is_none() {
            next_send = Some(now);
        }
        let k = peer.frames_sent();
        if let Some(due) = next_send.filter(|t| *t <= now && k < frames) {
            if now > due + Duration::from_millis(5) {
                call.late_sends += 1;
            }
            let at = k as usize * FRAME_SAMPLES;
            let frame: &[i16; FRAME_SAMPLES] =
                speech[at..at + FRAME_SAMPLES].try_into().expect("a frame");
            if record {
                call.sent.extend_from_slice(frame);
            }
            let dtmf = (tone && k == 50).then_some(5);
            peer.send_frame(now, frame, dtmf).expect("a frame sent");
            next_send = Some(due + Duration::from_millis(20));
            if k + 1 == frames {
                // Let the echo of the last frames come back.
                linger = Some(now + Duration::from_millis(600));
            }
            continue;
        }
        let mut wake = peer.poll_timeout();
        if let Some(t) = next_send.filter(|_| peer.frames_sent() < frames) {
            wake = wake.min(t);
        }
        if let Some(t) = linger {
            wake = wake.min(t);
        }
        let wait = wake.saturating_duration_since(Instant::now());
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, source)) = r {
                    peer.handle_receive(Instant::now(), source, &buf[..n]);
                }
            }
            () = tokio::time::sleep(wait) => peer.handle_timeout(Instant::now()),
        }
    }
    assert!(peer.failure().is_none(), "{:?}", peer.failure());
    call.frames_sent = peer.frames_sent();
    call.packets_received = peer.packets_received();
    call.received = peer.received().to_vec();
    call.tones = peer.tones().to_vec();
    if let Some(location) = location {
        let base: reqwest::Url = url.parse().expect("url");
        let mut req = http.delete(base.join(&location).expect("location"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        call.delete_status = req.send().await.expect("DELETE").status().as_u16();
    }
    call
}

/// 20 ms RMS envelope in dB.
fn envelope(x: &[i16]) -> Vec<f64> {
    x.chunks_exact(FRAME_SAMPLES)
        .map(|c| {
            let e = c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64;
            20.0 * (e.sqrt() + 1.0).log10()
        })
        .collect()
}

/// Best Pearson correlation of the received envelope with the sent one over lags of
/// 0..=max_lag frames.
pub fn envelope_correlation(sent: &[i16], received: &[i16], max_lag: usize) -> (f64, usize) {
    let s = envelope(sent);
    let r = envelope(received);
    let mut best = (-1.0, 0);
    for lag in 0..=max_lag {
        if lag >= r.len() {
            break;
        }
        let n = (r.len() - lag).min(s.len());
        let (a, b) = (&s[..n], &r[lag..lag + n]);
        let (ma, mb) = (
            a.iter().sum::<f64>() / n as f64,
            b.iter().sum::<f64>() / n as f64,
        );
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        let c = cov / (va.sqrt() * vb.sqrt() + 1e-9);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}
