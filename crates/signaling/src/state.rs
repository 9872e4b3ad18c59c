//! The call state machine: sans-IO, no clock, no tokio.
//!
//! A [`CallStateMachine`] follows one Graph call from the notifications the service posts
//! to the bot's callback (and from call resources the bot reads, e.g. the `201 Created`
//! body). Inputs are [`CallStateMachine::handle_notification`] and
//! [`CallStateMachine::handle_call_update`]; outputs are [`CallEvent`]s drained with
//! [`CallStateMachine::poll_event`]. After any input, drain the events before the next.
//!
//! ## Call states
//!
//! All ten Graph call states are known ([`CallState`]). The service may deliver
//! `establishing` and `established` out of order, so a state change is applied only if
//! it does not move the call backwards, by phase:
//!
//! | Phase | States |
//! |---|---|
//! | 0 offered | `incoming` |
//! | 1 setting up | `establishing` |
//! | 2 alerting | `ringing` |
//! | 3 connected | `established`, `hold`, `transferring`, `transferAccepted`, `redirecting` |
//! | 4 ending | `terminating` |
//! | 5 ended | `terminated` (final: nothing moves the call after it) |
//!
//! A state of a lower phase than the highest one reached (a late `establishing` after
//! `established`) is ignored and reported as [`CallEvent::Ignored`]; within phase 3 the
//! call moves freely (`established` ⇄ `hold`, ...). A state the crate does not know
//! (`CallState::Other`) is applied without changing the phase. A `deleted` change of the
//! call resource ends the call like `terminated`.
//!
//! ## Roster and content sharing
//!
//! `.../participants` notifications keep the roster: `created` and `updated` insert or
//! update each participant (properties a partial update leaves out keep their value),
//! `deleted` removes it. Each participant's media streams carry the media source id
//! (MSI, `sourceId`, a decimal string) parsed to the `u32` speaker id the media engine
//! reports ([`CallStateMachine::participant_by_source_id`]).
//! `.../contentsharingsessions` notifications keep the content-sharing sessions.
//!
//! ## Example
//!
//! ```
//! use signaling::state::{CallEvent, CallStateMachine};
//! use signaling::{CallState, CommsNotifications};
//!
//! let established = r##"{"value":[{"changeType":"updated",
//!     "resourceUrl":"/communications/calls/c1",
//!     "resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"}}]}"##;
//! let late_establishing = established.replace("\"established\"", "\"establishing\"");
//!
//! let mut call = CallStateMachine::new("c1");
//! for body in [established, late_establishing.as_str()] {
//!     let body = CommsNotifications::from_json(body).expect("valid JSON");
//!     for n in &body.value {
//!         call.handle_notification(n);
//!     }
//! }
//! assert_eq!(call.state(), Some(&CallState::Established));
//! let events: Vec<CallEvent> = std::iter::from_fn(|| call.poll_event()).collect();
//! assert!(matches!(events[0], CallEvent::StateChanged { from: None, to: CallState::Established }));
//! assert_eq!(events[1], CallEvent::Established);
//! assert!(matches!(events[2], CallEvent::Ignored { .. })); // the late `establishing`
//! ```

use std::collections::VecDeque;

use serde_json::Value;

use crate::field::Field;

use crate::model::{
    Call, CallState, ChangeType, CommsNotification, ContentSharingSession, MediaDirection,
    MediaStream, Modality, Participant, ParticipantInfo, ResourceItem, ResultInfo,
};

/// Longest [`CallEvent::Ignored`] reason, in characters (reasons quote notification values).
const MAX_REASON_CHARS: usize = 240;

/// What a notification or call update changed, for the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallEvent {
    /// The call state changed (`from` is `None` for the first state learned).
    StateChanged {
        /// The previous state, if one was known.
        from: Option<CallState>,
        /// The new state.
        to: CallState,
    },
    /// The call reached `established` for the first time: media may start.
    Established,
    /// The call ended (`terminated`, or the call resource was deleted). Emitted once.
    Terminated {
        /// The service's `resultInfo`, if it sent one (`code` may be a number or a string).
        result: Option<ResultInfo>,
    },
    /// A participant appeared in the roster.
    ParticipantJoined(RosterEntry),
    /// A participant's properties changed (the new snapshot).
    ParticipantUpdated(RosterEntry),
    /// A participant left the roster (the last snapshot).
    ParticipantLeft(RosterEntry),
    /// A known participant entered or left the lobby.
    LobbyChanged {
        /// Participant id.
        participant_id: String,
        /// Now waiting in the lobby.
        in_lobby: bool,
    },
    /// A known participant was muted or unmuted.
    MutedChanged {
        /// Participant id.
        participant_id: String,
        /// Now muted.
        muted: bool,
    },
    /// A known participant's media streams changed (so did its speaker ids).
    MediaStreamsChanged {
        /// Participant id.
        participant_id: String,
        /// The new streams.
        streams: Vec<StreamInfo>,
    },
    /// A content-sharing session started.
    ContentSharingStarted {
        /// Session id.
        session_id: String,
    },
    /// A content-sharing session changed.
    ContentSharingUpdated {
        /// Session id.
        session_id: String,
    },
    /// A content-sharing session ended.
    ContentSharingEnded {
        /// Session id.
        session_id: String,
    },
    /// A DTMF tone the service reported (`toneInfo` of the call, after
    /// `subscribeToTone`). Each `sequenceId` is reported once.
    ToneReceived {
        /// The tone as Graph names it (`tone0`-`tone9`, `star`, `pound`, `a`-`d`, `flash`).
        tone: String,
        /// `toneInfo.sequenceId`, if sent.
        sequence_id: Option<i64>,
    },
    /// An input the machine did not apply; for logs (a stale state, another call's
    /// notification, an item without id, an unknown resource type ...).
    Ignored {
        /// What was ignored and why.
        reason: String,
    },
}

/// One media stream of a participant, with its media source id parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// `audio`, `video`, `videoBasedScreenSharing`, `data` (unknown when absent).
    pub media_type: Modality,
    /// `sourceId` as sent.
    pub source_id: Option<String>,
    /// `sourceId` as the media engine's speaker id (MSI); `None` when absent or not a
    /// decimal `u32`.
    pub msi: Option<u32>,
    /// Direction, if sent.
    pub direction: Option<MediaDirection>,
    /// Muted by the server.
    pub server_muted: bool,
}

impl StreamInfo {
    fn from_model(s: &MediaStream) -> Self {
        let source_id = s.source_id.value().cloned();
        StreamInfo {
            media_type: s.media_type.value().cloned().unwrap_or(Modality::Unknown),
            msi: source_id.as_deref().and_then(parse_msi),
            source_id,
            direction: s.direction.value().cloned(),
            server_muted: s.server_muted.value().copied().unwrap_or(false),
        }
    }
}

/// Parse a `sourceId` (a decimal string; JSON numbers as text are accepted) as a `u32`
/// media source id.
pub fn parse_msi(source_id: &str) -> Option<u32> {
    source_id.trim().parse::<u32>().ok()
}

/// A participant as the roster knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterEntry {
    /// Participant id.
    pub id: String,
    /// Who the participant is, as last sent.
    pub info: Option<Box<ParticipantInfo>>,
    /// Muted.
    pub is_muted: bool,
    /// Waiting in the lobby.
    pub is_in_lobby: bool,
    /// Media streams.
    pub streams: Vec<StreamInfo>,
}

impl RosterEntry {
    fn new(id: String) -> Self {
        RosterEntry {
            id,
            info: None,
            is_muted: false,
            is_in_lobby: false,
            streams: Vec::new(),
        }
    }

    /// The display name (else the id) of the participant's primary identity, or the
    /// participant id.
    pub fn label(&self) -> String {
        self.info
            .as_ref()
            .and_then(|i| i.identity.value())
            .and_then(|s| s.primary())
            .map(|(_, identity)| identity.label().to_owned())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| self.id.clone())
    }

    /// Speaker ids (MSIs) of the participant's audio streams.
    pub fn audio_msis(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams
            .iter()
            .filter(|s| s.media_type == Modality::Audio)
            .filter_map(|s| s.msi)
    }

    /// Apply a participant resource; properties it leaves out keep their value.
    fn merge(&mut self, p: &Participant) {
        if let Some(info) = p.info.value() {
            self.info = Some(Box::new(info.clone()));
        }
        if let Some(m) = p.is_muted.value() {
            self.is_muted = *m;
        }
        if let Some(l) = p.is_in_lobby.value() {
            self.is_in_lobby = *l;
        }
        match &p.media_streams {
            Field::Value(streams) => {
                self.streams = streams.iter().map(StreamInfo::from_model).collect();
            }
            Field::Null => self.streams.clear(),
            Field::Absent => {}
        }
    }
}

/// The phase of a state: a call never moves to a lower phase than the highest reached.
fn phase(state: &CallState) -> Option<u8> {
    Some(match state {
        CallState::Incoming => 0,
        CallState::Establishing => 1,
        CallState::Ringing => 2,
        CallState::Established
        | CallState::Hold
        | CallState::Transferring
        | CallState::TransferAccepted
        | CallState::Redirecting => 3,
        CallState::Terminating => 4,
        CallState::Terminated => 5,
        CallState::Other(_) => return None,
    })
}

/// Which resource of the call a notification is about, from its `resourceUrl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Call,
    Participants,
    ContentSharing,
    Unknown,
}

fn resource_of(url: &str) -> Resource {
    let Some((_, rest)) = url.split_once("/calls/") else {
        return Resource::Unknown;
    };
    let rest = rest.split('?').next().unwrap_or("");
    let mut segments = rest.split('/').filter(|s| !s.is_empty());
    let _id = segments.next();
    match segments.next() {
        None => Resource::Call,
        Some(s) if s.eq_ignore_ascii_case("participants") => Resource::Participants,
        Some(s) if s.eq_ignore_ascii_case("contentsharingsessions") => Resource::ContentSharing,
        Some(_) => Resource::Unknown,
    }
}

/// The state of one Graph call: its call state, roster and content-sharing sessions.
/// See the [module documentation](self) for the rules.
#[derive(Debug, Clone)]
pub struct CallStateMachine {
    call_id: String,
    state: Option<CallState>,
    /// Highest phase reached (see [`phase`]).
    high_water: Option<u8>,
    established_seen: bool,
    terminated: bool,
    result: Option<ResultInfo>,
    my_participant_id: Option<String>,
    participants: Vec<RosterEntry>,
    /// Grows with every roster change (see [`CallStateMachine::roster_version`]).
    roster_version: u64,
    /// The last `toneInfo.sequenceId` reported.
    last_tone: Option<i64>,
    sessions: Vec<ContentSharingSession>,
    events: VecDeque<CallEvent>,
}

impl CallStateMachine {
    /// A machine for the call `call_id`, state not yet known.
    pub fn new(call_id: impl Into<String>) -> Self {
        CallStateMachine {
            call_id: call_id.into(),
            state: None,
            high_water: None,
            established_seen: false,
            terminated: false,
            result: None,
            my_participant_id: None,
            participants: Vec::new(),
            roster_version: 0,
            last_tone: None,
            sessions: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// The call id.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The current state, once one is known.
    pub fn state(&self) -> Option<&CallState> {
        self.state.as_ref()
    }

    /// True once the call has ended (final).
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// True once the call has been `established` (even if it has ended since).
    pub fn was_established(&self) -> bool {
        self.established_seen
    }

    /// The last `resultInfo` the service sent for the call.
    pub fn result_info(&self) -> Option<&ResultInfo> {
        self.result.as_ref()
    }

    /// The bot's own participant id, once a call resource carried it.
    pub fn my_participant_id(&self) -> Option<&str> {
        self.my_participant_id.as_deref()
    }

    /// The roster, in order of arrival.
    pub fn participants(&self) -> &[RosterEntry] {
        &self.participants
    }

    /// Grows by one with every change of the roster (a participant joined, changed or
    /// left); 0 until the first. A cheap way to see whether the roster moved.
    pub fn roster_version(&self) -> u64 {
        self.roster_version
    }

    /// A participant by id.
    pub fn participant(&self, id: &str) -> Option<&RosterEntry> {
        self.participants.iter().find(|p| p.id == id)
    }

    /// The participant whose stream has this media source id (speaker id).
    pub fn participant_by_source_id(&self, msi: u32) -> Option<&RosterEntry> {
        self.participants
            .iter()
            .find(|p| p.streams.iter().any(|s| s.msi == Some(msi)))
    }

    /// The active content-sharing sessions, in order of arrival.
    pub fn content_sharing_sessions(&self) -> &[ContentSharingSession] {
        &self.sessions
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// Reports an ignored input. Reasons quote notification values (URLs, ids,
    /// serde errors), so they are bounded and escaped here, in one place.
    fn ignore(&mut self, reason: String) {
        let reason = media_blob::bounded(&reason, MAX_REASON_CHARS);
        self.events.push_back(CallEvent::Ignored { reason });
    }

    /// Apply one `commsNotification`. A notification for another call, or after the
    /// call has ended, is ignored (reported as [`CallEvent::Ignored`]).
    pub fn handle_notification(&mut self, n: &CommsNotification) {
        match n.call_id() {
            Some(id) if id.eq_ignore_ascii_case(&self.call_id) => {}
            other => {
                let reason = format!(
                    "notification for call {} given to the machine of call {}",
                    other.map_or_else(|| "(none)".to_owned(), media_blob::excerpt),
                    self.call_id
                );
                return self.ignore(reason);
            }
        }
        let url = n.resource_url.value().map(String::as_str).unwrap_or("");
        let resource = resource_of(url);
        let change = n.change_type.value().cloned();
        if self.terminated {
            return self.ignore(format!(
                "{} notification for {url} after the call ended",
                change
                    .as_ref()
                    .map(ChangeType::as_str)
                    .unwrap_or("(no changeType)")
            ));
        }
        for item in n.items() {
            match (item, resource) {
                (ResourceItem::Call(call), _) => self.apply_call(call, change.as_ref()),
                (ResourceItem::Participant(p), _) => self.apply_participant(p, change.as_ref()),
                (ResourceItem::ContentSharingSession(s), _) => {
                    self.apply_session(s, change.as_ref())
                }
                // No (or an unknown) `@odata.type`: read it as the resource its URL names.
                (ResourceItem::Other(v), r) if typeless(v) && r != Resource::Unknown => {
                    self.apply_untyped(v, r, change.as_ref(), url)
                }
                (other, _) => {
                    let reason = format!(
                        "resource of type `{}` at {url} is not handled",
                        other.type_name()
                    );
                    self.ignore(reason)
                }
            }
        }
    }

    fn apply_untyped(&mut self, v: &Value, r: Resource, change: Option<&ChangeType>, url: &str) {
        let parsed = match r {
            Resource::Call => {
                serde_json::from_value::<Call>(v.clone()).map(|c| self.apply_call(&c, change))
            }
            Resource::Participants => serde_json::from_value::<Participant>(v.clone())
                .map(|p| self.apply_participant(&p, change)),
            Resource::ContentSharing => serde_json::from_value::<ContentSharingSession>(v.clone())
                .map(|s| self.apply_session(&s, change)),
            Resource::Unknown => return,
        };
        if let Err(e) = parsed {
            self.ignore(format!("resource without @odata.type at {url}: {e}"));
        }
    }

    /// Apply a call resource (a notification's call, a `GET` or `201 Created` body).
    pub fn handle_call_update(&mut self, call: &Call) {
        if self.terminated {
            if let Some(s) = call.state.value() {
                self.ignore(format!("state {s} after the call ended"));
            }
            return;
        }
        self.apply_call(call, None);
    }

    fn apply_call(&mut self, call: &Call, change: Option<&ChangeType>) {
        if let Some(id) = call.my_participant_id.value() {
            self.my_participant_id = Some(id.clone());
        }
        if let Some(result) = call.result_info.value() {
            self.result = Some(result.clone());
        }
        if let Some(info) = call.tone_info.value() {
            self.apply_tone(info);
        }
        // A deleted call resource has ended, whatever state it last carried.
        let state = if change == Some(&ChangeType::Deleted) {
            CallState::Terminated
        } else {
            match call.state.value() {
                Some(s) => s.clone(),
                None => return,
            }
        };
        self.transition(state);
    }

    fn apply_tone(&mut self, info: &Value) {
        let Some(tone) = info.get("tone").and_then(Value::as_str) else {
            return self.ignore("toneInfo without a tone".into());
        };
        let sequence_id = info.get("sequenceId").and_then(Value::as_i64);
        if sequence_id.is_some() && sequence_id == self.last_tone {
            return;
        }
        self.last_tone = sequence_id;
        self.events.push_back(CallEvent::ToneReceived {
            tone: media_blob::bounded(tone, 40),
            sequence_id,
        });
    }

    fn transition(&mut self, to: CallState) {
        if self.terminated {
            return self.ignore(format!("state {to} after the call ended"));
        }
        if self.state.as_ref() == Some(&to) {
            return;
        }
        let new_phase = phase(&to);
        if let (Some(new), Some(high)) = (new_phase, self.high_water)
            && new < high
        {
            let from = self.state.as_ref().map(CallState::as_str).unwrap_or("?");
            return self.ignore(format!(
                "late state {to} while the call is {from}: a call never moves backwards"
            ));
        }
        if let Some(p) = new_phase {
            self.high_water = Some(self.high_water.map_or(p, |h| h.max(p)));
        }
        let from = self.state.replace(to.clone());
        self.events.push_back(CallEvent::StateChanged {
            from,
            to: to.clone(),
        });
        match to {
            CallState::Established if !self.established_seen => {
                self.established_seen = true;
                self.events.push_back(CallEvent::Established);
            }
            CallState::Terminated => {
                self.terminated = true;
                self.events.push_back(CallEvent::Terminated {
                    result: self.result.clone(),
                });
            }
            _ => {}
        }
    }

    fn apply_participant(&mut self, p: &Participant, change: Option<&ChangeType>) {
        let Some(id) = p.id.value().filter(|id| !id.is_empty()).cloned() else {
            return self.ignore("participant without id".into());
        };
        let index = self.participants.iter().position(|e| e.id == id);
        match (change, index) {
            (Some(ChangeType::Deleted), Some(i)) => {
                let entry = self.participants.remove(i);
                self.roster_version += 1;
                self.events.push_back(CallEvent::ParticipantLeft(entry));
            }
            (Some(ChangeType::Deleted), None) => {
                self.ignore(format!("deleted participant {id} was not in the roster"))
            }
            (_, None) => {
                let mut entry = RosterEntry::new(id);
                entry.merge(p);
                self.participants.push(entry.clone());
                self.roster_version += 1;
                self.events.push_back(CallEvent::ParticipantJoined(entry));
            }
            (_, Some(i)) => {
                let before = self.participants[i].clone();
                let entry = &mut self.participants[i];
                entry.merge(p);
                if *entry == before {
                    return;
                }
                let after = entry.clone();
                self.roster_version += 1;
                self.events
                    .push_back(CallEvent::ParticipantUpdated(after.clone()));
                if after.is_in_lobby != before.is_in_lobby {
                    self.events.push_back(CallEvent::LobbyChanged {
                        participant_id: after.id.clone(),
                        in_lobby: after.is_in_lobby,
                    });
                }
                if after.is_muted != before.is_muted {
                    self.events.push_back(CallEvent::MutedChanged {
                        participant_id: after.id.clone(),
                        muted: after.is_muted,
                    });
                }
                if after.streams != before.streams {
                    self.events.push_back(CallEvent::MediaStreamsChanged {
                        participant_id: after.id,
                        streams: after.streams,
                    });
                }
            }
        }
    }

    fn apply_session(&mut self, s: &ContentSharingSession, change: Option<&ChangeType>) {
        let Some(id) = s.id.value().filter(|id| !id.is_empty()).cloned() else {
            return self.ignore("content-sharing session without id".into());
        };
        let index = self.sessions.iter().position(|e| e.id.value() == Some(&id));
        match (change, index) {
            (Some(ChangeType::Deleted), Some(i)) => {
                self.sessions.remove(i);
                self.events
                    .push_back(CallEvent::ContentSharingEnded { session_id: id });
            }
            (Some(ChangeType::Deleted), None) => {
                self.ignore(format!("ended content-sharing session {id} was not known"))
            }
            (_, None) => {
                self.sessions.push(s.clone());
                self.events
                    .push_back(CallEvent::ContentSharingStarted { session_id: id });
            }
            (_, Some(i)) => {
                self.sessions[i] = s.clone();
                self.events
                    .push_back(CallEvent::ContentSharingUpdated { session_id: id });
            }
        }
    }
}

/// True when a raw resource has no `@odata.type` at all.
fn typeless(v: &Value) -> bool {
    v.is_object() && v.get("@odata.type").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_reasons_are_bounded_and_escaped() {
        let url = format!(
            "/communications/calls/other\\u001b[2J\\r{}",
            "u".repeat(1 << 20)
        );
        let body = format!(
            r#"{{"value":[{{"changeType":"updated","resourceUrl":"{url}",
            "resourceData":{{"@odata.type":"{url}","state":"established"}}}}]}}"#
        );
        let body = crate::CommsNotifications::from_json(&body).expect("valid JSON");
        let mut call = CallStateMachine::new("c1");
        call.handle_notification(&body.value[0]);
        let Some(CallEvent::Ignored { reason }) = call.poll_event() else {
            panic!("expected an ignored notification")
        };
        assert!(reason.chars().count() < MAX_REASON_CHARS + 30, "{reason}");
        assert!(!reason.contains(['\u{1b}', '\r']), "{reason:?}");
        assert!(reason.contains(r"\u001b[2J\r"), "{reason}");
    }

    #[test]
    fn resource_kinds_from_urls() {
        assert_eq!(resource_of("/communications/calls/a"), Resource::Call);
        assert_eq!(resource_of("/app/calls/a/"), Resource::Call);
        assert_eq!(
            resource_of("/communications/calls/a/participants"),
            Resource::Participants
        );
        assert_eq!(
            resource_of("/communications/calls/a/participants/p1"),
            Resource::Participants
        );
        assert_eq!(
            resource_of("/communications/calls/a/contentSharingSessions"),
            Resource::ContentSharing
        );
        assert_eq!(
            resource_of("/communications/calls/a/operations/x"),
            Resource::Unknown
        );
        assert_eq!(resource_of("/subscriptions/x"), Resource::Unknown);
    }

    #[test]
    fn phases_cover_all_known_states() {
        for s in CallState::KNOWN {
            assert!(phase(s).is_some(), "{s}");
        }
        assert_eq!(phase(&CallState::Other("parked".into())), None);
    }

    #[test]
    fn msi_parsing() {
        assert_eq!(parse_msi("10"), Some(10));
        assert_eq!(parse_msi(" 4294967295 "), Some(u32::MAX));
        assert_eq!(parse_msi("4294967296"), None);
        assert_eq!(parse_msi("-1"), None);
        assert_eq!(parse_msi("abc"), None);
    }
}
