//! Hostile input never panics: arbitrary and mutated SDP offers through
//! `check_offer` and `RtcLink::answer`, arbitrary RTP payloads through the inbound
//! conversion, arbitrary datagrams at a live link. Each is refused (or dropped and
//! counted), and the link keeps working.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_core::link::MediaLink;
use proptest::prelude::*;
use webrtc_link::media::RtpInbound;
use webrtc_link::peer::WhipPeer;
use webrtc_link::{AudioCodec, RtcLink, check_offer};

/// A real offer (str0m's, as a browser's would be) to mutate.
fn real_offer() -> String {
    let peer = WhipPeer::new(
        AudioCodec::Opus,
        "10.0.0.1:5000".parse().expect("addr"),
        Instant::now(),
        false,
    )
    .expect("a peer");
    peer.offer().to_owned()
}

fn server_addr() -> SocketAddr {
    "10.0.0.2:6000".parse().expect("addr")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_refused_or_answered_never_a_panic(text in "\\PC{0,400}") {
        if let Ok(checked) = check_offer(&text, &AudioCodec::ALL) {
            let _ = RtcLink::answer(checked, server_addr(), Instant::now(), Duration::from_secs(1));
        }
    }

    #[test]
    fn mutated_offers_are_refused_with_a_reason_or_answered(
        cut in 0usize..2000,
        insert in "\\PC{0,40}",
        drop_line in 0usize..40,
    ) {
        let offer = real_offer();
        let mut lines: Vec<&str> = offer.split("\r\n").collect();
        if drop_line < lines.len() {
            lines.remove(drop_line);
        }
        let mut text = lines.join("\r\n");
        let at = cut.min(text.len());
        if text.is_char_boundary(at) {
            text.insert_str(at, &insert);
        }
        match check_offer(&text, &AudioCodec::ALL) {
            Ok(checked) => {
                if let Err(e) =
                    RtcLink::answer(checked, server_addr(), Instant::now(), Duration::from_secs(1))
                {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            Err(e) => {
                prop_assert!((400..500).contains(&e.status()));
                prop_assert!(e.to_string().len() < 600, "bounded: {}", e);
            }
        }
    }

    #[test]
    fn arbitrary_payloads_are_taken_or_refused(
        codec in prop::sample::select(AudioCodec::ALL.to_vec()),
        payloads in prop::collection::vec(
            (any::<u64>(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..1500)),
            1..20,
        ),
    ) {
        let mut inbound = RtpInbound::new(codec).expect("inbound");
        for (seq, time, payload) in payloads {
            let _ = inbound.push(seq, time, &payload, |p| {
                assert!(p.payload().len() <= media_core::packet::MAX_PAYLOAD);
            });
        }
    }

    #[test]
    fn arbitrary_datagrams_at_a_live_link_are_dropped(
        datagrams in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1400), 1..30),
    ) {
        let now = Instant::now();
        let checked = check_offer(&real_offer(), &AudioCodec::ALL).expect("a good offer");
        let (mut link, _) =
            RtcLink::answer(checked, server_addr(), now, Duration::from_secs(5)).expect("answered");
        let from: SocketAddr = "10.9.9.9:4000".parse().expect("addr");
        for (i, d) in datagrams.iter().enumerate() {
            let t = now + Duration::from_millis(i as u64);
            link.handle_receive(t, from, d);
            link.handle_timeout(t);
            while link.poll_transmit().is_some() {}
            while link.poll_event().is_some() {}
        }
        let stats = link.stats();
        prop_assert_eq!(stats.transport_received, datagrams.len() as u64);
        prop_assert_eq!(stats.delivered, 0);
    }
}
