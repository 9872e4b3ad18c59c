//! `media-processor inspect`: identify, validate and summarise one JSON document.
//!
//! The document is untrusted: at most `--max-bytes` of it are read, report lines
//! are printed with control characters escaped ([`media_blob::escape_controls`]),
//! and errors quote it only through bounded excerpts ([`media_blob::bounded`]). A
//! key repeated in one object is an error. Notifications are read one at a time from
//! the text (the `value` array is never held as a whole), so memory stays near the
//! document's own size however many there are.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{Read, Write};

use anyhow::{Context, bail};
use media_blob::{MediaSessionConfig, bounded, escape_controls};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use signaling::actions::Action;
use signaling::{Call, CommsNotification, DocumentKind, MediaConfig, odata};

/// Arguments of `media-processor inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The JSON file to read, or `-` for standard input.
    pub file: String,
    /// Largest document read, in bytes; a longer one is refused without being parsed.
    #[arg(long, default_value_t = DEFAULT_MAX_BYTES)]
    pub max_bytes: u64,
}

/// Default `--max-bytes`: 4 MiB, far above any Graph document or blob.
pub const DEFAULT_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Longest error detail quoted from a document (serde errors can quote values).
const MAX_DETAIL_CHARS: usize = 240;

/// Reads at most `max_bytes` (one more to tell a longer input).
fn read_input(file: &str, max_bytes: u64) -> anyhow::Result<String> {
    let (name, reader): (String, Box<dyn Read>) = if file == "-" {
        ("standard input".into(), Box::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("reading {file}"))?;
        (file.to_owned(), Box::new(f))
    };
    let mut bytes = Vec::new();
    reader
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {name}"))?;
    if bytes.len() as u64 > max_bytes {
        bail!(
            "{name} is larger than {max_bytes} bytes (--max-bytes); not read further, \
             raise --max-bytes to inspect it"
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{name} is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Problems as report lines (`  - path: problem`), each bounded and escaped.
fn problem_list(problems: &[impl std::fmt::Display]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| format!("  - {}", detail(p)))
        .collect();
    lines.join("\n")
}

/// An error's message (with its causes) made safe to print: bounded and escaped.
fn detail(e: impl std::fmt::Display) -> String {
    bounded(&e.to_string(), MAX_DETAIL_CHARS)
}

/// A document is a media blob when it is an object with `mpUri`, or a JSON string
/// that holds one (the value of `appHostedMediaConfig.blob`).
fn looks_like_blob(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.contains_key("mpUri"),
        Value::String(s) => s.trim_start().starts_with('{') && s.contains("\"mpUri\""),
        _ => false,
    }
}

/// Longest report line for one notification (one may list thousands of
/// participants).
const MAX_LINE_CHARS: usize = 400;

/// The members of an object document, values left unparsed (slices of the text), or
/// `None` for a document that is not an object. A repeated key is an error.
struct TopLevel<'a>(Option<Vec<(String, &'a RawValue)>>);

impl<'de> serde::Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = BTreeSet::new();
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {} in the document",
                    media_blob::excerpt(&key)
                )));
            }
            members.push((key, map.next_value::<&RawValue>()?));
        }
        Ok(TopLevel(Some(members)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(TopLevel(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(TopLevel(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(TopLevel(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(TopLevel(None))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(TopLevel(None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(TopLevel(None))
    }
}

/// The report of a notifications document, read one notification at a time, or `None`
/// when the document is not notifications (by [`signaling::classify`]'s rules: its
/// `@odata.type` says so, or it has none and every entry of a non-empty `value` array
/// reads as a notification).
fn notifications(
    source: &str,
    members: &[(String, &RawValue)],
) -> anyhow::Result<Option<Vec<String>>> {
    let member = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let typed = match member("@odata.type").map(|raw| serde_json::from_str::<Value>(raw.get())) {
        Some(Ok(Value::String(t))) if odata::is(&t, odata::COMMS_NOTIFICATIONS) => true,
        Some(_) => return Ok(None),
        None => false,
    };
    let not_model = |at: String, e: &dyn fmt::Display| {
        anyhow::anyhow!(
            "{source}: {at} does not fit the notifications model: {}",
            detail(e)
        )
    };
    let entries: Vec<&RawValue> = match member("value").map(|raw| serde_json::from_str(raw.get())) {
        Some(Ok(entries)) => entries,
        Some(Err(e)) if typed => return Err(not_model("value".into(), &e)),
        None if typed => return Err(not_model("value".into(), &"missing")),
        _ => return Ok(None),
    };
    if entries.is_empty() && !typed {
        return Ok(None);
    }
    let mut out = vec![
        "commsNotifications".to_owned(),
        format!("  {} notification(s)", entries.len()),
    ];
    for (i, raw) in entries.iter().enumerate() {
        let v = signaling::json::from_slice_strict(raw.get().as_bytes())
            .map_err(|e| not_model(format!("value[{i}]"), &e))?;
        if !typed && !signaling::looks_like_notification(&v) {
            return Ok(None);
        }
        let n: CommsNotification =
            serde_json::from_value(v).map_err(|e| not_model(format!("value[{i}]"), &e))?;
        out.push(format!("    {}", bounded(&n.summary(), MAX_LINE_CHARS)));
    }
    Ok(Some(out))
}

/// Identifies and validates `text`, returning the report lines.
pub fn inspect(source: &str, text: &str) -> anyhow::Result<Vec<String>> {
    let invalid =
        |e: serde_json::Error| anyhow::anyhow!("{source} is not valid JSON: {}", detail(e));
    let TopLevel(members) = serde_json::from_str(text).map_err(invalid)?;
    if let Some(members) = &members
        && let Some(lines) = notifications(source, members)?
    {
        return Ok(lines);
    }
    let v = signaling::json::from_slice_strict(text.as_bytes()).map_err(invalid)?;
    let mut out = Vec::new();
    if looks_like_blob(&v) {
        let config = MediaSessionConfig::from_value(&v).map_err(|e| {
            anyhow::anyhow!(
                "{source}: invalid media session configuration: {}",
                detail(e)
            )
        })?;
        out.push("media session configuration (app-hosted media blob): valid".to_owned());
        out.push(format!("  mpUri: {}", config.mp_uri()));
        out.push(format!("  mpMediaSessionId: {}", config.session_id()));
        out.push(format!(
            "  callId: {}",
            config
                .call_id()
                .map_or_else(|| "(none: older form)".to_owned(), |c| c.to_string())
        ));
        out.push(format!("  audio format: {:?}", config.audio_format()));
        return Ok(out);
    }
    let kind = signaling::classify(&v);
    // An in-call action's body has no @odata.type; a create-call body without one has
    // properties no action has (requestedModalities, ...).
    if matches!(
        kind,
        DocumentKind::Unknown | DocumentKind::CreateCallRequest
    ) && odata::type_of(&v).is_none()
    {
        let fits = signaling::actions::recognise(&v);
        if !fits.is_empty() {
            return action_report(source, &v, &fits);
        }
    }
    match kind {
        DocumentKind::CreateCallRequest => {
            let call: Call = serde_json::from_value(v).map_err(|e| {
                anyhow::anyhow!("{source}: does not fit the call model: {}", detail(e))
            })?;
            let problems = signaling::create_call_problems(&call);
            if !problems.is_empty() {
                bail!(
                    "{source}: invalid create-call request:\n{}",
                    problem_list(&problems)
                );
            }
            out.push(format!("create-call request: valid ({})", call.kind()));
            out.push(format!("  {}", call.summary()));
            out.push(format!(
                "  required permissions: {}",
                call.required_permissions()
            ));
        }
        DocumentKind::Call => {
            let call: Call = serde_json::from_value(v).map_err(|e| {
                anyhow::anyhow!("{source}: does not fit the call model: {}", detail(e))
            })?;
            out.push("call resource".to_owned());
            out.push(format!("  {}", call.summary()));
            if let Some(MediaConfig::AppHosted(app)) = call.media_config.value() {
                let note = match app.blob.value().map(MediaSessionConfig::from_value) {
                    Some(Ok(config)) => format!("blob valid, mpUri {}", config.mp_uri()),
                    Some(Err(e)) => format!("blob not a valid configuration ({})", detail(e)),
                    None => "no blob".to_owned(),
                };
                out.push(format!("  app-hosted media: {note}"));
            }
        }
        // Notifications were read one at a time above, by the same rules.
        _ => bail!(
            "{source}: not a document media-processor knows ({}); expected a media \
             session configuration, a create-call request, a call or commsNotifications",
            detail(signaling::summarize(&v))
        ),
    }
    // Document values (names, URLs) reach the terminal escaped.
    Ok(out.iter().map(|l| escape_controls(l)).collect())
}

/// The report of an in-call action's body: the action (or the actions its shape
/// fits), whether Graph would take it, and the permissions it needs.
fn action_report(source: &str, v: &Value, fits: &[Action]) -> anyhow::Result<Vec<String>> {
    let needs = |a: Action| {
        let p = a.permissions(v).to_string();
        if p.is_empty() {
            "no permission beyond the app's own".to_owned()
        } else {
            p
        }
    };
    if let [action] = fits {
        let problems = action.problems(v);
        if !problems.is_empty() {
            bail!(
                "{source}: invalid {} request (POST {}):\n{}",
                action,
                action.path("{id}"),
                problem_list(&problems)
            );
        }
        return Ok(vec![
            format!("{action} request: valid (POST {})", action.path("{id}")),
            format!("  required permissions: {}", needs(*action)),
        ]);
    }
    let names: Vec<&str> = fits.iter().map(|a| a.name()).collect();
    let mut out = vec![format!(
        "action request body; its shape fits {} actions: {}",
        fits.len(),
        names.join(", ")
    )];
    let mut valid = 0;
    for &a in fits {
        match a.problems(v).first() {
            None => {
                valid += 1;
                out.push(format!("  {a}: valid; needs {}", needs(a)));
            }
            Some(p) => out.push(format!("  {a}: invalid: {}", detail(p))),
        }
    }
    if valid == 0 {
        bail!(
            "{source}: not a valid request of any action it fits:\n{}",
            out[1..].join("\n")
        );
    }
    Ok(out.iter().map(|l| escape_controls(l)).collect())
}

/// Runs the subcommand.
pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let text = read_input(&args.file, args.max_bytes)?;
    let source = if args.file == "-" {
        "standard input".to_owned()
    } else {
        escape_controls(&args.file)
    };
    let source = source.as_str();
    let lines = inspect(source, &text)?;
    // A reader that stops early (`| head`) is not an error.
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        match writeln!(stdout, "{line}") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("writing the report"),
        }
    }
    match stdout.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the report")
        }
        _ => Ok(()),
    }
}
