//! The control stream of a [`Core`]'s connections: joins and the verdict on them,
//! the dialling side's answer, and a live call's control messages.

use std::time::Instant;

use media_core::control::Control;
use media_core::link::CloseReason;
use quinn_proto::Dir;

use super::super::conn::{Entry, Live, Phase};
use super::super::join::{assign_streams, check_join, first_stream};
use super::super::{ConnId, Event};
use super::{Core, REJECT_GRACE};
use crate::ratelimit::TokenBucket;
use crate::registry::Admission;
use crate::settings::{CloseCode, ConnectError};
use crate::wire::{
    Accept, ControlMessage, MAX_PAYLOAD_LEN, PROTOCOL_VERSION, Reject, RejectCode, StreamDirection,
    encode_control,
};

impl Core {
    /// Admits the join of [`Event::Join`]: sends `Accept` and the call is live. The
    /// codec is `admission.codec`, else the peer's first choice. `None` when the
    /// connection is gone meanwhile or the codec was not offered (then the peer got a
    /// `Reject`): the application should release what it admitted.
    pub fn accept(&mut self, conn: ConnId, now: Instant, admission: Admission) -> Option<Accept> {
        let settings_limit = self.settings.rate_limit;
        let e = self.entry(conn)?;
        let Phase::AwaitVerdict { .. } = e.phase else {
            return None;
        };
        let Phase::AwaitVerdict {
            control,
            decoder,
            join,
            ..
        } = std::mem::replace(&mut e.phase, Phase::Closed)
        else {
            return None;
        };
        let codec = admission.codec.unwrap_or(join.codecs[0]);
        if !join.codecs.contains(&codec) {
            let msg = format!("the server chose {codec}, which the peer did not offer");
            e.phase = Phase::AwaitVerdict {
                deadline: now,
                control,
                decoder,
                join,
            };
            self.reject(conn, now, Reject::new(RejectCode::NoCommonCodec, msg));
            return None;
        }
        let streams = admission.streams.negotiate(join.unmixed);
        let accept = Accept {
            version: PROTOCOL_VERSION,
            codec,
            streams: assign_streams(&join),
            max_payload: MAX_PAYLOAD_LEN as u32,
            unmixed: streams.unmixed,
            mixed: streams.mixed,
        };
        // The unmixed streams travel on the render stream: its bucket grows with them.
        let factor = 1 + u32::from(accept.unmixed);
        let recv_limit = crate::ratelimit::RateLimit {
            per_second: settings_limit.per_second.saturating_mul(factor),
            burst: settings_limit.burst.saturating_mul(factor),
        };
        let render = first_stream(&accept.streams, StreamDirection::Render);
        let (recv, others) =
            Live::buckets(accept.streams.iter().map(|s| s.stream_id), render, || {
                TokenBucket::new(settings_limit)
            });
        let recv = recv.map(|(id, _)| (id, TokenBucket::new(recv_limit)));
        e.phase = Phase::Live(Live {
            server_side: true,
            control,
            decoder,
            send_stream: first_stream(&accept.streams, StreamDirection::Source),
            recv,
            others,
            unmixed: accept.unmixed,
        });
        let sent = encode_control(&ControlMessage::Accept(accept.clone()))
            .ok()
            .is_some_and(|frame| e.queue_control(&frame).is_ok());
        if !sent {
            e.close(now, CloseCode::ProtocolError, "could not send accept");
            self.stats.join_failed += 1;
            return None;
        }
        tracing::info!(remote = %e.conn.remote_address(), session = %join.mp_media_session_id, %codec, "join accepted");
        self.stats.accepted += 1;
        self.stats.active += 1;
        // Control messages that came with the join follow it.
        self.on_live_control(conn.index, now);
        self.mark_dirty(conn.index);
        Some(accept)
    }

    /// Refuses the join of [`Event::Join`]: sends `Reject`, then closes.
    pub fn reject(&mut self, conn: ConnId, now: Instant, reject: Reject) {
        let Some(e) = self.entry(conn) else {
            return;
        };
        let Phase::AwaitVerdict { control, .. } = e.phase else {
            return;
        };
        tracing::info!(remote = %e.conn.remote_address(), reason = %reject, "join rejected");
        let body = serde_json::to_string(&reject).unwrap_or_default();
        if let Ok(frame) = encode_control(&ControlMessage::Reject(reject))
            && e.queue_control(&frame).is_ok()
        {
            let _ = e.conn.send_stream(control).finish();
        }
        e.phase = Phase::Rejecting {
            deadline: now + REJECT_GRACE,
            body,
        };
        self.stats.rejected += 1;
        self.mark_dirty(conn.index);
    }

    /// Reads the control stream into its decoder and acts on complete messages.
    pub(super) fn read_control(&mut self, index: usize, now: Instant) {
        let Some(e) = self.conns[index].as_mut() else {
            return;
        };
        let (id, decoder) = match &mut e.phase {
            Phase::AwaitJoin {
                stream: Some(id),
                decoder,
                ..
            }
            | Phase::Dialing {
                stream: Some(id),
                decoder,
                ..
            }
            | Phase::AwaitVerdict {
                control: id,
                decoder,
                ..
            } => (*id, decoder),
            Phase::Live(l) => (l.control, &mut l.decoder),
            _ => return,
        };
        let mut ended = false;
        match e.conn.recv_stream(id).read(true) {
            Ok(mut chunks) => {
                loop {
                    match chunks.next(usize::MAX) {
                        Ok(Some(chunk)) => decoder.push(&chunk.bytes),
                        Ok(None) | Err(quinn_proto::ReadError::Reset(_)) => {
                            ended = true;
                            break;
                        }
                        Err(quinn_proto::ReadError::Blocked) => break,
                    }
                }
                let _ = chunks.finalize();
            }
            Err(_) => ended = true,
        }
        match e.phase {
            Phase::AwaitJoin { .. } => self.on_join_input(index, now, ended),
            Phase::Dialing { .. } => self.on_dial_input(index, now, ended),
            // Messages after the join wait for the verdict.
            Phase::AwaitVerdict { .. } => {}
            _ => self.on_live_control(index, now),
        }
    }

    fn on_join_input(&mut self, index: usize, now: Instant, ended: bool) {
        let Some(e) = self.conns[index].as_mut() else {
            return;
        };
        let Phase::AwaitJoin {
            decoder,
            stream: Some(control),
            deadline,
        } = &mut e.phase
        else {
            return;
        };
        let failure = match decoder.poll() {
            None if ended => "control stream ended during admission".to_owned(),
            None => return,
            Some(Err(err)) => format!("invalid join: {err}"),
            Some(Ok(ControlMessage::Join(join))) => {
                let remote = e.conn.remote_address();
                if let Err(reject) = check_join(&join, &self.settings) {
                    e.phase = Phase::AwaitVerdict {
                        deadline: *deadline,
                        control: *control,
                        decoder: std::mem::take(decoder),
                        join,
                    };
                    let conn = ConnId { index, id: e.id };
                    return self.reject(conn, now, reject);
                }
                e.phase = Phase::AwaitVerdict {
                    deadline: *deadline,
                    control: *control,
                    decoder: std::mem::take(decoder),
                    join: join.clone(),
                };
                let conn = ConnId { index, id: e.id };
                self.events.push_back(Event::Join { conn, join, remote });
                return;
            }
            Some(Ok(other)) => format!("expected a join message, got {}", other.kind()),
        };
        tracing::debug!(remote = %e.conn.remote_address(), detail = %failure, "closing before admission");
        self.stats.join_failed += 1;
        e.close(now, CloseCode::ProtocolError, &failure);
    }

    /// Dialling side: the server's answer to our `Join`.
    fn on_dial_input(&mut self, index: usize, now: Instant, ended: bool) {
        let limit = self.settings.rate_limit;
        let Some(e) = self.conns[index].as_mut() else {
            return;
        };
        let conn = ConnId { index, id: e.id };
        let Phase::Dialing {
            decoder,
            stream: Some(control),
            join,
            ..
        } = &mut e.phase
        else {
            return;
        };
        let failure = match decoder.poll() {
            None if ended => ConnectError::Protocol("control stream ended during admission".into()),
            None => return,
            Some(Err(err)) => ConnectError::Protocol(format!("invalid reply to join: {err}")),
            Some(Ok(ControlMessage::Reject(r))) => ConnectError::Rejected(r),
            Some(Ok(ControlMessage::Accept(accept)))
                if accept.version == PROTOCOL_VERSION
                    && join.codecs.contains(&accept.codec)
                    && accept.unmixed <= join.unmixed =>
            {
                let (recv, others) = Live::buckets(
                    accept.streams.iter().map(|s| s.stream_id),
                    first_stream(&accept.streams, StreamDirection::Source),
                    || TokenBucket::new(limit),
                );
                e.phase = Phase::Live(Live {
                    server_side: false,
                    control: *control,
                    decoder: std::mem::take(decoder),
                    send_stream: first_stream(&accept.streams, StreamDirection::Render),
                    recv,
                    others,
                    unmixed: accept.unmixed,
                });
                let remote = e.conn.remote_address();
                self.events.push_back(Event::Accepted {
                    conn,
                    accept,
                    remote,
                });
                return self.on_live_control(index, now);
            }
            Some(Ok(ControlMessage::Accept(accept))) => ConnectError::Protocol(format!(
                "accept of version {} with codec {} does not answer our join",
                accept.version, accept.codec
            )),
            Some(Ok(other)) => {
                ConnectError::Protocol(format!("expected accept or reject, got {}", other.kind()))
            }
        };
        let code = if matches!(failure, ConnectError::Rejected(_)) {
            CloseCode::Normal
        } else {
            CloseCode::ProtocolError
        };
        e.close(now, code, &failure.to_string());
        self.events.push_back(Event::DialFailed {
            conn,
            error: failure,
        });
    }

    pub(super) fn on_live_control(&mut self, index: usize, now: Instant) {
        loop {
            let Some(e) = self.conns[index].as_mut() else {
                return;
            };
            let conn = ConnId { index, id: e.id };
            let Phase::Live(live) = &mut e.phase else {
                return;
            };
            let Some(next) = live.decoder.poll() else {
                return;
            };
            let message = match next {
                Ok(m) => m,
                Err(err) => {
                    return self.protocol_error(index, now, format!("control stream: {err}"));
                }
            };
            e.stats.control_received += 1;
            let control = match message {
                ControlMessage::Leave(l) => {
                    let phrase = format!("peer left: {}", l.reason);
                    self.end_call(index, CloseReason::PeerLeft { reason: l.reason });
                    if let Some(e) = self.conns[index].as_mut() {
                        e.close(now, CloseCode::Normal, &phrase);
                    }
                    return;
                }
                m if m.is_handshake() => {
                    let detail = format!("unexpected {} message after admission", m.kind());
                    return self.protocol_error(index, now, detail);
                }
                ControlMessage::Dtmf(d) => Control::Dtmf {
                    tone: d.tone,
                    duration_ms: d.duration_ms,
                },
                ControlMessage::DominantSpeaker(d) => Control::DominantSpeaker(
                    (d.msi != crate::wire::NO_DOMINANT_SPEAKER).then_some(d.msi),
                ),
                ControlMessage::ActiveSpeakers(a) => Control::ActiveSpeakers(
                    media_core::control::ActiveSpeakers::from_slice(&a.msis),
                ),
                ControlMessage::SendStatus(s) => Control::SendStatus(s.status),
                ControlMessage::Stats(r) => Control::Report(r),
                _ => continue,
            };
            self.events.push_back(Event::Control { conn, control });
        }
    }

    fn protocol_error(&mut self, index: usize, now: Instant, detail: String) {
        if let Some(e) = self.conns[index].as_ref() {
            tracing::debug!(remote = %e.conn.remote_address(), %detail, "closing: protocol error");
        }
        self.end_call(
            index,
            CloseReason::ProtocolError {
                detail: detail.clone(),
                by_peer: false,
            },
        );
        if let Some(e) = self.conns[index].as_mut() {
            e.close(now, CloseCode::ProtocolError, &detail);
        }
    }
}

/// Client side, once connected: opens the control stream and queues the `Join`.
pub(super) fn send_join(e: &mut Entry) {
    if let Phase::Dialing { stream, join, .. } = &mut e.phase
        && stream.is_none()
        && let Some(id) = e.conn.streams().open(Dir::Bi)
    {
        *stream = Some(id);
        if let Ok(frame) = encode_control(&ControlMessage::Join(join.clone())) {
            let _ = e.queue_control(&frame);
        }
    }
}
