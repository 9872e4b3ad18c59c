//! Checking a WHIP offer before any call exists: [`check_offer`].
//!
//! An offer is refused with an error that names the problem ([`OfferError`]): not SDP
//! at all, no audio m-line, or no audio codec in common with this server. Only an
//! offer that passes becomes a call; a refused one leaves nothing behind.
//!
//! The check reads the audio sections itself (m-lines, `a=rtpmap`, the static payload
//! types 0 and 8) to say what was offered, and lets str0m parse the whole offer.

use str0m::change::SdpOffer;

use crate::codec::AudioCodec;

/// Why an offer was refused. The HTTP status is [`OfferError::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The body is not an SDP session description (the client's fault: send the
    /// offer of `RTCPeerConnection.createOffer`).
    #[error("the body is not an SDP offer: {0}")]
    NotSdp(String),
    /// No `m=audio` line (the client's fault: add an audio transceiver).
    #[error("the offer has no audio m-line (m=audio): this endpoint carries audio calls")]
    NoAudio,
    /// Audio is offered, but in no codec this server takes.
    #[error("no common audio codec: the offer has {offered}; this endpoint takes {accepted}")]
    NoCommonCodec {
        /// The audio codecs of the offer (`name/rate`, comma-separated).
        offered: String,
        /// The codecs this endpoint takes.
        accepted: String,
    },
    /// The WebRTC stack refused the offer (its reason).
    #[error("the offer cannot be answered: {0}")]
    Refused(String),
}

impl OfferError {
    /// The HTTP status of the refusal: 400 for what is not a usable offer, 422
    /// (Unprocessable Content) for a well-formed offer without a common audio codec.
    pub fn status(&self) -> u16 {
        match self {
            OfferError::NotSdp(_) | OfferError::NoAudio | OfferError::Refused(_) => 400,
            OfferError::NoCommonCodec { .. } => 422,
        }
    }
}

/// What an accepted offer carries.
#[derive(Debug)]
pub struct CheckedOffer {
    /// The offer, parsed by str0m.
    pub offer: SdpOffer,
    /// The codec this server will answer with (the first of its preferences the offer
    /// has).
    pub codec: AudioCodec,
    /// Every audio codec of the offer, `name/rate`, in the offer's order.
    pub offered: Vec<String>,
}

/// Checks `sdp` and picks the first codec of `accept` (this server's preference
/// order) that its audio sections offer.
pub fn check_offer(sdp: &str, accept: &[AudioCodec]) -> Result<CheckedOffer, OfferError> {
    let first = sdp.lines().next().unwrap_or("").trim();
    if first != "v=0" {
        return Err(OfferError::NotSdp(format!(
            "an SDP description starts with \"v=0\", this one with {}",
            media_blob::excerpt(first)
        )));
    }
    let mut audio_lines = 0usize;
    let mut offered: Vec<(u8, Option<AudioCodec>, String)> = Vec::new();
    let mut in_audio = false;
    let mut payload_types: Vec<u8> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio ");
            if in_audio {
                audio_lines += 1;
                // m=audio <port> <proto> <fmt> ...
                payload_types = m
                    .split_whitespace()
                    .skip(3)
                    .filter_map(|f| f.parse().ok())
                    .collect();
                for &pt in &payload_types {
                    let codec = AudioCodec::ALL
                        .into_iter()
                        .find(|c| c.static_pt() == Some(pt));
                    let name = codec.map_or_else(|| format!("pt {pt}"), |c| c.to_string());
                    offered.push((pt, codec, name));
                }
            }
            continue;
        }
        if !in_audio {
            continue;
        }
        // a=rtpmap:<pt> <name>/<rate>[/<channels>]
        if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let mut it = map.split_whitespace();
            let (Some(pt), Some(enc)) = (it.next().and_then(|p| p.parse::<u8>().ok()), it.next())
            else {
                continue;
            };
            if !payload_types.contains(&pt) {
                continue;
            }
            let mut parts = enc.split('/');
            let name = parts.next().unwrap_or("");
            let rate = parts
                .next()
                .and_then(|r| r.parse::<u32>().ok())
                .unwrap_or(0);
            if let Some(entry) = offered.iter_mut().rev().find(|e| e.0 == pt) {
                entry.1 = AudioCodec::from_rtpmap(name, rate);
                entry.2 = format!("{name}/{rate}");
            }
        }
    }
    if audio_lines == 0 {
        return Err(OfferError::NoAudio);
    }
    let codec = accept
        .iter()
        .copied()
        .find(|c| offered.iter().any(|o| o.1 == Some(*c)));
    let names: Vec<String> = offered.iter().map(|o| o.2.clone()).collect();
    let Some(codec) = codec else {
        let mut shown: Vec<&str> = Vec::new();
        for n in &names {
            if !shown.contains(&n.as_str()) {
                shown.push(n);
            }
        }
        let offered = if shown.is_empty() {
            "no payload types".to_owned()
        } else {
            // An offer may list a hundred payload types.
            media_blob::bounded(&shown.join(", "), 240)
        };
        return Err(OfferError::NoCommonCodec {
            offered,
            accepted: accept
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let offer = SdpOffer::from_sdp_string(sdp)
        .map_err(|e| OfferError::NotSdp(media_blob::bounded(&e.to_string(), 200)))?;
    Ok(CheckedOffer {
        offer,
        codec,
        offered: names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPUS_AND_G711: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=rtcp-mux\r\n\
        a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n";

    #[test]
    fn picks_the_servers_first_preference_the_offer_has() {
        let c = check_offer(OPUS_AND_G711, &AudioCodec::ALL).expect("a good offer");
        assert_eq!(c.codec, AudioCodec::Opus);
        assert_eq!(c.offered, ["opus/48000", "PCMU/8000", "PCMA/8000"]);
        let c = check_offer(OPUS_AND_G711, &[AudioCodec::Pcma, AudioCodec::Opus]).expect("ok");
        assert_eq!(c.codec, AudioCodec::Pcma);
    }

    #[test]
    fn refusals_name_the_problem() {
        let e = check_offer("hello", &AudioCodec::ALL).expect_err("not sdp");
        assert!(matches!(e, OfferError::NotSdp(_)), "{e}");
        assert_eq!(e.status(), 400);
        let video = OPUS_AND_G711.replace("m=audio", "m=video");
        let e = check_offer(&video, &AudioCodec::ALL).expect_err("no audio");
        assert_eq!(e, OfferError::NoAudio);
        let g722 = OPUS_AND_G711.replace("111 0 8", "9").replace(
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n",
            "a=rtpmap:9 G722/8000\r\n",
        );
        let e = check_offer(&g722, &AudioCodec::ALL).expect_err("no common codec");
        assert_eq!(e.status(), 422);
        let text = e.to_string();
        assert!(
            text.contains("G722/8000") && text.contains("opus/48000"),
            "{text}"
        );
        let e = check_offer(OPUS_AND_G711, &[]).expect_err("nothing accepted");
        assert!(matches!(e, OfferError::NoCommonCodec { .. }));
    }
}
