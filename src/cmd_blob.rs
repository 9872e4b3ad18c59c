//! `media-processor blob`: build and print a media session configuration.

use anyhow::Context;
use media_blob::{AudioFormat, MediaSessionConfig, MpUri, excerpt};
use uuid::Uuid;

/// Arguments of `media-processor blob`.
#[derive(Debug, clap::Args)]
pub struct BlobArgs {
    /// Where the remote media side connects, e.g. `quic://bot.example.com:8445/MediaProcessor`.
    #[arg(long)]
    pub mp_uri: String,
    /// The call id the configuration belongs to (a GUID).
    #[arg(long)]
    pub call_id: Uuid,
    /// Media session id (a fresh GUID when not given).
    #[arg(long)]
    pub session_id: Option<Uuid>,
    /// Audio render context GUID (repeatable; one fresh GUID when not given).
    #[arg(long = "audio-render-context")]
    pub audio_render_contexts: Vec<Uuid>,
    /// Audio source context GUID (repeatable; one fresh GUID when not given).
    #[arg(long = "audio-source-context")]
    pub audio_source_contexts: Vec<Uuid>,
    /// Audio format: Pcm16K or Pcm44KStereo.
    #[arg(long, default_value = "Pcm16K", value_parser = parse_format)]
    pub audio_format: AudioFormat,
    /// Print the blob escaped, as the string value of `appHostedMediaConfig.blob`.
    #[arg(long)]
    pub embed: bool,
}

fn parse_format(s: &str) -> Result<AudioFormat, String> {
    match s {
        "Pcm16K" => Ok(AudioFormat::Pcm16K),
        "Pcm44KStereo" => Ok(AudioFormat::Pcm44KStereo),
        other => Err(format!(
            "unknown audio format {} (expected Pcm16K or Pcm44KStereo)",
            excerpt(other)
        )),
    }
}

/// Builds the configuration the arguments describe.
pub fn build(args: &BlobArgs) -> anyhow::Result<MediaSessionConfig> {
    let mp_uri: MpUri = args
        .mp_uri
        .parse()
        .with_context(|| format!("--mp-uri {}", excerpt(&args.mp_uri)))?;
    let mut builder =
        MediaSessionConfig::builder(mp_uri, args.call_id).audio_format(args.audio_format);
    if let Some(id) = args.session_id {
        builder = builder.session_id(id);
    }
    if !args.audio_render_contexts.is_empty() {
        builder = builder.audio_render_contexts(args.audio_render_contexts.clone());
    }
    if !args.audio_source_contexts.is_empty() {
        builder = builder.audio_source_contexts(args.audio_source_contexts.clone());
    }
    // The limits the media port applies to a join (context count, unique GUIDs).
    builder
        .try_build()
        .context("the built configuration is invalid")
}

/// Runs the subcommand.
pub fn run(args: &BlobArgs) -> anyhow::Result<()> {
    let config = build(args)?;
    if args.embed {
        println!("{}", config.to_embedded());
    } else {
        println!("{}", config.to_json());
    }
    Ok(())
}
