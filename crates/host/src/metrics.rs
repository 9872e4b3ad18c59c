//! The host's metrics and their Prometheus text exposition (format 0.0.4), written by
//! hand: counters, gauges and fixed-bucket histograms, nothing else.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// A histogram with fixed upper bounds (`le`), cumulative on output.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Counts one observation (non-finite values are ignored).
    pub fn observe(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Jitter-buffer delay buckets, ms.
const DELAY_MS: &[f64] = &[
    10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 150.0, 200.0, 300.0, 500.0,
];
/// Percent buckets (loss, concealment).
const PERCENT: &[f64] = &[0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0];
/// CPU buckets: percent of one core a call's media took.
const CPU_PERCENT: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0];
/// Round-trip buckets, ms.
const RTT_MS: &[f64] = &[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0];

/// One ended call's quality, observed into the per-call histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallQoe {
    /// Mean jitter-buffer delay of the samples played, ms.
    pub jitter_buffer_delay_ms: f64,
    /// Inbound loss, percent.
    pub loss_pct: f64,
    /// Received frames with concealment, percent.
    pub concealment_pct: f64,
    /// Smoothed round-trip time at the end, ms.
    pub rtt_ms: f64,
    /// Media ticks that started late (more than 5 ms), percent of the call's ticks.
    pub late_ticks_pct: f64,
    /// Reactor time the call's media took over the media time it ran, percent of one
    /// core.
    pub cpu_pct: f64,
}

#[derive(Debug)]
struct Inner {
    admitted: BTreeMap<&'static str, u64>,
    refused: BTreeMap<&'static str, u64>,
    ended: BTreeMap<&'static str, u64>,
    jb_delay: Histogram,
    loss: Histogram,
    conceal: Histogram,
    rtt: Histogram,
    late_ticks: Histogram,
    cpu: Histogram,
    applied: u64,
    forwarded: BTreeMap<&'static str, u64>,
    peer_failures: u64,
}

/// The host's counters and histograms (gauges are read at scrape time: [`Gauges`]).
#[derive(Debug)]
pub struct Metrics(Mutex<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self(Mutex::new(Inner {
            admitted: BTreeMap::new(),
            refused: BTreeMap::new(),
            ended: BTreeMap::new(),
            jb_delay: Histogram::new(DELAY_MS),
            loss: Histogram::new(PERCENT),
            conceal: Histogram::new(PERCENT),
            rtt: Histogram::new(RTT_MS),
            late_ticks: Histogram::new(PERCENT),
            cpu: Histogram::new(CPU_PERCENT),
            applied: 0,
            forwarded: BTreeMap::new(),
            peer_failures: 0,
        }))
    }
}

/// What is read at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Gauges {
    /// Calls the runtime follows.
    pub calls_active: usize,
    /// Media sessions held (waiting or running).
    pub media_sessions: usize,
    /// The platform's health.
    pub health: Option<platform::Health>,
    /// The platform's load (busy / wall time of the reactor threads).
    pub load: f64,
    /// Draining (SIGTERM received).
    pub draining: bool,
    /// Ready for new calls.
    pub ready: bool,
    /// Ticks run by all calls since start.
    pub ticks: u64,
    /// Of which started late.
    pub late_ticks: u64,
    /// Peers are configured: the routing families are written (a single instance
    /// writes none of them).
    pub routing: bool,
}

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call was admitted (`placed`, `answered`, `whip` or `ws`).
    pub fn admitted(&self, direction: &'static str) {
        *self.inner().admitted.entry(direction).or_default() += 1;
    }

    /// A call was refused for `reason` (`draining`, `overloaded`, `not_answering`, `failed`).
    pub fn refused(&self, reason: &'static str) {
        *self.inner().refused.entry(reason).or_default() += 1;
    }

    /// A call ended for `reason`.
    pub fn ended(&self, reason: &'static str) {
        *self.inner().ended.entry(reason).or_default() += 1;
    }

    /// An ended call's quality.
    pub fn observe(&self, q: CallQoe) {
        let mut m = self.inner();
        m.jb_delay.observe(q.jitter_buffer_delay_ms);
        m.loss.observe(q.loss_pct);
        m.conceal.observe(q.concealment_pct);
        m.rtt.observe(q.rtt_ms);
        m.late_ticks.observe(q.late_ticks_pct);
        m.cpu.observe(q.cpu_pct);
    }

    /// `n` notifications were handed to this instance's own call runtime (received
    /// directly or forwarded by a peer) and accepted.
    pub fn applied(&self, n: usize) {
        self.inner().applied += n as u64;
    }

    /// A callback request for a call this instance does not own was forwarded, with
    /// `outcome`: `owner` (a peer applied it), `refused` (the owner answered neither
    /// 2xx nor 404, e.g. 401), `unowned` (no peer owns it: 404), `incoming_placed`
    /// (an offered call handed to a ready peer while draining), `incoming_kept` (no
    /// ready peer: handled here).
    pub fn forwarded(&self, outcome: &'static str) {
        *self.inner().forwarded.entry(outcome).or_default() += 1;
    }

    /// A peer could not be reached (or did not answer in time) with a forwarded request.
    pub fn peer_failure(&self) {
        self.inner().peer_failures += 1;
    }

    /// Callback requests forwarded with `outcome` so far.
    pub fn forwarded_count(&self, outcome: &str) -> u64 {
        self.inner().forwarded.get(outcome).copied().unwrap_or(0)
    }

    /// Calls admitted with `direction` so far.
    pub fn admitted_count(&self, direction: &str) -> u64 {
        self.inner().admitted.get(direction).copied().unwrap_or(0)
    }

    /// Calls ended for `reason` so far.
    pub fn ended_count(&self, reason: &str) -> u64 {
        self.inner().ended.get(reason).copied().unwrap_or(0)
    }

    /// Per-call QoE observations so far (ended calls whose report arrived).
    pub fn observed_count(&self) -> u64 {
        self.inner().late_ticks.count()
    }

    /// Calls refused for `reason` so far.
    pub fn refused_count(&self, reason: &str) -> u64 {
        self.inner().refused.get(reason).copied().unwrap_or(0)
    }

    /// The text exposition of everything, with `g` read now.
    pub fn render(&self, g: &Gauges) -> String {
        let m = self.inner();
        let mut out = String::with_capacity(4096);
        gauge(
            &mut out,
            "mp_calls_active",
            "Calls the host follows now.",
            g.calls_active as f64,
        );
        gauge(
            &mut out,
            "mp_media_sessions",
            "Media sessions held (waiting for the far end or running).",
            g.media_sessions as f64,
        );
        labelled(
            &mut out,
            "mp_calls_admitted_total",
            "counter",
            "Calls admitted, by direction.",
            "direction",
            &m.admitted,
            &["placed", "answered"],
        );
        labelled(
            &mut out,
            "mp_calls_refused_total",
            "counter",
            "Calls refused, by reason.",
            "reason",
            &m.refused,
            &["draining", "overloaded", "not_answering", "failed"],
        );
        labelled(
            &mut out,
            "mp_calls_ended_total",
            "counter",
            "Calls ended, by reason.",
            "reason",
            &m.ended,
            &[],
        );
        histogram(
            &mut out,
            "mp_call_jitter_buffer_delay_ms",
            "Per ended call: mean jitter-buffer delay, ms.",
            &m.jb_delay,
        );
        histogram(
            &mut out,
            "mp_call_loss_percent",
            "Per ended call: inbound packets lost, percent.",
            &m.loss,
        );
        histogram(
            &mut out,
            "mp_call_concealment_percent",
            "Per ended call: received frames with concealment, percent.",
            &m.conceal,
        );
        histogram(
            &mut out,
            "mp_call_rtt_ms",
            "Per ended call: round-trip time at the end, ms.",
            &m.rtt,
        );
        histogram(
            &mut out,
            "mp_call_late_ticks_percent",
            "Per ended call: media ticks that started more than 5 ms late, percent.",
            &m.late_ticks,
        );
        histogram(
            &mut out,
            "mp_call_cpu_percent",
            "Per ended call: reactor time its media took over the media time it ran, percent of one core.",
            &m.cpu,
        );
        counter(
            &mut out,
            "mp_ticks_total",
            "Media ticks run by all calls.",
            g.ticks,
        );
        counter(
            &mut out,
            "mp_ticks_late_total",
            "Media ticks that started late (more than 2 ms after their instant).",
            g.late_ticks,
        );
        let _ = writeln!(
            out,
            "# HELP mp_health Media platform health: 1 for the current state."
        );
        let _ = writeln!(out, "# TYPE mp_health gauge");
        for (name, h) in [
            ("normal", platform::Health::Normal),
            ("heavily_loaded", platform::Health::HeavilyLoaded),
            ("overloaded", platform::Health::Overloaded),
        ] {
            let v = u8::from(g.health == Some(h));
            let _ = writeln!(out, "mp_health{{state=\"{name}\"}} {v}");
        }
        gauge(
            &mut out,
            "mp_platform_load",
            "Reactor threads' busy time over wall time, last window.",
            g.load,
        );
        gauge(
            &mut out,
            "mp_draining",
            "1 once SIGTERM was received.",
            f64::from(u8::from(g.draining)),
        );
        gauge(
            &mut out,
            "mp_ready",
            "1 while new calls are taken (what /readyz says).",
            f64::from(u8::from(g.ready)),
        );
        if g.routing {
            counter(
                &mut out,
                "mp_notifications_applied_total",
                "Notifications handed to this instance's calls (received or forwarded to it).",
                m.applied,
            );
            labelled(
                &mut out,
                "mp_callbacks_forwarded_total",
                "counter",
                "Callback requests of calls this instance does not own, forwarded to the peers, by outcome.",
                "outcome",
                &m.forwarded,
                &[
                    "owner",
                    "refused",
                    "unowned",
                    "incoming_placed",
                    "incoming_kept",
                ],
            );
            counter(
                &mut out,
                "mp_callback_peer_failures_total",
                "Forwarded requests a peer did not answer (unreachable, timeout).",
                m.peer_failures,
            );
        }
        out
    }
}

fn num(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

fn gauge(out: &mut String, name: &str, help: &str, v: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
        num(v)
    );
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

/// A family with one label; `always` label values are written even at zero.
fn labelled(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    values: &BTreeMap<&'static str, u64>,
    always: &[&'static str],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    let mut all: BTreeMap<&str, u64> = always.iter().map(|k| (*k, 0)).collect();
    all.extend(values.iter().map(|(k, v)| (*k, *v)));
    for (k, v) in all {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", escape(k));
    }
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (b, c) in h.bounds.iter().zip(&h.counts) {
        cumulative += c;
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", num(*b));
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", num(h.sum));
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// A label value escaped as the text format wants (`\\`, `\"`, `\n`).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A strict reader of the text format (what the tests check the output with).
pub mod parse {
    use std::collections::BTreeMap;

    /// One sample: name, labels, value.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Sample {
        /// The sample's name (`x_bucket`, `x_sum`, ... for histograms).
        pub name: String,
        /// Its labels.
        pub labels: BTreeMap<String, String>,
        /// Its value.
        pub value: f64,
    }

    /// Parses `text`, checking: every sample belongs to a family declared by `# TYPE`
    /// before it, each family is declared once and its samples are contiguous, names
    /// and labels are well formed, label names are unique, values parse, histograms'
    /// buckets ascend in `le`, are cumulative, end with `+Inf` equal to `_count`.
    /// Returns the samples, or the first problem with its line number.
    pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut closed: Vec<String> = Vec::new();
        let mut samples = Vec::new();
        let mut hist: Option<(String, f64, f64, Option<f64>)> = None;
        for (i, line) in text.lines().enumerate() {
            let at = |m: String| format!("line {}: {m}: {line:?}", i + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if !valid_name(name) {
                    return Err(at("bad metric name".into()));
                }
                match kw {
                    "HELP" => {}
                    "TYPE" => {
                        let t = parts.next().unwrap_or("");
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                            return Err(at(format!("unknown type {t:?}")));
                        }
                        if types.insert(name.to_owned(), t.to_owned()).is_some() {
                            return Err(at("family declared twice".into()));
                        }
                        if let Some(c) = current.replace(name.to_owned()) {
                            closed.push(c);
                        }
                    }
                    _ => return Err(at("unknown comment keyword".into())),
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let s = sample(line).map_err(at)?;
            let family = current
                .clone()
                .ok_or_else(|| at("sample before any # TYPE".into()))?;
            let kind = &types[&family];
            let ok = match kind.as_str() {
                "histogram" => [
                    format!("{family}_bucket"),
                    format!("{family}_sum"),
                    format!("{family}_count"),
                ]
                .contains(&s.name),
                "counter" => s.name == family && family.ends_with("_total"),
                _ => s.name == family,
            };
            if !ok || closed.contains(&family) {
                return Err(at(format!("sample outside its family {family} ({kind})")));
            }
            if kind == "histogram" {
                let h = hist.get_or_insert_with(|| (family.clone(), f64::NEG_INFINITY, 0.0, None));
                if h.0 != family {
                    *h = (family.clone(), f64::NEG_INFINITY, 0.0, None);
                }
                if s.name.ends_with("_bucket") {
                    let le = s
                        .labels
                        .get("le")
                        .ok_or_else(|| at("bucket without le".into()))?;
                    let le: f64 = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().map_err(|_| at("bad le".into()))?
                    };
                    if le <= h.1 || s.value < h.2 {
                        return Err(at("buckets not ascending or not cumulative".into()));
                    }
                    h.1 = le;
                    h.2 = s.value;
                    if le.is_infinite() {
                        h.3 = Some(s.value);
                    }
                } else if s.name.ends_with("_count") && h.3 != Some(s.value) {
                    return Err(at("_count differs from the +Inf bucket (or no +Inf)".into()));
                }
            }
            samples.push(s);
        }
        Ok(samples)
    }

    /// The value of the first sample named `name` (with the label `label`, if given).
    pub fn value(samples: &[Sample], name: &str, label: Option<(&str, &str)>) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && label.is_none_or(|(k, v)| s.labels.get(k).map(String::as_str) == Some(v))
            })
            .map(|s| s.value)
    }

    fn valid_name(n: &str) -> bool {
        let mut c = n.chars();
        matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
    }

    fn sample(line: &str) -> Result<Sample, String> {
        let (head, value) = line.rsplit_once(' ').ok_or("no value")?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| "bad value".to_owned())?,
        };
        let (name, labels) = match head.split_once('{') {
            None => (head, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').ok_or("labels not closed")?;
                (name, labels(body)?)
            }
        };
        if !valid_name(name) {
            return Err("bad sample name".into());
        }
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    fn labels(mut body: &str) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        while !body.is_empty() {
            let (k, rest) = body.split_once("=\"").ok_or("label without =\"")?;
            if !valid_name(k) || k.contains(':') {
                return Err(format!("bad label name {k:?}"));
            }
            let mut v = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("label value not closed".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => v.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => v.push(c),
                        _ => return Err("bad escape".into()),
                    },
                    Some((_, c)) => v.push(c),
                }
            };
            if out.insert(k.to_owned(), v).is_some() {
                return Err(format!("label {k} twice"));
            }
            body = &rest[end + 1..];
            body = body.strip_prefix(',').unwrap_or(body);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_parses_strictly_and_carries_the_figures() {
        let m = Metrics::default();
        m.admitted("placed");
        m.admitted("answered");
        m.refused("draining");
        m.ended("drain_deadline");
        m.observe(CallQoe {
            jitter_buffer_delay_ms: 45.0,
            loss_pct: 0.0,
            concealment_pct: 1.5,
            rtt_ms: 0.3,
            late_ticks_pct: 0.0,
            cpu_pct: 0.4,
        });
        m.observe(CallQoe {
            jitter_buffer_delay_ms: 700.0,
            loss_pct: 3.0,
            concealment_pct: 0.0,
            rtt_ms: f64::NAN,
            late_ticks_pct: 12.0,
            cpu_pct: 1.2,
        });
        let text = m.render(&Gauges {
            calls_active: 2,
            health: Some(platform::Health::HeavilyLoaded),
            draining: true,
            ..Gauges::default()
        });
        let samples = parse::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let get = |name: &str, label: Option<(&str, &str)>| parse::value(&samples, name, label);
        assert_eq!(get("mp_calls_active", None), Some(2.0));
        assert_eq!(
            get("mp_calls_refused_total", Some(("reason", "draining"))),
            Some(1.0)
        );
        assert_eq!(
            get("mp_calls_refused_total", Some(("reason", "overloaded"))),
            Some(0.0)
        );
        assert_eq!(
            get("mp_calls_ended_total", Some(("reason", "drain_deadline"))),
            Some(1.0)
        );
        assert_eq!(
            get("mp_health", Some(("state", "heavily_loaded"))),
            Some(1.0)
        );
        assert_eq!(get("mp_health", Some(("state", "normal"))), Some(0.0));
        assert_eq!(
            get("mp_call_jitter_buffer_delay_ms_bucket", Some(("le", "60"))),
            Some(1.0)
        );
        assert_eq!(
            get(
                "mp_call_jitter_buffer_delay_ms_bucket",
                Some(("le", "+Inf"))
            ),
            Some(2.0)
        );
        assert_eq!(get("mp_call_jitter_buffer_delay_ms_sum", None), Some(745.0));
        assert_eq!(
            get("mp_call_late_ticks_percent_bucket", Some(("le", "10"))),
            Some(1.0)
        );
        assert_eq!(
            get("mp_call_late_ticks_percent_bucket", Some(("le", "20"))),
            Some(2.0)
        );
        assert_eq!(
            get("mp_call_cpu_percent_bucket", Some(("le", "0.5"))),
            Some(1.0)
        );
        assert_eq!(get("mp_call_cpu_percent_count", None), Some(2.0));
        assert_eq!(get("mp_call_rtt_ms_count", None), Some(1.0));
    }

    #[test]
    fn routing_families_only_with_peers() {
        let m = Metrics::default();
        m.applied(3);
        m.forwarded("owner");
        m.forwarded("owner");
        m.peer_failure();
        let single = m.render(&Gauges::default());
        assert!(!single.contains("mp_callbacks_forwarded_total"), "{single}");
        let text = m.render(&Gauges {
            routing: true,
            ..Gauges::default()
        });
        let samples = parse::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let get = |name: &str, label: Option<(&str, &str)>| parse::value(&samples, name, label);
        assert_eq!(get("mp_notifications_applied_total", None), Some(3.0));
        assert_eq!(
            get("mp_callbacks_forwarded_total", Some(("outcome", "owner"))),
            Some(2.0)
        );
        assert_eq!(
            get("mp_callbacks_forwarded_total", Some(("outcome", "unowned"))),
            Some(0.0)
        );
        assert_eq!(get("mp_callback_peer_failures_total", None), Some(1.0));
    }

    #[test]
    fn the_parser_refuses_what_the_format_forbids() {
        for bad in [
            "x 1\n",
            "# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n",
            "# TYPE x counter\nx 1\n",
            "# TYPE x gauge\nx{a=\"1} 1\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",
            "# TYPE x gauge\n# TYPE y gauge\nx 1\n",
            "# TYPE x gauge\nx one\n",
        ] {
            assert!(parse::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        let values = BTreeMap::from([("a\"b\\c\nd", 1)]);
        labelled(&mut out, "x_total", "counter", "h", "r", &values, &[]);
        let s = parse::parse(&out).expect("parses");
        assert_eq!(s[0].labels["r"], "a\"b\\c\nd");
    }
}
