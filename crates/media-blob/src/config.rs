//! [`MediaSessionConfig`]: the typed media session configuration, its builder,
//! serialization, parsing and validation.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{BlobError, BlobErrorKind};
use crate::format::AudioFormat;
use crate::limits::{
    MAX_BLOB_BYTES, MAX_CONTEXTS_PER_LIST, MAX_SHORT_FIELD_BYTES, Seen, check_audio_contexts,
    check_len,
};
use crate::mp_uri::MpUri;

/// A list of media context GUIDs, with null and empty kept apart.
///
/// `None` is JSON `null` (e.g. `"dataRenderContexts":null`), `Some(vec![])` is `[]`.
/// Entries are `Option` because the older blob form writes `"audioSourceContexts":[null]`;
/// a `None` entry is a JSON `null` and round-trips as such.
pub type ContextList = Option<Vec<Option<Uuid>>>;

/// Default `skypeMediaBotsVersion`, as in the Graph sample blob.
pub const DEFAULT_SKYPE_MEDIA_BOTS_VERSION: &str = "1.11.1.0086";
/// Default `mediaStackVersion`, as in the Graph sample blob.
pub const DEFAULT_MEDIA_STACK_VERSION: &str = "2018.53.1.1";
/// Default `mpVersion`, as in the Graph sample blob.
pub const DEFAULT_MP_VERSION: &str = "7.2.0.3881";

const MP_URI: &str = "mpUri";
const AUDIO_RENDER_CONTEXTS: &str = "audioRenderContexts";
const VIDEO_RENDER_CONTEXTS: &str = "videoRenderContexts";
const AUDIO_SOURCE_CONTEXTS: &str = "audioSourceContexts";
const VIDEO_SOURCE_CONTEXTS: &str = "videoSourceContexts";
const DATA_RENDER_CONTEXTS: &str = "dataRenderContexts";
const DATA_SOURCE_CONTEXTS: &str = "dataSourceContexts";
const SUPPORTED_AUDIO_FORMAT: &str = "supportedAudioFormat";
const VIDEO_SINK_ENCODING_FORMATS: &str = "videoSinkEncodingFormats";
const MP_MEDIA_SESSION_ID: &str = "mpMediaSessionId";
const REGION_AFFINITY: &str = "regionAffinity";
const SKYPE_MEDIA_BOTS_VERSION: &str = "skypeMediaBotsVersion";
const MEDIA_STACK_VERSION: &str = "mediaStackVersion";
const MP_VERSION: &str = "mpVersion";
const CALL_ID: &str = "callId";

/// The blob's known field names, in the order the Graph sample (and [`MediaSessionConfig::to_json`]) writes them.
pub const KNOWN_FIELDS: [&str; 15] = [
    MP_URI,
    AUDIO_RENDER_CONTEXTS,
    VIDEO_RENDER_CONTEXTS,
    AUDIO_SOURCE_CONTEXTS,
    VIDEO_SOURCE_CONTEXTS,
    DATA_RENDER_CONTEXTS,
    DATA_SOURCE_CONTEXTS,
    SUPPORTED_AUDIO_FORMAT,
    VIDEO_SINK_ENCODING_FORMATS,
    MP_MEDIA_SESSION_ID,
    REGION_AFFINITY,
    SKYPE_MEDIA_BOTS_VERSION,
    MEDIA_STACK_VERSION,
    MP_VERSION,
    CALL_ID,
];

/// The media session configuration ("blob") a bot puts into
/// `mediaConfig.blob` (`#microsoft.graph.appHostedMediaConfig`).
///
/// Fields are public and named after the blob's camelCase keys. Make one with
/// [`MediaSessionConfig::builder`] or by parsing ([`MediaSessionConfig::parse`],
/// [`MediaSessionConfig::from_value`], [`MediaSessionConfig::from_embedded`]).
/// After changing fields by hand, call [`MediaSessionConfig::validate`].
///
/// Parsing accepts the current form and the older one (no `callId`, `[null]`
/// context entries, the blob as a JSON object instead of a string). Absent
/// optional fields read as `null`. Unknown fields are kept in [`extra`](Self::extra)
/// and written back after the known ones, in their original order.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSessionConfig {
    /// `mpUri`: where the remote media side connects to reach the media processor.
    pub mp_uri: MpUri,
    /// `audioRenderContexts`: audio contexts the processor renders (receives from the call).
    pub audio_render_contexts: ContextList,
    /// `videoRenderContexts`: video render contexts (`[]` for audio-only).
    pub video_render_contexts: ContextList,
    /// `audioSourceContexts`: audio contexts the processor sources (sends into the call).
    pub audio_source_contexts: ContextList,
    /// `videoSourceContexts`: video source contexts (`[]` for audio-only).
    pub video_source_contexts: ContextList,
    /// `dataRenderContexts`: data render contexts (`null` in the sample).
    pub data_render_contexts: ContextList,
    /// `dataSourceContexts`: data source contexts (`null` in the sample).
    pub data_source_contexts: ContextList,
    /// `supportedAudioFormat`: the PCM format audio is exchanged in.
    pub supported_audio_format: AudioFormat,
    /// `videoSinkEncodingFormats`: kept as raw JSON values (`[]` in the sample).
    pub video_sink_encoding_formats: Option<Vec<Value>>,
    /// `mpMediaSessionId`: the media session's id.
    pub mp_media_session_id: Uuid,
    /// `regionAffinity`: preferred region, `null` in the sample.
    pub region_affinity: Option<String>,
    /// `skypeMediaBotsVersion`, e.g. `1.11.1.0086`.
    pub skype_media_bots_version: String,
    /// `mediaStackVersion`, e.g. `2018.53.1.1`.
    pub media_stack_version: String,
    /// `mpVersion`, e.g. `7.2.0.3881`.
    pub mp_version: String,
    /// `callId`: the Graph call id. Absent in the older form; the builder always sets it,
    /// and [`validate`](Self::validate) requires it.
    pub call_id: Option<Uuid>,
    /// Unknown fields, in their original order; written after the known fields.
    pub extra: Map<String, Value>,
}

impl MediaSessionConfig {
    /// Starts a configuration for the processor at `mp_uri` serving Graph call `call_id`.
    ///
    /// Defaults: a fresh v4 session id, one fresh audio render and one fresh audio
    /// source context, empty video context arrays, `null` data contexts, `Pcm16K`,
    /// `regionAffinity: null`, no `videoSinkEncodingFormats` (`[]`), and the sample's
    /// versions ([`DEFAULT_SKYPE_MEDIA_BOTS_VERSION`], [`DEFAULT_MEDIA_STACK_VERSION`],
    /// [`DEFAULT_MP_VERSION`]).
    pub fn builder(mp_uri: MpUri, call_id: Uuid) -> MediaSessionConfigBuilder {
        MediaSessionConfigBuilder::new(mp_uri, call_id)
    }

    /// The processor address (`mpUri`).
    pub fn mp_uri(&self) -> &MpUri {
        &self.mp_uri
    }

    /// The Graph call id (`callId`), absent in the older form.
    pub fn call_id(&self) -> Option<Uuid> {
        self.call_id
    }

    /// The media session id (`mpMediaSessionId`).
    pub fn session_id(&self) -> Uuid {
        self.mp_media_session_id
    }

    /// The audio format (`supportedAudioFormat`).
    pub fn audio_format(&self) -> AudioFormat {
        self.supported_audio_format
    }

    /// The configuration as a JSON object: known fields in the sample's order,
    /// then unknown fields in their original order. `callId` is left out when unset.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert(MP_URI.into(), Value::String(self.mp_uri.to_string()));
        m.insert(
            AUDIO_RENDER_CONTEXTS.into(),
            contexts_to_value(&self.audio_render_contexts),
        );
        m.insert(
            VIDEO_RENDER_CONTEXTS.into(),
            contexts_to_value(&self.video_render_contexts),
        );
        m.insert(
            AUDIO_SOURCE_CONTEXTS.into(),
            contexts_to_value(&self.audio_source_contexts),
        );
        m.insert(
            VIDEO_SOURCE_CONTEXTS.into(),
            contexts_to_value(&self.video_source_contexts),
        );
        m.insert(
            DATA_RENDER_CONTEXTS.into(),
            contexts_to_value(&self.data_render_contexts),
        );
        m.insert(
            DATA_SOURCE_CONTEXTS.into(),
            contexts_to_value(&self.data_source_contexts),
        );
        m.insert(
            SUPPORTED_AUDIO_FORMAT.into(),
            Value::String(self.supported_audio_format.as_str().into()),
        );
        m.insert(
            VIDEO_SINK_ENCODING_FORMATS.into(),
            self.video_sink_encoding_formats
                .clone()
                .map_or(Value::Null, Value::Array),
        );
        m.insert(
            MP_MEDIA_SESSION_ID.into(),
            uuid_to_value(self.mp_media_session_id),
        );
        m.insert(
            REGION_AFFINITY.into(),
            self.region_affinity
                .clone()
                .map_or(Value::Null, Value::String),
        );
        m.insert(
            SKYPE_MEDIA_BOTS_VERSION.into(),
            Value::String(self.skype_media_bots_version.clone()),
        );
        m.insert(
            MEDIA_STACK_VERSION.into(),
            Value::String(self.media_stack_version.clone()),
        );
        m.insert(MP_VERSION.into(), Value::String(self.mp_version.clone()));
        if let Some(call_id) = self.call_id {
            m.insert(CALL_ID.into(), uuid_to_value(call_id));
        }
        for (k, v) in &self.extra {
            // A known name in `extra` would overwrite a typed field; validate() reports it.
            if !KNOWN_FIELDS.contains(&k.as_str()) {
                m.insert(k.clone(), v.clone());
            }
        }
        Value::Object(m)
    }

    /// Compact JSON text of the blob, fields in the Graph sample's order.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The blob as it appears inside the JSON string literal of
    /// `appHostedMediaConfig.blob`, without the surrounding quotes:
    /// `{\"mpUri\":\"net.tcp://...\",...}`.
    pub fn to_embedded(&self) -> String {
        let quoted = Value::String(self.to_json()).to_string();
        quoted
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .map_or_else(|| quoted.clone(), str::to_owned)
    }

    /// Parses the blob's JSON text (an object) and checks every field and the
    /// limits of [`crate::limits`] (size, context counts, unique GUIDs).
    ///
    /// Accepts the older form (no `callId`, `null` context entries); use
    /// [`validate`](Self::validate) to require the current form. Text longer than
    /// [`MAX_BLOB_BYTES`] is refused before it is parsed.
    pub fn parse(json: &str) -> Result<Self, BlobError> {
        check_len("blob", json, MAX_BLOB_BYTES)?;
        let value: Value =
            serde_json::from_str(json).map_err(|e| BlobError::from_json("invalid JSON", &e, 0))?;
        match &value {
            Value::Object(map) => Self::from_map(map),
            other => Err(BlobError::wrong_type("blob", "a JSON object", other)),
        }
    }

    /// Reads the value of `appHostedMediaConfig.blob`: a JSON string holding the
    /// blob's text (current form), or the blob as a JSON object (older form).
    pub fn from_value(v: &Value) -> Result<Self, BlobError> {
        match v {
            Value::String(s) => Self::parse(s),
            Value::Object(map) => Self::from_map(map),
            other => Err(BlobError::wrong_type(
                "blob",
                "a JSON string or object",
                other,
            )),
        }
    }

    /// Parses the escaped form (the contents of a JSON string literal, without the
    /// quotes), as produced by [`to_embedded`](Self::to_embedded) and shown in the
    /// Graph docs: `{\"mpUri\":...}`.
    pub fn from_embedded(escaped: &str) -> Result<Self, BlobError> {
        // Escaping at most doubles a blob within the limit (every `"` gains a `\`).
        check_len("blob", escaped, 2 * MAX_BLOB_BYTES)?;
        Self::parse(&unescape(escaped)?)
    }

    /// Checks the configuration is complete and well-formed in the current form:
    /// `callId` present, version strings non-empty without whitespace or control
    /// characters, no unknown field named like a known one, and the limits the media
    /// port enforces on a join (see [`crate::limits`]): 1 to
    /// [`MAX_AUDIO_CONTEXTS`](crate::MAX_AUDIO_CONTEXTS) audio contexts, no GUID
    /// twice among the audio contexts nor within any other list, at most [`MAX_CONTEXTS_PER_LIST`] entries per list,
    /// short fields at most [`MAX_SHORT_FIELD_BYTES`] and the whole blob at most
    /// [`MAX_BLOB_BYTES`].
    ///
    /// Values produced by [`MediaSessionConfigBuilder::build`] with default contexts
    /// and sensible version strings always pass;
    /// [`MediaSessionConfigBuilder::try_build`] builds and validates in one step.
    pub fn validate(&self) -> Result<(), BlobError> {
        self.check_fields()?;
        if self.call_id.is_none() {
            return Err(BlobError::missing(CALL_ID));
        }
        Ok(())
    }

    /// The audio contexts a join for this session carries: the non-null entries of
    /// `audioSourceContexts` and `audioRenderContexts`, in blob order.
    pub fn join_contexts(&self) -> (Vec<Uuid>, Vec<Uuid>) {
        let ids = |l: &ContextList| l.iter().flatten().flatten().copied().collect();
        (
            ids(&self.audio_source_contexts),
            ids(&self.audio_render_contexts),
        )
    }

    /// Checks that a join claiming this session carries its `callId` and exactly its
    /// audio contexts ([`join_contexts`](Self::join_contexts), same lists, same order).
    ///
    /// The error names the first difference: `callId: the join says X, the session
    /// was created for Y`, or the context list and index that differ.
    pub fn check_join(
        &self,
        call_id: Uuid,
        source: &[Uuid],
        render: &[Uuid],
    ) -> Result<(), BlobError> {
        let expected = self.call_id.unwrap_or_default();
        if call_id != expected {
            return Err(BlobError::invalid(
                CALL_ID,
                format!("the join says {call_id}, the session was created for {expected}"),
            ));
        }
        let (want_source, want_render) = self.join_contexts();
        for (list, want, got) in [
            (AUDIO_SOURCE_CONTEXTS, &want_source, source),
            (AUDIO_RENDER_CONTEXTS, &want_render, render),
        ] {
            if let Some(i) = (0..want.len().max(got.len())).find(|&i| want.get(i) != got.get(i)) {
                let show =
                    |v: Option<&Uuid>| v.map_or_else(|| "nothing".to_owned(), Uuid::to_string);
                return Err(BlobError::invalid(
                    format!("{list}[{i}]"),
                    format!(
                        "the join says {}, the session's blob has {} ({} in the join, {} in the blob)",
                        show(got.get(i)),
                        show(want.get(i)),
                        got.len(),
                        want.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The checks that hold for both the current and the older form.
    fn check_fields(&self) -> Result<(), BlobError> {
        check_version(SKYPE_MEDIA_BOTS_VERSION, &self.skype_media_bots_version)?;
        check_version(MEDIA_STACK_VERSION, &self.media_stack_version)?;
        check_version(MP_VERSION, &self.mp_version)?;
        if let Some(region) = &self.region_affinity {
            check_len(REGION_AFFINITY, region, MAX_SHORT_FIELD_BYTES)?;
        }
        let lists = [
            (AUDIO_SOURCE_CONTEXTS, &self.audio_source_contexts),
            (AUDIO_RENDER_CONTEXTS, &self.audio_render_contexts),
            (VIDEO_RENDER_CONTEXTS, &self.video_render_contexts),
            (VIDEO_SOURCE_CONTEXTS, &self.video_source_contexts),
            (DATA_RENDER_CONTEXTS, &self.data_render_contexts),
            (DATA_SOURCE_CONTEXTS, &self.data_source_contexts),
        ];
        for (name, list) in lists {
            let n = list.as_ref().map_or(0, Vec::len);
            if n > MAX_CONTEXTS_PER_LIST {
                return Err(BlobError::invalid(
                    name,
                    format!("{n} entries, more than the {MAX_CONTEXTS_PER_LIST} allowed"),
                ));
            }
        }
        let (source, render) = self.join_contexts();
        check_audio_contexts(&source, &render)?;
        // The audio lists are one namespace (the port's streams); each other list
        // on its own.
        for (name, list) in &lists[2..] {
            let mut seen = Seen::default();
            for (i, id) in list.iter().flatten().enumerate() {
                if let Some(id) = id {
                    seen.insert(*id, name, i)?;
                }
            }
        }
        let size = self.to_json().len();
        if size > MAX_BLOB_BYTES {
            return Err(BlobError::invalid(
                "blob",
                format!("{size} bytes of JSON, more than the {MAX_BLOB_BYTES} allowed"),
            ));
        }
        if let Some(k) = self
            .extra
            .keys()
            .find(|k| KNOWN_FIELDS.contains(&k.as_str()))
        {
            return Err(BlobError::invalid(
                k.as_str(),
                "known field stored among the unknown fields (set the typed field instead)",
            ));
        }
        Ok(())
    }

    /// Builds a configuration from a blob object, checking every field.
    fn from_map(map: &Map<String, Value>) -> Result<Self, BlobError> {
        let mp_uri = match map.get(MP_URI) {
            None => return Err(BlobError::missing(MP_URI)),
            Some(Value::String(s)) => s.parse::<MpUri>()?,
            Some(other) => return Err(BlobError::wrong_type(MP_URI, "a string", other)),
        };
        let audio_render_contexts = contexts_from(map, AUDIO_RENDER_CONTEXTS)?;
        let video_render_contexts = contexts_from(map, VIDEO_RENDER_CONTEXTS)?;
        let audio_source_contexts = contexts_from(map, AUDIO_SOURCE_CONTEXTS)?;
        let video_source_contexts = contexts_from(map, VIDEO_SOURCE_CONTEXTS)?;
        let data_render_contexts = contexts_from(map, DATA_RENDER_CONTEXTS)?;
        let data_source_contexts = contexts_from(map, DATA_SOURCE_CONTEXTS)?;
        let supported_audio_format = match map.get(SUPPORTED_AUDIO_FORMAT) {
            None => return Err(BlobError::missing(SUPPORTED_AUDIO_FORMAT)),
            Some(Value::String(s)) => s.parse::<AudioFormat>()?,
            Some(other) => {
                return Err(BlobError::wrong_type(
                    SUPPORTED_AUDIO_FORMAT,
                    "a string",
                    other,
                ));
            }
        };
        let video_sink_encoding_formats = match map.get(VIDEO_SINK_ENCODING_FORMATS) {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => {
                return Err(BlobError::wrong_type(
                    VIDEO_SINK_ENCODING_FORMATS,
                    "an array or null",
                    other,
                ));
            }
        };
        let mp_media_session_id = match map.get(MP_MEDIA_SESSION_ID) {
            None => return Err(BlobError::missing(MP_MEDIA_SESSION_ID)),
            Some(v) => guid_from(MP_MEDIA_SESSION_ID, v)?,
        };
        let region_affinity = match map.get(REGION_AFFINITY) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(BlobError::wrong_type(
                    REGION_AFFINITY,
                    "a string or null",
                    other,
                ));
            }
        };
        let skype_media_bots_version = string_from(map, SKYPE_MEDIA_BOTS_VERSION)?;
        let media_stack_version = string_from(map, MEDIA_STACK_VERSION)?;
        let mp_version = string_from(map, MP_VERSION)?;
        let call_id = match map.get(CALL_ID) {
            None | Some(Value::Null) => None,
            Some(v) => Some(guid_from(CALL_ID, v)?),
        };
        let extra = map
            .iter()
            .filter(|(k, _)| !KNOWN_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let config = MediaSessionConfig {
            mp_uri,
            audio_render_contexts,
            video_render_contexts,
            audio_source_contexts,
            video_source_contexts,
            data_render_contexts,
            data_source_contexts,
            supported_audio_format,
            video_sink_encoding_formats,
            mp_media_session_id,
            region_affinity,
            skype_media_bots_version,
            media_stack_version,
            mp_version,
            call_id,
            extra,
        };
        config.check_fields()?;
        Ok(config)
    }
}

impl serde::Serialize for MediaSessionConfig {
    /// Serializes as the JSON object [`MediaSessionConfig::to_json`] writes.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for MediaSessionConfig {
    /// Accepts what [`MediaSessionConfig::from_value`] accepts: the blob as an
    /// object, or a string holding its JSON text.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        MediaSessionConfig::from_value(&v).map_err(serde::de::Error::custom)
    }
}

/// Builder for [`MediaSessionConfig`]; start with [`MediaSessionConfig::builder`].
#[must_use]
#[derive(Debug, Clone)]
pub struct MediaSessionConfigBuilder {
    mp_uri: MpUri,
    call_id: Uuid,
    session_id: Option<Uuid>,
    audio_render_contexts: Option<Vec<Uuid>>,
    audio_source_contexts: Option<Vec<Uuid>>,
    video_render_contexts: Vec<Uuid>,
    video_source_contexts: Vec<Uuid>,
    data_render_contexts: Option<Vec<Uuid>>,
    data_source_contexts: Option<Vec<Uuid>>,
    audio_format: AudioFormat,
    region_affinity: Option<String>,
    skype_media_bots_version: String,
    media_stack_version: String,
    mp_version: String,
}

impl MediaSessionConfigBuilder {
    fn new(mp_uri: MpUri, call_id: Uuid) -> Self {
        MediaSessionConfigBuilder {
            mp_uri,
            call_id,
            session_id: None,
            audio_render_contexts: None,
            audio_source_contexts: None,
            video_render_contexts: Vec::new(),
            video_source_contexts: Vec::new(),
            data_render_contexts: None,
            data_source_contexts: None,
            audio_format: AudioFormat::Pcm16K,
            region_affinity: None,
            skype_media_bots_version: DEFAULT_SKYPE_MEDIA_BOTS_VERSION.into(),
            media_stack_version: DEFAULT_MEDIA_STACK_VERSION.into(),
            mp_version: DEFAULT_MP_VERSION.into(),
        }
    }

    /// Sets `mpMediaSessionId` (default: a fresh v4 UUID).
    pub fn session_id(mut self, id: Uuid) -> Self {
        self.session_id = Some(id);
        self
    }

    /// Sets `audioRenderContexts` (default: one fresh v4 UUID).
    pub fn audio_render_contexts(mut self, ids: Vec<Uuid>) -> Self {
        self.audio_render_contexts = Some(ids);
        self
    }

    /// Sets `audioSourceContexts` (default: one fresh v4 UUID).
    pub fn audio_source_contexts(mut self, ids: Vec<Uuid>) -> Self {
        self.audio_source_contexts = Some(ids);
        self
    }

    /// Sets `videoRenderContexts` (default: `[]`).
    pub fn video_render_contexts(mut self, ids: Vec<Uuid>) -> Self {
        self.video_render_contexts = ids;
        self
    }

    /// Sets `videoSourceContexts` (default: `[]`).
    pub fn video_source_contexts(mut self, ids: Vec<Uuid>) -> Self {
        self.video_source_contexts = ids;
        self
    }

    /// Sets `dataRenderContexts`; `None` is `null` (the default).
    pub fn data_render_contexts(mut self, ids: Option<Vec<Uuid>>) -> Self {
        self.data_render_contexts = ids;
        self
    }

    /// Sets `dataSourceContexts`; `None` is `null` (the default).
    pub fn data_source_contexts(mut self, ids: Option<Vec<Uuid>>) -> Self {
        self.data_source_contexts = ids;
        self
    }

    /// Sets `supportedAudioFormat` (default: `Pcm16K`).
    pub fn audio_format(mut self, format: AudioFormat) -> Self {
        self.audio_format = format;
        self
    }

    /// Sets `skypeMediaBotsVersion`, `mediaStackVersion` and `mpVersion`
    /// (defaults: the Graph sample's `1.11.1.0086`, `2018.53.1.1`, `7.2.0.3881`).
    pub fn versions(mut self, skype_media_bots: &str, media_stack: &str, mp: &str) -> Self {
        self.skype_media_bots_version = skype_media_bots.into();
        self.media_stack_version = media_stack.into();
        self.mp_version = mp.into();
        self
    }

    /// Sets `regionAffinity`; `None` is `null` (the default).
    pub fn region_affinity(mut self, region: Option<String>) -> Self {
        self.region_affinity = region;
        self
    }

    /// Finishes the configuration and [validates](MediaSessionConfig::validate) it:
    /// the limits the media port enforces (context counts, unique GUIDs, sizes) are
    /// reported here rather than at join time.
    pub fn try_build(self) -> Result<MediaSessionConfig, BlobError> {
        let config = self.build();
        config.validate()?;
        Ok(config)
    }

    /// Finishes the configuration, drawing fresh v4 UUIDs for ids not given. Does
    /// not check the limits; prefer [`try_build`](Self::try_build) when contexts or
    /// versions come from outside.
    pub fn build(self) -> MediaSessionConfig {
        let some_all = |ids: Vec<Uuid>| Some(ids.into_iter().map(Some).collect::<Vec<_>>());
        MediaSessionConfig {
            mp_uri: self.mp_uri,
            audio_render_contexts: some_all(
                self.audio_render_contexts
                    .unwrap_or_else(|| vec![Uuid::new_v4()]),
            ),
            video_render_contexts: some_all(self.video_render_contexts),
            audio_source_contexts: some_all(
                self.audio_source_contexts
                    .unwrap_or_else(|| vec![Uuid::new_v4()]),
            ),
            video_source_contexts: some_all(self.video_source_contexts),
            data_render_contexts: self.data_render_contexts.and_then(some_all),
            data_source_contexts: self.data_source_contexts.and_then(some_all),
            supported_audio_format: self.audio_format,
            video_sink_encoding_formats: Some(Vec::new()),
            mp_media_session_id: self.session_id.unwrap_or_else(Uuid::new_v4),
            region_affinity: self.region_affinity,
            skype_media_bots_version: self.skype_media_bots_version,
            media_stack_version: self.media_stack_version,
            mp_version: self.mp_version,
            call_id: Some(self.call_id),
            extra: Map::new(),
        }
    }
}

/// Serde adapter for a field that holds the blob as a JSON *string* (the current
/// `appHostedMediaConfig.blob` form): serializes [`MediaSessionConfig::to_json`] as a
/// string, deserializes a string or (older form) an object.
///
/// ```
/// # use media_blob::{MediaSessionConfig, MpUri};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct AppHostedMediaConfig {
///     #[serde(with = "media_blob::as_json_string")]
///     blob: MediaSessionConfig,
/// }
/// let blob = MediaSessionConfig::builder(MpUri::quic("localhost", 4433)?, uuid::Uuid::new_v4()).build();
/// let text = serde_json::to_string(&AppHostedMediaConfig { blob: blob.clone() }).expect("serialize");
/// assert!(text.starts_with(r#"{"blob":"{\"mpUri\":\"quic://localhost:4433/MediaProcessor\""#));
/// let back: AppHostedMediaConfig = serde_json::from_str(&text).expect("deserialize");
/// assert_eq!(back.blob, blob);
/// # Ok::<(), media_blob::BlobError>(())
/// ```
pub mod as_json_string {
    use super::MediaSessionConfig;
    use serde::Deserialize;

    /// Serializes the configuration as a JSON string holding its compact JSON text.
    pub fn serialize<S: serde::Serializer>(
        config: &MediaSessionConfig,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&config.to_json())
    }

    /// Deserializes from a JSON string holding the blob, or from the blob object.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<MediaSessionConfig, D::Error> {
        let v = serde_json::Value::deserialize(deserializer)?;
        MediaSessionConfig::from_value(&v).map_err(serde::de::Error::custom)
    }
}

fn uuid_to_value(id: Uuid) -> Value {
    Value::String(id.hyphenated().to_string())
}

fn contexts_to_value(list: &ContextList) -> Value {
    match list {
        None => Value::Null,
        Some(ids) => Value::Array(
            ids.iter()
                .map(|id| id.map_or(Value::Null, uuid_to_value))
                .collect(),
        ),
    }
}

/// Parses a GUID in its 8-4-4-4-12 hex form (either case).
fn parse_guid(path: &str, s: &str) -> Result<Uuid, BlobError> {
    let b = s.as_bytes();
    let shaped = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    let not_guid = || BlobError::invalid(path, "not a GUID (expected 8-4-4-4-12 hex digits)");
    if !shaped {
        return Err(not_guid());
    }
    Uuid::parse_str(s).map_err(|_| not_guid())
}

fn guid_from(path: &str, v: &Value) -> Result<Uuid, BlobError> {
    match v {
        Value::String(s) => parse_guid(path, s),
        other => Err(BlobError::wrong_type(path, "a GUID string", other)),
    }
}

fn contexts_from(map: &Map<String, Value>, field: &str) -> Result<ContextList, BlobError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Null => Ok(None),
                Value::String(s) => parse_guid(&format!("{field}[{i}]"), s).map(Some),
                other => Err(BlobError::wrong_type(
                    format!("{field}[{i}]"),
                    "a GUID string or null",
                    other,
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(BlobError::wrong_type(field, "an array or null", other)),
    }
}

fn string_from(map: &Map<String, Value>, field: &str) -> Result<String, BlobError> {
    match map.get(field) {
        None => Err(BlobError::missing(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(BlobError::wrong_type(field, "a string", other)),
    }
}

fn check_version(field: &str, v: &str) -> Result<(), BlobError> {
    check_len(field, v, MAX_SHORT_FIELD_BYTES)?;
    if v.is_empty() {
        return Err(BlobError::new(BlobErrorKind::Invalid, field, "empty"));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(BlobError::invalid(
            field,
            "contains whitespace or control characters",
        ));
    }
    Ok(())
}

/// Unescapes the contents of a JSON string literal (no surrounding quotes).
fn unescape(escaped: &str) -> Result<String, BlobError> {
    let mut backslash = false;
    for (i, c) in escaped.chars().enumerate() {
        match c {
            _ if backslash => backslash = false,
            '\\' => backslash = true,
            '"' => {
                return Err(BlobError::new(
                    BlobErrorKind::Syntax,
                    "blob",
                    format!(
                        "unescaped quote at column {} (expected the escaped form, e.g. {{\\\"mpUri\\\":...}})",
                        i + 1
                    ),
                ));
            }
            _ => {}
        }
    }
    serde_json::from_str::<String>(&format!("\"{escaped}\""))
        .map_err(|e| BlobError::from_json("invalid escaped string", &e, 1))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
