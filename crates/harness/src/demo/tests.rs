//! Unit tests of the demo's measures.
#![allow(clippy::unwrap_used)]

use super::window::{echo_delay_ms, window};
use super::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// The envelope search finds a whole-frame echo delay of speech.
    #[test]
    fn echo_delay_finds_frame_shifts(frames in 0usize..40, seed in 0u64..1000) {
        let sent = media_core::speech::speech_like(6 * 16_000, seed);
        let mut received = vec![0i16; frames * 320];
        received.extend_from_slice(&sent[..sent.len() - frames * 320]);
        prop_assert_eq!(echo_delay_ms(&sent, &received), Some(frames as f64 * 20.0));
    }
}

#[test]
fn echo_delay_needs_a_correlated_echo() {
    let sent = media_core::speech::speech_like(4 * 16_000, 1);
    assert_eq!(echo_delay_ms(&sent, &vec![0; sent.len()]), None);
    assert_eq!(echo_delay_ms(&sent[..320 * 10], &sent[..320 * 10]), None);
}

#[test]
fn windows_carry_the_last_value_when_nothing_changed() {
    let last = DemoSecond {
        jb_delay_ms: 42.0,
        loss_pct: 3.0,
        ..DemoSecond::default()
    };
    let s = SessionSnapshot::default();
    assert_eq!(window(&s, &s, &last), (42.0, 3.0, 0.0));
    let mut cur = s;
    cur.jitter.jitter_buffer_emitted_count = 16_000;
    cur.jitter.jitter_buffer_delay = 16_000.0 * 0.06;
    cur.qoe.packets_received = 49;
    cur.qoe.packets_lost = 1;
    cur.counters.frames_received = 50;
    cur.counters.frames_concealed = 5;
    let (d, l, c) = window(&s, &cur, &last);
    assert!((d - 60.0).abs() < 1e-9 && (l - 2.0).abs() < 1e-9 && (c - 10.0).abs() < 1e-9);
}
