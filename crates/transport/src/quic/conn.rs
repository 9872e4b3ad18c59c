//! One connection of a [`Core`](super::Core): its phase, control stream and counters.

use std::time::Instant;

use bytes::Bytes;
use media_core::link::{LinkError, LinkStats};
use quinn_proto::{Connection, StreamId, VarInt};

use crate::ratelimit::TokenBucket;
use crate::settings::{CloseCode, truncate_utf8};
use crate::wire::{ControlDecoder, DatagramHeader, DatagramRef, Join, WireError};

/// Control bytes queued on one connection before sends are refused.
const CONTROL_OUT_MAX: usize = 256 * 1024;

/// An admitted call inside its connection.
pub(crate) struct Live {
    /// Admitted by this side (false: a call this side dialled).
    pub(crate) server_side: bool,
    pub(crate) control: StreamId,
    pub(crate) decoder: ControlDecoder,
    /// The stream this side sends on (`None`: the join had no such context).
    pub(crate) send_stream: Option<u32>,
    /// The stream this side receives on, with its rate limit (looked at for every
    /// datagram: kept inline).
    pub(crate) recv: Option<StreamLimit>,
    /// A rate limit for each other stream the accept assigned (datagrams on them are
    /// dropped, after taking a token: a flood on them is counted as one).
    pub(crate) others: Vec<StreamLimit>,
    /// Unmixed streams the accept negotiated (0: unmixed datagrams are refused both
    /// ways).
    pub(crate) unmixed: u8,
}

/// A media stream id with its rate limit.
pub(crate) type StreamLimit = (u32, TokenBucket);

impl Live {
    /// The stream read (`recv_stream`) with its rate limit, and a rate limit for each
    /// other stream in `assigned`.
    pub(crate) fn buckets(
        assigned: impl Iterator<Item = u32>,
        recv_stream: Option<u32>,
        bucket: impl Fn() -> TokenBucket,
    ) -> (Option<StreamLimit>, Vec<StreamLimit>) {
        let recv = recv_stream.map(|id| (id, bucket()));
        let others = assigned
            .filter(|&id| Some(id) != recv_stream)
            .map(|id| (id, bucket()))
            .collect();
        (recv, others)
    }
}

/// What a connection waits for (states named for it; a transition consumes the old).
pub(crate) enum Phase {
    /// Client side: handshake, then `Join` sent, waiting for `Accept` or `Reject`.
    Dialing {
        deadline: Instant,
        stream: Option<StreamId>,
        decoder: ControlDecoder,
        join: Join,
    },
    /// Server side: handshake and the control stream's first message.
    AwaitJoin {
        deadline: Instant,
        stream: Option<StreamId>,
        decoder: ControlDecoder,
    },
    /// Server side: the join was handed to the application ([`super::Event::Join`]);
    /// waiting for its `accept` or `reject`.
    AwaitVerdict {
        deadline: Instant,
        control: StreamId,
        decoder: ControlDecoder,
        join: Join,
    },
    /// `Reject` sent; the peer should close, or we do at the deadline.
    Rejecting { deadline: Instant, body: String },
    /// Admitted, the call runs.
    Live(Live),
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

/// One connection.
pub(crate) struct Entry {
    pub(crate) conn: Connection,
    pub(crate) id: u64,
    pub(crate) phase: Phase,
    pub(crate) stats: LinkStats,
    /// Control bytes not yet accepted by the stream (flow control).
    pub(crate) control_out: Vec<u8>,
    pub(crate) dirty: bool,
    pub(crate) connected: bool,
    /// Server side: the source IP while the connection counts as a handshake in
    /// flight (until its join is decided or it is gone).
    pub(crate) handshake_from: Option<std::net::IpAddr>,
}

impl Entry {
    pub(crate) fn new(conn: Connection, id: u64, phase: Phase) -> Self {
        Entry {
            conn,
            id,
            phase,
            stats: LinkStats::default(),
            control_out: Vec::new(),
            dirty: false,
            connected: false,
            handshake_from: None,
        }
    }

    /// The earliest instant this connection has work: its QUIC timer or its phase's
    /// deadline.
    pub(crate) fn deadline(&mut self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::AwaitJoin { deadline, .. }
            | Phase::AwaitVerdict { deadline, .. }
            | Phase::Dialing { deadline, .. }
            | Phase::Rejecting { deadline, .. }
            | Phase::Leaving { deadline, .. } => Some(*deadline),
            Phase::Live(_) | Phase::Closed => None,
        };
        match (self.conn.poll_timeout(), phase) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn control_stream(&self) -> Option<StreamId> {
        match &self.phase {
            Phase::AwaitJoin { stream, .. } | Phase::Dialing { stream, .. } => *stream,
            Phase::AwaitVerdict { control, .. } | Phase::Leaving { control, .. } => Some(*control),
            Phase::Live(l) => Some(l.control),
            Phase::Rejecting { .. } | Phase::Closed => None,
        }
    }

    /// Writes as much of `control_out` as the stream takes.
    pub(crate) fn flush_control(&mut self) {
        if let Some(id) = self.control_stream()
            && !self.control_out.is_empty()
        {
            match self.conn.send_stream(id).write(&self.control_out) {
                Ok(n) => {
                    self.control_out.drain(..n);
                }
                Err(quinn_proto::WriteError::Blocked) => {}
                Err(_) => self.control_out.clear(),
            }
        }
        self.finish_leave();
    }

    /// Appends a control frame (refused beyond [`CONTROL_OUT_MAX`]) and writes.
    pub(crate) fn queue_control(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        if self.control_stream().is_none() {
            return Err(LinkError::Closed);
        }
        if self.control_out.len() + frame.len() > CONTROL_OUT_MAX {
            return Err(LinkError::QueueFull);
        }
        self.control_out.extend_from_slice(frame);
        self.flush_control();
        Ok(())
    }

    /// Leaving: finishes the control stream once everything queued (the `Leave`
    /// last) has been written; finishing earlier would cut it off.
    pub(crate) fn finish_leave(&mut self) {
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

    /// Closes the connection with `code` and `phrase` (cut to 512 bytes).
    pub(crate) fn close(&mut self, now: Instant, code: CloseCode, phrase: &str) {
        let phrase = truncate_utf8(phrase, 512);
        self.conn.close(
            now,
            VarInt::from_u32(code as u32),
            Bytes::copy_from_slice(phrase.as_bytes()),
        );
        self.phase = Phase::Closed;
    }

    /// The link's counters with the connection's RTT, path limit and lost packets.
    pub(crate) fn link_stats(&mut self) -> LinkStats {
        let quic = self.conn.stats();
        LinkStats {
            rtt: Some(self.conn.rtt()),
            max_packet_size: self.conn.datagrams().max_size(),
            lost_packets: quic.path.lost_packets,
            transport_sent: quic.udp_tx.datagrams,
            transport_received: quic.udp_rx.datagrams,
            ..self.stats
        }
    }
}

/// Checks one datagram of an admitted call: decodes its header (refusing unmixed
/// audio the call did not negotiate), finds its stream's rate limit and takes a
/// token. The unmixed streams of a call share its receive stream's rate limit (the
/// accept scales it by 1 + the unmixed streams). `None` (counted in `stats`) if it must be dropped.
pub(crate) fn check_datagram(
    stats: &mut LinkStats,
    bytes: &[u8],
    live: &mut Live,
    now: Instant,
) -> Option<DatagramHeader> {
    let header = match DatagramRef::decode(bytes) {
        Ok(d) => d.header,
        Err(e) => {
            tracing::trace!(error = %e, "dropping malformed datagram");
            *match e {
                WireError::UnsupportedVersion(_) => &mut stats.wrong_version,
                WireError::PayloadTooLarge { .. } => &mut stats.oversized,
                WireError::UnknownKind(_) => &mut stats.unknown_kind,
                WireError::UnmixedWithoutSource => &mut stats.unmixed_refused,
                _ => &mut stats.malformed,
            } += 1;
            return None;
        }
    };
    if header.source != 0 && live.unmixed == 0 {
        tracing::trace!(
            msi = header.source,
            "dropping unmixed datagram: none negotiated"
        );
        stats.unmixed_refused += 1;
        return None;
    }
    if let Some((id, bucket)) = &mut live.recv
        && *id == header.stream_id
    {
        if !bucket.try_take(now) {
            stats.flood_dropped += 1;
            return None;
        }
        return Some(header);
    }
    // Assigned, but the direction this side sends (nothing here reads it), or not
    // assigned at all.
    let other = live
        .others
        .iter_mut()
        .find(|(id, _)| *id == header.stream_id);
    if other.is_some_and(|(_, bucket)| !bucket.try_take(now)) {
        stats.flood_dropped += 1;
    } else {
        stats.unknown_stream += 1;
    }
    None
}
