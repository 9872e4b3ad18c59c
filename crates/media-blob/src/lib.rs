//! # media-blob
//!
//! The media session configuration ("blob") of an application-hosted media bot:
//! build it, serialize it, embed it in a Graph *create call* request, and parse and
//! validate it on the way back. Pure data: no IO, no clock.
//!
//! With app-hosted media a bot puts this configuration into `mediaConfig.blob`
//! (`#microsoft.graph.appHostedMediaConfig`) of `POST /communications/calls`; the
//! remote media side then connects to the processor named by the blob's `mpUri`.
//!
//! ## Data flow
//!
//! ```text
//!  MediaSessionConfig::builder(mp_uri, call_id)        MpUri: "quic://host:port/MediaProcessor"
//!        | .session_id() .audio_format() ...
//!        v build()
//!  MediaSessionConfig  --to_json()------>  JSON text  {"mpUri":"quic://...","audioRenderContexts":[...],...}
//!        ^                                     |
//!        |                                     | to_embedded()
//!        |                                     v
//!        |                                 escaped string  {\"mpUri\":\"quic://...\",...}
//!        |                                     = contents of "blob": "..." in appHostedMediaConfig
//!        |                                     |
//!        +--- parse() / from_embedded() <------+   (every field checked; errors name the field)
//!        +--- from_value()   <-- the "blob" JSON value: a string (current form) or an object (older form)
//!        +--- validate()     --> current form complete? (callId present, versions sane)
//! ```
//!
//! Serialization writes the fields in the order of the Graph sample, so a
//! configuration built from the sample's values reproduces the sample byte for
//! byte. `null` and `[]` stay distinct ([`ContextList`]). Unknown fields are kept
//! and written back after the known ones. Every error is a [`BlobError`] that
//! displays as `path: problem`, e.g. `audioSourceContexts[0]: not a GUID (expected
//! 8-4-4-4-12 hex digits)` or `mpUri: missing port`.
//!
//! ## One set of rules
//!
//! The limits in [`limits`] (1 to [`MAX_AUDIO_CONTEXTS`] audio contexts, no GUID
//! twice, field and blob sizes up to [`MAX_BLOB_BYTES`]) are checked by parsing,
//! [`MediaSessionConfig::validate`] and [`MediaSessionConfigBuilder::try_build`], and
//! the media port checks a join with the same [`check_audio_contexts`] and
//! [`MediaSessionConfig::check_join`]: a blob this crate accepts is one the port
//! admits. Errors quote input only through [`excerpt`] (at most
//! [`EXCERPT_CHARS`] characters, control characters escaped).
//!
//! ## Example
//!
//! ```
//! use media_blob::{AudioFormat, MediaSessionConfig, MpUri};
//! use uuid::Uuid;
//!
//! let call_id = Uuid::new_v4();
//! let config = MediaSessionConfig::builder(MpUri::quic("media.example.com", 4433)?, call_id)
//!     .audio_format(AudioFormat::Pcm16K)
//!     .build();
//! config.validate()?;
//!
//! // Compact JSON in the sample's field order...
//! let json = config.to_json();
//! assert!(json.starts_with(r#"{"mpUri":"quic://media.example.com:4433/MediaProcessor","#));
//! // ...and back, with validation.
//! let parsed = MediaSessionConfig::parse(&json)?;
//! assert_eq!(parsed, config);
//! assert_eq!(parsed.call_id(), Some(call_id));
//!
//! // The escaped form that sits inside "blob": "..." of appHostedMediaConfig.
//! let embedded = config.to_embedded();
//! assert!(embedded.starts_with(r#"{\"mpUri\":\"quic://"#));
//! assert_eq!(MediaSessionConfig::from_embedded(&embedded)?, config);
//!
//! // Errors name the field and the problem.
//! let bad = json.replace("Pcm16K", "Pcm8K");
//! assert_eq!(
//!     MediaSessionConfig::parse(&bad).expect_err("unknown format").to_string(),
//!     r#"supportedAudioFormat: unknown format "Pcm8K" (expected Pcm16K or Pcm44KStereo)"#
//! );
//! # Ok::<(), media_blob::BlobError>(())
//! ```

mod config;
mod error;
mod format;
pub mod limits;
mod mp_uri;
mod text;

pub use config::{
    ContextList, DEFAULT_MEDIA_STACK_VERSION, DEFAULT_MP_VERSION, DEFAULT_SKYPE_MEDIA_BOTS_VERSION,
    KNOWN_FIELDS, MediaSessionConfig, MediaSessionConfigBuilder, as_json_string,
};
pub use error::{BlobError, BlobErrorKind};
pub use format::AudioFormat;
pub use limits::{MAX_AUDIO_CONTEXTS, MAX_BLOB_BYTES, check_audio_contexts};
pub use mp_uri::MpUri;
pub use text::{EXCERPT_CHARS, bounded, escape_controls, excerpt};
