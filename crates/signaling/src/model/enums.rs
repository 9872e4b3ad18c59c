//! String enumerations of the Graph call model.
//!
//! Each one accepts values it does not know into an `Other(String)` variant (the service
//! adds values over time; `unknownFutureValue` is one) and always writes the exact
//! string it read.

/// Defines a string enum with known variants, an `Other(String)` catch-all, `as_str`,
/// `Display`, `FromStr` (infallible), `From<&str>` and serde as a JSON string.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Every known (non-`Other`) variant.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// The JSON string of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(s) => s.as_str(),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $text => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok($name::from(s))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                Ok($name::from(s.as_ref()))
            }
        }
    };
}

string_enum! {
    /// `callState`: where a call is in its life.
    CallState {
        /// Offered to the bot, not yet answered.
        Incoming => "incoming",
        /// Being set up (the state of a `201 Created` response).
        Establishing => "establishing",
        /// The other side is ringing.
        Ringing => "ringing",
        /// Connected; media flows.
        Established => "established",
        /// On hold.
        Hold => "hold",
        /// Being transferred.
        Transferring => "transferring",
        /// The transfer was accepted.
        TransferAccepted => "transferAccepted",
        /// Being redirected.
        Redirecting => "redirecting",
        /// Being torn down.
        Terminating => "terminating",
        /// Ended.
        Terminated => "terminated",
    }
}

string_enum! {
    /// `callDirection`.
    CallDirection {
        /// The call came in to the bot.
        Incoming => "incoming",
        /// The bot placed the call.
        Outgoing => "outgoing",
    }
}

string_enum! {
    /// `changeType` of a `commsNotification`.
    ChangeType {
        /// A resource was created.
        Created => "created",
        /// A resource was updated.
        Updated => "updated",
        /// A resource was deleted.
        Deleted => "deleted",
    }
}

string_enum! {
    /// `modality`: a kind of media (`requestedModalities`, `mediaStream.mediaType`).
    Modality {
        /// Unknown modality.
        Unknown => "unknown",
        /// Audio.
        Audio => "audio",
        /// Video.
        Video => "video",
        /// Video-based screen sharing (VBSS).
        VideoBasedScreenSharing => "videoBasedScreenSharing",
        /// Data.
        Data => "data",
    }
}

string_enum! {
    /// `mediaDirection` of a media stream.
    MediaDirection {
        /// No media either way.
        Inactive => "inactive",
        /// Send only.
        SendOnly => "sendOnly",
        /// Receive only.
        ReceiveOnly => "receiveOnly",
        /// Both ways.
        SendReceive => "sendReceive",
    }
}

string_enum! {
    /// `endpointType` of a participant.
    EndpointType {
        /// A default endpoint.
        Default => "default",
        /// Voicemail.
        Voicemail => "voicemail",
        /// Skype for Business.
        SkypeForBusiness => "skypeForBusiness",
        /// Skype for Business VoIP phone.
        SkypeForBusinessVoipPhone => "skypeForBusinessVoipPhone",
        /// Marker for values added later.
        UnknownFutureValue => "unknownFutureValue",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_values_round_trip() {
        let s: CallState = serde_json::from_str("\"established\"").expect("parse");
        assert_eq!(s, CallState::Established);
        let s: CallState = serde_json::from_str("\"parked\"").expect("parse");
        assert_eq!(s, CallState::Other("parked".into()));
        assert_eq!(serde_json::to_string(&s).expect("ser"), "\"parked\"");
        for m in Modality::KNOWN {
            assert_eq!(Modality::from(m.as_str()), *m);
        }
    }
}
