//! `media-processor request`: print the create-call body of one of the Graph scenarios
//! (the seed's ten and the two joins by meeting id) and the permissions it needs.

use anyhow::Context;
use media_blob::{MediaSessionConfig, MpUri, bounded, excerpt};
use signaling::{Call, Field, Scenario};
use uuid::Uuid;

/// The mpUri advertised when none is given: the processor on this machine.
pub const DEFAULT_MP_URI: &str = "quic://127.0.0.1:8445/MediaProcessor";

/// Arguments of `media-processor request`.
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// The scenario: p2p-voip-service, p2p-voip-app, group-service, group-app,
    /// meeting-service, meeting-app, channel-meeting, channel-meeting-guest,
    /// pstn-service, pstn-app, meeting-id-service, meeting-id-app.
    pub scenario: String,
    /// The meeting's join id (meeting-id-* scenarios; the docs' `1234567` otherwise).
    #[arg(long)]
    pub join_meeting_id: Option<String>,
    /// The meeting's passcode (meeting-id-* scenarios); `--passcode ""` writes null,
    /// for a meeting without one.
    #[arg(long)]
    pub passcode: Option<String>,
    /// The blob for app-hosted scenarios, as JSON text, or `@FILE` to read it.
    /// Without it a fresh blob is built for `--mp-uri`.
    #[arg(long, conflicts_with = "placeholder")]
    pub blob: Option<String>,
    /// mpUri of the fresh blob built for app-hosted scenarios.
    #[arg(long, default_value = DEFAULT_MP_URI)]
    pub mp_uri: String,
    /// callId of the fresh blob (a fresh GUID when not given).
    #[arg(long)]
    pub call_id: Option<Uuid>,
    /// Replace the seed's callbackUri (https, or http on a loopback host).
    #[arg(long)]
    pub callback_uri: Option<String>,
    /// Print the seed's example exactly, with its `<Media Session Configuration>`
    /// placeholder; it is not validated (Graph would reject it).
    #[arg(long)]
    pub placeholder: bool,
    /// Print compact JSON instead of pretty JSON.
    #[arg(long)]
    pub compact: bool,
}

fn blob_text(args: &RequestArgs) -> anyhow::Result<String> {
    let text = match &args.blob {
        Some(b) if b.starts_with('@') => {
            let path = &b[1..];
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the blob from {path}"))?
        }
        Some(b) => b.clone(),
        None => {
            let mp_uri: MpUri = args
                .mp_uri
                .parse()
                .with_context(|| format!("--mp-uri {}", excerpt(&args.mp_uri)))?;
            let call_id = args.call_id.unwrap_or_else(Uuid::new_v4);
            return Ok(MediaSessionConfig::builder(mp_uri, call_id)
                .build()
                .to_json());
        }
    };
    // The same rules the media port applies to the join (validate: current form,
    // context counts, unique GUIDs, sizes); errors quote the blob only in excerpts.
    let config = MediaSessionConfig::parse(text.trim()).context("--blob")?;
    config.validate().context("--blob")?;
    Ok(config.to_json())
}

/// Builds the request the arguments describe, validated unless `--placeholder`.
pub fn build(args: &RequestArgs) -> anyhow::Result<Call> {
    let scenario: Scenario = args.scenario.parse()?;
    let blob = if scenario.is_app_hosted() && !args.placeholder {
        Some(blob_text(args)?)
    } else {
        None
    };
    let mut call = scenario.seed_example(blob);
    if args.join_meeting_id.is_some() || args.passcode.is_some() {
        let Field::Value(signaling::MeetingInfo::JoinMeetingId(m)) = &mut call.meeting_info else {
            anyhow::bail!(
                "--join-meeting-id and --passcode go with meeting-id-service or meeting-id-app, \
                 not {scenario}"
            );
        };
        if let Some(id) = &args.join_meeting_id {
            m.join_meeting_id = Field::Value(id.clone());
        }
        match args.passcode.as_deref() {
            Some("") => m.passcode = Field::Null,
            Some(p) => m.passcode = Field::Value(p.to_owned()),
            None => {}
        }
    }
    if let Some(uri) = &args.callback_uri {
        call.callback_uri = Field::Value(uri.clone());
    }
    if !args.placeholder {
        let problems = signaling::create_call_problems(&call);
        if !problems.is_empty() {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("  - {}", bounded(&p.to_string(), 240)))
                .collect();
            anyhow::bail!("the {scenario} request is invalid:\n{}", list.join("\n"));
        }
    }
    Ok(call)
}

/// Runs the subcommand: the body on stdout, the permissions on stderr.
pub fn run(args: &RequestArgs) -> anyhow::Result<()> {
    let call = build(args)?;
    let scenario: Scenario = args.scenario.parse()?;
    let body = if args.compact {
        call.to_json()
    } else {
        call.to_json_pretty()
    };
    println!("{body}");
    eprintln!("# {scenario}: {}", scenario.description());
    eprintln!("# POST /communications/calls");
    eprintln!("# required permissions: {}", call.required_permissions());
    Ok(())
}
