//! The load tool's far ends on reactor threads: every peer is a [`ReactorCall`] dialled
//! from a [`ReactorClient`], sending a looped signal at 50 frames per second and
//! playing out what comes back, so the peers of a load step cost what the processor
//! costs per call and not the task engine's 1.3–1.5× more.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use media_blob::MediaSessionConfig;
use media_core::codec::{OpusConfig, new_decoder};
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::packet::AudioPacket;
use media_core::playout::{ReceiveConfig, ReceivePipeline};
use media_core::send::{SendConfig, SendPipeline};
use transport::reactor::{Dialer, Link, NewCall, ReactorCall, ReactorClient};
use transport::wire::{Codec, DatagramHeader, StreamDirection};
use transport::{
    ClientConfig, CloseReason, ConnectError, LinkStats, ServerTrust, TransportSettings,
};

use crate::peer::{join_for, next_frame, resolve_mp_uri};
use platform::call::{fill_packet, flush_send};
use platform::health::{LATE_TICK, LoadMeter};

const DIALING: u8 = 0;
const CONNECTED: u8 = 1;
const FAILED: u8 = 2;
const ENDED: u8 = 3;

/// One peer's figures, shared with the load tool's thread.
#[derive(Debug, Default)]
struct PeerCounters {
    state: AtomicU8,
    stop: AtomicBool,
    packets_received: AtomicU64,
    udp_rx: AtomicU64,
    udp_tx: AtomicU64,
}

/// What every peer of a step shares.
#[derive(Debug, Clone)]
pub(crate) struct PeerSetup {
    pub(crate) trust: ServerTrust,
    pub(crate) codec: Codec,
    pub(crate) opus: OpusConfig,
    pub(crate) receive: ReceiveConfig,
    pub(crate) transport: TransportSettings,
    pub(crate) source: Arc<[i16]>,
    pub(crate) meter: Arc<LoadMeter>,
}

/// The peers of one load step, on `threads` reactor threads.
pub(crate) struct ReactorPeers {
    clients: Vec<ReactorClient>,
    peers: Vec<Arc<PeerCounters>>,
}

impl ReactorPeers {
    /// Dials one peer per blob, one every `spacing` (so that the calls' 20 ms grids
    /// spread over the period), and waits up to `wait` for them all to be admitted.
    pub(crate) fn dial(
        blobs: &[MediaSessionConfig],
        setup: &PeerSetup,
        threads: usize,
        spacing: Duration,
        wait: Duration,
    ) -> Result<Self, String> {
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let clients = (0..threads.max(1))
            .map(|_| ReactorClient::bind(local, &setup.transport).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut peers = Vec::with_capacity(blobs.len());
        let t0 = Instant::now();
        for (i, blob) in blobs.iter().enumerate() {
            let server = resolve_mp_uri(blob).map_err(|e| e.to_string())?;
            let join = join_for(blob, vec![setup.codec]);
            let mut cfg = ClientConfig::new(server, setup.trust.clone());
            cfg.settings = setup.transport.clone();
            let counters = Arc::new(PeerCounters::default());
            let call = LoadCall::new(setup, counters.clone())?;
            clients[i % clients.len()]
                .connect(&cfg, join, Box::new(LoadDialer(Box::new(call))))
                .map_err(|e| e.to_string())?;
            peers.push(counters);
            let next = t0 + spacing * u32::try_from(i + 1).unwrap_or(u32::MAX);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline
            && peers
                .iter()
                .any(|p| p.state.load(Ordering::Acquire) == DIALING)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(ReactorPeers { clients, peers })
    }

    /// Peers admitted and still running.
    pub(crate) fn connected(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| p.state.load(Ordering::Acquire) == CONNECTED)
            .count()
    }

    /// Media datagrams received by all peers.
    pub(crate) fn packets_received(&self) -> u64 {
        self.peers
            .iter()
            .map(|p| p.packets_received.load(Ordering::Relaxed))
            .sum()
    }

    /// UDP datagrams (received, sent) by all peers' connections, as of their last
    /// once-a-second update.
    pub(crate) fn udp(&self) -> (u64, u64) {
        self.peers.iter().fold((0, 0), |(rx, tx), p| {
            (
                rx + p.udp_rx.load(Ordering::Relaxed),
                tx + p.udp_tx.load(Ordering::Relaxed),
            )
        })
    }

    /// Every peer leaves; the reactor threads stop.
    pub(crate) fn stop(self) {
        for p in &self.peers {
            p.stop.store(true, Ordering::Release);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline
            && self
                .peers
                .iter()
                .any(|p| p.state.load(Ordering::Acquire) == CONNECTED)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        for c in &self.clients {
            c.shutdown();
        }
    }
}

/// Hands the prepared call to the reactor once the processor admits it.
struct LoadDialer(Box<LoadCall>);

impl Dialer for LoadDialer {
    fn accepted(self: Box<Self>, call: NewCall<'_>) -> Box<dyn ReactorCall> {
        let mut c = self.0;
        let stream = |dir| {
            call.accept
                .streams
                .iter()
                .find(|s| s.direction == dir)
                .map(|s| s.stream_id)
        };
        // The processor receives on render streams and sends on source streams.
        c.send_stream = stream(StreamDirection::Render);
        c.recv_stream = stream(StreamDirection::Source);
        c.counters.state.store(CONNECTED, Ordering::Release);
        c
    }

    fn failed(self: Box<Self>, error: ConnectError) {
        tracing::debug!(%error, "load peer could not join");
        self.0.counters.state.store(FAILED, Ordering::Release);
    }
}

/// One peer: a looped signal out, playout of what comes back.
struct LoadCall {
    counters: Arc<PeerCounters>,
    meter: Arc<LoadMeter>,
    source: Arc<[i16]>,
    pos: usize,
    send: SendPipeline,
    recv: ReceivePipeline,
    tx_pkt: AudioPacket,
    rx_pkt: AudioPacket,
    out: Pcm16kFrame,
    first: bool,
    receiving: bool,
    send_stream: Option<u32>,
    recv_stream: Option<u32>,
    ticks: u64,
}

impl LoadCall {
    fn new(setup: &PeerSetup, counters: Arc<PeerCounters>) -> Result<Self, String> {
        let kind = setup.codec;
        let send = SendPipeline::new(&SendConfig {
            codec: kind,
            opus: setup.opus,
            queue_frames: 4,
            ..SendConfig::default()
        })
        .map_err(|e| e.to_string())?;
        let decoder = new_decoder(kind).map_err(|e| e.to_string())?;
        Ok(LoadCall {
            counters,
            meter: setup.meter.clone(),
            source: setup.source.clone(),
            pos: 0,
            send,
            recv: ReceivePipeline::new(setup.receive, decoder),
            tx_pkt: AudioPacket::empty(kind),
            rx_pkt: AudioPacket::empty(kind),
            out: Pcm16kFrame::silent(),
            first: true,
            receiving: false,
            send_stream: None,
            recv_stream: None,
            ticks: 0,
        })
    }
}

impl ReactorCall for LoadCall {
    fn on_datagram(&mut self, header: &DatagramHeader, payload: &[u8], received_at: Instant) {
        if Some(header.stream_id) != self.recv_stream {
            return;
        }
        self.counters
            .packets_received
            .fetch_add(1, Ordering::Relaxed);
        if fill_packet(&mut self.rx_pkt, header, payload)
            && self.recv.handle_packet(received_at, &self.rx_pkt).is_ok()
        {
            self.receiving = true;
        }
    }

    fn tick(&mut self, scheduled: Instant, link: &mut Link<'_>) {
        let start = Instant::now();
        if self.counters.stop.load(Ordering::Acquire) {
            link.close("peer done");
            return;
        }
        let mut frame = [0i16; FRAME_SAMPLES];
        next_frame(&self.source, &mut self.pos, true, &mut frame);
        if let Some(stream) = self.send_stream
            && self
                .send
                .push_pcm16k_frame(&Pcm16kFrame::new(frame))
                .is_ok()
        {
            flush_send(
                &mut self.send,
                &mut self.tx_pkt,
                |h, p| link.send_datagram(h, p).is_ok(),
                stream,
                &mut self.first,
            );
        }
        if self.receiving {
            self.recv.poll_frame(scheduled, &mut self.out);
        }
        self.ticks += 1;
        if self.ticks.is_multiple_of(50) {
            let q = link.quic_stats();
            self.counters
                .udp_rx
                .store(q.udp_rx.datagrams, Ordering::Relaxed);
            self.counters
                .udp_tx
                .store(q.udp_tx.datagrams, Ordering::Relaxed);
        }
        self.meter.record_tick(
            start.elapsed(),
            start.saturating_duration_since(scheduled) > LATE_TICK,
        );
    }

    fn ended(self: Box<Self>, reason: &CloseReason, _: &LinkStats) {
        tracing::debug!(%reason, "load peer ended");
        self.counters.state.store(ENDED, Ordering::Release);
    }
}
