//! The server's own checks of a join and the streams its accept assigns.

use crate::settings::TransportSettings;
use crate::wire::{
    Join, MAX_UNMIXED, PROTOCOL_VERSION, Reject, RejectCode, StreamAssignment, StreamDirection,
};

/// The server's own checks of a join before the application sees it: protocol
/// version, the blob's context rules ([`media_blob::check_audio_contexts`]: 1 to
/// [`media_blob::MAX_AUDIO_CONTEXTS`] distinct contexts, the same rules `inspect`,
/// `request` and the blob builders apply), at most `max_contexts` contexts when the
/// settings lower that cap, at least one codec offered (known or not: a join offering
/// only codecs this version does not know is refused later as
/// [`RejectCode::NoCommonCodec`], naming them).
pub fn check_join(join: &Join, settings: &TransportSettings) -> Result<(), Reject> {
    if join.version != PROTOCOL_VERSION {
        let msg = format!(
            "protocol version {} not supported (server speaks {PROTOCOL_VERSION})",
            join.version
        );
        return Err(Reject::new(RejectCode::UnsupportedVersion, msg));
    }
    media_blob::check_audio_contexts(&join.audio_source_contexts, &join.audio_render_contexts)
        .map_err(|e| Reject::new(RejectCode::InvalidJoin, e.to_string()))?;
    if join.context_count() > settings.max_contexts {
        let msg = format!(
            "a join needs 1 to {} contexts on this server, got {}",
            settings.max_contexts,
            join.context_count()
        );
        return Err(Reject::new(RejectCode::InvalidJoin, msg));
    }
    if join.codecs.is_empty() && join.unknown_codecs.is_empty() {
        return Err(Reject::new(RejectCode::InvalidJoin, "no codecs offered"));
    }
    if join.unmixed > MAX_UNMIXED {
        let msg = format!(
            "unmixed: a peer sends at most {MAX_UNMIXED} unmixed streams, the join offers {}",
            join.unmixed
        );
        return Err(Reject::new(RejectCode::InvalidJoin, msg));
    }
    Ok(())
}

/// Stream ids: audio source contexts get 1, 2, ... in join order, render contexts
/// continue the numbering.
pub fn assign_streams(join: &Join) -> Vec<StreamAssignment> {
    let sources = join
        .audio_source_contexts
        .iter()
        .map(|c| (c, StreamDirection::Source));
    let renders = join
        .audio_render_contexts
        .iter()
        .map(|c| (c, StreamDirection::Render));
    sources
        .chain(renders)
        .zip(1u32..)
        .map(|((context, direction), stream_id)| StreamAssignment {
            context: *context,
            stream_id,
            direction,
        })
        .collect()
}

/// The first stream of `direction` an accept assigns.
pub(crate) fn first_stream(
    streams: &[StreamAssignment],
    direction: StreamDirection,
) -> Option<u32> {
    streams
        .iter()
        .find(|s| s.direction == direction)
        .map(|s| s.stream_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn join(sources: usize, renders: usize) -> Join {
        Join::new(
            Uuid::new_v4(),
            Uuid::new_v4(),
            (0..sources).map(|_| Uuid::new_v4()).collect(),
            (0..renders).map(|_| Uuid::new_v4()).collect(),
        )
    }

    #[test]
    fn joins_are_checked_and_streams_numbered() {
        let s = TransportSettings::default();
        let j = join(1, 2);
        assert!(check_join(&j, &s).is_ok());
        let streams = assign_streams(&j);
        assert_eq!(
            streams.iter().map(|a| a.stream_id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(first_stream(&streams, StreamDirection::Render), Some(2));
        let codes = |j: &Join| check_join(j, &s).map_err(|r| r.code);
        assert_eq!(codes(&join(0, 0)), Err(RejectCode::InvalidJoin));
        assert_eq!(codes(&join(9, 8)), Err(RejectCode::InvalidJoin));
        let mut twice = join(1, 1);
        twice.audio_render_contexts[0] = twice.audio_source_contexts[0];
        assert_eq!(codes(&twice), Err(RejectCode::InvalidJoin));
        // The reasons are the blob's own: the same words `inspect` prints.
        let reason = check_join(&twice, &s).expect_err("twice").message;
        assert!(
            reason.starts_with("audioRenderContexts[0]: GUID "),
            "{reason}"
        );
        assert!(
            check_join(&join(0, 0), &s)
                .expect_err("none")
                .message
                .ends_with("needs 1 to 16 audio contexts in all, got 0")
        );
        // A server may lower the cap below the blob's.
        let low = TransportSettings {
            max_contexts: 2,
            ..TransportSettings::default()
        };
        assert!(check_join(&join(1, 1), &low).is_ok());
        assert_eq!(
            check_join(&join(2, 1), &low).map_err(|r| r.code),
            Err(RejectCode::InvalidJoin)
        );
        let mut v2 = join(1, 1);
        v2.version = 2;
        assert_eq!(codes(&v2), Err(RejectCode::UnsupportedVersion));
        let mut none = join(1, 1);
        none.codecs.clear();
        assert_eq!(codes(&none), Err(RejectCode::InvalidJoin));
        let mut four = join(1, 1);
        four.unmixed = 4;
        assert!(check_join(&four, &s).is_ok());
        four.unmixed = 5;
        let reason = check_join(&four, &s).expect_err("five").message;
        assert!(reason.starts_with("unmixed: "), "{reason}");
    }
}
