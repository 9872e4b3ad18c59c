//! [`RosterSnapshot`]: an immutable copy of a call's participants, indexed by media
//! source id, and the [`Speaker`]s a media engine's speaker ids stand for.
//!
//! The [`CallStateMachine`](crate::CallStateMachine) keeps the roster from the
//! `participants` notifications; [`CallStateMachine::roster_snapshot`] copies it into a
//! snapshot that can be shared (behind an `Arc`) with the media side of the call, which
//! reads it 50 times a second: a lookup by MSI is a hash-map probe, no lock.
//!
//! ```
//! use signaling::state::CallStateMachine;
//! use signaling::CommsNotifications;
//!
//! let roster = r##"{"value":[{"changeType":"updated",
//!     "resourceUrl":"/communications/calls/c1/participants",
//!     "resourceData":[{"@odata.type":"#microsoft.graph.participant","id":"p1",
//!         "info":{"identity":{"user":{"id":"u1","displayName":"John"}}},
//!         "mediaStreams":[{"mediaType":"audio","sourceId":"1","direction":"sendReceive"}],
//!         "isMuted":false,"isInLobby":false}]}]}"##;
//! let mut call = CallStateMachine::new("c1");
//! for n in &CommsNotifications::from_json(roster).expect("valid JSON").value {
//!     call.handle_notification(n);
//! }
//! let snapshot = call.roster_snapshot();
//! assert_eq!(snapshot.by_msi(1).map(|p| p.label()), Some("John".to_owned()));
//! let speakers: Vec<_> = snapshot.speakers(&[1, 7]).collect();
//! assert_eq!(speakers[0].participant_id(), Some("p1"));
//! assert_eq!(speakers[1].participant, None); // 7 is nobody the roster knows
//! ```

use std::collections::HashMap;

use crate::state::{CallStateMachine, RosterEntry};

/// A call's participants at one moment (see the [module documentation](self)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RosterSnapshot {
    /// Grows by one with every change the call's roster went through (0: never had
    /// one), so a reader can tell two snapshots apart cheaply.
    pub version: u64,
    /// The bot's own participant id, once known.
    pub my_participant_id: Option<String>,
    /// The participants, in order of arrival (the bot included, when the service lists it).
    pub participants: Vec<RosterEntry>,
    /// MSI (audio stream `sourceId`) -> index in `participants`.
    by_msi: HashMap<u32, usize>,
}

impl RosterSnapshot {
    /// A snapshot of `participants` (their audio MSIs indexed; an MSI two participants
    /// claim maps to the first).
    pub fn new(
        version: u64,
        my_participant_id: Option<String>,
        participants: Vec<RosterEntry>,
    ) -> Self {
        let mut by_msi = HashMap::new();
        for (i, p) in participants.iter().enumerate() {
            for msi in p.audio_msis() {
                by_msi.entry(msi).or_insert(i);
            }
        }
        RosterSnapshot {
            version,
            my_participant_id,
            participants,
            by_msi,
        }
    }

    /// The participant whose audio stream has media source id `msi`.
    pub fn by_msi(&self, msi: u32) -> Option<&RosterEntry> {
        self.by_msi.get(&msi).map(|&i| &self.participants[i])
    }

    /// A participant by id.
    pub fn participant(&self, id: &str) -> Option<&RosterEntry> {
        self.participants.iter().find(|p| p.id == id)
    }

    /// The participants besides the bot.
    pub fn others(&self) -> impl Iterator<Item = &RosterEntry> {
        self.participants
            .iter()
            .filter(|p| Some(p.id.as_str()) != self.my_participant_id.as_deref())
    }

    /// The speakers `msis` (a frame's active speakers, loudest first) stand for, in
    /// the same order; an MSI the roster does not know has no participant.
    pub fn speakers<'a>(&'a self, msis: &'a [u32]) -> impl Iterator<Item = Speaker> + 'a {
        msis.iter().map(|&msi| self.speaker(msi))
    }

    /// The speaker media source id `msi` stands for.
    pub fn speaker(&self, msi: u32) -> Speaker {
        Speaker {
            msi,
            participant: self.by_msi(msi).cloned(),
        }
    }
}

/// A speaker: the media source id the media engine reports, and the participant
/// whose audio stream carries it (when the roster knows one).
#[derive(Debug, Clone, PartialEq)]
pub struct Speaker {
    /// The media source id (MSI).
    pub msi: u32,
    /// The participant, as the roster knew it when the speaker was mapped.
    pub participant: Option<RosterEntry>,
}

impl Speaker {
    /// The participant's id, when known.
    pub fn participant_id(&self) -> Option<&str> {
        self.participant.as_ref().map(|p| p.id.as_str())
    }

    /// The participant's display name (or id), else `msi <n>`.
    pub fn label(&self) -> String {
        match &self.participant {
            Some(p) => p.label(),
            None => format!("msi {}", self.msi),
        }
    }
}

impl CallStateMachine {
    /// A copy of the roster as it is now, indexed by MSI (see [`RosterSnapshot`]).
    pub fn roster_snapshot(&self) -> RosterSnapshot {
        RosterSnapshot::new(
            self.roster_version(),
            self.my_participant_id().map(str::to_owned),
            self.participants().to_vec(),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::CommsNotifications;
    use crate::state::{CallEvent, CallStateMachine};

    fn apply(call: &mut CallStateMachine, body: &str) -> Vec<CallEvent> {
        for n in &CommsNotifications::from_json(body)
            .expect("valid JSON")
            .value
        {
            call.handle_notification(n);
        }
        std::iter::from_fn(|| call.poll_event()).collect()
    }

    #[test]
    fn versions_follow_roster_changes_and_msis_map_to_the_first_owner() {
        let mut call = CallStateMachine::new("c1");
        assert_eq!(call.roster_snapshot().version, 0);
        let roster = r##"{"value":[{"changeType":"updated",
            "resourceUrl":"/communications/calls/c1/participants",
            "resourceData":[
              {"@odata.type":"#microsoft.graph.participant","id":"a",
               "mediaStreams":[{"mediaType":"audio","sourceId":"5"}]},
              {"@odata.type":"#microsoft.graph.participant","id":"b",
               "mediaStreams":[{"mediaType":"video","sourceId":"6"},
                               {"mediaType":"audio","sourceId":"5"}]}]}]}"##;
        apply(&mut call, roster);
        let snap = call.roster_snapshot();
        assert_eq!(snap.version, 2);
        assert_eq!(snap.by_msi(5).map(|p| p.id.as_str()), Some("a"));
        assert!(snap.by_msi(6).is_none(), "video streams are not speakers");
        // The same roster again changes nothing.
        apply(&mut call, roster);
        assert_eq!(call.roster_version(), 2);
        let gone = roster.replace("\"updated\"", "\"deleted\"");
        apply(&mut call, &gone);
        let snap = call.roster_snapshot();
        assert_eq!(snap.version, 4);
        assert_eq!(snap.speaker(5).participant, None);
        assert_eq!(snap.speaker(5).label(), "msi 5");
    }

    #[test]
    fn tones_are_reported_once_per_sequence_id() {
        let mut call = CallStateMachine::new("c1");
        let tone = |seq: u32, tone: &str| {
            format!(
                r##"{{"value":[{{"changeType":"updated","resourceUrl":"/communications/calls/c1",
                "resourceData":{{"@odata.type":"#microsoft.graph.call",
                "toneInfo":{{"sequenceId":{seq},"tone":"{tone}"}}}}}}]}}"##
            )
        };
        let mut got = apply(&mut call, &tone(1, "tone1"));
        got.extend(apply(&mut call, &tone(1, "tone1")));
        got.extend(apply(&mut call, &tone(2, "pound")));
        assert_eq!(
            got,
            [
                CallEvent::ToneReceived {
                    tone: "tone1".into(),
                    sequence_id: Some(1)
                },
                CallEvent::ToneReceived {
                    tone: "pound".into(),
                    sequence_id: Some(2)
                },
            ]
        );
        let bad = r##"{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/c1",
            "resourceData":{"@odata.type":"#microsoft.graph.call","toneInfo":{"sequenceId":3}}}]}"##;
        assert!(matches!(
            apply(&mut call, bad).as_slice(),
            [CallEvent::Ignored { .. }]
        ));
    }
}
