//! The crate's error type.

use std::path::PathBuf;

use crate::Direction;

/// What went wrong with an audio device, a WAV file or a loopback run.
///
/// Every variant names the device (or file) and the operation that failed, so a message such
/// as `PulseAudio:loop: build output stream failed: ...` is actionable on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The audio host (PulseAudio server, ALSA) cannot be reached.
    #[error(
        "audio host {host} is not available: {source} (for PulseAudio run `eval \"$(scripts/start-pulse.sh)\"`)"
    )]
    HostUnavailable {
        /// The host, e.g. `PulseAudio`.
        host: String,
        /// What cpal reported.
        source: cpal::Error,
    },
    /// No device matched the selector.
    #[error("no {direction} device {wanted:?} on {host} (available: {available})")]
    NotFound {
        /// The host searched.
        host: String,
        /// The device asked for (`default` for the host's default device).
        wanted: String,
        /// Input or output.
        direction: Direction,
        /// The ids of the devices the host offered, comma separated.
        available: String,
    },
    /// A cpal operation on a device failed.
    #[error("{device}: {action} failed: {source} ({kind:?})")]
    Device {
        /// The device, as `host:id`.
        device: String,
        /// What was attempted, e.g. `build output stream`.
        action: &'static str,
        /// The error kind, for matching without cpal.
        kind: cpal::ErrorKind,
        /// What cpal reported.
        source: cpal::Error,
    },
    /// The requested stream format cannot be used.
    #[error("{device}: unsupported format: {detail}")]
    Unsupported {
        /// The device, as `host:id` (or a file path).
        device: String,
        /// What is unsupported.
        detail: String,
    },
    /// Reading or writing a WAV file failed.
    #[error("WAV file {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What hound reported.
        source: hound::Error,
    },
    /// A loopback measurement could not produce a result.
    #[error("loopback {output} -> {input}: {detail}")]
    Loopback {
        /// The output device.
        output: String,
        /// The input device.
        input: String,
        /// What failed.
        detail: String,
    },
}

impl DeviceError {
    pub(crate) fn device(device: &str, action: &'static str, source: cpal::Error) -> Self {
        DeviceError::Device {
            device: device.to_owned(),
            action,
            kind: source.kind(),
            source,
        }
    }
}
