//! Jitter-buffer evaluation: speech → encode → impaired network → [`ReceivePipeline`]
//! → decoded PCM, per network profile, on a virtual clock (no sleeping: a 30 s call
//! per profile takes well under a second in release builds).
//!
//! # What is measured (per profile)
//! All times are on the receiver's (true) clock. The sender emits packet `k` at
//! `s_k` (its 20 ms ticks, scaled by the profile's clock drift); a media sample at offset
//! `o` within packet `k` has the send time `s_k + o · period / 320`. The receiver polls
//! one frame at each of its own 20 ms ticks `T_j` (a seeded phase relative to the
//! sender). `d_min` is the smallest network delay of the trace.
//!
//! * **late loss %**: packets that arrived but were not played because they came after
//!   their playout point (or were dropped on overflow), over packets that arrived
//!   (network losses are not counted; they are reported separately).
//! * **concealment %**: concealed samples over samples played, from the start of
//!   playout to the end of the input media (the drain after the last packet is not
//!   counted).
//! * **added delay** of a delivered frame: `T_j - send_time(first sample) - d_min`, i.e.
//!   the mouth-to-ear delay beyond packetisation and the fastest network path: the
//!   jitter buffer's delay plus the wait for the output tick. Mean and 95th percentile
//!   over the frames that contain no concealment.
//! * **oracle**: the smallest *fixed* playout delay `D` (beyond `d_min`) that keeps late
//!   loss ≤ 1 % on the same trace with the same output ticks: with a fixed delay the
//!   frame emitted at `T_j` starts with the media sent at `T_j - d_min - D`, so packet
//!   `k` must have arrived by the first tick at which its first sample is due; the
//!   smallest `D` that makes packet `k` on time is `D_k = next_tick(A_k) - s_k - d_min`
//!   and the oracle is the value exceeded by at most 1 % of the `D_k`. Both measures
//!   share the same definition of delay, tick grid included.
//! * **target**: late loss ≤ 1 % and mean added delay ≤ 1.2 × oracle + 10 ms.
//! * **loss-adaptive Opus** (with [`OpusConfig::adaptive_fec`], the default): the
//!   receiver reports its interval loss once a second (50 output ticks, as
//!   [`media_core::call::CallMedia`] does) and the sender's
//!   [`LossAdapter`] sets the encoder's FEC from it (applied at once: the report's
//!   one-way trip is not modelled).
//! * **codec ceiling** (with [`EvalConfig::ceiling`]): the same input through the same
//!   encoder (with the same FEC settings frame by frame) and decoder over the same
//!   network loss trace with perfect timing: every
//!   packet that arrived is decoded in order at once, a lost one is recovered from the
//!   next packet's FEC when that arrived, else concealed ([`codec_ceiling`]). What is
//!   left between the ceiling and the real output is the jitter buffer's doing.
//! * **stretched ceiling** (a drifting sender's profile, with the ceiling): no receiver
//!   can play a sender whose clock runs slow or fast without inserting or removing
//!   audio, and PESQ charges that even where nobody hears it (20 ms of silence inserted
//!   in 320 ms pauses every 4 s of real speech: 4.33 instead of 4.64). The ceiling with
//!   that stretch placed by an oracle ([`oracle_stretch`]) is what such a profile's gap
//!   is measured against ([`ProfileReport::gap`]).
//! * **PESQ-WB** (with [`crate::pesq`]): the output and the ceiling scored against
//!   the input.
//!
//! The built-in source [`media_core::speech::speech_like`] is a deterministic synthetic talker (glottal
//! pulses with varying pitch through three formant resonators, syllable envelopes,
//! fricatives and pauses). A WAV file can be used instead ([`media_core::wav::read_mono_16k`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use media_core::call::InboundStats;
use media_core::codec::{AudioDecoder, AudioEncoder, Codec, CodecError, LossAdapter, OpusConfig};
use media_core::control::QualityReport;
use media_core::frame::{FRAME_SAMPLES, Pcm16kFrame};
use media_core::jitter::JitterStats;
use media_core::packet::{AudioPacket, MAX_PAYLOAD};
use media_core::playout::{ReceiveConfig, ReceivePipeline};
use media_core::sim::{Impairment, Profile, VirtualClock};

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The profile name is not one of [`Profile::NAMES`].
    #[error("unknown profile `{0}` (known: {known})", known = Profile::NAMES.join(", "))]
    UnknownProfile(String),
    /// The codec could not be created or failed.
    #[error("codec: {0}")]
    Codec(CodecError),
    /// Reading the input WAV file failed.
    #[error(transparent)]
    Wav(#[from] media_core::wav::WavError),
    /// Creating the output directory failed.
    #[error("output directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The input audio is empty.
    #[error("the input audio is empty")]
    EmptyInput,
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Profile names (empty: all of [`Profile::NAMES`]).
    pub profiles: Vec<String>,
    /// Simulated call length.
    pub duration: Duration,
    /// Codec.
    pub codec: Codec,
    /// Seed of the network and of the built-in speech.
    pub seed: u64,
    /// 16 kHz mono input; `None` uses [`media_core::speech::speech_like`].
    pub input: Option<Vec<i16>>,
    /// Where to write `<profile>.wav` (and `reference.wav`); `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Receive pipeline configuration.
    pub receive: ReceiveConfig,
    /// Opus encoder settings (ignored for PCM).
    pub opus: OpusConfig,
    /// Also compute the codec ceiling of each profile (written as
    /// `<profile>.ceiling.wav` when `out_dir` is set).
    pub ceiling: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            profiles: Vec::new(),
            duration: Duration::from_secs(30),
            codec: Codec::Opus16k,
            seed: 1,
            input: None,
            out_dir: None,
            receive: ReceiveConfig::default(),
            opus: OpusConfig::default(),
            ceiling: false,
        }
    }
}

/// Result for one profile.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    /// Profile name.
    pub profile: String,
    /// Packets sent.
    pub packets_sent: u64,
    /// Distinct packets that arrived.
    pub packets_arrived: u64,
    /// Packets lost by the network, % of sent.
    pub network_loss_pct: f64,
    /// Packets that arrived but were not played (late or overflow), % of arrived.
    pub late_loss_pct: f64,
    /// Concealed samples, % of samples played since playout started.
    pub concealment_pct: f64,
    /// Mean added delay (ms), see the module documentation.
    pub mean_added_delay_ms: f64,
    /// 95th percentile of the added delay (ms).
    pub p95_added_delay_ms: f64,
    /// Smallest fixed playout delay with ≤ 1 % late loss on this trace (ms).
    pub oracle_delay_ms: f64,
    /// The delay the target allows: 1.2 × oracle + 10 ms.
    pub delay_limit_ms: f64,
    /// Late loss ≤ 1 % and mean added delay ≤ the limit.
    pub meets_target: bool,
    /// Mean of the W3C jitterBufferDelay (ms per emitted sample).
    pub w3c_jitter_buffer_delay_ms: f64,
    /// Target delay at the end of the run (ms).
    pub final_target_delay_ms: f64,
    /// The receive statistics.
    pub stats: JitterStats,
    /// The output file, if written.
    pub wav: Option<PathBuf>,
    /// The codec ceiling's output file, if computed and written.
    pub ceiling_wav: Option<PathBuf>,
    /// PESQ-WB of the output against the input, once scored ([`crate::pesq`]).
    pub pesq: Option<f64>,
    /// PESQ-WB of the codec ceiling, once scored.
    pub ceiling_pesq: Option<f64>,
    /// A drifting sender's profile: the codec ceiling with the stretch no receiver can
    /// avoid placed by an oracle ([`oracle_stretch`]), written and scored like the
    /// ceiling. The gap of such a profile is measured against it.
    pub stretch_ceiling_wav: Option<PathBuf>,
    /// PESQ-WB of the stretched ceiling, once scored.
    pub stretch_ceiling_pesq: Option<f64>,
    /// The codec with perfect timing over the frames this run actually played decoded
    /// (network and late losses both lost): what the run's losses alone cost. Its
    /// score minus the output's is what the timing (stretching, the merge after a gap)
    /// cost; the ceiling minus it is what the late losses cost. Approximate: a frame
    /// rebuilt from the next packet's FEC counts as played (so with Opus it can score
    /// above the ceiling), and a quiet frame removed whole by an acceleration as lost.
    pub played_ceiling_wav: Option<PathBuf>,
    /// PESQ-WB of the played-frames ceiling, once scored.
    pub played_ceiling_pesq: Option<f64>,
    /// The oracle receiver: the codec with one fixed playout delay, the oracle delay
    /// (so within the delay target), knowing the trace in advance: a frame later than
    /// that delay is lost, every other one plays with perfect timing (no stretch).
    /// On a jittery profile the perfect-timing ceiling is out of reach within the delay
    /// target; this is a receiver that meets it.
    pub oracle_ceiling_wav: Option<PathBuf>,
    /// PESQ-WB of the oracle receiver, once scored.
    pub oracle_ceiling_pesq: Option<f64>,
}

impl ProfileReport {
    /// The ceiling the output is judged against: the stretched ceiling of a drifting
    /// sender's profile, else the codec ceiling.
    pub fn reference_ceiling_pesq(&self) -> Option<f64> {
        self.stretch_ceiling_pesq.or(self.ceiling_pesq)
    }

    /// Reference ceiling − PESQ, once both are scored.
    pub fn gap(&self) -> Option<f64> {
        self.pesq
            .zip(self.reference_ceiling_pesq())
            .map(|(a, c)| c - a)
    }
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Codec used.
    pub codec: Codec,
    /// Simulated seconds per profile.
    pub duration_s: f64,
    /// Seed.
    pub seed: u64,
    /// Input: `built-in speech-like signal` or `wav`.
    pub input: String,
    /// Per profile.
    pub profiles: Vec<ProfileReport>,
    /// Every profile met its target.
    pub all_met: bool,
    /// The input as written (`reference.wav`), when an output directory was given.
    pub reference_wav: Option<PathBuf>,
}

/// Runs every requested profile.
pub fn run(cfg: &EvalConfig) -> Result<EvalReport, EvalError> {
    let names: Vec<String> = if cfg.profiles.is_empty() {
        Profile::NAMES.iter().map(|s| (*s).to_string()).collect()
    } else {
        cfg.profiles.clone()
    };
    let profiles = names
        .iter()
        .map(|n| Profile::named(n).ok_or_else(|| EvalError::UnknownProfile(n.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let frames = (cfg.duration.as_millis() / 20).max(1) as usize;
    let input = match &cfg.input {
        Some(v) if v.is_empty() => return Err(EvalError::EmptyInput),
        Some(v) => v.clone(),
        None => media_core::speech::speech_like(frames * FRAME_SAMPLES, cfg.seed),
    };
    if let Some(dir) = &cfg.out_dir {
        std::fs::create_dir_all(dir).map_err(|source| EvalError::Io {
            path: dir.clone(),
            source,
        })?;
        media_core::wav::write_mono_16k(&dir.join("reference.wav"), &input_frames(&input, frames))?;
    }
    let reference_wav = cfg.out_dir.as_ref().map(|d| d.join("reference.wav"));
    let mut reports = Vec::new();
    for (i, p) in profiles.iter().enumerate() {
        let seed = cfg
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(i as u64);
        let (mut rep, out, trace) = run_profile_traced(p, cfg, &input, frames, seed)?;
        if let Some(dir) = &cfg.out_dir {
            let path = dir.join(format!("{}.wav", p.name));
            media_core::wav::write_mono_16k(&path, &out)?;
            rep.wav = Some(path);
        }
        if cfg.ceiling {
            let ceiling = codec_ceiling(cfg, &input, &trace.arrived, &trace.expected_loss)?;
            if let Some(dir) = &cfg.out_dir {
                let path = dir.join(format!("{}.ceiling.wav", p.name));
                media_core::wav::write_mono_16k(&path, &ceiling)?;
                rep.ceiling_wav = Some(path);
            }
            if p.drift_ppm != 0
                && let Some(dir) = &cfg.out_dir
            {
                let stretched = oracle_stretch(&ceiling, &input, frames, p.drift_ppm);
                let path = dir.join(format!("{}.stretch-ceiling.wav", p.name));
                media_core::wav::write_mono_16k(&path, &stretched)?;
                rep.stretch_ceiling_wav = Some(path);
            }
            if let Some(dir) = &cfg.out_dir {
                let played = codec_ceiling(cfg, &input, &trace.played, &trace.expected_loss)?;
                let path = dir.join(format!("{}.played-ceiling.wav", p.name));
                media_core::wav::write_mono_16k(&path, &played)?;
                rep.played_ceiling_wav = Some(path);
                let oracle = codec_ceiling(cfg, &input, &trace.on_time, &trace.expected_loss)?;
                let path = dir.join(format!("{}.oracle-ceiling.wav", p.name));
                media_core::wav::write_mono_16k(&path, &oracle)?;
                rep.oracle_ceiling_wav = Some(path);
            }
        }
        reports.push(rep);
    }
    Ok(EvalReport {
        codec: cfg.codec,
        duration_s: frames as f64 * 0.02,
        seed: cfg.seed,
        input: if cfg.input.is_some() {
            "wav".into()
        } else {
            "built-in speech-like signal".into()
        },
        all_met: reports.iter().all(|r| r.meets_target),
        profiles: reports,
        reference_wav,
    })
}

fn input_frames(input: &[i16], frames: usize) -> Vec<i16> {
    (0..frames * FRAME_SAMPLES)
        .map(|i| input[i % input.len()])
        .collect()
}

/// An encoder and the matching decoder.
type CodecPair = (Box<dyn AudioEncoder>, Box<dyn AudioDecoder>);

fn make_codec(codec: Codec, opus: &OpusConfig) -> Result<CodecPair, EvalError> {
    let enc = media_core::codec::new_encoder(codec, opus).map_err(EvalError::Codec)?;
    let dec = media_core::codec::new_decoder(codec).map_err(EvalError::Codec)?;
    Ok((enc, dec))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The input's frame `k` (the input repeats as needed).
fn input_frame(input: &[i16], k: usize) -> [i16; FRAME_SAMPLES] {
    std::array::from_fn(|i| input[(k * FRAME_SAMPLES + i) % input.len()])
}

/// Input frames quieter than this are a pause for [`oracle_stretch`] (dBFS).
const ORACLE_QUIET_DBFS: f32 = -45.0;

/// The stretch a receiver cannot avoid under a sender whose clock runs `drift_ppm`
/// off its own, applied to `ceiling` (the codec ceiling of `frames` frames of `input`)
/// by an oracle that knows the whole input: one 20 ms frame every `1e6 / |drift_ppm|`
/// frames (each window of that length gets one, so the delay stays bounded as a real
/// receiver's must), repeated (slow sender) or removed (fast sender) in the
/// middle of the window's longest pause (input frames under -45 dBFS), or at its
/// quietest frame when it has no pause. It shows what the drift costs at best: PESQ
/// charges even 20 ms of silence inserted in a 320 ms pause.
pub fn oracle_stretch(ceiling: &[i16], input: &[i16], frames: usize, drift_ppm: i32) -> Vec<i16> {
    let frames = frames.min(ceiling.len() / FRAME_SAMPLES);
    let n = ((f64::from(drift_ppm).abs() * frames as f64 / 1e6).round() as usize).min(frames);
    if n == 0 || input.is_empty() {
        return ceiling.to_vec();
    }
    let level: Vec<f32> = (0..frames)
        .map(|k| media_core::frame::rms_dbfs(&input_frame(input, k)))
        .collect();
    let mut chosen = Vec::with_capacity(n);
    for w in 0..n {
        let (lo, hi) = (w * frames / n, (w + 1) * frames / n);
        // The longest run of quiet frames in the window, else its quietest frame.
        let (mut best, mut best_len, mut run_start) = (None, 0, None);
        for (k, &db) in level.iter().enumerate().take(hi).skip(lo) {
            if db < ORACLE_QUIET_DBFS {
                let start = *run_start.get_or_insert(k);
                if k + 1 - start > best_len {
                    best_len = k + 1 - start;
                    best = Some((start + k) / 2);
                }
            } else {
                run_start = None;
            }
        }
        let k = best.unwrap_or_else(|| {
            (lo..hi)
                .min_by(|&a, &b| level[a].total_cmp(&level[b]))
                .unwrap_or(lo)
        });
        chosen.push(k);
    }
    let mut out = Vec::with_capacity(ceiling.len() + n * FRAME_SAMPLES);
    let mut next = chosen.iter().peekable();
    for (k, frame) in ceiling.chunks(FRAME_SAMPLES).enumerate() {
        if next.peek() == Some(&&k) {
            next.next();
            if drift_ppm > 0 {
                // The pause played twice: its own background, not a hole in it.
                out.extend_from_slice(frame);
            } else {
                continue;
            }
        }
        out.extend_from_slice(frame);
    }
    out
}

/// The codec ceiling: `input` (one frame per entry of `arrived`) through the encoder
/// and decoder of `cfg`, losing the packets whose `arrived` entry is false, with
/// perfect timing: a lost frame is recovered from the next packet's FEC when that one
/// arrived, else concealed. `expected_loss[k]`, when given, is the encoder's
/// expected-loss setting for frame `k` (the adaptation the real run made). The output
/// is aligned with the input (no delay).
pub fn codec_ceiling(
    cfg: &EvalConfig,
    input: &[i16],
    arrived: &[bool],
    expected_loss: &[u8],
) -> Result<Vec<i16>, EvalError> {
    if input.is_empty() {
        return Err(EvalError::EmptyInput);
    }
    let (mut enc, mut dec) = make_codec(cfg.codec, &cfg.opus)?;
    let mut payloads: Vec<Vec<u8>> = Vec::with_capacity(arrived.len());
    let mut buf = [0u8; MAX_PAYLOAD];
    for k in 0..arrived.len() {
        if let Some(&percent) = expected_loss.get(k) {
            enc.set_expected_loss(percent).map_err(EvalError::Codec)?;
        }
        let n = enc
            .encode(&input_frame(input, k), &mut buf)
            .map_err(EvalError::Codec)?;
        payloads.push(buf[..n].to_vec());
    }
    let mut out = Vec::with_capacity(arrived.len() * FRAME_SAMPLES);
    let mut frame = [0i16; FRAME_SAMPLES];
    for (k, &ok) in arrived.iter().enumerate() {
        let res = if ok {
            dec.decode(&payloads[k], &mut frame)
        } else if arrived.get(k + 1) == Some(&true) {
            dec.decode_fec(&payloads[k + 1], &mut frame).map(|_| ())
        } else {
            dec.conceal(&mut frame)
        };
        res.map_err(EvalError::Codec)?;
        out.extend_from_slice(&frame);
    }
    Ok(out)
}

/// Runs one profile: returns its report and the decoded output.
pub fn run_profile(
    profile: &Profile,
    cfg: &EvalConfig,
    input: &[i16],
    frames: usize,
    seed: u64,
) -> Result<(ProfileReport, Vec<i16>), EvalError> {
    run_profile_traced(profile, cfg, input, frames, seed).map(|(r, out, _)| (r, out))
}

/// What the codec ceiling of a run replays.
struct Trace {
    /// Which packets the network delivered.
    arrived: Vec<bool>,
    /// The encoder's expected-loss setting for each frame.
    expected_loss: Vec<u8>,
    /// Which frames the receiver played decoded (not concealed).
    played: Vec<bool>,
    /// Which frames arrived within the oracle delay.
    on_time: Vec<bool>,
}

/// [`run_profile`], also returning the trace the codec ceiling replays.
fn run_profile_traced(
    profile: &Profile,
    cfg: &EvalConfig,
    input: &[i16],
    frames: usize,
    seed: u64,
) -> Result<(ProfileReport, Vec<i16>, Trace), EvalError> {
    if input.is_empty() {
        return Err(EvalError::EmptyInput);
    }
    let (mut enc, dec) = make_codec(cfg.codec, &cfg.opus)?;
    let kind = enc.kind();
    let mut rx = ReceivePipeline::new(cfg.receive, dec);
    let mut net: Impairment<AudioPacket> = Impairment::new(*profile, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED);

    let t0 = Instant::now();
    let mut clock = VirtualClock::new(t0);
    let sender = profile.sender_clock(t0 + Duration::from_millis(1));
    let period_s = sender.period().as_secs_f64();
    let phase = Duration::from_micros(rng.random_range(0..20_000));
    let rx_start = t0 + phase;
    let tick = Duration::from_millis(20);
    // Sequence numbers and timestamps wrap during the run.
    let seq0: u16 = 65_000;
    let ts0: u32 = u32::MAX - 100_000;
    // Keep polling after the last packet so that everything in flight is played.
    let rx_frames = frames + 100;

    let send_s = |k: u64| sender.tick(k).duration_since(t0).as_secs_f64();
    let mut arrival: Vec<Option<f64>> = vec![None; frames];
    let mut out = Vec::with_capacity(rx_frames * FRAME_SAMPLES);
    // (tick time, media samples since ts0, decoded) per delivered frame.
    let mut delivered: Vec<(f64, f64, bool)> = Vec::with_capacity(rx_frames);
    let mut frame = Pcm16kFrame::silent();
    let mut payload = [0u8; MAX_PAYLOAD];
    let mut k = 0usize;
    let mut j = 0usize;
    let mut samples_played = 0u64;
    let mut concealed = 0u64;
    let mut adapter = (kind == Codec::Opus16k && cfg.opus.adaptive_fec)
        .then(|| LossAdapter::new(cfg.opus.max_loss_percent));
    let mut inbound = InboundStats::default();
    let mut expected_loss = Vec::with_capacity(frames);

    while j < rx_frames {
        let next_send = (k < frames).then(|| sender.tick(k as u64));
        let next_rx = rx_start + tick * j as u32;
        let mut next = next_rx;
        if let Some(s) = next_send {
            next = next.min(s);
        }
        if let Some(a) = net.poll_timeout() {
            next = next.min(a);
        }
        clock.advance_to(next);
        let now = clock.now();
        if next_send == Some(now) {
            let pcm = input_frame(input, k);
            expected_loss.push(adapter.map_or(cfg.opus.packet_loss_percent, |a| a.expected_loss()));
            let n = enc.encode(&pcm, &mut payload).map_err(EvalError::Codec)?;
            let mut p = AudioPacket::new(
                seq0.wrapping_add(k as u16),
                ts0.wrapping_add((k * FRAME_SAMPLES) as u32),
                kind,
                &payload[..n],
            )
            .map_err(|_| EvalError::Codec(CodecError::BufferTooSmall))?;
            p.silence = media_core::frame::rms_dbfs(&pcm) < -50.0;
            net.send(now, p);
            k += 1;
        }
        while let Some(p) = net.poll(now) {
            let idx = p.seq.wrapping_sub(seq0) as usize;
            if idx < frames && arrival[idx].is_none() {
                arrival[idx] = Some(now.duration_since(t0).as_secs_f64());
            }
            let arrival_us = now.duration_since(t0).as_micros() as i64;
            inbound.on_packet(arrival_us, p.seq, p.timestamp);
            let _ = rx.handle_packet(now, &p);
        }
        if now == next_rx {
            let info = rx.poll_frame(now, &mut frame);
            out.extend_from_slice(frame.samples());
            let media = info.media_time.samples() as f64 - f64::from(ts0);
            // Frames after the end of the input media (draining) do not count.
            if info.active && media < (frames * FRAME_SAMPLES) as f64 {
                samples_played += FRAME_SAMPLES as u64;
                concealed += u64::from(info.concealed_samples);
                delivered.push((now.duration_since(t0).as_secs_f64(), media, !info.concealed));
            }
            j += 1;
            if let Some(a) = adapter.as_mut().filter(|_| j.is_multiple_of(50)) {
                let jb = rx.stats();
                let interval = inbound.take_interval(jb.late + jb.overflow);
                let report = QualityReport {
                    interval_loss_pct: interval.loss_pct,
                    late_pct: interval.late_pct,
                    max_burst: interval.max_burst,
                    ..QualityReport::default()
                };
                if let Some(percent) = a.on_report(&report) {
                    enc.set_expected_loss(percent).map_err(EvalError::Codec)?;
                }
            }
        }
    }

    // Minimum network delay of the trace.
    let d_min = arrival
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.map(|a| a - send_s(i as u64)))
        .fold(f64::INFINITY, f64::min);
    let d_min = if d_min.is_finite() { d_min } else { 0.0 };
    let rx_start_s = phase.as_secs_f64();
    let next_tick = |a: f64| {
        let n = ((a - rx_start_s - 1e-9) / 0.02).ceil().max(0.0);
        rx_start_s + n * 0.02
    };
    // Oracle.
    let mut need: Vec<f64> = arrival
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.map(|a| next_tick(a) - send_s(i as u64) - d_min))
        .collect();
    need.sort_by(|a, b| b.total_cmp(a));
    let arrived = need.len() as u64;
    let allowed = (arrived as f64 * 0.01).floor() as usize;
    let oracle = need.get(allowed).copied().unwrap_or(0.0).max(0.0);

    // Added delay of each decoded frame.
    let mut added: Vec<f64> = delivered
        .iter()
        .filter(|d| d.2)
        .map(|&(t, media, _)| {
            let pos = media / FRAME_SAMPLES as f64;
            let kf = pos.floor();
            let sent = send_s(kf.max(0.0) as u64) + (pos - kf) * period_s;
            t - sent - d_min
        })
        .collect();
    added.sort_by(f64::total_cmp);
    let mean = if added.is_empty() {
        0.0
    } else {
        added.iter().sum::<f64>() / added.len() as f64
    };
    let stats = rx.stats();
    let late = stats.late + stats.overflow;
    let late_loss_pct = if arrived > 0 {
        100.0 * late as f64 / arrived as f64
    } else {
        0.0
    };
    let concealment_pct = if samples_played > 0 {
        100.0 * concealed as f64 / samples_played as f64
    } else {
        0.0
    };
    let mean_ms = mean * 1e3;
    let oracle_ms = oracle * 1e3;
    let limit = 1.2 * oracle_ms + 10.0;
    let sent = net.stats().sent;
    let rep = ProfileReport {
        profile: profile.name.to_string(),
        packets_sent: sent,
        packets_arrived: arrived,
        network_loss_pct: if sent > 0 {
            100.0 * (sent - arrived.min(sent)) as f64 / sent as f64
        } else {
            0.0
        },
        late_loss_pct,
        concealment_pct,
        mean_added_delay_ms: mean_ms,
        p95_added_delay_ms: percentile(&added, 0.95) * 1e3,
        oracle_delay_ms: oracle_ms,
        delay_limit_ms: limit,
        meets_target: late_loss_pct <= 1.0 && mean_ms <= limit,
        w3c_jitter_buffer_delay_ms: if stats.jitter_buffer_emitted_count > 0 {
            1e3 * stats.jitter_buffer_delay / stats.jitter_buffer_emitted_count as f64
        } else {
            0.0
        },
        final_target_delay_ms: stats.target_delay_ms,
        stats,
        wav: None,
        ceiling_wav: None,
        pesq: None,
        ceiling_pesq: None,
        stretch_ceiling_wav: None,
        stretch_ceiling_pesq: None,
        played_ceiling_wav: None,
        played_ceiling_pesq: None,
        oracle_ceiling_wav: None,
        oracle_ceiling_pesq: None,
    };
    let mut played = vec![false; frames];
    for &(_, media, decoded) in &delivered {
        let idx = (media / FRAME_SAMPLES as f64).round();
        if decoded && idx >= 0.0 && (idx as usize) < frames {
            played[idx as usize] = true;
        }
    }
    let trace = Trace {
        arrived: arrival.iter().map(Option::is_some).collect(),
        expected_loss,
        played,
        on_time: arrival
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.is_some_and(|a| next_tick(a) - send_s(i as u64) - d_min <= oracle + 1e-9)
            })
            .collect(),
    };
    Ok((rep, out, trace))
}

/// Formats the PESQ-WB scores as a text table (empty when nothing was scored): per
/// profile the output's score, the codec ceiling's, the gap, and the delays.
pub fn format_pesq_table(r: &EvalReport) -> String {
    if r.profiles.iter().all(|p| p.pesq.is_none()) {
        return String::new();
    }
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
    let mut s = format!(
        "PESQ-WB (P.862.2), codec {}, aligned by cross-correlation, first {:.0} s skipped\n",
        r.codec,
        crate::pesq::SKIP_S
    );
    s.push_str(&format!(
        "{:<15} {:>6} {:>8} {:>6} {:>7} {:>8} {:>8}\n",
        "profile", "PESQ", "ceiling", "gap", "played", "mean ms", "oracle"
    ));
    for p in &r.profiles {
        let mark = if p.stretch_ceiling_pesq.is_some() {
            "*"
        } else {
            ""
        };
        s.push_str(&format!(
            "{:<15} {:>6} {:>8} {:>6} {:>7} {:>8.1} {:>8.1}\n",
            p.profile,
            f(p.pesq),
            format!("{}{mark}", f(p.reference_ceiling_pesq())),
            f(p.gap()),
            f(p.played_ceiling_pesq),
            p.mean_added_delay_ms,
            p.oracle_delay_ms
        ));
    }
    s.push_str(
        "ceiling = the same codec over the same network loss trace with perfect timing; \
         gap = ceiling - PESQ; played = the codec with perfect timing over the frames \
         this run played (its network and late losses): played - PESQ is what the timing cost\n",
    );
    if let Some(p) = r.profiles.iter().find(|p| p.stretch_ceiling_pesq.is_some()) {
        s.push_str(&format!(
            "* a drifting sender: the ceiling with the unavoidable stretch placed by an oracle \
             (one 20 ms frame per 1/drift, in the longest pause); with perfect timing {} \
             ({})\n",
            f(p.ceiling_pesq),
            p.profile
        ));
    }
    s
}

/// Formats the report as a text table.
pub fn format_table(r: &EvalReport) -> String {
    let mut s = format!(
        "jitter-buffer evaluation: codec {:?}, {:.0} s per profile, seed {}, input: {}\n",
        r.codec, r.duration_s, r.seed, r.input
    );
    s.push_str(&format!(
        "{:<15} {:>6} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>6}\n",
        "profile", "net%", "late%", "conc%", "mean ms", "p95 ms", "oracle", "limit", "met"
    ));
    for p in &r.profiles {
        s.push_str(&format!(
            "{:<15} {:>6.2} {:>6.2} {:>7.2} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>6}\n",
            p.profile,
            p.network_loss_pct,
            p.late_loss_pct,
            p.concealment_pct,
            p.mean_added_delay_ms,
            p.p95_added_delay_ms,
            p.oracle_delay_ms,
            p.delay_limit_ms,
            if p.meets_target { "yes" } else { "NO" }
        ));
    }
    s.push_str(
        "added delay = output tick - send time of the frame's first sample - minimum network delay;\n\
         oracle = smallest fixed playout delay with <= 1 % late loss on the same trace and ticks;\n\
         target: late <= 1 % and mean <= 1.2 x oracle + 10 ms\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 frames: loud, except a short pause (frames 10-11) and a long one (30-39).
    fn talk() -> Vec<i16> {
        (0..100 * FRAME_SAMPLES)
            .map(|i| {
                let k = i / FRAME_SAMPLES;
                if (10..12).contains(&k) || (30..40).contains(&k) {
                    0
                } else {
                    ((i as f64 * 0.2).sin() * 8_000.0) as i16
                }
            })
            .collect()
    }

    #[test]
    fn the_oracle_stretches_in_the_longest_pause_of_each_window() {
        let input = talk();
        // Frame k's samples carry k, so the stretch shows in the frame order.
        let ceiling: Vec<i16> = (0..100 * FRAME_SAMPLES)
            .map(|i| (i / FRAME_SAMPLES) as i16 + 1)
            .collect();
        let frame_ids = |v: &[i16]| -> Vec<i16> { v.chunks(FRAME_SAMPLES).map(|f| f[0]).collect() };
        // 20 000 ppm over 100 frames: two frames, one per window of 50.
        let slow = oracle_stretch(&ceiling, &input, 100, 20_000);
        assert_eq!(slow.len(), 102 * FRAME_SAMPLES);
        let ids = frame_ids(&slow);
        // Window 0..50: the long pause 30..40, middle frame 34 (id 35), played twice.
        assert_eq!(&ids[33..37], &[34, 35, 35, 36]);
        // Window 50..100 has no pause: its quietest frame is played twice.
        let repeats: Vec<usize> = (1..ids.len()).filter(|&i| ids[i] == ids[i - 1]).collect();
        assert_eq!(repeats.len(), 2, "{ids:?}");
        assert!(repeats[1] > 50, "{ids:?}");
        let fast = oracle_stretch(&ceiling, &input, 100, -20_000);
        assert_eq!(fast.len(), 98 * FRAME_SAMPLES);
        let ids = frame_ids(&fast);
        assert!(
            !ids.contains(&35),
            "the long pause's middle frame is removed"
        );
        assert_eq!(oracle_stretch(&ceiling, &input, 100, 0), ceiling);
    }
}
