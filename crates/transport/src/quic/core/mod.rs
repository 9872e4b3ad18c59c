//! The sans-IO core: a `quinn_proto::Endpoint`, its connections and one deadline heap.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use media_core::control::Control;
use media_core::link::{CloseReason, LinkError, LinkStats};
use media_core::packet::AudioPacket;
use quinn_proto::{
    Connection, ConnectionHandle, DatagramEvent, Dir, EcnCodepoint, Endpoint, EndpointConfig,
    Event as QuicEvent, ServerConfig, StreamEvent,
};

mod control;

use self::control::send_join;
use super::conn::{Entry, Phase, check_datagram};
use super::link::{control_frame, datagram_header};
use super::{ConnId, Event, ServerStats};
use crate::reactor::timers::Deadlines;
use crate::settings::{CloseCode, ConnectError, TransportSettings, close_reason};
use crate::wire::{ControlDecoder, ControlMessage, DatagramRef, Join, Leave, encode_control};

/// How long a leaving call waits for its `Leave` to be acknowledged.
const LEAVE_GRACE: std::time::Duration = std::time::Duration::from_millis(250);
/// How long a rejected peer gets to read the `Reject` and close.
pub(super) const REJECT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// One UDP payload (or a GSO batch of equal segments) to send; its bytes are
/// `Transmits::buf[range]`.
#[derive(Clone, Debug)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// ECN bits.
    pub ecn: Option<EcnCodepoint>,
    /// Source address to send from (`None`: the socket's).
    pub src_ip: Option<IpAddr>,
    /// Segment size of a GSO batch (`None`: one datagram).
    pub segment_size: Option<usize>,
    /// The bytes in [`Transmits::buf`].
    pub range: Range<usize>,
}

/// The transmits of one turn, in one buffer.
#[derive(Debug, Default)]
pub struct Transmits {
    /// All payloads back to back.
    pub buf: Vec<u8>,
    /// One entry per UDP send.
    pub items: Vec<Transmit>,
}

impl Transmits {
    /// Empties both (keeps the capacity).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
    }

    fn push(&mut self, t: &quinn_proto::Transmit, bytes: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.items.push(Transmit {
            destination: t.destination,
            ecn: t.ecn,
            src_ip: t.src_ip,
            segment_size: t.segment_size,
            range: start..self.buf.len(),
        });
    }
}

/// The QUIC media protocol's sans-IO state: see the [module documentation](super).
pub struct Core {
    endpoint: Endpoint,
    server_config: Option<Arc<ServerConfig>>,
    settings: TransportSettings,
    conns: Vec<Option<Entry>>,
    live: usize,
    next_id: u64,
    timers: Deadlines,
    dirty: Vec<usize>,
    scratch: Vec<u8>,
    events: VecDeque<Event>,
    stats: ServerStats,
    max_segments: usize,
    shutting_down: bool,
    /// Handshakes in flight (server side), in all and per source IP.
    handshakes: usize,
    handshakes_by_source: HashMap<IpAddr, usize>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("connections", &self.live)
            .field("server", &self.server_config.is_some())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core serving `server_config` (`None`: one that only dials), with `settings`
    /// for joins, rate limits and timeouts. `max_segments` is how many datagrams one
    /// transmit may carry (GSO; 1 without).
    pub fn new(
        server_config: Option<Arc<ServerConfig>>,
        settings: TransportSettings,
        max_segments: usize,
    ) -> Core {
        let endpoint = Endpoint::new(
            Arc::new(EndpointConfig::default()),
            server_config.clone(),
            true,
            None,
        );
        Core {
            endpoint,
            server_config,
            settings,
            conns: Vec::new(),
            live: 0,
            next_id: 1,
            timers: Deadlines::default(),
            dirty: Vec::new(),
            scratch: Vec::with_capacity(64 * 1024),
            events: VecDeque::with_capacity(64),
            stats: ServerStats::default(),
            max_segments: max_segments.max(1),
            shutting_down: false,
            handshakes: 0,
            handshakes_by_source: HashMap::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TransportSettings {
        &self.settings
    }

    /// Server-wide counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Connections in any state (including closing ones).
    pub fn connections(&self) -> usize {
        self.live
    }

    /// True once [`Core::shutdown`] ran.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// True once [`Core::shutdown`] ran and every connection has drained.
    pub fn is_idle_after_shutdown(&self) -> bool {
        self.shutting_down && self.live == 0
    }

    /// The next event, if any. Drain after every input.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant [`Core::handle_timeout`] has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.timers.next()
    }

    fn entry(&mut self, conn: ConnId) -> Option<&mut Entry> {
        self.conns
            .get_mut(conn.index)
            .and_then(Option::as_mut)
            .filter(|e| e.id == conn.id)
    }

    fn conn_id(&self, index: usize) -> Option<ConnId> {
        let e = self.conns.get(index)?.as_ref()?;
        Some(ConnId { index, id: e.id })
    }

    fn mark_dirty(&mut self, index: usize) {
        if let Some(e) = self.conns.get_mut(index).and_then(Option::as_mut)
            && !e.dirty
        {
            e.dirty = true;
            self.dirty.push(index);
        }
    }

    /// One UDP payload arrived from `remote` (to `local_ip`, if known) at `now`.
    /// Stateless answers (version negotiation, refusals) go into `out` at once.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
        out: &mut Transmits,
    ) {
        self.scratch.clear();
        match self
            .endpoint
            .handle(now, remote, local_ip, ecn, data, &mut self.scratch)
        {
            Some(DatagramEvent::ConnectionEvent(ch, ev)) => {
                if let Some(e) = self.conns.get_mut(ch.0).and_then(Option::as_mut) {
                    e.conn.handle_event(ev);
                    self.drive(ch.0, now);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                self.stats.connection_attempts += 1;
                if self.shutting_down || self.server_config.is_none() {
                    let t = self.endpoint.refuse(incoming, &mut self.scratch);
                    out.push(&t, &self.scratch[..t.size]);
                    return;
                }
                let Some(incoming) = self.admit_incoming(incoming, out) else {
                    return;
                };
                self.scratch.clear();
                match self.endpoint.accept(
                    incoming,
                    now,
                    &mut self.scratch,
                    self.server_config.clone(),
                ) {
                    Ok((ch, conn)) => {
                        let phase = Phase::AwaitJoin {
                            deadline: now + self.settings.join_timeout,
                            stream: None,
                            decoder: ControlDecoder::new(),
                        };
                        let source = remote.ip();
                        let id = self.insert(ch, conn, now, phase);
                        if let Some(e) = self.entry(id) {
                            e.handshake_from = Some(source);
                            self.handshakes += 1;
                            *self.handshakes_by_source.entry(source).or_insert(0) += 1;
                            self.stats.handshakes = self.handshakes as u64;
                            self.stats.handshakes_peak =
                                self.stats.handshakes_peak.max(self.handshakes as u64);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e.cause, %remote, "refused a connection");
                        self.stats.handshake_failed += 1;
                        if let Some(t) = e.response {
                            out.push(&t, &self.scratch[..t.size]);
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(t)) => out.push(&t, &self.scratch[..t.size]),
            None => {}
        }
    }

    /// Address validation and the handshake caps, before any connection state: an
    /// unvalidated source while `retry_threshold` handshakes are in flight gets a
    /// stateless Retry; an attempt over `max_handshakes` (in all or from its source
    /// IP) is dropped unanswered. Returns the attempt to accept, if any.
    fn admit_incoming(
        &mut self,
        incoming: quinn_proto::Incoming,
        out: &mut Transmits,
    ) -> Option<quinn_proto::Incoming> {
        let s = &self.settings;
        if !incoming.remote_address_validated() && self.handshakes >= s.retry_threshold {
            self.scratch.clear();
            match self.endpoint.retry(incoming, &mut self.scratch) {
                Ok(t) => {
                    self.stats.retries_sent += 1;
                    out.push(&t, &self.scratch[..t.size]);
                }
                // Not reachable (an unvalidated address may always be retried);
                // dropped rather than let in unvalidated.
                Err(e) => {
                    self.stats.handshakes_dropped += 1;
                    self.endpoint.ignore(e.into_incoming());
                }
            }
            return None;
        }
        let source = incoming.remote_address().ip();
        let from_source = self.handshakes_by_source.get(&source).copied().unwrap_or(0);
        if self.handshakes >= s.max_handshakes || from_source >= s.max_handshakes_per_source {
            tracing::debug!(
                %source,
                in_flight = self.handshakes,
                from_source,
                "too many handshakes in flight: connection attempt dropped"
            );
            self.stats.handshakes_dropped += 1;
            self.endpoint.ignore(incoming);
            return None;
        }
        Some(incoming)
    }

    /// The connection of `index` stops counting as a handshake in flight.
    fn end_handshake(&mut self, index: usize) {
        let Some(source) = self
            .conns
            .get_mut(index)
            .and_then(Option::as_mut)
            .and_then(|e| e.handshake_from.take())
        else {
            return;
        };
        self.handshakes = self.handshakes.saturating_sub(1);
        if let Some(n) = self.handshakes_by_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.handshakes_by_source.remove(&source);
            }
        }
        self.stats.handshakes = self.handshakes as u64;
    }

    fn insert(
        &mut self,
        ch: ConnectionHandle,
        conn: Connection,
        now: Instant,
        phase: Phase,
    ) -> ConnId {
        if self.conns.len() <= ch.0 {
            self.conns.resize_with(ch.0 + 1, || None);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.conns[ch.0] = Some(Entry::new(conn, id, phase));
        self.live += 1;
        self.stats.connections_peak = self.stats.connections_peak.max(self.live as u64);
        self.drive(ch.0, now);
        ConnId { index: ch.0, id }
    }

    /// Dials a media server: QUIC handshake, then `Join` on a control stream.
    /// [`Event::Accepted`] or [`Event::DialFailed`] follows. Works on a core with or
    /// without a server configuration.
    pub fn connect(
        &mut self,
        now: Instant,
        config: quinn_proto::ClientConfig,
        remote: SocketAddr,
        server_name: &str,
        join: Join,
    ) -> Result<ConnId, ConnectError> {
        if self.shutting_down {
            return Err(ConnectError::Connection(
                quinn_proto::ConnectionError::LocallyClosed,
            ));
        }
        let (ch, conn) = self.endpoint.connect(now, config, remote, server_name)?;
        let phase = Phase::Dialing {
            deadline: now + self.settings.join_timeout,
            stream: None,
            decoder: ControlDecoder::new(),
            join,
        };
        Ok(self.insert(ch, conn, now, phase))
    }

    /// Encodes and queues one media packet of a live call (on the stream this side
    /// sends). Never blocks; refusals are counted.
    pub fn send_packet(&mut self, conn: ConnId, packet: &AudioPacket) -> Result<(), LinkError> {
        let Some(e) = self.entry(conn) else {
            return Err(LinkError::Closed);
        };
        let r = try_send(e, packet);
        if r.is_ok() {
            e.stats.packets_sent += 1;
        } else {
            e.stats.send_dropped += 1;
        }
        self.mark_dirty(conn.index);
        r
    }

    /// Queues a control message of a live call. A quality report carries this side's
    /// RTT.
    pub fn send_control(&mut self, conn: ConnId, control: &Control) -> Result<(), LinkError> {
        let Some(e) = self.entry(conn) else {
            return Err(LinkError::Closed);
        };
        if !matches!(e.phase, Phase::Live(_)) {
            return Err(LinkError::Closed);
        }
        let rtt = e.conn.rtt();
        let frame = control_frame(control, rtt)?;
        e.queue_control(&frame)?;
        e.stats.control_sent += 1;
        self.mark_dirty(conn.index);
        Ok(())
    }

    /// The counters of a connection, while the core has it.
    pub fn link_stats(&mut self, conn: ConnId) -> Option<LinkStats> {
        self.entry(conn).map(Entry::link_stats)
    }

    /// quinn-proto's statistics of a connection (UDP and frame counts).
    pub fn quic_stats(&mut self, conn: ConnId) -> Option<quinn_proto::ConnectionStats> {
        self.entry(conn).map(|e| e.conn.stats())
    }

    /// Ends a connection from this side. A live call leaves: `Leave { reason }` on the
    /// control stream, [`Event::Closed`] with [`CloseReason::Closed`], then a normal
    /// close once acknowledged (or after 250 ms). A dial is abandoned
    /// ([`Event::DialFailed`]).
    pub fn close(&mut self, conn: ConnId, now: Instant, reason: &str) {
        let Some(e) = self.entry(conn) else {
            return;
        };
        match &e.phase {
            Phase::Live(_) => self.leave(conn.index, now, reason),
            Phase::Dialing { .. } => {
                e.close(now, CloseCode::Normal, reason);
                self.events.push_back(Event::DialFailed {
                    conn,
                    error: ConnectError::Connection(quinn_proto::ConnectionError::LocallyClosed),
                });
            }
            Phase::Closed => {}
            _ => e.close(now, CloseCode::Normal, reason),
        }
        self.drive(conn.index, now);
    }

    /// Closes every connection ([`CloseReason::ServerShutdown`] at the peers) and
    /// refuses new ones; the shell keeps turning until they drained. A call already
    /// leaving keeps its grace: its `Leave` is delivered (a process that hangs up and
    /// exits at once must not leave the far side holding the session until its idle
    /// timeout because a bare close was lost).
    pub fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        for index in 0..self.conns.len() {
            let Some(conn) = self.conn_id(index) else {
                continue;
            };
            if matches!(
                self.conns[index].as_ref().map(|e| &e.phase),
                Some(Phase::Leaving { .. })
            ) {
                continue;
            }
            if matches!(
                self.conns[index].as_ref().map(|e| &e.phase),
                Some(Phase::Dialing { .. })
            ) {
                self.events.push_back(Event::DialFailed {
                    conn,
                    error: ConnectError::Connection(quinn_proto::ConnectionError::LocallyClosed),
                });
            }
            self.end_call(index, CloseReason::ServerShutdown);
            if let Some(e) = self.conns[index].as_mut()
                && (!matches!(e.phase, Phase::Closed) || !e.conn.is_closed())
            {
                e.close(now, CloseCode::ServerShutdown, "server shutdown");
            }
            self.drive(index, now);
        }
    }

    /// Runs everything due at `now`: QUIC timeouts and the join, verdict, reject and
    /// leave deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((index, id, _)) = self.timers.pop_due(now) {
            if self
                .conns
                .get(index)
                .and_then(Option::as_ref)
                .is_some_and(|e| e.id == id)
            {
                self.on_due(index, now);
                self.mark_dirty(index);
            }
        }
    }

    fn on_due(&mut self, index: usize, now: Instant) {
        let Some(e) = self.conns[index].as_mut() else {
            return;
        };
        if e.conn.poll_timeout().is_some_and(|t| t <= now) {
            e.conn.handle_timeout(now);
        }
        let conn = ConnId { index, id: e.id };
        match &mut e.phase {
            Phase::AwaitJoin { deadline, .. } | Phase::AwaitVerdict { deadline, .. }
                if *deadline <= now =>
            {
                if e.connected {
                    self.stats.join_failed += 1;
                } else {
                    self.stats.handshake_failed += 1;
                }
                e.close(now, CloseCode::JoinTimeout, "no join received in time");
            }
            Phase::Dialing { deadline, .. } if *deadline <= now => {
                e.close(now, CloseCode::JoinTimeout, "no accept received in time");
                self.events.push_back(Event::DialFailed {
                    conn,
                    error: ConnectError::Timeout,
                });
            }
            Phase::Rejecting { deadline, body } if *deadline <= now => {
                let body = std::mem::take(body);
                e.close(now, CloseCode::Rejected, &body);
            }
            Phase::Leaving {
                deadline, reason, ..
            } if *deadline <= now => {
                let reason = std::mem::take(reason);
                e.close(now, CloseCode::Normal, &reason);
            }
            _ => {}
        }
        self.drive(index, now);
    }

    /// Leaves a live call: `Leave` on the control stream, [`Event::Closed`], then a
    /// normal close once acknowledged (or after [`LEAVE_GRACE`]).
    fn leave(&mut self, index: usize, now: Instant, reason: &str) {
        let Some(e) = self.conns[index].as_ref() else {
            return;
        };
        let Phase::Live(live) = &e.phase else {
            return;
        };
        let control = live.control;
        self.end_call(
            index,
            CloseReason::Closed {
                reason: reason.to_owned(),
            },
        );
        let Some(e) = self.conns[index].as_mut() else {
            return;
        };
        // `end_call` left the phase `Closed`: the stream is the one the call had.
        e.phase = Phase::Leaving {
            deadline: now + LEAVE_GRACE,
            control,
            reason: reason.to_owned(),
            finished: false,
        };
        let frame = encode_control(&ControlMessage::Leave(Leave {
            reason: reason.to_owned(),
        }));
        if frame.is_ok_and(|f| e.queue_control(&f).is_ok()) {
            e.finish_leave();
        } else {
            e.close(now, CloseCode::Normal, reason);
        }
        self.mark_dirty(index);
    }

    /// Ends the live call of `index` with `reason` ([`Event::Closed`]); leaves the
    /// phase `Closed` (the caller closes the connection if needed).
    fn end_call(&mut self, index: usize, reason: CloseReason) {
        let Some(e) = self.conns[index].as_mut() else {
            return;
        };
        let Phase::Live(_) = e.phase else {
            return;
        };
        let Phase::Live(live) = std::mem::replace(&mut e.phase, Phase::Closed) else {
            return;
        };
        let stats = e.link_stats();
        tracing::debug!(remote = %e.conn.remote_address(), %reason, "media call ended");
        if live.server_side {
            self.stats.active = self.stats.active.saturating_sub(1);
        }
        self.events.push_back(Event::Closed {
            conn: ConnId { index, id: e.id },
            reason,
            stats,
        });
    }

    /// Processes what a connection has after input: endpoint and application events,
    /// the control stream, received datagrams.
    fn drive(&mut self, index: usize, now: Instant) {
        let Some(e) = self.conns.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        while let Some(ev) = e.conn.poll_endpoint_events() {
            if let Some(back) = self.endpoint.handle_event(ConnectionHandle(index), ev) {
                e.conn.handle_event(back);
            }
        }
        let mut lost = None;
        let mut readable = false;
        while let Some(ev) = e.conn.poll() {
            match ev {
                QuicEvent::Stream(StreamEvent::Readable { .. } | StreamEvent::Opened { .. }) => {
                    readable = true;
                }
                QuicEvent::Connected => {
                    e.connected = true;
                    send_join(e);
                }
                QuicEvent::ConnectionLost { reason } => lost = Some(reason),
                QuicEvent::Stream(StreamEvent::Finished { id }) => {
                    if let Phase::Leaving {
                        control, reason, ..
                    } = &mut e.phase
                        && *control == id
                    {
                        let reason = std::mem::take(reason);
                        e.close(now, CloseCode::Normal, &reason);
                    }
                }
                QuicEvent::Stream(StreamEvent::Writable { .. }) => e.flush_control(),
                _ => {}
            }
        }
        if let Phase::AwaitJoin { stream, .. } = &mut e.phase
            && stream.is_none()
        {
            *stream = e.conn.streams().accept(Dir::Bi);
            readable |= stream.is_some();
        }
        // Reading a stream costs a lookup: only when quinn says there is news.
        if readable {
            self.read_control(index, now);
        }
        self.read_datagrams(index, now);
        if let Some(err) = lost {
            self.on_lost(index, &err);
        }
        self.mark_dirty(index);
    }

    fn on_lost(&mut self, index: usize, err: &quinn_proto::ConnectionError) {
        let Some(e) = self.conns[index].as_mut() else {
            return;
        };
        let conn = ConnId { index, id: e.id };
        match &e.phase {
            Phase::Live(_) => {
                let reason = close_reason(err, self.settings.idle_timeout);
                self.end_call(index, reason);
            }
            Phase::Dialing { .. } => {
                e.phase = Phase::Closed;
                self.events.push_back(Event::DialFailed {
                    conn,
                    error: ConnectError::lost(err),
                });
            }
            Phase::AwaitJoin { .. } | Phase::AwaitVerdict { .. } => {
                tracing::debug!(error = %err, "connection lost before admission");
                if e.connected {
                    self.stats.join_failed += 1;
                } else {
                    self.stats.handshake_failed += 1;
                }
                e.phase = Phase::Closed;
            }
            _ => e.phase = Phase::Closed,
        }
    }

    fn read_datagrams(&mut self, index: usize, now: Instant) {
        let Some(e) = self.conns[index].as_mut() else {
            return;
        };
        let conn = ConnId { index, id: e.id };
        while let Some(bytes) = e.conn.datagrams().recv() {
            e.stats.packets_received += 1;
            let live = match &mut e.phase {
                Phase::Live(live) => live,
                Phase::AwaitJoin { .. }
                | Phase::AwaitVerdict { .. }
                | Phase::Rejecting { .. }
                | Phase::Dialing { .. } => {
                    e.stats.pre_accept_dropped += 1;
                    self.stats.pre_accept_dropped += 1;
                    continue;
                }
                // The call is over: nobody takes datagrams any more.
                Phase::Leaving { .. } | Phase::Closed => {
                    e.stats.queue_full_dropped += 1;
                    continue;
                }
            };
            if let Some(header) = check_datagram(&mut e.stats, &bytes, live, now) {
                e.stats.delivered += 1;
                self.events.push_back(Event::Packet {
                    conn,
                    header,
                    payload: bytes.slice(header.len()..),
                    received_at: now,
                });
            }
        }
    }

    /// Collects the transmits of every connection touched since the last call,
    /// re-arms their timers and frees drained connections.
    pub fn poll_transmits(&mut self, now: Instant, out: &mut Transmits) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &index in &dirty {
            let Some(e) = self.conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            e.dirty = false;
            loop {
                while let Some(ev) = e.conn.poll_endpoint_events() {
                    if let Some(back) = self.endpoint.handle_event(ConnectionHandle(index), ev) {
                        e.conn.handle_event(back);
                    }
                }
                self.scratch.clear();
                let Some(t) = e
                    .conn
                    .poll_transmit(now, self.max_segments, &mut self.scratch)
                else {
                    break;
                };
                out.push(&t, &self.scratch[..t.size]);
            }
            while let Some(ev) = e.conn.poll_endpoint_events() {
                if let Some(back) = self.endpoint.handle_event(ConnectionHandle(index), ev) {
                    e.conn.handle_event(back);
                }
            }
            let drained = e.conn.is_drained();
            // A handshake counts until its call is admitted or its connection state
            // is gone: one that failed (rejected, timed out) still holds that state
            // while QUIC drains it, so it keeps its place under `retry_threshold`
            // and `max_handshakes` until then (otherwise a flood that outlasts the
            // join timeout would pile up draining connections past the caps).
            if e.handshake_from.is_some() && (drained || matches!(e.phase, Phase::Live(_))) {
                self.end_handshake(index);
            }
            let Some(e) = self.conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            if drained {
                self.timers.set(index, e.id, None);
                self.conns[index] = None;
                self.live -= 1;
                continue;
            }
            // Mostly later than before: each datagram sent re-arms loss detection.
            self.timers.set(index, e.id, e.deadline());
        }
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }
}

/// Encodes `packet` on the call's send stream and queues it as a datagram.
fn try_send(e: &mut Entry, packet: &AudioPacket) -> Result<(), LinkError> {
    let Phase::Live(live) = &e.phase else {
        return Err(LinkError::Closed);
    };
    let stream = live.send_stream.ok_or(LinkError::Unsupported(
        "the join assigned no stream to send on",
    ))?;
    if packet.source != 0 && live.unmixed == 0 {
        return Err(LinkError::Unsupported(
            "unmixed audio was not negotiated for this call",
        ));
    }
    let d = DatagramRef::new(datagram_header(packet, stream), packet.payload());
    let mut buf = BytesMut::zeroed(d.encoded_len());
    let len = d
        .encode_into(&mut buf)
        .map_err(|_| LinkError::Unsupported("payload length illegal for the codec"))?;
    let mut datagrams = e.conn.datagrams();
    let displaces = datagrams.send_buffer_space() < len;
    // `send` checks the size against the path's datagram limit itself.
    match datagrams.send(Bytes::from(buf), true) {
        Ok(()) => {
            e.stats.send_displaced += u64::from(displaces);
            Ok(())
        }
        Err(quinn_proto::SendDatagramError::TooLarge) => Err(LinkError::TooLarge {
            len,
            max: e.conn.datagrams().max_size().unwrap_or(0),
        }),
        Err(_) => Err(LinkError::Unsupported("the peer accepts no datagrams")),
    }
}
