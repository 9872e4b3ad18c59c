//! The reactor's sans-IO core: a `quinn_proto::Endpoint`, its connections, their
//! calls and one timer heap. No sockets, no clock of its own.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quinn_proto::{
    Connection, ConnectionHandle, DatagramEvent, Dir, EcnCodepoint, Endpoint, EndpointConfig,
    Event, ServerConfig, StreamEvent, StreamId, VarInt,
};

use super::{CallApp, Command, Commands, ConnKey, Dial, Dialer, Link, NewCall, ReactorCall};
use crate::endpoint::{
    CloseCode, CloseReason, ConnectError, Counters, LinkStats, SendError, ServerCounters,
    TransportSettings, assign_streams, check_join, inc, truncate_utf8,
};
use crate::ratelimit::TokenBucket;
use crate::wire::{
    Accept, ControlDecoder, ControlMessage, DatagramHeader, DatagramRef, HEADER_LEN, Join, Leave,
    MAX_PAYLOAD_LEN, PROTOCOL_VERSION, Reject, RejectCode, encode_control,
};

/// The call tick period.
pub const TICK: Duration = Duration::from_millis(20);
/// A call further behind than this restarts its tick grid.
const MAX_BEHIND: Duration = Duration::from_millis(200);
/// How long a leaving call waits for its `Leave` to be acknowledged.
const LEAVE_GRACE: Duration = Duration::from_millis(250);
/// How long a rejected peer gets to read the `Reject` and close.
const REJECT_GRACE: Duration = Duration::from_secs(1);
/// Control bytes queued on one connection before sends are refused.
const CONTROL_OUT_MAX: usize = 256 * 1024;

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

/// The transmits of one reactor turn, in one buffer.
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

/// A live call inside its connection.
struct Live {
    /// Admitted by this side's [`CallApp`] (false: a call this side dialled).
    server_side: bool,
    call: Box<dyn ReactorCall>,
    join: Join,
    control: StreamId,
    decoder: ControlDecoder,
    buckets: Vec<(u32, TokenBucket)>,
    next_tick: Instant,
}

enum Phase {
    /// Client side: handshake, then `Join` sent, waiting for `Accept` or `Reject`.
    Dialing {
        deadline: Instant,
        stream: Option<StreamId>,
        decoder: ControlDecoder,
        join: Join,
        dialer: Option<Box<dyn Dialer>>,
    },
    /// Handshake and join: waiting for the control stream's first message.
    AwaitJoin {
        deadline: Instant,
        stream: Option<StreamId>,
        decoder: ControlDecoder,
    },
    /// `Reject` sent; the peer should close, or we do at the deadline.
    Rejecting { deadline: Instant, body: String },
    /// Admitted, the call runs.
    Live(Box<Live>),
    /// `Leave` queued; the stream is finished once everything queued is written, the
    /// connection closed once that is acknowledged or at the deadline.
    Leaving {
        deadline: Instant,
        control: StreamId,
        reason: String,
        finished: bool,
    },
    /// Closed; waiting for QUIC to drain.
    Closed,
}

struct Entry {
    conn: Connection,
    id: u64,
    phase: Phase,
    counters: Counters,
    /// Control bytes not yet accepted by the stream (flow control).
    control_out: Vec<u8>,
    /// The deadline this entry has in the heap (the earliest of its entries).
    scheduled: Option<Instant>,
    dirty: bool,
    connected: bool,
}

impl Entry {
    fn deadline(&mut self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::AwaitJoin { deadline, .. }
            | Phase::Dialing { deadline, .. }
            | Phase::Rejecting { deadline, .. }
            | Phase::Leaving { deadline, .. } => Some(*deadline),
            Phase::Live(l) => Some(l.next_tick),
            Phase::Closed => None,
        };
        match (self.conn.poll_timeout(), phase) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn control_stream(&self) -> Option<StreamId> {
        match &self.phase {
            Phase::AwaitJoin { stream, .. } | Phase::Dialing { stream, .. } => *stream,
            Phase::Live(l) => Some(l.control),
            Phase::Leaving { control, .. } => Some(*control),
            _ => None,
        }
    }

    /// Writes as much of `control_out` as the stream takes.
    fn flush_control(&mut self) {
        if let Some(id) = self.control_stream() {
            flush_control(&mut self.conn, &mut self.control_out, id);
        }
        self.finish_leave();
    }

    /// Leaving: finishes the control stream once everything queued (the `Leave`
    /// last) has been written; finishing earlier would cut it off.
    fn finish_leave(&mut self) {
        if let Phase::Leaving {
            control, finished, ..
        } = &mut self.phase
            && !*finished
            && self.control_out.is_empty()
        {
            *finished = true;
            let _ = self.conn.send_stream(*control).finish();
        }
    }

    fn queue_control(&mut self, frame: &[u8]) -> Result<(), SendError> {
        let id = self.control_stream().ok_or(SendError::Closed)?;
        queue_control(&mut self.conn, &mut self.control_out, id, frame)
    }

    fn close(&mut self, now: Instant, code: CloseCode, phrase: &str) {
        let phrase = truncate_utf8(phrase, 512);
        self.conn.close(
            now,
            VarInt::from_u32(code as u32),
            Bytes::copy_from_slice(phrase.as_bytes()),
        );
        self.phase = Phase::Closed;
    }
}

/// Writes as much of `out` to control stream `id` as flow control takes.
fn flush_control(conn: &mut Connection, out: &mut Vec<u8>, id: StreamId) {
    if out.is_empty() {
        return;
    }
    match conn.send_stream(id).write(out) {
        Ok(n) => {
            out.drain(..n);
        }
        Err(quinn_proto::WriteError::Blocked) => {}
        Err(_) => out.clear(),
    }
}

/// Appends a control frame to `out` (refused beyond [`CONTROL_OUT_MAX`]) and writes.
fn queue_control(
    conn: &mut Connection,
    out: &mut Vec<u8>,
    id: StreamId,
    frame: &[u8],
) -> Result<(), SendError> {
    if out.len() + frame.len() > CONTROL_OUT_MAX {
        return Err(SendError::ControlQueueFull);
    }
    out.extend_from_slice(frame);
    flush_control(conn, out, id);
    Ok(())
}

/// The sending side of a call during its tick.
pub(crate) struct LinkInner<'a> {
    conn: &'a mut Connection,
    counters: &'a Counters,
    control_out: &'a mut Vec<u8>,
    control: StreamId,
    close: &'a mut Option<String>,
    max_datagram: Option<usize>,
}

impl LinkInner<'_> {
    pub(crate) fn send_datagram(
        &mut self,
        header: &DatagramHeader,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let r = self.try_send(DatagramRef::new(*header, payload));
        inc(match r {
            Ok(()) => &self.counters.sent,
            Err(_) => &self.counters.send_dropped,
        });
        r
    }

    fn try_send(&mut self, d: DatagramRef<'_>) -> Result<(), SendError> {
        if self.close.is_some() {
            return Err(SendError::Closed);
        }
        crate::wire::check_payload_len(d.header.codec, d.payload.len(), d.header.flags)?;
        let mut buf = BytesMut::zeroed(d.encoded_len());
        let len = d.encode_into(&mut buf)?;
        match self.max_datagram {
            None => return Err(SendError::DatagramsUnsupported),
            Some(max) if len > max => return Err(SendError::TooLarge { len, max }),
            Some(_) => {}
        }
        let mut datagrams = self.conn.datagrams();
        if datagrams.send_buffer_space() < len {
            inc(&self.counters.send_displaced);
        }
        datagrams.send(buf.freeze(), true).map_err(|e| match e {
            quinn_proto::SendDatagramError::TooLarge => SendError::TooLarge {
                len,
                max: self.max_datagram.unwrap_or(0),
            },
            _ => SendError::DatagramsUnsupported,
        })
    }

    pub(crate) fn send_control_frame(&mut self, frame: &[u8]) -> Result<(), SendError> {
        if self.close.is_some() {
            return Err(SendError::Closed);
        }
        queue_control(self.conn, self.control_out, self.control, frame)?;
        inc(&self.counters.control_sent);
        Ok(())
    }

    pub(crate) fn close(&mut self, reason: &str) {
        if self.close.is_none() {
            *self.close = Some(reason.to_owned());
        }
    }

    pub(crate) fn quic_stats(&self) -> quinn_proto::ConnectionStats {
        self.conn.stats()
    }

    pub(crate) fn stats(&self) -> LinkStats {
        link_stats(self.conn, self.counters, self.max_datagram)
    }
}

/// Commands from other threads ([`LinkHandle`]s) waiting for [`Core::run_commands`].
#[derive(Debug)]
pub struct CommandQueue(pub(crate) crossbeam_channel::Receiver<Command>);

/// The reactor's sans-IO state: see the [module documentation](super).
pub struct Core {
    endpoint: Endpoint,
    server_config: Option<Arc<ServerConfig>>,
    settings: TransportSettings,
    app: Box<dyn CallApp>,
    conns: Vec<Option<Entry>>,
    live: usize,
    next_id: u64,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    dirty: Vec<usize>,
    scratch: Vec<u8>,
    server: Arc<ServerCounters>,
    commands: Commands,
    max_segments: usize,
    shutting_down: bool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("connections", &self.live)
            .field("timers", &self.timers.len())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core serving `server_config` (see [`crate::quinn_server_config`]), with the
    /// transport `settings` for joins, rate limits and timeouts. `max_segments` is
    /// how many datagrams one transmit may carry (GSO; 1 without).
    pub fn new(
        server_config: Arc<ServerConfig>,
        settings: TransportSettings,
        app: Box<dyn CallApp>,
        max_segments: usize,
    ) -> (Core, CommandQueue) {
        let (tx, rx) = crossbeam_channel::bounded(4096);
        let core = Core::with_commands(
            Some(server_config),
            settings,
            app,
            max_segments,
            Commands { tx, waker: None },
            Arc::new(ServerCounters::default()),
        );
        (core, CommandQueue(rx))
    }

    pub(crate) fn with_commands(
        server_config: Option<Arc<ServerConfig>>,
        settings: TransportSettings,
        app: Box<dyn CallApp>,
        max_segments: usize,
        commands: Commands,
        server: Arc<ServerCounters>,
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
            app,
            conns: Vec::new(),
            live: 0,
            next_id: 1,
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            scratch: Vec::with_capacity(64 * 1024),
            server,
            commands,
            max_segments: max_segments.max(1),
            shutting_down: false,
        }
    }

    /// Server-wide counters.
    pub fn stats(&self) -> crate::ServerStats {
        self.server.snapshot()
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

    /// One UDP payload arrived from `remote` (to `local_ip`, if known).
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
                if self.shutting_down || self.server_config.is_none() {
                    let t = self.endpoint.refuse(incoming, &mut self.scratch);
                    out.push(&t, &self.scratch[..t.size]);
                    return;
                }
                self.scratch.clear();
                match self.endpoint.accept(
                    incoming,
                    now,
                    &mut self.scratch,
                    self.server_config.clone(),
                ) {
                    Ok((ch, conn)) => self.insert(ch, conn, now),
                    Err(e) => {
                        tracing::debug!(error = %e.cause, %remote, "refused a connection");
                        inc(&self.server.handshake_failed);
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

    fn insert(&mut self, ch: ConnectionHandle, conn: Connection, now: Instant) {
        let phase = Phase::AwaitJoin {
            deadline: now + self.settings.join_timeout,
            stream: None,
            decoder: ControlDecoder::new(),
        };
        self.insert_with(ch, conn, now, phase);
    }

    fn insert_with(&mut self, ch: ConnectionHandle, conn: Connection, now: Instant, phase: Phase) {
        if self.conns.len() <= ch.0 {
            self.conns.resize_with(ch.0 + 1, || None);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.conns[ch.0] = Some(Entry {
            conn,
            id,
            phase,
            counters: Counters::default(),
            control_out: Vec::new(),
            scheduled: None,
            dirty: false,
            connected: false,
        });
        self.live += 1;
        self.drive(ch.0, now);
    }

    /// Dials a media server: QUIC handshake, then `Join` on a control stream; the
    /// `dialer` gets the call's [`NewCall`] on `Accept` (and returns the call to run)
    /// or the error. Works on a core with or without a server configuration.
    pub fn connect(
        &mut self,
        now: Instant,
        config: quinn_proto::ClientConfig,
        remote: SocketAddr,
        server_name: &str,
        join: Join,
        dialer: Box<dyn Dialer>,
    ) {
        match self.endpoint.connect(now, config, remote, server_name) {
            Ok((ch, conn)) => {
                let phase = Phase::Dialing {
                    deadline: now + self.settings.join_timeout,
                    stream: None,
                    decoder: ControlDecoder::new(),
                    join,
                    dialer: Some(dialer),
                };
                self.insert_with(ch, conn, now, phase);
            }
            Err(e) => dialer.failed(ConnectError::Connect(e)),
        }
    }

    /// Runs a command from another thread.
    pub(crate) fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Control { key, frame } => {
                if let Some(e) = self.entry(key)
                    && matches!(e.phase, Phase::Live(_))
                    && e.queue_control(&frame).is_ok()
                {
                    inc(&e.counters.control_sent);
                    self.mark_dirty(key.index);
                }
            }
            Command::Close { key, reason } => {
                if self.entry(key).is_some() {
                    self.leave(key.index, now, reason);
                    self.drive(key.index, now);
                }
            }
            Command::Shutdown => self.shutdown(now),
            Command::Connect(dial) => {
                let Dial {
                    config,
                    remote,
                    server_name,
                    join,
                    dialer,
                } = *dial;
                self.connect(now, config, remote, &server_name, join, dialer);
            }
        }
    }

    /// Runs every command waiting in `rx`.
    pub fn run_commands(&mut self, queue: &CommandQueue, now: Instant) {
        while let Ok(cmd) = queue.0.try_recv() {
            self.command(cmd, now);
        }
    }

    fn entry(&mut self, key: ConnKey) -> Option<&mut Entry> {
        self.conns
            .get_mut(key.index)
            .and_then(Option::as_mut)
            .filter(|e| e.id == key.id)
    }

    fn mark_dirty(&mut self, ch: usize) {
        if let Some(e) = self.conns.get_mut(ch).and_then(Option::as_mut)
            && !e.dirty
        {
            e.dirty = true;
            self.dirty.push(ch);
        }
    }

    /// Closes every connection ([`CloseReason::ServerShutdown`] at the peers) and
    /// refuses new ones; the shell keeps turning until the connections drained.
    pub fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        for ch in 0..self.conns.len() {
            let Some(e) = self.conns[ch].as_mut() else {
                continue;
            };
            if let Phase::Dialing { dialer, .. } = &mut e.phase
                && let Some(d) = dialer.take()
            {
                d.failed(ConnectError::Connection(
                    quinn_proto::ConnectionError::LocallyClosed,
                ));
            }
            if let Phase::Live(_) = e.phase {
                self.end_call(ch, &CloseReason::ServerShutdown);
            }
            let Some(e) = self.conns[ch].as_mut() else {
                continue;
            };
            if !matches!(e.phase, Phase::Closed) || !e.conn.is_closed() {
                e.close(now, CloseCode::ServerShutdown, "server shutdown");
            }
            self.drive(ch, now);
        }
    }

    /// The earliest instant [`Core::poll_timers`] has work (QUIC timers, join and
    /// leave deadlines, call ticks).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Runs everything due at `now`: QUIC timeouts, deadlines and call ticks.
    pub fn poll_timers(&mut self, now: Instant) {
        while let Some(&Reverse((t, ch, id))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(e) = self.conns.get_mut(ch).and_then(Option::as_mut) else {
                continue;
            };
            if e.id != id || e.scheduled != Some(t) {
                continue; // superseded by an earlier entry
            }
            e.scheduled = None;
            self.on_due(ch, now);
            self.mark_dirty(ch);
        }
        // Stale entries (superseded deadlines) stay until their time; bound them.
        if self.timers.len() > 4 * self.live + 1024 {
            let live: Vec<_> = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(ch, e)| {
                    let e = e.as_ref()?;
                    Some(Reverse((e.scheduled?, ch, e.id)))
                })
                .collect();
            self.timers = BinaryHeap::from(live);
        }
    }

    fn on_due(&mut self, ch: usize, now: Instant) {
        let Some(e) = self.conns[ch].as_mut() else {
            return;
        };
        if e.conn.poll_timeout().is_some_and(|t| t <= now) {
            e.conn.handle_timeout(now);
        }
        match &mut e.phase {
            Phase::AwaitJoin { deadline, .. } if *deadline <= now => {
                inc(if e.connected {
                    &self.server.join_failed
                } else {
                    &self.server.handshake_failed
                });
                e.close(now, CloseCode::JoinTimeout, "no join received in time");
            }
            Phase::Dialing {
                deadline, dialer, ..
            } if *deadline <= now => {
                let dialer = dialer.take();
                e.close(now, CloseCode::JoinTimeout, "no accept received in time");
                if let Some(d) = dialer {
                    d.failed(ConnectError::Timeout);
                }
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
            Phase::Live(_) => self.run_ticks(ch, now),
            _ => {}
        }
        self.drive(ch, now);
    }

    fn run_ticks(&mut self, ch: usize, now: Instant) {
        let Some(Entry {
            conn,
            phase: Phase::Live(live),
            counters,
            control_out,
            ..
        }) = self.conns[ch].as_mut()
        else {
            return;
        };
        let max_datagram = conn.datagrams().max_size();
        let mut close = None;
        while live.next_tick <= now && close.is_none() {
            let behind = now.saturating_duration_since(live.next_tick);
            if behind > MAX_BEHIND {
                let skipped = behind.as_nanos() / TICK.as_nanos();
                live.call
                    .skipped(u64::try_from(skipped).unwrap_or(u64::MAX));
                live.next_tick = now;
            }
            let scheduled = live.next_tick;
            let mut link = Link {
                inner: LinkInner {
                    conn: &mut *conn,
                    counters,
                    control_out: &mut *control_out,
                    control: live.control,
                    close: &mut close,
                    max_datagram,
                },
            };
            live.call.tick(scheduled, &mut link);
            live.next_tick += TICK;
        }
        if let Some(reason) = close {
            self.leave(ch, now, reason);
        }
    }

    /// Leaves a live call: `Leave` on the control stream, `ended` + `release`, then a
    /// normal close once acknowledged (or after [`LEAVE_GRACE`]).
    fn leave(&mut self, ch: usize, now: Instant, reason: String) {
        let Some(e) = self.conns[ch].as_mut() else {
            return;
        };
        let Some(control) = e.control_stream() else {
            e.close(now, CloseCode::Normal, &reason);
            return;
        };
        if !matches!(e.phase, Phase::Live(_)) {
            return;
        }
        let closed = CloseReason::Closed {
            reason: reason.clone(),
        };
        self.end_call(ch, &closed);
        let Some(e) = self.conns[ch].as_mut() else {
            return;
        };
        let frame = encode_control(&ControlMessage::Leave(Leave {
            reason: reason.clone(),
        }));
        // `end_call` left the phase `Closed`: queue on the stream directly.
        let queued = frame
            .is_ok_and(|f| queue_control(&mut e.conn, &mut e.control_out, control, &f).is_ok());
        if queued {
            e.phase = Phase::Leaving {
                deadline: now + LEAVE_GRACE,
                control,
                reason,
                finished: false,
            };
            e.finish_leave();
        } else {
            e.close(now, CloseCode::Normal, &reason);
        }
        self.mark_dirty(ch);
    }

    /// Ends the live call of `ch` with `reason` (leaves the phase `Closed`; the caller
    /// closes the connection if needed).
    fn end_call(&mut self, ch: usize, reason: &CloseReason) {
        let Some(e) = self.conns[ch].as_mut() else {
            return;
        };
        let Phase::Live(_) = e.phase else {
            return;
        };
        let Phase::Live(live) = std::mem::replace(&mut e.phase, Phase::Closed) else {
            return;
        };
        let max_datagram = e.conn.datagrams().max_size();
        let stats = link_stats(&e.conn, &e.counters, max_datagram);
        let Live {
            call,
            join,
            server_side,
            ..
        } = *live;
        tracing::debug!(remote = %e.conn.remote_address(), %reason, "media connection closed");
        call.ended(reason, &stats);
        if server_side {
            self.server.active.fetch_sub(1, Ordering::Relaxed);
            self.app.release(&join, reason);
        }
    }

    /// Processes what a connection has after input: endpoint and application
    /// events, the control stream, received datagrams.
    fn drive(&mut self, ch: usize, now: Instant) {
        let Some(e) = self.conns.get_mut(ch).and_then(Option::as_mut) else {
            return;
        };
        while let Some(ev) = e.conn.poll_endpoint_events() {
            if let Some(back) = self.endpoint.handle_event(ConnectionHandle(ch), ev) {
                e.conn.handle_event(back);
            }
        }
        let mut lost = None;
        let mut readable = false;
        while let Some(ev) = e.conn.poll() {
            match ev {
                Event::Stream(StreamEvent::Readable { .. } | StreamEvent::Opened { .. }) => {
                    readable = true;
                }
                Event::Connected => {
                    e.connected = true;
                    if let Phase::Dialing { stream, join, .. } = &mut e.phase
                        && stream.is_none()
                        && let Some(id) = e.conn.streams().open(Dir::Bi)
                    {
                        *stream = Some(id);
                        let frame = encode_control(&ControlMessage::Join(join.clone()));
                        if let Ok(f) = frame {
                            let _ = queue_control(&mut e.conn, &mut e.control_out, id, &f);
                        }
                    }
                }
                Event::ConnectionLost { reason } => lost = Some(reason),
                Event::Stream(StreamEvent::Finished { id }) => {
                    if let Phase::Leaving {
                        control, reason, ..
                    } = &mut e.phase
                        && *control == id
                    {
                        let reason = std::mem::take(reason);
                        e.close(now, CloseCode::Normal, &reason);
                    }
                }
                Event::Stream(StreamEvent::Writable { .. }) => e.flush_control(),
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
            self.read_control(ch, now);
        }
        self.read_datagrams(ch, now);
        if let Some(err) = lost {
            self.on_lost(ch, &err);
        }
        self.mark_dirty(ch);
    }

    fn on_lost(&mut self, ch: usize, err: &quinn_proto::ConnectionError) {
        let Some(e) = self.conns[ch].as_mut() else {
            return;
        };
        match &mut e.phase {
            Phase::Live(_) => {
                let reason = CloseReason::from_connection_error(err, self.settings.idle_timeout);
                self.end_call(ch, &reason);
            }
            Phase::Dialing { dialer, .. } => {
                let dialer = dialer.take();
                e.phase = Phase::Closed;
                if let Some(d) = dialer {
                    d.failed(ConnectError::Connection(err.clone()));
                }
            }
            Phase::AwaitJoin { .. } => {
                tracing::debug!(error = %err, "connection lost before join");
                inc(if e.connected {
                    &self.server.join_failed
                } else {
                    &self.server.handshake_failed
                });
                e.phase = Phase::Closed;
            }
            _ => e.phase = Phase::Closed,
        }
    }

    fn read_datagrams(&mut self, ch: usize, now: Instant) {
        let Some(e) = self.conns[ch].as_mut() else {
            return;
        };
        while let Some(bytes) = e.conn.datagrams().recv() {
            inc(&e.counters.received);
            let live = match &mut e.phase {
                Phase::Live(live) => live,
                Phase::AwaitJoin { .. } | Phase::Rejecting { .. } | Phase::Dialing { .. } => {
                    inc(&e.counters.pre_accept_dropped);
                    inc(&self.server.pre_accept_dropped);
                    continue;
                }
                // The call is over: nobody takes datagrams any more.
                Phase::Leaving { .. } | Phase::Closed => {
                    inc(&e.counters.queue_full_dropped);
                    continue;
                }
            };
            if let Some(header) = e.counters.check_datagram(&bytes, &mut live.buckets, now) {
                inc(&e.counters.delivered);
                live.call.on_datagram(&header, &bytes[HEADER_LEN..], now);
            }
        }
    }

    /// Reads the control stream into its decoder and acts on complete messages.
    fn read_control(&mut self, ch: usize, now: Instant) {
        let Some(e) = self.conns[ch].as_mut() else {
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
            } => (*id, decoder),
            Phase::Live(l) => (l.control, &mut l.decoder),
            _ => return,
        };
        let mut ended = false;
        let mut stream = e.conn.recv_stream(id);
        match stream.read(true) {
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
        if matches!(e.phase, Phase::AwaitJoin { .. }) {
            self.on_join_input(ch, now, ended);
        } else if matches!(e.phase, Phase::Dialing { .. }) {
            self.on_dial_input(ch, now, ended);
        } else {
            self.on_live_control(ch, now);
        }
    }

    fn on_join_input(&mut self, ch: usize, now: Instant, ended: bool) {
        let Some(e) = self.conns[ch].as_mut() else {
            return;
        };
        let Phase::AwaitJoin {
            decoder, stream, ..
        } = &mut e.phase
        else {
            return;
        };
        let Some(control) = *stream else {
            return;
        };
        let failure = match decoder.poll() {
            None if ended => "control stream ended during admission".to_owned(),
            None => return,
            Some(Err(err)) => format!("invalid join: {err}"),
            Some(Ok(ControlMessage::Join(join))) => {
                let decoder = std::mem::take(decoder);
                return self.admit(ch, now, control, decoder, join);
            }
            Some(Ok(other)) => format!("expected a join message, got {}", other.kind()),
        };
        tracing::debug!(remote = %e.conn.remote_address(), detail = %failure, "closing before admission");
        inc(&self.server.join_failed);
        e.close(now, CloseCode::ProtocolError, &failure);
    }

    /// Client side: the server's answer to our `Join`.
    fn on_dial_input(&mut self, ch: usize, now: Instant, ended: bool) {
        let Some(e) = self.conns[ch].as_mut() else {
            return;
        };
        let Phase::Dialing {
            decoder,
            stream: Some(control),
            join,
            dialer,
            ..
        } = &mut e.phase
        else {
            return;
        };
        let control = *control;
        let failure = match decoder.poll() {
            None if ended => ConnectError::Protocol("control stream ended during admission".into()),
            None => return,
            Some(Err(err)) => ConnectError::Protocol(format!("invalid reply to join: {err}")),
            Some(Ok(ControlMessage::Reject(r))) => ConnectError::Rejected(r),
            Some(Ok(ControlMessage::Accept(accept)))
                if accept.version == PROTOCOL_VERSION && join.codecs.contains(&accept.codec) =>
            {
                let Some(dialer) = dialer.take() else {
                    return;
                };
                let join = join.clone();
                let decoder = std::mem::take(decoder);
                let buckets = rate_limits(&accept, &self.settings);
                let call = dialer.accepted(NewCall {
                    join: &join,
                    accept: &accept,
                    remote: e.conn.remote_address(),
                    now,
                    handle: self.commands.handle(ch, e.id),
                });
                e.phase = Phase::Live(Box::new(Live {
                    server_side: false,
                    call,
                    join,
                    control,
                    decoder,
                    buckets,
                    next_tick: now,
                }));
                return self.on_live_control(ch, now);
            }
            Some(Ok(ControlMessage::Accept(accept))) => ConnectError::Protocol(format!(
                "accept of version {} with codec {} does not answer our join",
                accept.version, accept.codec
            )),
            Some(Ok(other)) => {
                ConnectError::Protocol(format!("expected accept or reject, got {}", other.kind()))
            }
        };
        let dialer = dialer.take();
        let code = if matches!(failure, ConnectError::Rejected(_)) {
            CloseCode::Normal
        } else {
            CloseCode::ProtocolError
        };
        e.close(now, code, &failure.to_string());
        if let Some(d) = dialer {
            d.failed(failure);
        }
    }

    fn admit(
        &mut self,
        ch: usize,
        now: Instant,
        control: StreamId,
        decoder: ControlDecoder,
        join: Join,
    ) {
        let verdict = check_join(&join, &self.settings)
            .and_then(|()| self.app.admit(&join))
            .and_then(|admission| {
                let codec = admission.codec.unwrap_or(join.codecs[0]);
                if join.codecs.contains(&codec) {
                    return Ok(codec);
                }
                self.app.release(
                    &join,
                    &CloseReason::Closed {
                        reason: "rejected".into(),
                    },
                );
                let msg = format!("registry chose {codec}, which the peer did not offer");
                Err(Reject::new(RejectCode::NoCommonCodec, msg))
            });
        let Some(e) = self.conns[ch].as_mut() else {
            return;
        };
        let remote = e.conn.remote_address();
        let session = join.mp_media_session_id;
        let codec = match verdict {
            Ok(codec) => codec,
            Err(reject) => {
                tracing::info!(%remote, %session, reason = %reject, "join rejected");
                inc(&self.server.rejected);
                let body = serde_json::to_string(&reject).unwrap_or_default();
                if let Ok(frame) = encode_control(&ControlMessage::Reject(reject))
                    && queue_control(&mut e.conn, &mut e.control_out, control, &frame).is_ok()
                {
                    let _ = e.conn.send_stream(control).finish();
                }
                e.phase = Phase::Rejecting {
                    deadline: now + REJECT_GRACE,
                    body,
                };
                return;
            }
        };
        let accept = Accept {
            version: PROTOCOL_VERSION,
            codec,
            streams: assign_streams(&join),
            max_payload: MAX_PAYLOAD_LEN as u32,
        };
        // `Live` is the phase that owns the control stream from here on.
        e.phase = Phase::Live(Box::new(Live {
            server_side: true,
            call: Box::new(Nothing),
            join: join.clone(),
            control,
            decoder,
            buckets: rate_limits(&accept, &self.settings),
            next_tick: now,
        }));
        let sent = encode_control(&ControlMessage::Accept(accept.clone()))
            .ok()
            .is_some_and(|frame| e.queue_control(&frame).is_ok());
        if !sent {
            e.close(now, CloseCode::ProtocolError, "could not send accept");
            self.app.release(
                &join,
                &CloseReason::Closed {
                    reason: "accept not sent".into(),
                },
            );
            inc(&self.server.join_failed);
            return;
        }
        inc(&self.server.accepted);
        inc(&self.server.active);
        tracing::info!(%remote, %session, %codec, "join accepted");
        let handle = self.commands.handle(ch, e.id);
        let started = self.app.start(NewCall {
            join: &join,
            accept: &accept,
            remote,
            now,
            handle,
        });
        match started {
            Ok(call) => {
                if let Some(Entry {
                    phase: Phase::Live(live),
                    ..
                }) = self.conns[ch].as_mut()
                {
                    live.call = call;
                }
                // Anything that arrived with the join (control messages) is handled now.
                self.on_live_control(ch, now);
            }
            Err(detail) => {
                tracing::error!(%session, %detail, "cannot start the call");
                self.leave(ch, now, detail);
            }
        }
    }

    fn on_live_control(&mut self, ch: usize, now: Instant) {
        loop {
            let Some(e) = self.conns[ch].as_mut() else {
                return;
            };
            let Phase::Live(live) = &mut e.phase else {
                return;
            };
            let Some(next) = live.decoder.poll() else {
                return;
            };
            match next {
                Ok(ControlMessage::Leave(l)) => {
                    inc(&e.counters.control_received);
                    let phrase = format!("peer left: {}", l.reason);
                    self.end_call(ch, &CloseReason::PeerLeft { reason: l.reason });
                    if let Some(e) = self.conns[ch].as_mut() {
                        e.close(now, CloseCode::Normal, &phrase);
                    }
                    return;
                }
                Ok(m) if m.is_handshake() => {
                    let detail = format!("unexpected {} message after admission", m.kind());
                    return self.protocol_error(ch, now, detail);
                }
                Ok(m) => {
                    inc(&e.counters.control_received);
                    live.call.on_control(m);
                }
                Err(err) => return self.protocol_error(ch, now, format!("control stream: {err}")),
            }
        }
    }

    fn protocol_error(&mut self, ch: usize, now: Instant, detail: String) {
        if let Some(e) = self.conns[ch].as_ref() {
            tracing::debug!(remote = %e.conn.remote_address(), %detail, "closing: protocol error");
        }
        self.end_call(
            ch,
            &CloseReason::ProtocolError {
                detail: detail.clone(),
                by_peer: false,
            },
        );
        if let Some(e) = self.conns[ch].as_mut() {
            e.close(now, CloseCode::ProtocolError, &detail);
        }
    }

    /// Collects the transmits of every connection touched since the last call,
    /// re-arms their timers and frees drained connections.
    pub fn poll_transmits(&mut self, now: Instant, out: &mut Transmits) {
        let dirty = std::mem::take(&mut self.dirty);
        for &ch in &dirty {
            let Some(e) = self.conns.get_mut(ch).and_then(Option::as_mut) else {
                continue;
            };
            e.dirty = false;
            while let Some(ev) = e.conn.poll_endpoint_events() {
                if let Some(back) = self.endpoint.handle_event(ConnectionHandle(ch), ev) {
                    e.conn.handle_event(back);
                }
            }
            loop {
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
                if let Some(back) = self.endpoint.handle_event(ConnectionHandle(ch), ev) {
                    e.conn.handle_event(back);
                }
            }
            if e.conn.is_drained() {
                self.conns[ch] = None;
                self.live -= 1;
                continue;
            }
            if let Some(d) = e.deadline()
                && e.scheduled.is_none_or(|s| d < s)
            {
                e.scheduled = Some(d);
                self.timers.push(Reverse((d, ch, e.id)));
            }
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }
}

/// One token bucket per stream the accept assigns.
fn rate_limits(accept: &Accept, settings: &TransportSettings) -> Vec<(u32, TokenBucket)> {
    accept
        .streams
        .iter()
        .map(|s| (s.stream_id, TokenBucket::new(settings.rate_limit)))
        .collect()
}

/// A connection's counters with its RTT, path datagram limit and lost packets.
fn link_stats(conn: &Connection, counters: &Counters, max_datagram: Option<usize>) -> LinkStats {
    counters.link_stats(conn.rtt(), max_datagram, conn.stats().path.lost_packets)
}

/// The call of a join being admitted, until [`CallApp::start`] gives the real one.
struct Nothing;

impl ReactorCall for Nothing {
    fn on_datagram(&mut self, _: &DatagramHeader, _: &[u8], _: Instant) {}
    fn tick(&mut self, _: Instant, _: &mut Link<'_>) {}
    fn ended(self: Box<Self>, _: &CloseReason, _: &LinkStats) {}
}

#[cfg(test)]
mod tests {
    //! The core on a virtual clock, wired to a `quinn_proto` client in memory: no
    //! sockets, no threads, time moves only when the test says so.
    #![allow(clippy::unwrap_used)]

    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use bytes::BytesMut;
    use quinn_proto::{ConnectionHandle, DatagramEvent, Dir, Endpoint, EndpointConfig};

    use super::*;
    use crate::reactor::{CallApp, Link, NewCall, ReactorCall};
    use crate::registry::Admission;
    use crate::tls::{ServerIdentity, ServerTrust};
    use crate::wire::{Codec, Flags};
    use crate::{TransportSettings, quinn_client_config, quinn_server_config};
    use media_core::packet::TIMESTAMP_STEP;

    const SERVER: &str = "127.0.0.1:4433";
    const CLIENT: &str = "127.0.0.1:5555";

    /// What the test call saw.
    #[derive(Default, Debug)]
    struct Seen {
        ticks: Vec<Instant>,
        skipped: u64,
        datagrams: Vec<(u16, Instant)>,
        ended: Option<CloseReason>,
    }

    struct Call(Arc<Mutex<Seen>>);

    impl ReactorCall for Call {
        fn on_datagram(&mut self, h: &DatagramHeader, _: &[u8], at: Instant) {
            self.0.lock().unwrap().datagrams.push((h.sequence, at));
        }
        fn tick(&mut self, scheduled: Instant, link: &mut Link<'_>) {
            let n = {
                let mut s = self.0.lock().unwrap();
                s.ticks.push(scheduled);
                s.ticks.len()
            };
            let header = DatagramHeader {
                flags: Flags::NONE,
                codec: Codec::Pcm16k,
                stream_id: 1,
                sequence: n as u16,
                timestamp: n as u32 * TIMESTAMP_STEP,
            };
            link.send_datagram(&header, &[0u8; 640]).unwrap();
        }
        fn skipped(&mut self, ticks: u64) {
            self.0.lock().unwrap().skipped += ticks;
        }
        fn ended(self: Box<Self>, reason: &CloseReason, _: &LinkStats) {
            self.0.lock().unwrap().ended = Some(reason.clone());
        }
    }

    struct App(Arc<Mutex<Seen>>);

    impl CallApp for App {
        fn admit(&mut self, _: &Join) -> Result<Admission, Reject> {
            Ok(Admission::new())
        }
        fn start(&mut self, _: NewCall<'_>) -> Result<Box<dyn ReactorCall>, String> {
            Ok(Box::new(Call(self.0.clone())))
        }
    }

    /// A reactor core and one quinn-proto client, both on the virtual clock `now`.
    struct Rig {
        now: Instant,
        core: Core,
        client: Endpoint,
        conn: quinn_proto::Connection,
        ch: ConnectionHandle,
        out: Transmits,
        buf: Vec<u8>,
        received: u64,
        seen: Arc<Mutex<Seen>>,
    }

    impl Rig {
        fn new(settings: TransportSettings) -> Rig {
            let identity = ServerIdentity::self_signed(&["localhost"]).unwrap();
            let trust = ServerTrust::pinned(identity.fingerprint());
            let server_cfg = quinn_server_config(&identity, &settings).unwrap();
            let seen = Arc::new(Mutex::new(Seen::default()));
            let (core, _queue) = Core::new(
                Arc::new(server_cfg),
                settings.clone(),
                Box::new(App(seen.clone())),
                1,
            );
            let now = Instant::now();
            let mut client = Endpoint::new(Arc::new(EndpointConfig::default()), None, true, None);
            let cfg = quinn_client_config(&trust, &settings).unwrap();
            let (ch, conn) = client
                .connect(now, cfg, SERVER.parse().unwrap(), "localhost")
                .unwrap();
            let mut rig = Rig {
                now,
                core,
                client,
                conn,
                ch,
                out: Transmits::default(),
                buf: Vec::new(),
                received: 0,
                seen,
            };
            rig.pump();
            rig
        }

        /// Moves packets both ways until both sides are quiet.
        fn pump(&mut self) {
            let client_addr: SocketAddr = CLIENT.parse().unwrap();
            let server_addr: SocketAddr = SERVER.parse().unwrap();
            loop {
                let mut moved = false;
                loop {
                    self.buf.clear();
                    let Some(t) = self.conn.poll_transmit(self.now, 1, &mut self.buf) else {
                        break;
                    };
                    let data = BytesMut::from(&self.buf[..t.size]);
                    self.core.handle_datagram(
                        self.now,
                        client_addr,
                        None,
                        None,
                        data,
                        &mut self.out,
                    );
                    moved = true;
                }
                self.core.poll_transmits(self.now, &mut self.out);
                let out = std::mem::take(&mut self.out);
                for t in &out.items {
                    let data = BytesMut::from(&out.buf[t.range.clone()]);
                    let mut scratch = Vec::new();
                    if let Some(DatagramEvent::ConnectionEvent(_, ev)) =
                        self.client
                            .handle(self.now, server_addr, None, None, data, &mut scratch)
                    {
                        self.conn.handle_event(ev);
                    }
                    moved = true;
                }
                self.out = out;
                self.out.clear();
                while let Some(ev) = self.conn.poll_endpoint_events() {
                    if let Some(back) = self.client.handle_event(self.ch, ev) {
                        self.conn.handle_event(back);
                    }
                }
                while self.conn.poll().is_some() {}
                while self.conn.datagrams().recv().is_some() {
                    self.received += 1;
                }
                if !moved {
                    return;
                }
            }
        }

        /// Advances the virtual clock by `d` in steps of `step`, running both sides'
        /// timers at each step.
        fn advance(&mut self, d: Duration, step: Duration) {
            let end = self.now + d;
            while self.now < end {
                self.now = (self.now + step).min(end);
                self.core.poll_timers(self.now);
                if self.conn.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.conn.handle_timeout(self.now);
                }
                self.pump();
            }
        }

        /// Opens the control stream and sends a join.
        fn join(&mut self) {
            let id = self.conn.streams().open(Dir::Bi).unwrap();
            let join = Join::new(
                uuid::Uuid::new_v4(),
                uuid::Uuid::new_v4(),
                vec![uuid::Uuid::new_v4()],
                vec![uuid::Uuid::new_v4()],
            );
            let frame = encode_control(&ControlMessage::Join(join)).unwrap();
            assert_eq!(
                self.conn.send_stream(id).write(&frame).unwrap(),
                frame.len()
            );
            self.pump();
        }

        fn send_media(&mut self, seq: u16) {
            let header = DatagramHeader {
                flags: Flags::NONE,
                codec: Codec::Pcm16k,
                stream_id: 2,
                sequence: seq,
                timestamp: u32::from(seq) * TIMESTAMP_STEP,
            };
            let mut buf = vec![0u8; HEADER_LEN + 640];
            DatagramRef::new(header, &[1u8; 640])
                .encode_into(&mut buf)
                .unwrap();
            self.conn.datagrams().send(buf.into(), true).unwrap();
            self.pump();
        }
    }

    #[test]
    fn ticks_on_a_20_ms_grid_catch_up_and_skip() {
        let mut rig = Rig::new(TransportSettings::default());
        rig.join();
        assert_eq!(rig.core.stats().accepted, 1);
        let start = rig.now;
        // One virtual second in 1 ms steps: 50 ticks on the grid, 50 datagrams out.
        rig.advance(Duration::from_millis(999), Duration::from_millis(1));
        {
            let s = rig.seen.lock().unwrap();
            assert_eq!(s.ticks.len(), 50, "{:?}", s.ticks.len());
            for (i, t) in s.ticks.iter().enumerate() {
                assert_eq!(*t, start + TICK * i as u32);
            }
        }
        assert_eq!(rig.received, 50);
        // A 101 ms stall (to 1100 ms): the 6 ticks due (1000..=1100) run at once,
        // still on the grid.
        rig.advance(Duration::from_millis(101), Duration::from_millis(101));
        {
            let s = rig.seen.lock().unwrap();
            assert_eq!(s.ticks.len(), 56);
            assert_eq!(s.ticks[55], start + TICK * 55);
            assert_eq!(s.skipped, 0);
        }
        // A 500 ms stall (to 1600 ms): the tick due at 1120 is 480 ms behind, more
        // than 200 ms, so 24 ticks are skipped and the grid restarts now.
        rig.advance(Duration::from_millis(500), Duration::from_millis(500));
        let s = rig.seen.lock().unwrap();
        assert_eq!(s.skipped, 24, "{s:?}");
        assert_eq!(s.ticks.len(), 57);
        assert_eq!(*s.ticks.last().unwrap(), rig.now);
        assert!(s.ended.is_none());
    }

    #[test]
    fn datagrams_arrive_with_the_clock_of_their_read() {
        let mut rig = Rig::new(TransportSettings::default());
        // Before the join: dropped and counted.
        rig.send_media(0);
        rig.join();
        assert_eq!(rig.core.stats().pre_accept_dropped, 1);
        for seq in 1..=3 {
            rig.advance(Duration::from_millis(7), Duration::from_millis(7));
            rig.send_media(seq);
        }
        let s = rig.seen.lock().unwrap();
        let seqs: Vec<u16> = s.datagrams.iter().map(|d| d.0).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(s.datagrams[2].1, rig.now);
        assert_eq!(
            s.datagrams[2].1 - s.datagrams[1].1,
            Duration::from_millis(7)
        );
    }

    #[test]
    fn a_silent_peer_is_closed_at_the_join_timeout_and_drained() {
        let settings = TransportSettings {
            join_timeout: Duration::from_secs(2),
            ..TransportSettings::default()
        };
        let mut rig = Rig::new(settings);
        assert_eq!(rig.core.connections(), 1);
        rig.advance(Duration::from_millis(1990), Duration::from_millis(10));
        assert_eq!(rig.core.stats().join_failed, 0);
        rig.advance(Duration::from_millis(20), Duration::from_millis(10));
        assert_eq!(rig.core.stats().join_failed, 1);
        assert!(rig.conn.is_closed());
        // Both sides drain (3 PTOs) and the core forgets the connection.
        rig.advance(Duration::from_secs(3), Duration::from_millis(10));
        assert_eq!(rig.core.connections(), 0);
        assert!(rig.seen.lock().unwrap().ticks.is_empty());
    }

    #[test]
    fn shutdown_ends_the_call_and_drains() {
        let mut rig = Rig::new(TransportSettings::default());
        rig.join();
        rig.advance(Duration::from_millis(100), Duration::from_millis(5));
        let now = rig.now;
        rig.core.shutdown(now);
        rig.pump();
        assert_eq!(
            rig.seen.lock().unwrap().ended,
            Some(CloseReason::ServerShutdown)
        );
        assert!(rig.conn.is_closed());
        rig.advance(Duration::from_secs(3), Duration::from_millis(10));
        assert!(rig.core.is_idle_after_shutdown());
    }
}
