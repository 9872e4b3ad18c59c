//! The WebRTC link in process, on a virtual clock, through media-core's seeded
//! impairment profiles on both directions: a str0m peer (full ICE, the offerer) sends
//! speech-like Opus to an [`RtcLink`] whose call (a `CallMedia` echo) sends every frame
//! back. Whole calls of several seconds run in milliseconds, the same on every
//! machine for a seed.
//!
//! Checked: the echo follows the speech's energy envelope through loss, jitter and
//! reordering; the far end's RTCP receiver reports reach the call (its QoE sees the
//! RTT of the profile's delay) and the call's Opus FEC follows the loss they report.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_core::call::{AudioEvent, AudioSender, CallConfig, CallMedia, Output};
use media_core::codec::{Codec, OpusConfig, new_decoder, new_encoder};
use media_core::control::QualityReport;
use media_core::frame::FRAME_SAMPLES;
use media_core::link::{CallHandler, LinkEvent, MediaLink};
use media_core::sim::{Impairment, Profile, VirtualClock};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};
use webrtc_link::link::Inbound;
use webrtc_link::{AudioCodec, RtcLink, check_offer};

use crate::common::envelope_correlation;

/// The call behind the link: an echo of every frame played, and what it saw.
struct EchoCall {
    media: CallMedia<media_core::call::SendQueue>,
    echo: AudioSender,
    reports: Vec<QualityReport>,
    played: u64,
}

/// Takes one output of the call: frames go back, reports are kept.
fn take(echo: &AudioSender, reports: &mut Vec<QualityReport>, played: &mut u64, o: Output<'_>) {
    match o {
        Output::Frame(f) => {
            *played += 1;
            let _ = echo.enqueue(&f.samples);
        }
        Output::Event(AudioEvent::PeerStats(r)) => reports.push(r),
        _ => {}
    }
}

impl CallHandler for EchoCall {
    fn handle_event(&mut self, now: Instant, event: LinkEvent<'_>, link: &mut dyn MediaLink) {
        let Self {
            media,
            echo,
            reports,
            played,
        } = self;
        media.run_event(now, event, link, |o| take(echo, reports, played, o));
    }

    fn handle_timeout(&mut self, now: Instant, link: &mut dyn MediaLink) {
        let Self {
            media,
            echo,
            reports,
            played,
        } = self;
        media.run_due(now, link, |o| take(echo, reports, played, o));
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.media.poll_timeout()
    }
}

impl Outcome {
    /// At least `packets` came back, following the speech's envelope to `correlation`.
    fn assert_echo(&self, what: &str, packets: usize, correlation: f64) {
        println!(
            "{what}: correlation {:.3}, {} packets back, {} frames played, FEC for {} %, RTT {:?}",
            self.correlation, self.echo_packets, self.played, self.expected_loss, self.rtt
        );
        assert!(self.echo_packets > packets, "{what}: {self:?}");
        assert!(self.correlation > correlation, "{what}: {self:?}");
    }
}

/// What one impaired call measured.
#[derive(Debug)]
struct Outcome {
    correlation: f64,
    reports: Vec<QualityReport>,
    expected_loss: u8,
    rtt: Option<Duration>,
    echo_packets: usize,
    played: u64,
}

fn call_through(profile: &str, seed: u64, seconds: u64) -> Outcome {
    let client_addr: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
    let server_addr: SocketAddr = "10.0.0.2:6000".parse().expect("addr");
    let t0 = Instant::now();
    let mut clock = VirtualClock::new(t0);

    let mut client = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .set_rtcp_report_interval_audio(Duration::from_secs(1))
        .build(t0);
    client.add_local_candidate(Candidate::host(client_addr, "udp").expect("candidate"));
    let mut api = client.sdp_api();
    let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = api.apply().expect("an offer");
    let checked = check_offer(&offer.to_sdp_string(), &AudioCodec::ALL).expect("a good offer");
    let (mut link, answer) =
        RtcLink::answer(checked, server_addr, t0, Duration::from_secs(10)).expect("answered");
    client
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).expect("sdp"))
        .expect("answer accepted");

    let (echo, queue) = AudioSender::new(50);
    let mut call = EchoCall {
        media: CallMedia::new(t0, &CallConfig::new(Codec::Opus16k), queue).expect("call"),
        echo,
        reports: Vec::new(),
        played: 0,
    };

    let profile = Profile::named(profile).expect("a known profile");
    let mut up: Impairment<Vec<u8>> = Impairment::new(profile, seed);
    let mut down: Impairment<Vec<u8>> = Impairment::new(profile, seed + 1);

    let speech = media_core::speech::speech_like(16_000 * (seconds as usize + 1), seed);
    let mut encoder = new_encoder(Codec::Opus16k, &OpusConfig::default()).expect("encoder");
    let mut decoder = new_decoder(Codec::Opus16k).expect("decoder");
    let mut sent: Vec<i16> = Vec::new();
    let mut echoed: Vec<i16> = Vec::new();
    let mut echo_packets = 0;
    let mut first_ts: Option<u64> = None;
    let mut connected = false;
    let mut next_send: Option<Instant> = None;
    let mut client_timeout;
    let mut frame_index = 0u64;
    let mut pt = None;
    let end = t0 + Duration::from_secs(seconds);

    // Delivers the link's items to the call and its datagrams to the network.
    fn service(
        link: &mut RtcLink,
        call: &mut EchoCall,
        down: &mut Impairment<Vec<u8>>,
        now: Instant,
    ) {
        while let Some(item) = link.poll_event() {
            call.handle_event(now, item.as_event(), link);
            if matches!(item, Inbound::Closed(_)) {
                break;
            }
        }
        while let Some(t) = link.poll_transmit() {
            down.send(now, t.contents.to_vec());
        }
    }

    while clock.now() < end {
        let now = clock.now();
        // The client: drain after every mutation (str0m's contract).
        loop {
            match client.poll_output().expect("client output") {
                RtcOutput::Timeout(t) => {
                    client_timeout = t;
                    break;
                }
                RtcOutput::Transmit(t) => up.send(now, t.contents.to_vec()),
                RtcOutput::Event(Event::Connected) => {
                    connected = true;
                    next_send.get_or_insert(now);
                }
                RtcOutput::Event(Event::MediaData(d)) => {
                    // An ideal receiver: each frame in its place on the RTP timeline
                    // (a lost one stays silent), whatever the order of arrival.
                    echo_packets += 1;
                    let first = *first_ts.get_or_insert(d.time.numer());
                    let Some(slot) = d.time.numer().checked_sub(first).map(|t| t as usize / 960)
                    else {
                        continue;
                    };
                    let mut out = [0i16; FRAME_SAMPLES];
                    if decoder.decode(&d.data, &mut out).is_ok() {
                        let at = slot * FRAME_SAMPLES;
                        if echoed.len() < at + FRAME_SAMPLES {
                            echoed.resize(at + FRAME_SAMPLES, 0);
                        }
                        echoed[at..at + FRAME_SAMPLES].copy_from_slice(&out);
                    }
                }
                RtcOutput::Event(_) => {}
            }
        }
        if connected && next_send.is_some_and(|t| t <= now) {
            let at = frame_index as usize * FRAME_SAMPLES;
            let frame: [i16; FRAME_SAMPLES] =
                speech[at..at + FRAME_SAMPLES].try_into().expect("a frame");
            sent.extend_from_slice(&frame);
            let mut bytes = [0u8; 400];
            let n = encoder.encode(&frame, &mut bytes).expect("encode");
            let writer = client.writer(mid).expect("writer");
            let p = *pt.get_or_insert_with(|| {
                writer
                    .payload_params()
                    .next()
                    .expect("a negotiated codec")
                    .pt()
            });
            writer
                .write(
                    p,
                    now,
                    MediaTime::new(frame_index * 960, Frequency::FORTY_EIGHT_KHZ),
                    bytes[..n].to_vec(),
                )
                .expect("write");
            frame_index += 1;
            next_send = next_send.map(|t| t + Duration::from_millis(20));
            continue;
        }
        // The network, both ways.
        while let Some(d) = up.poll(now) {
            link.handle_receive(now, client_addr, &d);
            service(&mut link, &mut call, &mut down, now);
        }
        if let Some(d) = down.poll(now) {
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source: server_addr,
                    destination: client_addr,
                    contents: d.as_slice().try_into().expect("a datagram"),
                },
            );
            client.handle_input(input).expect("client input");
            continue;
        }
        // Timers.
        if link.poll_timeout().is_some_and(|t| t <= now) {
            link.handle_timeout(now);
            service(&mut link, &mut call, &mut down, now);
        }
        if call.poll_timeout().is_some_and(|t| t <= now) {
            call.handle_timeout(now, &mut link);
            service(&mut link, &mut call, &mut down, now);
        }
        if client_timeout <= now {
            client
                .handle_input(Input::Timeout(now))
                .expect("client timeout");
            continue;
        }
        let next = [
            Some(client_timeout),
            link.poll_timeout(),
            call.poll_timeout(),
            up.poll_timeout(),
            down.poll_timeout(),
            next_send.filter(|_| connected),
            Some(end),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("a deadline");
        clock.advance_to(next.max(now));
    }
    let stats = link.stats();
    Outcome {
        // Skip the first second of each (connection and jitter buffer start-up).
        correlation: envelope_correlation(
            sent.get(16_000..).unwrap_or(&[]),
            echoed.get(16_000..).unwrap_or(&[]),
            60,
        )
        .0,
        reports: call.reports,
        expected_loss: call.media.expected_loss(),
        rtt: stats.rtt,
        echo_packets,
        played: call.played,
    }
}

#[test]
fn a_clean_path_echoes_and_measures_the_round_trip() {
    let o = call_through("clean", 1, 6);
    o.assert_echo("clean", 200, 0.9);
    assert!(o.reports.len() >= 3, "receiver reports reach the call");
    // 40 ms each way.
    let rtt = o.rtt.expect("an RTT from RTCP");
    assert!(
        (Duration::from_millis(70)..Duration::from_millis(120)).contains(&rtt),
        "{rtt:?}"
    );
    assert!(o.reports.iter().all(|r| r.interval_loss_pct == 0.0));
    assert_eq!(o.expected_loss, 0, "no FEC on a clean path");
}

#[test]
fn loss_and_jitter_both_ways_turn_the_calls_fec_on_and_the_echo_survives() {
    let o = call_through("loss5-jitter40", 7, 10);
    o.assert_echo("loss5-jitter40", 300, 0.75);
    let reported: Vec<f32> = o.reports.iter().map(|r| r.interval_loss_pct).collect();
    assert!(
        reported.iter().any(|&l| l > 1.0),
        "the far end reports the loss: {reported:?}"
    );
    assert!(
        o.expected_loss > 0,
        "the call's Opus FEC follows the reported loss: {reported:?}"
    );
}

#[test]
fn reordering_and_bursts_leave_the_echo_intelligible() {
    for profile in ["wifi", "bursty"] {
        let o = call_through(profile, 3, 8);
        o.assert_echo(profile, 250, 0.7);
        assert!(o.played > 300, "{profile}: {o:?}");
    }
}
