//! Far ends written on quinn from `docs/wire-format.md`, independent of the reactor:
//! [`QuicPeer`] (a well-behaved peer), [`VanishingPeer`] (one that dies without a
//! word), [`QuinnEchoServer`] (a media server for the dialling side) and raw
//! connections for hostile peers.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use transport::wire::{
    self, Accept, ControlDecoder, ControlMessage, DatagramHeader, Join, Leave, MAX_PAYLOAD_LEN,
    PROTOCOL_VERSION, Reject, StreamAssignment, StreamDirection, encode_control,
};
use transport::{
    CertFingerprint, ClientConfig, CloseCode, ServerIdentity, ServerTrust, TransportSettings,
    quic_client_config, quic_server_config,
};
use uuid::Uuid;

use super::{LOOPBACK, WITHIN, datagram, header, pcm_frame, settings};

/// A peer's configuration: pins `fp`, the default test [`settings`].
pub fn peer_config(server: SocketAddr, fp: CertFingerprint) -> ClientConfig {
    let mut cfg = ClientConfig::new(server, ServerTrust::pinned(fp));
    cfg.settings = settings();
    cfg
}

/// Why a [`QuicPeer`] could not join.
#[derive(Debug)]
pub enum PeerError {
    /// quinn refused to start the connection.
    Connect(quinn::ConnectError),
    /// The handshake failed or the connection was lost before an answer.
    Connection(quinn::ConnectionError),
    /// The server's `Reject` (on the control stream or in the close reason).
    Rejected(Reject),
    /// The server's answer broke the protocol.
    Protocol(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Connect(e) => write!(f, "cannot connect: {e}"),
            PeerError::Connection(e) => write!(f, "connection failed: {e}"),
            PeerError::Rejected(r) => write!(f, "rejected: {r}"),
            PeerError::Protocol(s) => write!(f, "protocol error: {s}"),
        }
    }
}

/// What the server's side of the control stream delivered next.
#[derive(Debug, PartialEq)]
pub enum ControlIn {
    Message(ControlMessage),
    /// The server finished the stream.
    Finished,
    /// Reset, connection lost, or undecodable bytes.
    Failed(String),
}

/// Reads a control stream into decoded messages, then how it ended.
fn read_control(mut recv: quinn::RecvStream) -> mpsc::UnboundedReceiver<ControlIn> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut dec = ControlDecoder::new();
        let mut buf = vec![0u8; 4096];
        loop {
            while let Some(m) = dec.poll() {
                match m {
                    Ok(m) => {
                        let _ = tx.send(ControlIn::Message(m));
                    }
                    Err(e) => {
                        let _ = tx.send(ControlIn::Failed(format!("undecodable: {e}")));
                        return;
                    }
                }
            }
            match recv.read(&mut buf).await {
                Ok(Some(n)) => dec.push(&buf[..n]),
                Ok(None) => {
                    let _ = tx.send(ControlIn::Finished);
                    return;
                }
                Err(e) => {
                    let _ = tx.send(ControlIn::Failed(e.to_string()));
                    return;
                }
            }
        }
    });
    rx
}

/// QUIC and TLS only: an endpoint on 127.0.0.1 and a connection to `cfg.server`.
async fn handshake(cfg: &ClientConfig) -> Result<(quinn::Endpoint, quinn::Connection), PeerError> {
    let mut ep = quinn::Endpoint::client(LOOPBACK.parse().unwrap()).unwrap();
    ep.set_default_client_config(quic_client_config(&cfg.trust, &cfg.settings).unwrap());
    let conn = ep
        .connect(cfg.server, &cfg.server_name)
        .map_err(PeerError::Connect)?
        .await
        .map_err(PeerError::Connection)?;
    Ok((ep, conn))
}

/// A connection that ended before the server answered: a `Rejected` close carries
/// the `Reject` JSON (docs/wire-format.md), anything else is a connection error.
fn lost(conn: &quinn::Connection, what: String) -> PeerError {
    match conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(c))
            if c.error_code == CloseCode::Rejected.to_varint() =>
        {
            match serde_json::from_slice::<Reject>(&c.reason) {
                Ok(r) => PeerError::Rejected(r),
                Err(e) => PeerError::Protocol(format!("reject close without a reject: {e}")),
            }
        }
        Some(e) => PeerError::Connection(e),
        None => PeerError::Protocol(what),
    }
}

/// A far end of a call: QUIC to the server, `Join` on the control stream, media as
/// datagrams (14-byte header), control messages both ways, `Leave`.
pub struct QuicPeer {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    control: mpsc::UnboundedReceiver<ControlIn>,
    join: Join,
    accept: Accept,
}

impl QuicPeer {
    /// Connects, joins with `join` and waits for the server's answer. A rejected peer
    /// closes its connection (code 0), as the wire format asks.
    pub async fn connect(cfg: &ClientConfig, join: Join) -> Result<QuicPeer, PeerError> {
        let (endpoint, conn) = handshake(cfg).await?;
        let (mut send, recv) = conn.open_bi().await.map_err(PeerError::Connection)?;
        let frame = encode_control(&ControlMessage::Join(join.clone())).unwrap();
        if let Err(e) = send.write_all(&frame).await {
            return Err(lost(&conn, format!("writing the join: {e}")));
        }
        let mut control = read_control(recv);
        let error = match control.recv().await {
            Some(ControlIn::Message(ControlMessage::Accept(accept)))
                if accept.version == PROTOCOL_VERSION && join.codecs.contains(&accept.codec) =>
            {
                return Ok(QuicPeer {
                    endpoint,
                    conn,
                    send,
                    control,
                    join,
                    accept,
                });
            }
            Some(ControlIn::Message(ControlMessage::Reject(r))) => PeerError::Rejected(r),
            Some(ControlIn::Message(other)) => {
                PeerError::Protocol(format!("expected accept or reject, got {other:?}"))
            }
            Some(ended) => {
                // The stream ended with the connection: wait for its close reason.
                let _ = tokio::time::timeout(WITHIN, conn.closed()).await;
                lost(
                    &conn,
                    format!("control stream ended before an answer: {ended:?}"),
                )
            }
            None => lost(&conn, "control reader gone".into()),
        };
        conn.close(CloseCode::Normal.to_varint(), b"not admitted");
        Err(error)
    }

    pub fn conn(&self) -> &quinn::Connection {
        &self.conn
    }

    pub fn join(&self) -> &Join {
        &self.join
    }

    pub fn accept(&self) -> &Accept {
        &self.accept
    }

    /// The peer's UDP address (the server's `NewCall::remote`).
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap()
    }

    fn stream(&self, direction: StreamDirection) -> u32 {
        self.accept
            .streams
            .iter()
            .find(|s| s.direction == direction)
            .map(|s| s.stream_id)
            .unwrap()
    }

    /// The stream this peer sends on (the server renders it).
    pub fn render(&self) -> u32 {
        self.stream(StreamDirection::Render)
    }

    /// The stream this peer receives (the server's source).
    pub fn source(&self) -> u32 {
        self.stream(StreamDirection::Source)
    }

    pub fn send_datagram(&self, bytes: bytes::Bytes) -> Result<(), quinn::SendDatagramError> {
        self.conn.send_datagram(bytes)
    }

    /// Sends the PCM frame (stream, seq) of [`super::encode`].
    pub fn send_frame(&self, stream: u32, seq: u16) {
        self.send_datagram(datagram(header(stream, seq), &pcm_frame(stream, seq)))
            .unwrap();
    }

    /// Sends `n` PCM frames on the render stream, `every` apart, from sequence `first`.
    pub async fn send_frames(&self, first: u16, n: u16, every: Duration) {
        let mut tick = tokio::time::interval(every);
        for seq in first..first + n {
            tick.tick().await;
            self.send_frame(self.render(), seq);
        }
    }

    /// The next media datagram (`None` once the connection is closed), decoded.
    pub async fn recv_datagram(&self) -> Option<(DatagramHeader, Vec<u8>)> {
        let bytes = tokio::time::timeout(WITHIN, self.conn.read_datagram())
            .await
            .expect("a datagram in time")
            .ok()?;
        let d = wire::decode(&bytes).expect("the server sends valid datagrams");
        Some((d.header, d.payload.to_vec()))
    }

    /// Receives the echoes of `send_frames(first, n, ..)`: on the source stream, in
    /// order, with the sent sequence, timestamp, codec and payload.
    pub async fn recv_echoes(&self, first: u16, n: u16) {
        for seq in first..first + n {
            let (h, payload) = self.recv_datagram().await.expect("connection open");
            assert_eq!(h.stream_id, self.source());
            assert_eq!(h.sequence, seq, "in order, none lost");
            assert_eq!(
                h.timestamp,
                u32::from(seq) * media_core::packet::TIMESTAMP_STEP
            );
            assert_eq!(h.codec, wire::Codec::Pcm16k);
            assert_eq!(h.flags, header(0, seq).flags, "MARKER on the first only");
            assert_eq!(payload, pcm_frame(self.render(), seq));
        }
    }

    /// Sends `n` frames 20 ms apart and checks their echoes.
    pub async fn prove_echo(&self, first: u16, n: u16) {
        tokio::join!(
            self.send_frames(first, n, Duration::from_millis(20)),
            self.recv_echoes(first, n)
        );
    }

    /// Writes bytes on the control stream as they are.
    pub async fn write_control_bytes(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.unwrap();
    }

    pub async fn send_control(&mut self, msg: &ControlMessage) {
        self.write_control_bytes(&encode_control(msg).unwrap())
            .await;
    }

    /// What the control stream delivers next (waits up to [`WITHIN`]).
    pub async fn next_control(&mut self) -> ControlIn {
        tokio::time::timeout(WITHIN, self.control.recv())
            .await
            .expect("control stream news in time")
            .expect("the reader reports how the stream ended")
    }

    /// The next control message.
    pub async fn recv_control(&mut self) -> ControlMessage {
        match self.next_control().await {
            ControlIn::Message(m) => m,
            other => panic!("expected a control message, got {other:?}"),
        }
    }

    /// Sends `Leave` and finishes the control stream.
    pub async fn leave(&mut self, reason: &str) {
        self.send_control(&ControlMessage::Leave(Leave {
            reason: reason.into(),
        }))
        .await;
        self.send.finish().unwrap();
    }

    /// How the connection ended (waits up to [`WITHIN`]).
    pub async fn closed(&self) -> quinn::ConnectionError {
        tokio::time::timeout(WITHIN, self.conn.closed())
            .await
            .expect("connection closed in time")
    }

    /// The server's application close.
    pub async fn app_closed(&self) -> quinn::ApplicationClose {
        app_close(self.closed().await)
    }
}

impl Drop for QuicPeer {
    /// A dropped peer closes its connection (code 0, no `Leave`).
    fn drop(&mut self) {
        self.conn
            .close(CloseCode::Normal.to_varint(), b"peer dropped");
    }
}

/// The application close of `e`, or a panic.
pub fn app_close(e: quinn::ConnectionError) -> quinn::ApplicationClose {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => c,
        other => panic!("expected an application close, got {other:?}"),
    }
}

/// A raw QUIC connection (handshake only), for misbehaving on purpose.
pub async fn raw_connect(
    server: SocketAddr,
    fp: CertFingerprint,
) -> (quinn::Endpoint, quinn::Connection) {
    match handshake(&peer_config(server, fp)).await {
        Ok(pair) => pair,
        Err(e) => panic!("handshake: {e}"),
    }
}

/// The close a raw connection saw (waits up to [`WITHIN`]).
pub async fn raw_closed(conn: &quinn::Connection) -> quinn::ApplicationClose {
    app_close(
        tokio::time::timeout(WITHIN, conn.closed())
            .await
            .expect("closed in time"),
    )
}

/// Sends a Join on a new control stream of a raw connection; the server's reply.
pub async fn raw_join(
    conn: &quinn::Connection,
    join: &Join,
) -> (quinn::SendStream, ControlMessage) {
    raw_join_frame(
        conn,
        &encode_control(&ControlMessage::Join(join.clone())).unwrap(),
    )
    .await
}

/// Like [`raw_join`], with the framed join given as bytes (a hand-written body).
pub async fn raw_join_frame(
    conn: &quinn::Connection,
    frame: &[u8],
) -> (quinn::SendStream, ControlMessage) {
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(frame).await.unwrap();
    let mut control = read_control(recv);
    match tokio::time::timeout(WITHIN, control.recv()).await.unwrap() {
        Some(ControlIn::Message(m)) => (send, m),
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// A peer in its own runtime that can vanish: it joins, then [`VanishingPeer::vanish`]
/// aborts its runtime, so no CONNECTION_CLOSE is ever sent (as when a process dies).
pub struct VanishingPeer {
    kill: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl VanishingPeer {
    /// Joins `session` at `addr` (30 s idle timeout on the peer's side) and returns
    /// once admitted.
    pub async fn join(addr: SocketAddr, fp: CertFingerprint, session: Uuid) -> Self {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (kill, kill_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let prt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let mut cfg = peer_config(addr, fp);
            cfg.settings = TransportSettings::default().with_idle_timeout(Duration::from_secs(30));
            let peer = match prt.block_on(QuicPeer::connect(&cfg, super::join_for(session))) {
                Ok(p) => p,
                Err(e) => panic!("vanishing peer could not join: {e}"),
            };
            ready_tx.send(()).unwrap();
            kill_rx.recv().unwrap();
            // Abort the runtime: every task (quinn's drivers included) is dropped
            // without a CONNECTION_CLOSE being sent; the peer is leaked so its drop
            // cannot send one either.
            prt.shutdown_background();
            std::mem::forget(peer);
        });
        ready_rx.await.unwrap();
        VanishingPeer { kill, thread }
    }

    /// Vanishes at once.
    pub fn vanish(self) {
        self.kill.send(()).unwrap();
        self.thread.join().unwrap();
    }
}

/// A media server written on quinn from the wire format, for the dialling side: it
/// admits one join (the peer's first codec; sources numbered 1.., renders after them)
/// and echoes every datagram of the render stream on the source stream.
pub struct QuinnEchoServer {
    pub addr: SocketAddr,
    pub fp: CertFingerprint,
    /// Ends with the datagrams echoed and how the connection ended.
    pub done: tokio::task::JoinHandle<(u64, quinn::ConnectionError)>,
    _endpoint: quinn::Endpoint,
}

impl QuinnEchoServer {
    pub fn start() -> Self {
        let identity = ServerIdentity::self_signed(&["localhost"]).unwrap();
        let fp = identity.fingerprint();
        let cfg = quic_server_config(&identity, &settings()).unwrap();
        let endpoint = quinn::Endpoint::server(cfg, LOOPBACK.parse().unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let ep = endpoint.clone();
        let done = tokio::spawn(async move {
            let conn = ep.accept().await.unwrap().await.unwrap();
            let (mut send, recv) = conn.accept_bi().await.unwrap();
            let mut control = read_control(recv);
            let Some(ControlIn::Message(ControlMessage::Join(join))) = control.recv().await else {
                panic!("the first message is not a join");
            };
            let contexts = join
                .audio_source_contexts
                .iter()
                .map(|c| (c, StreamDirection::Source))
                .chain(
                    join.audio_render_contexts
                        .iter()
                        .map(|c| (c, StreamDirection::Render)),
                );
            let streams: Vec<StreamAssignment> = contexts
                .zip(1u32..)
                .map(|((context, direction), stream_id)| StreamAssignment {
                    context: *context,
                    stream_id,
                    direction,
                })
                .collect();
            let source = 1;
            let render = 1 + join.audio_source_contexts.len() as u32;
            let accept = Accept {
                version: PROTOCOL_VERSION,
                codec: join.codecs[0],
                streams,
                max_payload: MAX_PAYLOAD_LEN as u32,
                unmixed: 0,
                mixed: true,
            };
            send.write_all(&encode_control(&ControlMessage::Accept(accept)).unwrap())
                .await
                .unwrap();
            let mut echoed = 0;
            loop {
                match conn.read_datagram().await {
                    Ok(bytes) => {
                        if let Ok(d) = wire::decode(&bytes)
                            && d.header.stream_id == render
                        {
                            let h = DatagramHeader {
                                stream_id: source,
                                ..d.header
                            };
                            if conn.send_datagram(datagram(h, d.payload)).is_ok() {
                                echoed += 1;
                            }
                        }
                    }
                    Err(e) => return (echoed, e),
                }
            }
        });
        QuinnEchoServer {
            addr,
            fp,
            done,
            _endpoint: endpoint,
        }
    }
}
