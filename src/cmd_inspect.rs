//! `media-processor inspect`: identify, validate and summarise one JSON document.

use std::io::Read;

use anyhow::{Context, bail};
use media_blob::MediaSessionConfig;
use serde_json::Value;
use signaling::{Call, CommsNotifications, DocumentKind, MediaConfig};

/// Arguments of `media-processor inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The JSON file to read, or `-` for standard input.
    pub file: String,
}

fn read_input(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
    }
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
    let v: Value =
        serde_json::from_str(text).with_context(|| format!("{source} is not valid JSON"))?;
    let mut out = Vec::new();
    if looks_like_blob(&v) {
        let config = MediaSessionConfig::from_value(&v)
            .with_context(|| format!("{source}: invalid media session configuration"))?;
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
            let call: Call = serde_json::from_value(v.clone())
                .with_context(|| format!("{source}: does not fit the call model"))?;
            let problems = signaling::create_call_problems(&call);
            if !problems.is_empty() {
                let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
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
            let call: Call = serde_json::from_value(v.clone())
                .with_context(|| format!("{source}: does not fit the call model"))?;
            out.push("call resource".to_owned());
            out.push(format!("  {}", call.summary()));
            if let Some(MediaConfig::AppHosted(app)) = call.media_config.value() {
                let note = match app.blob.value().map(MediaSessionConfig::from_value) {
                    Some(Ok(config)) => format!("blob valid, mpUri {}", config.mp_uri()),
                    Some(Err(e)) => format!("blob not a valid configuration ({e})"),
                    None => "no blob".to_owned(),
                };
                out.push(format!("  app-hosted media: {note}"));
            }
        }
        DocumentKind::Notifications => {
            let n: CommsNotifications = serde_json::from_value(v.clone())
                .with_context(|| format!("{source}: does not fit the notifications model"))?;
            out.push("commsNotifications".to_owned());
            for line in n.summary().lines() {
                out.push(format!("  {line}"));
            }
        }
        _ => bail!(
            "{source}: not a document media-processor knows ({}); expected a media \
             session configuration, a create-call request, a call or commsNotifications",
            signaling::summarize(&v)
        ),
    }
    Ok(out)
}

/// Runs the subcommand.
pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let text = read_input(&args.file)?;
    let source = if args.file == "-" {
        "standard input"
    } else {
        args.file.as_str()
    };
    for line in inspect(source, &text)? {
        println!("{line}");
    }
    Ok(())
}
