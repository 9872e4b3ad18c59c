//! A deterministic, structure-aware mutator: seed corpus in, one mutated input out.
//!
//! Every decision comes from the caller's seeded RNG, so a case is reproduced by its
//! seed alone. A case is a corpus item (the seed documents, frames and tokens of
//! [`crate::corpus`]) with 1 to [`MAX_STACKED`] mutations applied in a row:
//!
//! - byte edits: flip a bit, write an interesting byte, insert random bytes, delete a
//!   range, duplicate a chunk (up to 64 copies, for repetition and size blow-up),
//!   truncate, splice with another corpus item, insert a dictionary token;
//! - JSON-aware edits, on the spans a lenient scanner finds (it reads any bytes, valid
//!   JSON or not): replace a value with an extreme one (huge, negative and non-finite
//!   numbers, `-0`, long strings, control characters, escapes, invalid UTF-8, deep
//!   nesting, empty containers, values of the wrong type), replace a value with
//!   another value of the corpus, swap two values, duplicate an object member (a
//!   duplicate key), rename a key to another key of the corpus.
//!
//! The dictionary is every short JSON string and number of the corpus, so a key like
//! `"resourceUrl"` can land in any document.

use std::ops::Range;

use rand::Rng;

/// Most mutations stacked on one corpus item.
pub const MAX_STACKED: usize = 4;

/// Longest dictionary token, in bytes.
const MAX_TOKEN: usize = 64;

/// Bytes that mean something to the parsers (JSON punctuation, escapes, UTF-8 lead
/// bytes, boundaries of integer types).
const INTERESTING_BYTES: &[u8] = &[
    0, 1, 0x1b, b'\n', b'\r', b'\t', b' ', b'"', b'\\', b'/', b'{', b'}', b'[', b']', b',', b':',
    b'-', b'+', b'.', b'0', b'9', b'e', b'E', b'u', 0x7f, 0x80, 0xbf, 0xc0, 0xe2, 0xed, 0xf0, 0xf4,
    0xf5, 0xfe, 0xff,
];

/// Extreme and wrong-typed JSON values written over a value of the input.
const EXTREME_VALUES: &[&[u8]] = &[
    b"0",
    b"-0",
    b"-0.0",
    b"1e999",
    b"-1e999",
    b"1e-999",
    b"0.1e-2147483649",
    b"1.7976931348623157e308",
    b"5e-324",
    b"-1",
    b"0.5",
    b"1E+2",
    b"255",
    b"256",
    b"65535",
    b"65536",
    b"4294967295",
    b"4294967296",
    b"9007199254740993",
    b"9223372036854775807",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"123456789012345678901234567890123456789",
    b"01",
    b"1.",
    b"NaN",
    b"Infinity",
    b"true",
    b"false",
    b"null",
    b"[]",
    b"{}",
    b"[null]",
    b"[[]]",
    b"{\"\":null}",
    b"\"\"",
    b"\" \"",
    b"\"\\u0000\"",
    b"\"\\u001b[2J\\r\\n\"",
    b"\"\\u202e\\u2066\"",
    b"\"\\ud800\"",
    b"\"\\udc00\\ud800\"",
    b"\"\\ud83d\\ude00\"",
    b"\"\\x\"",
    b"\"a\x01b\"",
    b"\"\xff\xfe\"",
    b"\"\xed\xa0\x80\"",
    b"\"\xc0\x80\"",
    b"\"\xe2\x80\xae\"",
    b"\"00000000-0000-0000-0000-000000000000\"",
    b"\"ffffffff-ffff-ffff-ffff-ffffffffffff\"",
    b"\"0000000g-0000-0000-0000-000000000000\"",
    b"\"{00000000-0000-0000-0000-000000000000}\"",
    b"\"00000000000000000000000000000000\"",
    b"\"+\"",
    b"\"+0\"",
    b"\"+123456789012345\"",
    b"\"+1234567890123456\"",
    b"\"quic://[::1]:65535/MediaProcessor\"",
    b"\"quic://h:0/\"",
    b"\"quic://h:65536/\"",
    b"\"net.tcp://[::ffff:127.0.0.1]:1/x\"",
    b"\"https://localhost/callback\"",
    b"\"http://127.0.0.1:1/callback\"",
    b"\"https://user@host:99999/\"",
    b"\"/communications/calls/\"",
    b"\"/communications/calls//participants\"",
];

/// Characters of generated long strings (as JSON string contents).
const LONG_STRING_UNITS: &[&[u8]] = &[b"a", b"\xc3\xa9", b"\\u001b", b"\\\"", b"\\\\", b"%"];

/// Lengths of generated long strings, in units: around the project's limits (excerpt
/// 80, short fields 64, mpUri 1024, blob 16 KiB) and beyond.
const LONG_STRING_LENGTHS: &[usize] = &[63, 64, 65, 80, 81, 240, 241, 1024, 1025, 4096, 16_385];

/// Nesting depths: around serde_json's recursion limit (128) and far beyond.
const NESTING_DEPTHS: &[usize] = &[2, 16, 127, 128, 129, 1000];

/// The JSON structure of some bytes, found by a lenient scanner.
#[derive(Debug, Default)]
struct Spans {
    /// Every value: strings (not keys), numbers, literals, objects and arrays.
    values: Vec<Range<usize>>,
    /// Every object key (with its quotes).
    keys: Vec<Range<usize>>,
    /// Every `"key": value` member.
    members: Vec<Range<usize>>,
}

/// End (exclusive) of the string literal starting at `start` (a `"`); the input's
/// end if it is unterminated.
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Scans any bytes for JSON strings, numbers, literals and containers.
fn scan(b: &[u8]) -> Spans {
    let mut spans = Spans::default();
    // Open containers: where each starts and the key it is the value of.
    let mut open: Vec<(usize, Option<usize>)> = Vec::new();
    let mut pending_key: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let end = match b[i] {
            b'"' => {
                let end = string_end(b, i);
                let after = skip_ws(b, end);
                if b.get(after) == Some(&b':') {
                    spans.keys.push(start..end);
                    pending_key = Some(start);
                    i = after + 1;
                    continue;
                }
                end
            }
            b'-' | b'0'..=b'9' => {
                let mut j = i + 1;
                while j < b.len() && matches!(b[j], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    j += 1;
                }
                j
            }
            b't' | b'f' | b'n' => {
                let word: &[u8] = match b[i] {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !b[i..].starts_with(word) {
                    i += 1;
                    continue;
                }
                i + word.len()
            }
            b'{' | b'[' => {
                open.push((i, pending_key.take()));
                i += 1;
                continue;
            }
            b'}' | b']' => {
                i += 1;
                let Some((open_at, key)) = open.pop() else {
                    continue;
                };
                spans.values.push(open_at..i);
                if let Some(k) = key {
                    spans.members.push(k..i);
                }
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        spans.values.push(start..end);
        if let Some(k) = pending_key.take() {
            spans.members.push(k..end);
        }
        i = end;
    }
    spans
}

/// The short JSON strings and numbers of `corpus`, deduplicated, for dictionary edits.
fn dictionary(corpus: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut tokens: Vec<Vec<u8>> = Vec::new();
    for item in corpus {
        let spans = scan(item);
        for r in spans.keys.iter().chain(&spans.values) {
            let token = &item[r.clone()];
            let scalar = !matches!(token.first(), Some(b'{' | b'['));
            if scalar && token.len() <= MAX_TOKEN && !tokens.iter().any(|t| t == token) {
                tokens.push(token.to_vec());
            }
        }
    }
    tokens
}

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[rng.random_range(0..items.len())])
}

/// A random range of `len` bytes (empty for empty input), biased towards short ranges.
fn random_range(rng: &mut impl Rng, len: usize) -> Range<usize> {
    if len == 0 {
        return 0..0;
    }
    let start = rng.random_range(0..len);
    let max = (len - start).min(if rng.random_bool(0.9) { 16 } else { len });
    start..start + rng.random_range(1..=max)
}

/// A long JSON string literal.
fn long_string(rng: &mut impl Rng) -> Vec<u8> {
    let unit = pick(rng, LONG_STRING_UNITS).copied().unwrap_or(b"a");
    let n = pick(rng, LONG_STRING_LENGTHS).copied().unwrap_or(64);
    let mut s = Vec::with_capacity(n * unit.len() + 2);
    s.push(b'"');
    for _ in 0..n {
        s.extend_from_slice(unit);
    }
    s.push(b'"');
    s
}

/// Deeply nested arrays or objects around `inner`.
fn nested(rng: &mut impl Rng, inner: &[u8]) -> Vec<u8> {
    let depth = pick(rng, NESTING_DEPTHS).copied().unwrap_or(2);
    let (open, close): (&[u8], &[u8]) = if rng.random_bool(0.5) {
        (b"[", b"]")
    } else {
        (b"{\"a\":", b"}")
    };
    let mut v = Vec::with_capacity(depth * (open.len() + 1) + inner.len());
    for _ in 0..depth {
        v.extend_from_slice(open);
    }
    v.extend_from_slice(inner);
    for _ in 0..depth {
        v.extend_from_slice(close);
    }
    v
}

/// Mutates corpus items into fuzz cases. Build one per corpus, then draw cases with
/// [`Mutator::case`].
#[derive(Debug, Clone)]
pub struct Mutator {
    corpus: Vec<Vec<u8>>,
    dictionary: Vec<Vec<u8>>,
    max_len: usize,
}

impl Mutator {
    /// A mutator over `corpus` (at least one item) whose cases are at most `max_len`
    /// bytes long.
    pub fn new(corpus: Vec<Vec<u8>>, max_len: usize) -> Self {
        let dictionary = dictionary(&corpus);
        Mutator {
            corpus,
            dictionary,
            max_len,
        }
    }

    /// The corpus, as given.
    pub fn corpus(&self) -> &[Vec<u8>] {
        &self.corpus
    }

    /// One case: a corpus item with 1 to [`MAX_STACKED`] mutations (one in half the
    /// cases, two in a quarter, ...: most cases stay close to a valid input).
    pub fn case(&self, rng: &mut impl Rng) -> Vec<u8> {
        let mut data = pick(rng, &self.corpus).cloned().unwrap_or_default();
        let mut stacked = 1;
        while stacked < MAX_STACKED && rng.random_bool(0.5) {
            stacked += 1;
        }
        for _ in 0..stacked {
            self.mutate(rng, &mut data);
        }
        data.truncate(self.max_len);
        data
    }

    /// Applies one mutation to `data` in place.
    pub fn mutate(&self, rng: &mut impl Rng, data: &mut Vec<u8>) {
        // JSON-aware edits half the time, when the input has JSON in it.
        if rng.random_bool(0.5) && self.mutate_json(rng, data) {
            return;
        }
        self.mutate_bytes(rng, data);
    }

    fn mutate_bytes(&self, rng: &mut impl Rng, data: &mut Vec<u8>) {
        let len = data.len();
        match rng.random_range(0..9) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] = pick(rng, INTERESTING_BYTES).copied().unwrap_or(0);
            }
            2 => {
                let at = rng.random_range(0..=len);
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                data.drain(random_range(rng, len));
            }
            4 if len > 0 => {
                let chunk = data[random_range(rng, len)].to_vec();
                let copies = if rng.random_bool(0.9) {
                    1
                } else {
                    rng.random_range(2..=64)
                };
                let at = rng.random_range(0..=len);
                let mut insert = Vec::with_capacity(chunk.len() * copies);
                for _ in 0..copies {
                    insert.extend_from_slice(&chunk);
                }
                if len + insert.len() <= self.max_len {
                    data.splice(at..at, insert);
                }
            }
            5 if len > 0 => data.truncate(rng.random_range(0..len)),
            6 => {
                // Splice: a prefix of this input, a suffix of another corpus item.
                let Some(other) = pick(rng, &self.corpus) else {
                    return;
                };
                let cut = rng.random_range(0..=len);
                let from = rng.random_range(0..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            7 => {
                let Some(token) = pick(rng, &self.dictionary) else {
                    return;
                };
                let at = rng.random_range(0..=len);
                data.splice(at..at, token.iter().copied());
            }
            _ => {
                // Overwrite a range with the same range of another corpus item.
                let Some(other) = pick(rng, &self.corpus) else {
                    return;
                };
                let r = random_range(rng, len.min(other.len()));
                data[r.clone()].copy_from_slice(&other[r]);
            }
        }
    }

    /// A JSON-aware edit; false if the input has no span the chosen edit needs.
    fn mutate_json(&self, rng: &mut impl Rng, data: &mut Vec<u8>) -> bool {
        let spans = scan(data);
        let Some(value) = pick(rng, &spans.values).cloned() else {
            return false;
        };
        let replacement: Vec<u8> = match rng.random_range(0..8) {
            0 | 1 => pick(rng, EXTREME_VALUES)
                .copied()
                .unwrap_or(b"null")
                .to_vec(),
            2 => long_string(rng),
            3 => nested(rng, &data[value.clone()]),
            4 => {
                // Another value of this input or of the corpus.
                let other = pick(rng, &self.corpus).unwrap_or(&*data);
                let other_spans = scan(other);
                match pick(rng, &other_spans.values) {
                    Some(r) => other[r.clone()].to_vec(),
                    None => return false,
                }
            }
            5 => {
                // Duplicate a member right after itself: a duplicate key.
                let Some(m) = pick(rng, &spans.members).cloned() else {
                    return false;
                };
                let mut copy = b",".to_vec();
                copy.extend_from_slice(&data[m.clone()]);
                if data.len() + copy.len() <= self.max_len {
                    data.splice(m.end..m.end, copy);
                }
                return true;
            }
            6 => {
                // Rename a key to another key (or string) of the corpus.
                let (Some(k), Some(token)) = (
                    pick(rng, &spans.keys).cloned(),
                    pick(rng, &self.dictionary).filter(|t| t.first() == Some(&b'"')),
                ) else {
                    return false;
                };
                data.splice(k, token.iter().copied());
                return true;
            }
            _ => {
                // Swap two disjoint values.
                let Some(other) = pick(rng, &spans.values).cloned() else {
                    return false;
                };
                let (a, b) = if value.start < other.start {
                    (value, other)
                } else {
                    (other, value)
                };
                if a.end > b.start {
                    return false;
                }
                let (va, vb) = (data[a.clone()].to_vec(), data[b.clone()].to_vec());
                data.splice(b, va);
                data.splice(a, vb);
                return true;
            }
        };
        if data.len() - value.len() + replacement.len() <= self.max_len {
            data.splice(value, replacement);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn text(b: &[u8], r: &Range<usize>) -> String {
        String::from_utf8_lossy(&b[r.clone()]).into_owned()
    }

    #[test]
    fn scanner_finds_keys_values_and_members() {
        let doc = br#"{"a": [1, -2.5e3, true], "b": {"c": "x\"y"}, "d": null}"#;
        let s = scan(doc);
        let keys: Vec<String> = s.keys.iter().map(|r| text(doc, r)).collect();
        assert_eq!(keys, [r#""a""#, r#""b""#, r#""c""#, r#""d""#]);
        let values: Vec<String> = s.values.iter().map(|r| text(doc, r)).collect();
        for v in [
            "1",
            "-2.5e3",
            "true",
            "[1, -2.5e3, true]",
            r#""x\"y""#,
            "null",
        ] {
            assert!(values.iter().any(|x| x == v), "{v} in {values:?}");
        }
        assert_eq!(
            values.last().map(String::as_str),
            Some(&*String::from_utf8_lossy(doc))
        );
        let members: Vec<String> = s.members.iter().map(|r| text(doc, r)).collect();
        assert!(
            members.iter().any(|m| m == r#""b": {"c": "x\"y"}"#),
            "{members:?}"
        );
        assert!(members.iter().any(|m| m == r#""d": null"#), "{members:?}");
    }

    #[test]
    fn scanner_survives_garbage() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            let junk: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            let s = scan(&junk);
            for r in s.values.iter().chain(&s.keys).chain(&s.members) {
                assert!(r.start <= r.end && r.end <= junk.len());
            }
        }
        assert!(scan(b"\"unterminated").values.len() == 1);
    }

    #[test]
    fn cases_are_reproducible_and_bounded() {
        let m = Mutator::new(vec![br#"{"k":"v","n":[1,2]}"#.to_vec()], 4096);
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..100).map(|_| m.case(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert!(draw(9).iter().all(|c| c.len() <= 4096));
    }
}
