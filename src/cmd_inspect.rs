//! `media-processor inspect`: identify, validate and summarise one JSON document.
//!
//! The document is untrusted: at most `--max-bytes` of it are read, report lines
//! are printed with control characters escaped ([`media_blob::escape_controls`]),
//! and errors quote it only through bounded excerpts ([`media_blob::bounded`]).

use std::io::Read;

use anyhow::{Context, bail};
use media_blob::{MediaSessionConfig, bounded, escape_controls};
use serde_json::Value;
use signaling::{Call, CommsNotifications, DocumentKind, MediaConfig};

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

/// Identifies and validates `text`, returning the report lines.
pub fn inspect(source: &str, text: &str) -> anyhow::Result<Vec<String>> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{source} is not valid JSON: {}", detail(e)))?;
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
    match signaling::classify(&v) {
        DocumentKind::CreateCallRequest => {
            let call: Call = serde_json::from_value(v.clone()).map_err(|e| {
                anyhow::anyhow!("{source}: does not fit the call model: {}", detail(e))
            })?;
            let problems = signaling::create_call_problems(&call);
            if !problems.is_empty() {
                let list: Vec<String> = problems
                    .iter()
                    .map(|p| format!("  - {}", detail(p)))
                    .collect();
                bail!(
                    "{source}: invalid create-call request:\n{}",
                    list.join("\n")
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
            let call: Call = serde_json::from_value(v.clone()).map_err(|e| {
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
        DocumentKind::Notifications => {
            let n: CommsNotifications = serde_json::from_value(v.clone()).map_err(|e| {
                anyhow::anyhow!(
                    "{source}: does not fit the notifications model: {}",
                    detail(e)
                )
            })?;
            out.push("commsNotifications".to_owned());
            for line in n.summary().lines() {
                out.push(format!("  {line}"));
            }
        }
        _ => bail!(
            "{source}: not a document media-processor knows ({}); expected a media \
             session configuration, a create-call request, a call or commsNotifications",
            detail(signaling::summarize(&v))
        ),
    }
    // Document values (names, URLs) reach the terminal escaped.
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
    for line in inspect(source, &text)? {
        println!("{line}");
    }
    Ok(())
}
