//! Helpers shared by the integration tests (real QUIC over 127.0.0.1).
//!
//! - [`peer`]: a far end written on quinn from `docs/wire-format.md` alone
//!   ([`QuicPeer`]), a peer that can vanish, an echoing quinn server for the dialling
//!   side, and hostile raw peers: the reactor is tested against implementations that
//!   are not itself.
//! - [`server`]: the media processor under test, a `ReactorServer` whose `CallApp`
//!   admits through `KnownSessions` and runs one echoing `CallHandler` per call.
//! - This file: settings, wire helpers, bad input.
#![allow(dead_code, clippy::unwrap_used)]

pub mod peer;
pub mod server;

use std::time::Duration;

use media_core::packet::TIMESTAMP_STEP;
use transport::TransportSettings;
use transport::wire::{
    Codec, ControlMessage, DatagramHeader, DatagramRef, Flags, Join, encode_control,
};
use uuid::Uuid;

pub use peer::*;
pub use server::*;

pub const LOOPBACK: &str = "127.0.0.1:0";
/// How long a test waits for something that takes milliseconds on an idle machine.
pub const WITHIN: Duration = Duration::from_secs(10);

/// Default settings with a 3 s idle timeout.
pub fn settings() -> TransportSettings {
    TransportSettings::default().with_idle_timeout(Duration::from_secs(3))
}

/// A join with one source and one render context.
pub fn join_for(session: Uuid) -> Join {
    Join::new(
        session,
        Uuid::new_v4(),
        vec![Uuid::new_v4()],
        vec![Uuid::new_v4()],
    )
}

pub fn header(stream_id: u32, seq: u16) -> DatagramHeader {
    DatagramHeader {
        flags: if seq == 0 { Flags::MARKER } else { Flags::NONE },
        codec: Codec::Pcm16k,
        stream_id,
        sequence: seq,
        timestamp: u32::from(seq) * TIMESTAMP_STEP,
        source: 0,
    }
}

/// A recognisable 640-byte PCM frame for (stream, seq).
pub fn pcm_frame(stream_id: u32, seq: u16) -> Vec<u8> {
    (0..640u32)
        .map(|i| (i as u8) ^ (seq as u8) ^ (stream_id as u8).wrapping_mul(31))
        .collect()
}

/// One datagram: `header` and `payload` as the wire format lays them out.
pub fn datagram(header: DatagramHeader, payload: &[u8]) -> bytes::Bytes {
    let d = DatagramRef::new(header, payload);
    let mut out = vec![0u8; d.encoded_len()];
    let n = d.encode_into(&mut out).unwrap();
    out.truncate(n);
    out.into()
}

/// The PCM datagram of (stream, seq).
pub fn encode(stream_id: u32, seq: u16) -> bytes::Bytes {
    datagram(header(stream_id, seq), &pcm_frame(stream_id, seq))
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What is wrong with a join, how to make it so, and the reject it must get.
pub type Spoiled = (&'static str, fn(&mut Join), transport::wire::RejectCode);

/// Joins the server must reject before asking its application.
pub fn spoiled_joins() -> [Spoiled; 5] {
    use transport::wire::RejectCode;
    [
        (
            "version 2",
            |j| j.version = 2,
            RejectCode::UnsupportedVersion,
        ),
        (
            "no audio contexts",
            |j| {
                j.audio_source_contexts.clear();
                j.audio_render_contexts.clear();
            },
            RejectCode::InvalidJoin,
        ),
        (
            "17 contexts",
            |j| j.audio_source_contexts = (0..16).map(|_| Uuid::new_v4()).collect(),
            RejectCode::InvalidJoin,
        ),
        ("no codecs", |j| j.codecs.clear(), RejectCode::InvalidJoin),
        (
            "render contexts = source contexts",
            |j| j.audio_render_contexts = j.audio_source_contexts.clone(),
            RejectCode::InvalidJoin,
        ),
    ]
}

/// Sends 60 bad datagrams on an admitted connection whose valid stream is `stream`
/// (10 each: truncated header, noise, wrong version, unknown codec, short PCM,
/// unknown stream), then, once the path MTU allows (PLPMTUD raises it on loopback
/// within milliseconds), 5 oversized ones. Returns how many oversized were sent.
pub async fn send_garbage(bad: &quinn::Connection, stream: u32) -> u64 {
    use transport::wire::{HEADER_LEN, MAX_DATAGRAM_LEN};
    let valid = encode(stream, 0).to_vec();
    let mut wrong_version = valid.clone();
    wrong_version[0] = 7;
    let mut unknown_codec = valid.clone();
    unknown_codec[2] = 9;
    let short_pcm = valid[..HEADER_LEN + 100].to_vec();
    let mut unknown_stream = valid.clone();
    unknown_stream[4..8].copy_from_slice(&99u32.to_be_bytes());
    for i in 0..10u8 {
        bad.send_datagram(vec![1, 0, 0, i, 0].into()).unwrap(); // truncated header
        bad.send_datagram(vec![0xff; 20 + usize::from(i)].into())
            .unwrap(); // noise: version 255
        bad.send_datagram(wrong_version.clone().into()).unwrap();
        bad.send_datagram(unknown_codec.clone().into()).unwrap();
        bad.send_datagram(short_pcm.clone().into()).unwrap();
        bad.send_datagram(unknown_stream.clone().into()).unwrap();
    }
    let mut oversized_sent = 0;
    if eventually(Duration::from_secs(5), || {
        bad.max_datagram_size().unwrap_or(0) > MAX_DATAGRAM_LEN
    })
    .await
    {
        let mut big = valid.clone();
        big.resize(MAX_DATAGRAM_LEN + 1, 0);
        for _ in 0..5 {
            bad.send_datagram(big.clone().into()).unwrap();
            oversized_sent += 1;
        }
    }
    oversized_sent
}

/// Floods an admitted connection for 1 s: 2000 valid datagrams per second on `stream`
/// (10x the default rate limit), 20 every 10 ms.
pub async fn flood(bad: &quinn::Connection, stream: u32) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut seq = 0u16;
    for _ in 0..100 {
        tick.tick().await;
        for _ in 0..20 {
            let _ = bad.send_datagram(encode(stream, seq));
            seq = seq.wrapping_add(1);
        }
    }
}

/// Bad control-stream bytes after admission, each with what is wrong: invalid JSON, an
/// oversized length prefix, an unknown message type, and a second join (of `session`).
pub fn control_garbage(session: Uuid) -> [(&'static str, Vec<u8>); 4] {
    let second_join = encode_control(&ControlMessage::Join(join_for(session))).unwrap();
    [
        ("invalid JSON", [&[0u8, 0, 0, 5][..], b"hello"].concat()),
        (
            "oversized length prefix",
            vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        ),
        (
            "unknown message type",
            [&[0u8, 0, 0, 17][..], br#"{"type":"bogus"}"#, b" "].concat(),
        ),
        ("join after admission", second_join),
    ]
}
