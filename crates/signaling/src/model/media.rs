//! Media configuration: `serviceHostedMediaConfig`, `appHostedMediaConfig`, `mediaInfo`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::odata;
use crate::field::Field;

/// The placeholder the seed puts where a real blob belongs.
pub const PLACEHOLDER_BLOB: &str = "<Media Session Configuration>";

/// `mediaInfo`: a prompt the service may prefetch (`uri`, `resourceId`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaInfo {
    /// `@odata.type` (`#microsoft.graph.mediaInfo`), absent or present as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// Where the media is (e.g. `https://cdn.contoso.com/beep.wav`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub uri: Field<String>,
    /// A unique id for caching.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub resource_id: Field<String>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MediaInfo {
    /// A prompt (the seed's prompts carry no `@odata.type`).
    pub fn new(uri: impl Into<String>, resource_id: impl Into<String>) -> Self {
        MediaInfo {
            uri: Field::Value(uri.into()),
            resource_id: Field::Value(resource_id.into()),
            ..Default::default()
        }
    }
}

/// `serviceHostedMediaConfig`: the service plays and records media for the bot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHostedMediaConfig {
    /// `@odata.type` (`#microsoft.graph.serviceHostedMediaConfig`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// Prompts to prefetch.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub pre_fetch_media: Field<Vec<MediaInfo>>,
    /// Keep the bot out of the default audio group.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub remove_from_default_audio_group: Field<bool>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ServiceHostedMediaConfig {
    /// A typed, empty service-hosted configuration.
    pub fn new() -> Self {
        ServiceHostedMediaConfig {
            odata_type: Field::Value(odata::SERVICE_HOSTED_MEDIA_CONFIG.into()),
            ..Default::default()
        }
    }

    /// Add prompts to prefetch.
    pub fn pre_fetch(mut self, media: impl IntoIterator<Item = MediaInfo>) -> Self {
        self.pre_fetch_media = Field::Value(media.into_iter().collect());
        self
    }

    /// Set `removeFromDefaultAudioGroup`.
    pub fn remove_from_default_audio_group(mut self, remove: bool) -> Self {
        self.remove_from_default_audio_group = Field::Value(remove);
        self
    }
}

/// `appHostedMediaConfig`: the bot hosts media; `blob` is the serialized media session
/// configuration (see the `media-blob` crate).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppHostedMediaConfig {
    /// `@odata.type` (`#microsoft.graph.appHostedMediaConfig`), as read.
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Field::is_absent"
    )]
    pub odata_type: Field<String>,
    /// The media session configuration: canonically a JSON string holding the blob's
    /// JSON text; kept as raw JSON so that the older object form is accepted too
    /// (see [`AppHostedMediaConfig::blob_text`]).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub blob: Field<Value>,
    /// Keep the bot out of the default audio group.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub remove_from_default_audio_group: Field<bool>,
    /// Properties this crate does not model, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AppHostedMediaConfig {
    /// A typed app-hosted configuration carrying `blob`.
    pub fn new(blob: impl Into<String>) -> Self {
        AppHostedMediaConfig {
            odata_type: Field::Value(odata::APP_HOSTED_MEDIA_CONFIG.into()),
            blob: Field::Value(Value::String(blob.into())),
            ..Default::default()
        }
    }

    /// Set `removeFromDefaultAudioGroup`.
    pub fn remove_from_default_audio_group(mut self, remove: bool) -> Self {
        self.remove_from_default_audio_group = Field::Value(remove);
        self
    }

    /// The blob when it is a JSON string (the canonical form).
    pub fn blob_text(&self) -> Option<&str> {
        self.blob.value().and_then(Value::as_str)
    }
}

/// `call.mediaConfig`, selected by `@odata.type`.
///
/// Without `@odata.type`, an object with `blob` is app-hosted and one with
/// `preFetchMedia` is service-hosted; anything else is [`MediaConfig::Other`].
#[derive(Debug, Clone, PartialEq)]
pub enum MediaConfig {
    /// `#microsoft.graph.serviceHostedMediaConfig`.
    ServiceHosted(ServiceHostedMediaConfig),
    /// `#microsoft.graph.appHostedMediaConfig`.
    AppHosted(AppHostedMediaConfig),
    /// Any other type (or not an object), kept as raw JSON.
    Other(Value),
}

impl MediaConfig {
    /// A typed, empty service-hosted configuration.
    pub fn service_hosted() -> Self {
        MediaConfig::ServiceHosted(ServiceHostedMediaConfig::new())
    }

    /// A typed app-hosted configuration carrying `blob`.
    pub fn app_hosted(blob: impl Into<String>) -> Self {
        MediaConfig::AppHosted(AppHostedMediaConfig::new(blob))
    }

    /// True for app-hosted media.
    pub fn is_app_hosted(&self) -> bool {
        matches!(self, MediaConfig::AppHosted(_))
    }

    /// `"service-hosted"`, `"app-hosted"` or the unknown `@odata.type`: for summaries.
    pub fn kind(&self) -> &str {
        match self {
            MediaConfig::ServiceHosted(_) => "service-hosted",
            MediaConfig::AppHosted(_) => "app-hosted",
            MediaConfig::Other(v) => odata::type_of(v).unwrap_or("unknown"),
        }
    }
}

impl Serialize for MediaConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MediaConfig::ServiceHosted(c) => c.serialize(serializer),
            MediaConfig::AppHosted(c) => c.serialize(serializer),
            MediaConfig::Other(v) => v.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MediaConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        let ty = odata::type_of(&v);
        let kind = match ty {
            Some(t) if odata::is(t, odata::SERVICE_HOSTED_MEDIA_CONFIG) => Some(false),
            Some(t) if odata::is(t, odata::APP_HOSTED_MEDIA_CONFIG) => Some(true),
            Some(_) => None,
            None if v.get("blob").is_some() => Some(true),
            None if v.get("preFetchMedia").is_some() => Some(false),
            None => None,
        };
        match kind {
            Some(true) => serde_json::from_value(v)
                .map(MediaConfig::AppHosted)
                .map_err(|e| D::Error::custom(format!("appHostedMediaConfig: {e}"))),
            Some(false) => serde_json::from_value(v)
                .map(MediaConfig::ServiceHosted)
                .map_err(|e| D::Error::custom(format!("serviceHostedMediaConfig: {e}"))),
            None => Ok(MediaConfig::Other(v)),
        }
    }
}
