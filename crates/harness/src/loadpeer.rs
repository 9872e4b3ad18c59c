//! The load tool's far ends: one [`FarCall`](crate::farcall) per call, dialled from a
//! few [`ReactorClient`]s, sending a looped signal at 50 frames per second and playing
//! out what comes back. They run on reactor threads like the processor's calls, so a
//! load step's peers cost what the processor costs per call.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use media_blob::MediaSessionConfig;
use media_core::call::CallConfig;
use media_core::codec::{Codec, OpusConfig};
use media_core::playout::ReceiveConfig;
use transport::reactor::ReactorClient;
use transport::{ClientConfig, ServerTrust, TransportSettings};

use crate::farcall::{CONNECTED, DIALING, FarOptions, FarShared, PeerSource, SourceFrames};
use crate::lock;
use crate::peer::{FarDialer, join_for, local_for, resolve_mp_uri};

/// What every peer of a step shares.
#[derive(Debug, Clone)]
pub(crate) struct PeerSetup {
    pub(crate) trust: ServerTrust,
    pub(crate) codec: Codec,
    pub(crate) opus: OpusConfig,
    pub(crate) receive: ReceiveConfig,
    pub(crate) transport: TransportSettings,
    pub(crate) source: Arc<[i16]>,
}

/// The peers of one load step, on a few reactor threads.
pub(crate) struct LoadPeers {
    clients: Vec<ReactorClient>,
    peers: Vec<Arc<FarShared>>,
}

impl LoadPeers {
    /// Dials one peer per blob on `threads` clients, one every `spacing` (so that the
    /// calls' 20 ms grids spread over the period), and waits up to `wait` for them all
    /// to be admitted.
    pub(crate) fn dial(
        blobs: &[MediaSessionConfig],
        setup: &PeerSetup,
        threads: usize,
        spacing: Duration,
        wait: Duration,
    ) -> Result<Self, String> {
        let Some(first) = blobs.first() else {
            return Ok(LoadPeers {
                clients: Vec::new(),
                peers: Vec::new(),
            });
        };
        let local = local_for(resolve_mp_uri(first).map_err(|e| e.to_string())?);
        let clients = (0..threads.max(1))
            .map(|_| ReactorClient::bind(local, &setup.transport).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut peers = Vec::with_capacity(blobs.len());
        let t0 = Instant::now();
        for (i, blob) in blobs.iter().enumerate() {
            let server = resolve_mp_uri(blob).map_err(|e| e.to_string())?;
            let mut cfg = ClientConfig::new(server, setup.trust.clone());
            cfg.settings = setup.transport.clone();
            let shared = Arc::new(FarShared::default());
            let opts = FarOptions {
                config: CallConfig {
                    opus: setup.opus,
                    receive: setup.receive,
                    ..CallConfig::new(setup.codec)
                },
                record: false,
                log_arrivals: false,
                run_ticks: None,
                shared: shared.clone(),
                commands: None,
                events: None,
                done: None,
                voices: None,
            };
            let source =
                SourceFrames::new(PeerSource::Loop(setup.source.clone()), Duration::MAX, None);
            let dialer = FarDialer {
                opts,
                source: Box::new(source),
                ready: None,
            };
            clients[i % clients.len()]
                .connect(&cfg, join_for(blob, vec![setup.codec]), Box::new(dialer))
                .map_err(|e| e.to_string())?;
            peers.push(shared);
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
        Ok(LoadPeers { clients, peers })
    }

    /// Peers admitted and still running.
    pub(crate) fn connected(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| p.state.load(Ordering::Acquire) == CONNECTED)
            .count()
    }

    /// Media packets received by all peers (as of their last once-a-second update).
    pub(crate) fn packets_received(&self) -> u64 {
        self.peers
            .iter()
            .map(|p| lock(&p.stats).packets_received)
            .sum()
    }

    /// Playout ticks run and those that ran late, all peers (as of their last
    /// once-a-second update).
    pub(crate) fn ticks(&self) -> (u64, u64) {
        self.peers.iter().fold((0, 0), |(t, l), p| {
            let s = lock(&p.stats);
            (t + s.ticks, l + s.late_ticks)
        })
    }

    /// UDP datagrams (received, sent) by all peers' connections, as of their last
    /// once-a-second update.
    pub(crate) fn udp(&self) -> (u64, u64) {
        self.peers.iter().fold((0, 0), |(rx, tx), p| {
            let link = lock(&p.stats).link;
            (rx + link.transport_received, tx + link.transport_sent)
        })
    }

    /// Every peer leaves; the reactor threads stop.
    pub(crate) fn stop(self) {
        for p in &self.peers {
            p.stop.store(true, Ordering::Release);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && self.connected() > 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        for c in &self.clients {
            c.shutdown();
        }
    }
}
