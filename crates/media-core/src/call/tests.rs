//! `CallMedia` on a virtual clock: pacing, playout, control, stats and the end.

use std::time::{Duration, Instant};

use super::*;
use crate::control::DtmfTone;
use crate::frame::FRAME_SAMPLES;
use crate::link::{LinkError, LinkStats};

/// A link that records what the call sends, refusing packets while `refuse` is set.
#[derive(Default)]
struct Recorder {
    packets: Vec<AudioPacket>,
    controls: Vec<Control>,
    refuse: bool,
    closed: Option<String>,
}

impl MediaLink for Recorder {
    fn send_packet(&mut self, packet: &AudioPacket) -> Result<(), LinkError> {
        if self.refuse {
            return Err(LinkError::QueueFull);
        }
        self.packets.push(packet.clone());
        Ok(())
    }
    fn send_control(&mut self, control: &Control) -> Result<(), LinkError> {
        self.controls.push(*control);
        Ok(())
    }
    fn close(&mut self, reason: &str) {
        self.closed = Some(reason.to_owned());
    }
    fn stats(&mut self) -> LinkStats {
        LinkStats::default()
    }
}

/// What the application side of a call saw.
#[derive(Default)]
struct Seen {
    events: Vec<AudioEvent>,
    frames: Vec<AudioFrame>,
    stats: Vec<CallStats>,
}

impl Seen {
    fn take(&mut self, out: Output<'_>) {
        match out {
            Output::Event(e) => self.events.push(e),
            Output::Frame(f) => self.frames.push(*f),
            Output::Stats(s) => self.stats.push(*s),
            Output::Packet(_) | Output::Control(_) => unreachable!("flush keeps these"),
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn tone(k: usize) -> Pcm16kFrame {
    let mut f = Pcm16kFrame::silent();
    for (i, s) in f.samples_mut().iter_mut().enumerate() {
        *s = (((k * 320 + i) as f32 * 0.07).sin() * 9000.0) as i16;
    }
    f
}

/// A call, its send queue, a recording link and what the application saw.
struct Rig {
    t0: Instant,
    now: Instant,
    call: CallMedia<SendQueue>,
    tx: AudioSender,
    link: Recorder,
    seen: Seen,
}

impl Rig {
    fn new(config: CallConfig) -> Rig {
        let t0 = Instant::now();
        let (tx, queue) = AudioSender::new(100);
        let call = CallMedia::new(t0, &config, queue).expect("call");
        Rig {
            t0,
            now: t0,
            call,
            tx,
            link: Recorder::default(),
            seen: Seen::default(),
        }
    }

    /// A driver waking every 10 ms up to `t0 + at`, running what is due.
    fn run_to(&mut self, at: Duration) {
        let end = self.t0 + at;
        while self.now < end {
            self.now = (self.now + ms(10)).min(end);
            self.run_now();
        }
        self.run_now();
    }

    /// A driver that wakes once, at `t0 + at` (after a stall).
    fn jump_to(&mut self, at: Duration) {
        self.now = self.t0 + at;
        self.run_now();
    }

    fn run_now(&mut self) {
        let seen = &mut self.seen;
        self.call
            .run_due(self.now, &mut self.link, |o| seen.take(o));
    }

    fn packet(&mut self, seq: u16, frame: &Pcm16kFrame) {
        let p = AudioPacket::new(
            seq,
            u32::from(seq) * 320,
            Codec::Pcm16k,
            &frame.to_le_bytes(),
        )
        .expect("fits");
        let seen = &mut self.seen;
        self.call
            .run_event(self.now, LinkEvent::Packet(&p), &mut self.link, |o| {
                seen.take(o)
            });
    }

    fn control(&mut self, c: Control) {
        let seen = &mut self.seen;
        self.call
            .run_event(self.now, LinkEvent::Control(c), &mut self.link, |o| {
                seen.take(o)
            });
    }
}

#[test]
fn one_frame_per_send_tick_whatever_the_producer_does() {
    let mut rig = Rig::new(CallConfig::new(Codec::Pcm16k));
    // A burst of 10 frames, then nothing: 10 audio packets, then silence, one per tick.
    for k in 0..10 {
        rig.tx.enqueue(&tone(k)).expect("room");
    }
    rig.run_to(ms(15 * 20 - 1));
    assert_eq!(rig.link.packets.len(), 15);
    for (i, p) in rig.link.packets.iter().enumerate() {
        assert_eq!(p.seq as usize, i);
        assert_eq!(p.timestamp as usize, i * 320);
        assert_eq!(p.marker, i == 0, "only the first packet is marked");
        let zeros = p.payload().iter().all(|&b| b == 0);
        assert_eq!(zeros, i >= 10, "packet {i}: audio, then silence frames");
    }
    let s = rig.call.stats();
    assert_eq!(s.packets_sent, 15);
    assert_eq!(s.send_underruns, 5, "every tick that found the queue dry");
    assert_eq!(s.send.ticks, 15);
    assert!(
        rig.seen
            .events
            .iter()
            .any(|e| matches!(e, AudioEvent::LowOnFrames { remaining } if *remaining == ms(80))),
        "{:?}",
        rig.seen.events
    );
    assert_eq!(
        rig.seen.events[0],
        AudioEvent::SendStatusChanged(SendStatus::Active)
    );
}

#[test]
fn a_stall_is_caught_up_on_the_grid_and_refused_packets_are_counted() {
    let mut rig = Rig::new(CallConfig::new(Codec::Pcm16k));
    rig.run_to(ms(0));
    // The driver comes back 101 ms late: ticks 20..=100 (5 of them) run at once.
    rig.jump_to(ms(101));
    assert_eq!(rig.link.packets.len(), 6);
    assert_eq!(rig.call.stats().send.late, 4);
    rig.link.refuse = true;
    rig.run_to(ms(120));
    let s = rig.call.stats();
    assert_eq!((s.packets_sent, s.packets_refused), (6, 1));
}

#[test]
fn prebuffer_waits_for_frames_and_pause_sends_nothing() {
    let mut config = CallConfig::new(Codec::Pcm16k);
    config.pacer.prebuffer_frames = 3;
    config.pacer.idle = IdlePolicy::Pause;
    let mut rig = Rig::new(config);
    rig.tx.enqueue(&tone(0)).expect("room");
    rig.tx.enqueue(&tone(1)).expect("room");
    rig.run_to(ms(40));
    assert!(rig.link.packets.is_empty(), "2 of 3 prebuffer frames: wait");
    rig.tx.enqueue(&tone(2)).expect("room");
    rig.run_to(ms(100));
    assert_eq!(rig.link.packets.len(), 3, "then all three, one per tick");
    assert_eq!(rig.call.stats().send_underruns, 0);
    rig.run_to(ms(200));
    assert_eq!(rig.link.packets.len(), 3, "dry: nothing is sent");
    assert_eq!(rig.call.stats().send_underruns, 1, "one dip");
}

#[test]
fn packets_play_out_one_frame_per_tick_with_speakers_and_timestamps() {
    let mut config = CallConfig::new(Codec::Pcm16k);
    config.receive.jitter.start_delay = ms(40);
    let mut rig = Rig::new(config);
    rig.run_to(ms(0));
    assert!(
        rig.seen.frames.is_empty(),
        "nothing plays before the first packet"
    );
    rig.control(Control::ActiveSpeakers(ActiveSpeakers::from_slice(&[7, 9])));
    for k in 0..50u16 {
        rig.run_to(ms(u64::from(k) * 20 + 1));
        let frame = tone(usize::from(k));
        rig.packet(k, &frame);
    }
    rig.run_to(ms(50 * 20 + 1));
    let frames = &rig.seen.frames;
    assert_eq!(frames.len(), 50);
    let audible = frames.iter().filter(|f| !f.is_silence).count();
    assert!(audible >= 45, "{audible} audible frames");
    assert!(
        frames
            .iter()
            .all(|f| f.active_speakers.as_slice() == [7, 9])
    );
    let last = frames.last().expect("frames");
    assert!(last.timestamp.0 > 0);
    assert_eq!(rig.call.stats().packets_received, 50);
    assert_eq!(rig.call.stats().frames_played, 50);
}

#[test]
fn control_messages_become_events_and_send_status_gates_the_sender() {
    let mut rig = Rig::new(CallConfig::new(Codec::Pcm16k));
    rig.control(Control::Dtmf {
        tone: DtmfTone::Pound,
        duration_ms: 80,
    });
    rig.control(Control::DominantSpeaker(Some(4)));
    rig.control(Control::DominantSpeaker(None));
    rig.control(Control::SendStatus(SendStatus::Inactive));
    rig.control(Control::SendStatus(SendStatus::Inactive));
    rig.run_to(ms(100));
    assert!(rig.link.packets.is_empty(), "inactive: nothing is sent");
    rig.control(Control::SendStatus(SendStatus::Active));
    rig.run_to(ms(120));
    assert_eq!(rig.link.packets.len(), 1);
    let events: Vec<_> = rig.seen.events.iter().skip(1).cloned().collect();
    assert_eq!(
        events,
        vec![
            AudioEvent::ToneReceived {
                tone: DtmfTone::Pound,
                duration_ms: 80
            },
            AudioEvent::DominantSpeakerChanged {
                current: Some(4),
                previous: None
            },
            AudioEvent::DominantSpeakerChanged {
                current: None,
                previous: Some(4)
            },
            AudioEvent::SendStatusChanged(SendStatus::Inactive),
            AudioEvent::SendStatusChanged(SendStatus::Active),
        ]
    );
}

#[test]
fn stats_and_reports_every_second_and_outgoing_dtmf() {
    let mut rig = Rig::new(CallConfig::new(Codec::Pcm16k));
    rig.call.send_control(Control::Dtmf {
        tone: DtmfTone::Tone5,
        duration_ms: 0,
    });
    // Tick k runs at (k - 1) × 20 ms: the 50th at 980 ms, the 250th at 4980 ms.
    rig.run_to(ms(979));
    assert_eq!(rig.seen.stats.len(), 0);
    assert_eq!(rig.link.controls.len(), 1, "the DTMF; no report yet");
    rig.run_to(ms(4_979));
    assert_eq!(rig.seen.stats.len(), 4, "after ticks 50, 100, 150, 200");
    assert_eq!(rig.link.controls.len(), 5, "the DTMF and 4 reports");
    rig.run_to(ms(4_980));
    assert_eq!(rig.seen.stats.len(), 5);
    assert!(matches!(
        rig.link.controls[5],
        // Built by the 250th playout tick, before that tick's packet went out.
        Control::Report(r) if r.packets_sent == 249
    ));
}

#[test]
fn the_end_publishes_final_stats_and_the_reason_and_stops_the_clock() {
    for (reason, failure) in [
        (
            CloseReason::PeerLeft {
                reason: "bye".into(),
            },
            false,
        ),
        (
            CloseReason::PeerVanished {
                idle_timeout: Duration::from_secs(5),
            },
            true,
        ),
    ] {
        let mut rig = Rig::new(CallConfig::new(Codec::Pcm16k));
        rig.run_to(ms(60));
        let seen = &mut rig.seen;
        rig.call
            .run_event(rig.now, LinkEvent::Closed(&reason), &mut rig.link, |o| {
                seen.take(o)
            });
        assert!(rig.call.is_closed());
        assert_eq!(rig.call.poll_timeout(), None);
        assert_eq!(rig.seen.stats.len(), 1);
        let tail = &rig.seen.events[rig.seen.events.len() - 2..];
        assert_eq!(tail[0], AudioEvent::SendStatusChanged(SendStatus::Inactive));
        let expected = if failure {
            AudioEvent::MediaStreamFailure {
                reason: reason.clone(),
            }
        } else {
            AudioEvent::Ended {
                reason: reason.clone(),
            }
        };
        assert_eq!(tail[1], expected);
        let sent = rig.link.packets.len();
        rig.run_to(ms(200));
        assert_eq!(rig.link.packets.len(), sent, "a closed call sends nothing");
    }
}

#[test]
fn a_drifting_send_clock_sends_at_its_own_rate() {
    let mut config = CallConfig::new(Codec::Pcm16k);
    config.send_period = Duration::from_micros(20_100);
    let mut rig = Rig::new(config);
    rig.run_to(ms(10_000));
    let s = rig.call.stats();
    assert_eq!(s.send.ticks, 498, "10 s at 20.1 ms");
    assert_eq!(s.playout.ticks, 501, "10 s at 20 ms");
    assert_eq!(rig.link.packets.len(), 498);
}

#[test]
fn opus_calls_set_up_and_bad_input_is_harmless() {
    let mut rig = Rig::new(CallConfig::new(Codec::Opus16k));
    rig.tx.enqueue(&tone(0)).expect("room");
    rig.run_to(ms(0));
    assert_eq!(rig.link.packets.len(), 1);
    assert_eq!(rig.link.packets[0].codec, Codec::Opus16k);
    // A PCM packet on an Opus call and garbage Opus: counted, never fatal.
    rig.packet(0, &tone(1));
    let garbage = AudioPacket::new(1, 320, Codec::Opus16k, &[0xff; 3]).expect("fits");
    rig.call.handle_packet(rig.now, &garbage);
    rig.run_to(ms(200));
    let s = rig.call.stats();
    assert!(s.jitter_buffer.malformed >= 1, "{:?}", s.jitter_buffer);
    assert!(!rig.call.is_closed());
}

/// Loss-adaptive FEC end to end on the simulation kit: a sends speech to b over an
/// impaired link, b's once-a-second reports go back to a. Clean: no FEC budget; 10 %
/// loss appears: FEC follows within 2 s; loss goes: FEC is dropped.
#[test]
fn opus_fec_follows_the_receivers_loss_reports() {
    use crate::sim::{Impairment, LossModel, Profile};
    let t0 = Instant::now();
    let config = CallConfig::new(Codec::Opus16k);
    let (tx, queue) = AudioSender::new(8);
    let mut a =
        CallMedia::new(t0, &config, Box::new(queue) as Box<dyn FrameSource>).expect("call a");
    let (_idle, nothing) = AudioSender::new(1);
    let mut b =
        CallMedia::new(t0, &config, Box::new(nothing) as Box<dyn FrameSource>).expect("call b");
    let mut net: Impairment<AudioPacket> =
        Impairment::new(Profile::named("clean").expect("profile"), 7);
    let speech = crate::speech::speech_like(50 * FRAME_SAMPLES, 7);
    let mut expected = Vec::new();
    for k in 0..1_400usize {
        let now = t0 + ms(20) * k as u32;
        match k {
            250 => net.set_loss(LossModel::Random { p: 0.1 }),
            750 => net.set_loss(LossModel::None),
            _ => {}
        }
        let at = (k % 50) * FRAME_SAMPLES;
        let mut frame = Pcm16kFrame::silent();
        frame
            .samples_mut()
            .copy_from_slice(&speech[at..at + FRAME_SAMPLES]);
        let _ = tx.enqueue(&frame);
        a.handle_timeout(now);
        while let Some(out) = a.poll_output() {
            if let Output::Packet(p) = out {
                net.send(now, p.clone());
            }
        }
        while let Some(p) = net.poll(now) {
            b.handle_packet(now, &p);
        }
        b.handle_timeout(now);
        while let Some(out) = b.poll_output() {
            if let Output::Control(c) = out {
                a.handle_control(c);
            }
        }
        expected.push(a.expected_loss());
    }
    assert!(
        expected[..250].iter().all(|&e| e == 0),
        "clean path: no FEC budget"
    );
    let on = expected[250..]
        .iter()
        .position(|&e| e > 0)
        .expect("FEC turns on");
    assert!(on <= 100, "FEC followed after {} ms", on * 20);
    assert!(
        expected[350..750].iter().all(|&e| (3..=20).contains(&e)),
        "{:?}",
        &expected[350..750]
    );
    let off = expected[750..]
        .iter()
        .position(|&e| e == 0)
        .expect("FEC is dropped");
    assert!(off <= 400, "FEC dropped after {} ms", off * 20);
    assert!(expected[750 + off..].iter().all(|&e| e == 0));
}
