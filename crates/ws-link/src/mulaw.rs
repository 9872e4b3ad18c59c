//! G.711 µ-law (ITU-T G.711 §A, the North American companding law), the encoding of
//! Twilio's 8 kHz media.
//!
//! Encoding uses the standard segment formula (bias 0x84, clip at 32 635, bits
//! inverted on the line); decoding a 256-entry table built from the inverse formula
//! at compile time. Both are allocation-free and never fail.

/// Added to the magnitude before the segment search (G.711's bias, 132).
const BIAS: i32 = 0x84;
/// Largest 14-bit magnitude encoded without clipping.
const CLIP: i32 = 8_159;
/// Upper ends of the eight segments of 14-bit magnitudes (plus the bias).
const SEGMENT_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];

/// One 16-bit linear sample to its µ-law byte (the reference implementation's
/// arithmetic: 14-bit magnitude, bias 33, segment search, bits inverted on the line).
pub fn encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 2;
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    let pcm = pcm.min(CLIP) + (BIAS >> 2);
    let segment = SEGMENT_END
        .iter()
        .position(|&end| pcm <= end)
        .unwrap_or(SEGMENT_END.len());
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let code = ((segment as i32) << 4) | ((pcm >> (segment + 1)) & 0x0F);
    (code as u8) ^ mask
}

/// One µ-law byte to its 16-bit linear sample.
pub fn decode(byte: u8) -> i16 {
    DECODE[usize::from(byte)]
}

const fn decode_formula(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = ((b >> 4) & 0x07) as i32;
    let mantissa = (b & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = decode_formula(i as u8);
        i += 1;
    }
    t
};

/// Decodes `bytes` into `out` (one sample per byte); returns the samples written
/// (`min(bytes.len(), out.len())`).
pub fn decode_into(bytes: &[u8], out: &mut [i16]) -> usize {
    let n = bytes.len().min(out.len());
    for (o, &b) in out.iter_mut().zip(&bytes[..n]) {
        *o = decode(b);
    }
    n
}

/// Encodes `samples` into `out` (one byte per sample); returns the bytes written.
pub fn encode_into(samples: &[i16], out: &mut [u8]) -> usize {
    let n = samples.len().min(out.len());
    for (o, &s) in out.iter_mut().zip(&samples[..n]) {
        *o = encode(s);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_of_g711() {
        // Reference points of G.711 µ-law, as the Sun/CCITT reference code (and
        // Python's audioop) compute them.
        let encoded = [
            (0, 0xFF),
            (1, 0xFF),
            (-1, 0x7E),
            (100, 0xF2),
            (1000, 0xCE),
            (-1000, 0x4E),
            (-5000, 0x2B),
            (12_345, 0x97),
            (i16::MAX, 0x80),
            (i16::MIN, 0x00),
        ];
        for (sample, code) in encoded {
            assert_eq!(encode(sample), code, "encode({sample})");
        }
        let decoded = [
            (0xFF, 0),
            (0x7F, 0),
            (0x80, 32_124),
            (0x00, -32_124),
            (0xCE, 988),
            (0x4E, -988),
            (0xF0, 120),
            (0x10, -15_996),
        ];
        for (code, sample) in decoded {
            assert_eq!(decode(code), sample, "decode({code:#04x})");
        }
    }

    #[test]
    fn every_code_round_trips_and_decoding_is_monotonic() {
        for b in 0..=255u8 {
            let x = decode(b);
            // 0x7F and 0xFF both mean zero; encode picks the positive one.
            let back = encode(x);
            assert!(
                back == b || (x == 0 && back == 0xFF),
                "code {b:#04x} -> {x} -> {back:#04x}"
            );
        }
        let mut last = i16::MIN;
        for b in (0x00..=0x7Fu8).chain((0x80..=0xFFu8).rev()) {
            let x = decode(b);
            assert!(x >= last, "decoding is monotonic at {b:#04x}");
            last = x;
        }
    }

    #[test]
    fn quantisation_error_is_within_the_segment_step() {
        for s in (-32_000..=32_000i32).step_by(7) {
            let s = s as i16;
            let err = (i32::from(decode(encode(s))) - i32::from(s)).abs();
            // Half a quantisation step is at most 1/16 of the magnitude at a segment's
            // start, and 4 in the first segment (steps of 8); the 14-bit truncation adds
            // up to 4.
            let bound = i32::from(s).abs() / 16 + 8;
            assert!(err <= bound, "{s}: error {err} > {bound}");
        }
    }
}
