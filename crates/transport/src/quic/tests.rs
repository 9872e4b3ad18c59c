//! The core and the reactor's call dispatcher on a virtual clock, wired to a
//! quinn-proto client in memory: no sockets, no threads, time moves only when the test
//! says so.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use media_core::codec::Codec;
use media_core::link::{CallHandler, CloseReason, LinkEvent, MediaLink};
use media_core::packet::{AudioPacket, TIMESTAMP_STEP};
use media_core::tick::TickGrid;
use quinn_proto::{ConnectionHandle, DatagramEvent, Dir, Endpoint, EndpointConfig};

use super::*;
use crate::reactor::{CallApp, Calls, NewCall, StartError};
use crate::registry::Admission;
use crate::tls::{ServerIdentity, ServerTrust};
use crate::wire::{
    ControlDecoder, ControlMessage, DatagramRef, Flags, Reject, RejectCode, encode_control,
};
use crate::{TransportSettings, quic_client_config, quic_server_config};

const SERVER: &str = "127.0.0.1:4433";
const CLIENT: &str = "127.0.0.1:5555";

/// What the test call saw.
#[derive(Default, Debug)]
struct Seen {
    ticks: Vec<Instant>,
    packets: Vec<(u16, Instant)>,
    /// The `source` of every packet (0: the mix, else an unmixed speaker's MSI).
    sources: Vec<u32>,
    /// The link's counters at the last tick.
    link: media_core::link::LinkStats,
    ended: Option<CloseReason>,
    released: Option<CloseReason>,
    hang_up_after: Option<usize>,
}

/// A call on a 20 ms grid that sends one PCM packet per tick.
struct Call {
    seen: Arc<Mutex<Seen>>,
    grid: TickGrid,
    packet: AudioPacket,
}

impl CallHandler for Call {
    fn handle_event(&mut self, now: Instant, event: LinkEvent<'_>, _: &mut dyn MediaLink) {
        let mut s = self.seen.lock().unwrap();
        match event {
            LinkEvent::Packet(p) => {
                s.packets.push((p.seq, now));
                s.sources.push(p.source);
            }
            LinkEvent::Closed(r) => s.ended = Some(r.clone()),
            LinkEvent::Control(_) => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant, link: &mut dyn MediaLink) {
        self.seen.lock().unwrap().link = link.stats();
        while let Some(tick) = self.grid.poll(now) {
            let n = {
                let mut s = self.seen.lock().unwrap();
                s.ticks.push(tick.scheduled);
                s.ticks.len()
            };
            self.packet.seq = n as u16;
            self.packet.timestamp = n as u32 * TIMESTAMP_STEP;
            link.send_packet(&self.packet).unwrap();
            if self.seen.lock().unwrap().hang_up_after == Some(n) {
                link.close("enough");
                return;
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.grid.next_deadline())
    }
}

/// A broken call whose deadline never moves past the present.
struct Greedy {
    seen: Arc<Mutex<Seen>>,
    at: Instant,
}

impl CallHandler for Greedy {
    fn handle_event(&mut self, _: Instant, _: LinkEvent<'_>, _: &mut dyn MediaLink) {}

    fn handle_timeout(&mut self, now: Instant, _: &mut dyn MediaLink) {
        self.seen.lock().unwrap().ticks.push(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.at)
    }
}

/// Admits everything, or refuses with `UnknownSession` when `refuse` is set; starts
/// [`Greedy`] calls when `greedy` is set.
struct App {
    seen: Arc<Mutex<Seen>>,
    refuse: bool,
    greedy: bool,
    /// What the admission asks for (unmixed audio).
    streams: media_core::call::AudioStreams,
}

impl CallApp for App {
    fn admit(&mut self, _: &Join) -> Result<Admission, Reject> {
        if self.refuse {
            return Err(Reject::new(RejectCode::UnknownSession, "nobody expected"));
        }
        Ok(Admission::new().with_streams(self.streams))
    }

    fn start(&mut self, call: NewCall<'_>) -> Result<Box<dyn CallHandler>, StartError> {
        if self.greedy {
            return Ok(Box::new(Greedy {
                seen: self.seen.clone(),
                at: call.now,
            }));
        }
        Ok(Box::new(Call {
            seen: self.seen.clone(),
            grid: TickGrid::new(call.now),
            packet: AudioPacket::new(0, 0, Codec::Pcm16k, &[0u8; 640]).unwrap(),
        }))
    }

    fn release(&mut self, _: &Join, reason: &CloseReason) {
        self.seen.lock().unwrap().released = Some(reason.clone());
    }
}

/// A core with its calls and one quinn-proto client, both on the virtual clock `now`.
struct Rig {
    now: Instant,
    core: Core,
    calls: Calls,
    client: Endpoint,
    conn: quinn_proto::Connection,
    ch: ConnectionHandle,
    out: Transmits,
    buf: Vec<u8>,
    received: u64,
    control: Option<quinn_proto::StreamId>,
    replies: ControlDecoder,
    seen: Arc<Mutex<Seen>>,
}

impl Rig {
    fn new(settings: TransportSettings, refuse: bool) -> Rig {
        Self::with_app(settings, refuse, false)
    }

    fn with_app(settings: TransportSettings, refuse: bool, greedy: bool) -> Rig {
        Self::with_streams(
            settings,
            refuse,
            greedy,
            media_core::call::AudioStreams::MIXED,
        )
    }

    fn with_streams(
        settings: TransportSettings,
        refuse: bool,
        greedy: bool,
        streams: media_core::call::AudioStreams,
    ) -> Rig {
        let identity = ServerIdentity::self_signed(&["localhost"]).unwrap();
        let trust = ServerTrust::pinned(identity.fingerprint());
        let server_cfg = quic_server_config(&identity, &settings).unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let core = Core::new(Some(Arc::new(server_cfg)), settings.clone(), 1);
        let calls = Calls::new(
            Box::new(App {
                seen: seen.clone(),
                refuse,
                greedy,
                streams,
            }),
            Arc::new(|_| {}),
        );
        let now = Instant::now();
        let mut client = Endpoint::new(Arc::new(EndpointConfig::default()), None, true, None);
        let cfg = quic_client_config(&trust, &settings).unwrap();
        let (ch, conn) = client
            .connect(now, cfg, SERVER.parse().unwrap(), "localhost")
            .unwrap();
        let mut rig = Rig {
            now,
            core,
            calls,
            client,
            conn,
            ch,
            out: Transmits::default(),
            buf: Vec::new(),
            received: 0,
            control: None,
            replies: ControlDecoder::new(),
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
                self.core
                    .handle_datagram(self.now, client_addr, None, None, data, &mut self.out);
                self.calls.dispatch(&mut self.core, self.now);
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
            if let Some(id) = self.control
                && let Ok(mut chunks) = self.conn.recv_stream(id).read(true)
            {
                while let Ok(Some(c)) = chunks.next(usize::MAX) {
                    self.replies.push(&c.bytes);
                }
                let _ = chunks.finalize();
            }
            if !moved {
                return;
            }
        }
    }

    /// Advances the virtual clock by `d` in steps of `step`, running both sides'
    /// timers and the calls at each step.
    fn advance(&mut self, d: Duration, step: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + step).min(end);
            self.core.handle_timeout(self.now);
            self.calls.dispatch(&mut self.core, self.now);
            self.calls.run_due(&mut self.core, self.now);
            if self.conn.poll_timeout().is_some_and(|t| t <= self.now) {
                self.conn.handle_timeout(self.now);
            }
            self.pump();
        }
    }

    fn send_control(&mut self, msg: &ControlMessage) {
        let id = *self
            .control
            .get_or_insert_with(|| self.conn.streams().open(Dir::Bi).unwrap());
        let frame = encode_control(msg).unwrap();
        assert_eq!(
            self.conn.send_stream(id).write(&frame).unwrap(),
            frame.len()
        );
        self.pump();
    }

    /// Opens the control stream and sends a join.
    fn join(&mut self) {
        self.join_offering(0);
    }

    /// Opens the control stream and sends a join offering `unmixed` streams.
    fn join_offering(&mut self, unmixed: u8) {
        let mut join = Join::new(
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            vec![uuid::Uuid::new_v4()],
            vec![uuid::Uuid::new_v4()],
        );
        join.unmixed = unmixed;
        self.send_control(&ControlMessage::Join(join));
    }

    /// The server's replies on the control stream so far.
    fn replies(&mut self) -> Vec<ControlMessage> {
        std::iter::from_fn(|| self.replies.poll())
            .map(|m| m.unwrap())
            .collect()
    }

    /// Sends one media datagram on stream 2 (the join's render context).
    fn send_media(&mut self, seq: u16) {
        self.send_media_from(seq, 0, |_| {});
    }

    /// Sends one media datagram of `source` (0: the mix) on stream 2, `tamper`ed
    /// with after encoding.
    fn send_media_from(&mut self, seq: u16, source: u32, tamper: impl FnOnce(&mut Vec<u8>)) {
        let header = DatagramHeader {
            flags: Flags::NONE,
            codec: Codec::Pcm16k,
            stream_id: 2,
            sequence: seq,
            timestamp: u32::from(seq) * TIMESTAMP_STEP,
            source,
        };
        let mut buf = vec![0u8; header.len() + 640];
        DatagramRef::new(header, &[1u8; 640])
            .encode_into(&mut buf)
            .unwrap();
        tamper(&mut buf);
        self.conn.datagrams().send(buf.into(), true).unwrap();
        self.pump();
    }
}

#[test]
fn ticks_on_a_20_ms_grid_catch_up_and_skip() {
    let mut rig = Rig::new(TransportSettings::default(), false);
    rig.join();
    assert_eq!(rig.core.stats().accepted, 1);
    assert!(matches!(rig.replies()[..], [ControlMessage::Accept(_)]));
    let start = rig.now;
    // One virtual second in 1 ms steps: 50 ticks on the grid, 50 datagrams out.
    rig.advance(Duration::from_millis(999), Duration::from_millis(1));
    {
        let s = rig.seen.lock().unwrap();
        assert_eq!(s.ticks.len(), 50, "{:?}", s.ticks.len());
        for (i, t) in s.ticks.iter().enumerate() {
            assert_eq!(*t, start + Duration::from_millis(20) * i as u32);
        }
    }
    assert_eq!(rig.received, 50);
    // A 101 ms stall (to 1100 ms): the 6 ticks due (1000..=1100) run at once.
    rig.advance(Duration::from_millis(101), Duration::from_millis(101));
    assert_eq!(rig.seen.lock().unwrap().ticks.len(), 56);
    // A 500 ms stall: more than 200 ms behind, the grid restarts now.
    rig.advance(Duration::from_millis(500), Duration::from_millis(500));
    let s = rig.seen.lock().unwrap();
    assert_eq!(s.ticks.len(), 57);
    assert_eq!(*s.ticks.last().unwrap(), rig.now);
    assert!(s.ended.is_none());
}

#[test]
fn datagrams_arrive_with_the_clock_of_their_read() {
    let mut rig = Rig::new(TransportSettings::default(), false);
    // Before the join: dropped and counted.
    rig.send_media(0);
    rig.join();
    assert_eq!(rig.core.stats().pre_accept_dropped, 1);
    for seq in 1..=3 {
        rig.advance(Duration::from_millis(7), Duration::from_millis(7));
        rig.send_media(seq);
    }
    let s = rig.seen.lock().unwrap();
    let seqs: Vec<u16> = s.packets.iter().map(|d| d.0).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(s.packets[2].1, rig.now);
    assert_eq!(s.packets[2].1 - s.packets[1].1, Duration::from_millis(7));
}

#[test]
fn a_refused_join_gets_a_reject_and_nothing_starts() {
    let mut rig = Rig::new(TransportSettings::default(), true);
    rig.join();
    let replies = rig.replies();
    assert!(
        matches!(&replies[..], [ControlMessage::Reject(r)] if r.code == RejectCode::UnknownSession),
        "{replies:?}"
    );
    assert_eq!(rig.core.stats().rejected, 1);
    assert_eq!(rig.calls.running(), 0);
    rig.advance(Duration::from_secs(2), Duration::from_millis(10));
    assert!(
        rig.conn.is_closed(),
        "closed at the reject grace at the latest"
    );
}

#[test]
fn a_hang_up_sends_leave_ends_the_call_and_releases_the_join() {
    let mut rig = Rig::new(TransportSettings::default(), false);
    rig.seen.lock().unwrap().hang_up_after = Some(3);
    rig.join();
    rig.advance(Duration::from_millis(100), Duration::from_millis(5));
    let replies = rig.replies();
    assert!(
        matches!(&replies[..], [ControlMessage::Accept(_), ControlMessage::Leave(l)] if l.reason == "enough"),
        "{replies:?}"
    );
    let s = rig.seen.lock().unwrap();
    let closed = CloseReason::Closed {
        reason: "enough".into(),
    };
    assert_eq!(s.ended.as_ref(), Some(&closed));
    assert_eq!(s.released.as_ref(), Some(&closed));
    assert_eq!(s.ticks.len(), 3, "no tick after the hang-up");
    assert_eq!(rig.core.stats().active, 0);
}

#[test]
fn a_peer_leave_ends_the_call() {
    let mut rig = Rig::new(TransportSettings::default(), false);
    rig.join();
    rig.advance(Duration::from_millis(40), Duration::from_millis(5));
    rig.send_control(&ControlMessage::Leave(crate::wire::Leave {
        reason: "bye".into(),
    }));
    assert_eq!(
        rig.seen.lock().unwrap().ended,
        Some(CloseReason::PeerLeft {
            reason: "bye".into()
        })
    );
}

#[test]
fn a_silent_peer_is_closed_at_the_join_timeout_and_drained() {
    let settings = TransportSettings {
        join_timeout: Duration::from_secs(2),
        ..TransportSettings::default()
    };
    let mut rig = Rig::new(settings, false);
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
    let mut rig = Rig::new(TransportSettings::default(), false);
    rig.join();
    rig.advance(Duration::from_millis(100), Duration::from_millis(5));
    let now = rig.now;
    rig.core.shutdown(now);
    rig.calls.dispatch(&mut rig.core, now);
    rig.pump();
    assert_eq!(
        rig.seen.lock().unwrap().ended,
        Some(CloseReason::ServerShutdown)
    );
    assert!(rig.conn.is_closed());
    rig.advance(Duration::from_secs(3), Duration::from_millis(10));
    assert!(rig.core.is_idle_after_shutdown());
}

#[test]
fn a_leave_just_before_shutdown_is_still_delivered() {
    let mut rig = Rig::new(TransportSettings::default(), false);
    rig.seen.lock().unwrap().hang_up_after = Some(3);
    rig.join();
    // Ticks at 0 and 20 ms; the third (40 ms) hangs up.
    rig.advance(Duration::from_millis(39), Duration::from_millis(1));
    rig.now += Duration::from_millis(1);
    let now = rig.now;
    rig.core.handle_timeout(now);
    rig.calls.dispatch(&mut rig.core, now);
    rig.calls.run_due(&mut rig.core, now);
    // The process shuts down in the same turn, before the Leave went out.
    rig.core.shutdown(now);
    rig.calls.dispatch(&mut rig.core, now);
    rig.advance(Duration::from_secs(1), Duration::from_millis(5));
    let replies = rig.replies();
    assert!(
        matches!(&replies[..], [ControlMessage::Accept(_), ControlMessage::Leave(l)] if l.reason == "enough"),
        "the far side must hear the Leave, not only a close: {replies:?}"
    );
    assert!(rig.conn.is_closed());
    rig.advance(Duration::from_secs(3), Duration::from_millis(10));
    assert!(rig.core.is_idle_after_shutdown());
}

#[test]
fn a_call_that_always_wants_the_present_runs_once_per_turn() {
    let mut rig = Rig::with_app(TransportSettings::default(), false, true);
    rig.join();
    rig.advance(Duration::from_millis(10), Duration::from_millis(1));
    // One run per turn (ten turns), not a thread frozen in one.
    let ticks = rig.seen.lock().unwrap().ticks.len();
    assert!((10..=11).contains(&ticks), "{ticks}");
}

#[test]
fn unmixed_audio_is_negotiated_and_refused_by_name_otherwise() {
    use media_core::call::AudioStreams;
    // The bot asks for two speakers and the mix; the peer offers four: two granted.
    let mut rig = Rig::with_streams(
        TransportSettings::default(),
        false,
        false,
        AudioStreams::mixed_and_unmixed(2),
    );
    rig.join_offering(4);
    let [ControlMessage::Accept(accept)] = &rig.replies()[..] else {
        panic!("accepted");
    };
    assert_eq!((accept.unmixed, accept.mixed), (2, true));
    rig.advance(Duration::from_millis(20), Duration::from_millis(20));
    rig.send_media_from(1, 0, |_| {});
    rig.send_media_from(1, 7, |_| {});
    rig.send_media_from(1, 9, |_| {});
    // An unknown kind; an unmixed datagram naming MSI 0; one cut inside its MSI.
    rig.send_media_from(2, 7, |b| b[3] = 2);
    rig.send_media_from(2, 7, |b| b[14..18].fill(0));
    rig.send_media_from(2, 7, |b| b.truncate(16));
    rig.advance(Duration::from_millis(20), Duration::from_millis(20));
    {
        let s = rig.seen.lock().unwrap();
        assert_eq!(s.sources, [0, 7, 9]);
        assert_eq!(
            (
                s.link.unknown_kind,
                s.link.unmixed_refused,
                s.link.malformed
            ),
            (1, 1, 1)
        );
    }

    // A bot that asked for nothing but the mix: unmixed datagrams are refused.
    let mut rig = Rig::new(TransportSettings::default(), false);
    rig.join_offering(2);
    let [ControlMessage::Accept(accept)] = &rig.replies()[..] else {
        panic!("accepted");
    };
    assert_eq!((accept.unmixed, accept.mixed), (0, true));
    rig.advance(Duration::from_millis(20), Duration::from_millis(20));
    rig.send_media_from(1, 7, |_| {});
    rig.send_media_from(1, 0, |_| {});
    rig.advance(Duration::from_millis(20), Duration::from_millis(20));
    let s = rig.seen.lock().unwrap();
    assert_eq!(s.sources, [0]);
    assert_eq!(s.link.unmixed_refused, 1);

    // Unmixed only, granted: the peer is told to leave the mix out.
    let mut rig = Rig::with_streams(
        TransportSettings::default(),
        false,
        false,
        AudioStreams::unmixed_only(4),
    );
    rig.join_offering(3);
    let [ControlMessage::Accept(accept)] = &rig.replies()[..] else {
        panic!("accepted");
    };
    assert_eq!((accept.unmixed, accept.mixed), (3, false));
}
