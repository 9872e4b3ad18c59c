//! The media port compares a join with the blob of the session it claims.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use harness::peer::join_for;
use harness::{Peer, PeerError};
use platform::Codec;
use transport::ConnectError;
use transport::wire::RejectCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_with_another_call_id_or_contexts_than_the_blob_are_refused() {
    let platform = start();
    let (blob, _socket) = platform
        .create_media_configuration(uuid::Uuid::new_v4())
        .unwrap();
    let cfg = peer_config(&platform, Codec::Pcm16k, 1.0, 1.0);
    let refused = |err: PeerError| match err {
        PeerError::Connect(ConnectError::Rejected(r)) => r,
        other => panic!("expected a reject, got {other}"),
    };
    // The session's id with a random callId (what a guessing peer sends).
    let mut wrong_call = join_for(&blob, vec![Codec::Pcm16k]);
    wrong_call.call_id = uuid::Uuid::new_v4();
    let r = refused(
        Peer::connect_join(platform.local_addr(), wrong_call.clone(), cfg.clone())
            .await
            .unwrap_err(),
    );
    assert_eq!(r.code, RejectCode::InvalidJoin, "{r}");
    assert!(
        r.message.contains(&format!(
            "callId: the join says {}, the session was created for {}",
            wrong_call.call_id,
            blob.call_id().unwrap()
        )),
        "{r}"
    );
    // The right callId with random contexts.
    let mut wrong_contexts = join_for(&blob, vec![Codec::Pcm16k]);
    wrong_contexts.audio_render_contexts = vec![uuid::Uuid::new_v4()];
    let r = refused(
        Peer::connect_join(platform.local_addr(), wrong_contexts, cfg.clone())
            .await
            .unwrap_err(),
    );
    assert_eq!(r.code, RejectCode::InvalidJoin, "{r}");
    assert!(r.message.contains("audioRenderContexts[0]"), "{r}");
    // The refusals left the session waiting: the blob's own join is admitted.
    let peer = Peer::connect(&blob, cfg).await.unwrap();
    peer.leave().await;
    assert_eq!(platform.server_stats().rejected, 2);
}
