//! The media port admits a join only when it carries the `callId` and audio
//! contexts of the blob its session was created with.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use media_blob::{MediaSessionConfig, MpUri};
use transport::KnownSessions;
use transport::wire::{ControlMessage, Join, RejectCode};
use uuid::Uuid;

fn join_of(blob: &MediaSessionConfig) -> Join {
    let (source, render) = blob.join_contexts();
    Join::new(blob.session_id(), blob.call_id().unwrap(), source, render)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_with_a_wrong_call_id_or_context_is_rejected() {
    let blob = MediaSessionConfig::builder(MpUri::quic("127.0.0.1", 4433).unwrap(), Uuid::new_v4())
        .try_build()
        .unwrap();
    let registry = Arc::new(KnownSessions::new());
    registry.expect_blob(&blob);
    let r = Reactor::start_with(settings(), registry, 1, Vec::new());

    // Right session id, random callId: refused, and the reason says why.
    let (_ep, conn) = r.raw().await;
    let mut wrong_call = join_of(&blob);
    wrong_call.call_id = Uuid::new_v4();
    let (_send, reply) = raw_join(&conn, &wrong_call).await;
    let ControlMessage::Reject(rej) = reply else {
        panic!("expected a reject, got {reply:?}")
    };
    assert_eq!(rej.code, RejectCode::InvalidJoin);
    assert_eq!(
        rej.message,
        format!(
            "join does not match media session {}: callId: the join says {}, the session \
             was created for {}",
            blob.session_id(),
            wrong_call.call_id,
            blob.call_id().unwrap()
        )
    );

    // Right callId, a context the blob does not have: refused too.
    let (_ep2, conn2) = r.raw().await;
    let mut wrong_context = join_of(&blob);
    wrong_context.audio_source_contexts[0] = Uuid::new_v4();
    let (_send2, reply) = raw_join(&conn2, &wrong_context).await;
    let ControlMessage::Reject(rej) = reply else {
        panic!("expected a reject, got {reply:?}")
    };
    assert_eq!(rej.code, RejectCode::InvalidJoin);
    assert!(
        rej.message
            .contains("audioSourceContexts[0]: the join says"),
        "{}",
        rej.message
    );

    // The join the blob describes is admitted: the refusals held nothing.
    let (_ep3, conn3) = r.raw().await;
    let (_send3, reply) = raw_join(&conn3, &join_of(&blob)).await;
    assert!(
        matches!(reply, ControlMessage::Accept(_)),
        "expected an accept, got {reply:?}"
    );
    let s = r.stats_when(|s| s.accepted == 1 && s.rejected == 2).await;
    assert_eq!((s.accepted, s.rejected), (1, 2), "{s:?}");
}

/// A join body as a newer peer writes it: `codecs` as given (names this version may
/// not know), the rest from the blob.
fn join_frame(blob: &MediaSessionConfig, codecs: &[&str]) -> Vec<u8> {
    let (source, render) = blob.join_contexts();
    let body = serde_json::json!({
        "type": "join",
        "version": 1,
        "mpMediaSessionId": blob.session_id(),
        "callId": blob.call_id().unwrap(),
        "audioSourceContexts": source,
        "audioRenderContexts": render,
        "codecs": codecs,
    })
    .to_string();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body.as_bytes());
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_offering_an_unknown_codec_first_settles_on_a_common_one() {
    let blob = MediaSessionConfig::builder(MpUri::quic("127.0.0.1", 4433).unwrap(), Uuid::new_v4())
        .try_build()
        .unwrap();
    let only_unknown =
        MediaSessionConfig::builder(MpUri::quic("127.0.0.1", 4433).unwrap(), Uuid::new_v4())
            .try_build()
            .unwrap();
    let registry = Arc::new(KnownSessions::new());
    registry.expect_blob(&blob);
    registry.expect_blob(&only_unknown);
    let r = Reactor::start_with(settings(), registry, 1, Vec::new());

    // A codec this version does not know, offered first: passed over, the call
    // settles on the common one.
    let (_ep, conn) = r.raw().await;
    let frame = join_frame(&blob, &["opus48k", "pcm16k"]);
    let (_send, reply) = raw_join_frame(&conn, &frame).await;
    let ControlMessage::Accept(accept) = reply else {
        panic!("expected an accept, got {reply:?}")
    };
    assert_eq!(accept.codec, transport::wire::Codec::Pcm16k);

    // Nothing known at all: refused as NoCommonCodec, naming the offer, escaped.
    let (_ep2, conn2) = r.raw().await;
    let frame = join_frame(&only_unknown, &["opus48k", "g722\u{1b}[2J"]);
    let (_send2, reply) = raw_join_frame(&conn2, &frame).await;
    let ControlMessage::Reject(rej) = reply else {
        panic!("expected a reject, got {reply:?}")
    };
    assert_eq!(rej.code, RejectCode::NoCommonCodec);
    assert!(
        rej.message
            .contains(r#"2 unknown ["opus48k", "g722\u001b[2J"]"#),
        "{}",
        rej.message
    );
}
