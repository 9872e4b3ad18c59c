//! Unmixed audio end to end (issue 14, item 4): a bot asks for each speaker's own
//! stream besides the mix (`SessionOptions::audio`); the emulator's group call has two
//! invitees, its far end plays them on different tones (440 and 880 Hz) and sends
//! their mix plus each one unmixed over QUIC; the bot's frames carry one buffer per
//! speaker, and the roster names each buffer's participant.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bot::{AudioStreams, BotOutput, CallBehaviour, MediaBot};
use common::*;
use graph::RuntimeEventKind;
use platform::AudioFrame;
use signaling::{Identity, IdentitySet, InvitationParticipantInfo, Scenario};

/// What the bot heard: the mix, and each unmixed buffer by its participant's id.
#[derive(Default)]
struct Heard {
    mix: Vec<i16>,
    by_participant: HashMap<String, Vec<i16>>,
    /// Unmixed buffers whose MSI named no participant of the roster.
    unknown: u64,
    /// The most buffers one frame carried.
    most: usize,
}

#[derive(Clone, Default)]
struct Listener(Arc<Mutex<Heard>>);

impl MediaBot for Listener {
    fn new_call(&self, _: uuid::Uuid, _: &str) -> Box<dyn CallBehaviour> {
        Box::new(self.clone())
    }
}

impl CallBehaviour for Listener {
    fn on_frame(&mut self, frame: &AudioFrame, out: &mut BotOutput<'_>) {
        let mut h = self.0.lock().unwrap();
        h.mix.extend_from_slice(frame.samples.samples());
        h.most = h.most.max(frame.unmixed.len());
        for buf in frame.unmixed.as_slice() {
            match out.roster().speaker(buf.msi).participant_id() {
                Some(id) => h
                    .by_participant
                    .entry(id.to_owned())
                    .or_default()
                    .extend_from_slice(buf.samples.samples()),
                None => h.unknown += 1,
            }
        }
    }
}

/// 1 s of a sine at `hz` (loops seamlessly).
fn tone(hz: f32) -> Arc<[i16]> {
    (0..16_000)
        .map(|i| ((i as f32 / 16_000.0 * hz * std::f32::consts::TAU).sin() * 8000.0) as i16)
        .collect()
}

/// Power of `x` at `hz` (Goertzel), per sample.
fn power_at(x: &[i16], hz: f64) -> f64 {
    let c = 2.0 * (std::f64::consts::TAU * hz / 16_000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / x.len().max(1) as f64
}

/// dB of 440 Hz over 880 Hz in `x`.
fn tilt_db(x: &[i16]) -> f64 {
    10.0 * ((power_at(x, 440.0) + 1.0) / (power_at(x, 880.0) + 1.0)).log10()
}

fn invitee(id: &str, name: &str) -> InvitationParticipantInfo {
    InvitationParticipantInfo::new(IdentitySet::user(Identity::new(id, name)))
}

/// A group call whose bot asks for `audio`, two invitees (Ann, Bo) reported speaking
/// (Ann loudest); what the bot heard over 1.5 s once their streams settled, with
/// Ann's and Bo's participant ids.
async fn two_invitees_speaking(audio: AudioStreams) -> (Heard, String, String) {
    let listener = Listener::default();
    let mut cfg = config();
    cfg.bot = Arc::new(listener.clone());
    cfg.sessions.audio = audio;
    // The other party first reported speaking gets 220 Hz, then the invitees 440
    // and 880 Hz in the order they are first reported.
    cfg.far_end.voices = vec![tone(220.0), tone(440.0), tone(880.0)];
    let local = start(cfg).await;
    let runtime = local.bot.runtime().clone();
    let mut rx = runtime.subscribe();
    let call = place_until(
        &local,
        &mut rx,
        Scenario::GroupApp,
        RuntimeEventKind::MediaStarted,
    )
    .await;
    let id = call.call_id.clone();
    // The far end reports the other party speaking once media connects: its voice.
    let started = eventually(Duration::from_secs(5), || {
        listener.0.lock().unwrap().by_participant.len() == 1
    })
    .await;
    assert!(started, "the other party's unmixed stream never came");

    for (user, name) in [
        ("278405a3-f568-4b3e-b684-009193463064", "Ann"),
        ("1b3a0c2d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "Bo"),
    ] {
        runtime
            .invite(&id, vec![invitee(user, name)])
            .await
            .unwrap();
    }
    let id_of = |name: &str| {
        local.emulator.participants(&id).ok().and_then(|r| {
            r.iter()
                .find(|p| p["info"]["identity"]["user"]["displayName"] == name)
                .and_then(|p| p["id"].as_str().map(str::to_owned))
        })
    };
    let both = eventually(Duration::from_secs(5), || {
        id_of("Ann").is_some() && id_of("Bo").is_some()
    })
    .await;
    assert!(both, "{:?}", local.emulator.participants(&id));
    let (ann, bo) = (id_of("Ann").unwrap(), id_of("Bo").unwrap());
    // The bot's roster must know them before their buffers can be named.
    let known = eventually(Duration::from_secs(5), || {
        let roster = runtime.roster(&id).unwrap().borrow().clone();
        roster.participant(&ann).is_some() && roster.participant(&bo).is_some()
    })
    .await;
    assert!(known, "the bot's roster never listed both invitees");

    local.emulator.set_speakers(&id, &[&ann, &bo]).unwrap();
    // Let the jitter buffers settle on the new speakers, then listen for 1.5 s.
    tokio::time::sleep(Duration::from_millis(600)).await;
    *listener.0.lock().unwrap() = Heard::default();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let h = std::mem::take(&mut *listener.0.lock().unwrap());
    runtime.hang_up(&id).await.unwrap();
    (h, ann, bo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_speakers_own_stream_reaches_the_bot_tagged_with_its_participant() {
    let (h, ann, bo) = two_invitees_speaking(AudioStreams::mixed_and_unmixed(4)).await;
    let ann_heard = h.by_participant.get(&ann).map_or(&[][..], Vec::as_slice);
    let bo_heard = h.by_participant.get(&bo).map_or(&[][..], Vec::as_slice);
    let (a, b, m) = (tilt_db(ann_heard), tilt_db(bo_heard), tilt_db(&h.mix));
    eprintln!(
        "mix {} samples, Ann {} ({a:.1} dB 440 over 880), Bo {} ({b:.1} dB), mix {m:.1} dB, \
         participants {:?}, unknown {}, most per frame {}",
        h.mix.len(),
        ann_heard.len(),
        bo_heard.len(),
        h.by_participant.keys().collect::<Vec<_>>(),
        h.unknown,
        h.most
    );
    // About 75 frames each in 1.5 s (a loaded machine may deliver fewer).
    assert!(ann_heard.len() >= 40 * 320 && bo_heard.len() >= 40 * 320);
    assert!(a > 20.0, "Ann's buffers are her 440 Hz tone: {a:.1} dB");
    assert!(b < -20.0, "Bo's buffers are his 880 Hz tone: {b:.1} dB");
    assert!(
        m.abs() < 6.0 && power_at(&h.mix, 440.0) > 1e4,
        "the mix carries both: {m:.1} dB"
    );
    assert_eq!(h.unknown, 0, "every buffer names a participant");
    assert!(h.most >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmixed_only_leaves_the_mix_silent_and_one_stream_carries_the_loudest() {
    // One unmixed stream, no mix: the far end sends Ann (loudest) alone.
    let (h, ann, bo) = two_invitees_speaking(AudioStreams::unmixed_only(1)).await;
    let ann_heard = h.by_participant.get(&ann).map_or(&[][..], Vec::as_slice);
    let a = tilt_db(ann_heard);
    eprintln!(
        "unmixed only: mix {} samples (peak {}), Ann {} ({a:.1} dB), Bo {:?}, most {}",
        h.mix.len(),
        h.mix.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0),
        ann_heard.len(),
        h.by_participant.get(&bo).map(Vec::len),
        h.most
    );
    assert!(h.mix.len() >= 40 * 320, "frames still come");
    assert!(h.mix.iter().all(|&s| s == 0), "the mix is silence");
    assert!(
        ann_heard.len() >= 40 * 320 && a > 20.0,
        "Ann's 440 Hz: {a:.1} dB"
    );
    assert!(
        !h.by_participant.contains_key(&bo),
        "one stream: Ann's only"
    );
    assert_eq!(h.most, 1);
}
