//! Hosts (PulseAudio, ALSA), device selection and device listing.

use std::fmt;
use std::str::FromStr;

use cpal::traits::{DeviceTrait, HostTrait};
use serde::Serialize;

use crate::DeviceError;

/// The audio hosts this crate opens devices on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum HostKind {
    /// PulseAudio (or PipeWire's pulse server) through cpal's native protocol client. Preferred:
    /// honours fixed buffer sizes and loops reliably through a null sink.
    PulseAudio,
    /// ALSA (`default`, `pulse`, `hw:...`). Fallback; the ALSA-to-pulse plugin route is flaky.
    Alsa,
}

impl HostKind {
    fn cpal_id(self) -> cpal::HostId {
        match self {
            HostKind::PulseAudio => cpal::HostId::PulseAudio,
            HostKind::Alsa => cpal::HostId::Alsa,
        }
    }

    /// The host's name as cpal spells it (`PulseAudio`, `ALSA`).
    pub fn name(self) -> &'static str {
        self.cpal_id().name()
    }
}

impl fmt::Display for HostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which host a [`DeviceSelector`] looks on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PulseAudio when its server answers, otherwise ALSA.
    #[default]
    Auto,
    /// PulseAudio only.
    PulseAudio,
    /// ALSA only.
    Alsa,
}

/// Input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A capture device (microphone, sink monitor).
    Input,
    /// A playback device (speaker, sink).
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// Names a device: a backend plus a device id or description (`None`: the host's default).
///
/// Parsed from strings ([`FromStr`]): `default`, `loop`, `loop.monitor`, `pulseaudio:loop`,
/// `alsa:default`, `alsa:pulse`. A name matches a device's id exactly, else its description
/// exactly, else case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DeviceSelector {
    /// Where to look.
    pub backend: Backend,
    /// The device's id or description; `None` for the default device.
    pub device: Option<String>,
}

impl DeviceSelector {
    /// The default device of the preferred host.
    pub fn default_device() -> Self {
        Self::default()
    }

    /// A device by id or description on the preferred host.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            backend: Backend::Auto,
            device: Some(name.into()),
        }
    }

    /// The same selector restricted to one backend.
    pub fn on(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
}

impl FromStr for DeviceSelector {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (backend, rest) = match s.split_once(':') {
            Some((h, rest)) if h.eq_ignore_ascii_case("pulseaudio") || h == "pulse" => {
                (Backend::PulseAudio, rest)
            }
            Some((h, rest)) if h.eq_ignore_ascii_case("alsa") => (Backend::Alsa, rest),
            _ => (Backend::Auto, s),
        };
        let device = match rest {
            "" | "default" if backend != Backend::Alsa || rest.is_empty() => None,
            other => Some(other.to_owned()),
        };
        Ok(Self { backend, device })
    }
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backend {
            Backend::Auto => {}
            Backend::PulseAudio => f.write_str("pulseaudio:")?,
            Backend::Alsa => f.write_str("alsa:")?,
        }
        f.write_str(self.device.as_deref().unwrap_or("default"))
    }
}

/// A device's default stream configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DefaultConfig {
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// The device's native sample format (`i16`, `f32`, ...).
    pub sample_format: &'static str,
}

/// One device in one direction, as [`list_devices`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// The host the device belongs to.
    pub host: HostKind,
    /// The host's id for the device (`loop`, `loop.monitor`, `default`, `hw:CARD=...`): what a
    /// [`DeviceSelector`] names.
    pub id: String,
    /// Human-readable description.
    pub description: String,
    /// Input or output. A device doing both is listed twice.
    pub direction: Direction,
    /// Default configuration, when the device reports one.
    pub default_config: Option<DefaultConfig>,
    /// Whether this is the host's default device for the direction.
    pub is_default: bool,
}

pub(crate) fn open_host(kind: HostKind) -> Result<cpal::Host, DeviceError> {
    cpal::host_from_id(kind.cpal_id()).map_err(|source| DeviceError::HostUnavailable {
        host: kind.name().to_owned(),
        source,
    })
}

/// Lists the devices of the PulseAudio host, then those of the ALSA host. A host that cannot
/// be reached contributes nothing (use [`list_host_devices`] to see why).
pub fn list_devices() -> Vec<DeviceInfo> {
    let mut all = Vec::new();
    for kind in [HostKind::PulseAudio, HostKind::Alsa] {
        if let Ok(devices) = list_host_devices(kind) {
            all.extend(devices);
        }
    }
    all
}

/// Lists one host's devices, outputs first.
pub fn list_host_devices(kind: HostKind) -> Result<Vec<DeviceInfo>, DeviceError> {
    let host = open_host(kind)?;
    let default_out = host.default_output_device().and_then(|d| d.id().ok());
    let default_in = host.default_input_device().and_then(|d| d.id().ok());
    let mut out = Vec::new();
    for direction in [Direction::Output, Direction::Input] {
        let devices = match direction {
            Direction::Output => host.output_devices().map(|d| d.collect::<Vec<_>>()),
            Direction::Input => host.input_devices().map(|d| d.collect::<Vec<_>>()),
        }
        .map_err(|e| DeviceError::device(kind.name(), "list devices", e))?;
        for device in devices {
            let Ok(id) = device.id() else { continue };
            let description = device
                .description()
                .map(|d| d.name().to_owned())
                .unwrap_or_else(|_| id.id().to_owned());
            let config = match direction {
                Direction::Output => device.default_output_config(),
                Direction::Input => device.default_input_config(),
            };
            let default_config = config.ok().map(|c| DefaultConfig {
                sample_rate: c.sample_rate(),
                channels: c.channels(),
                sample_format: sample_format_name(c.sample_format()),
            });
            let is_default = match direction {
                Direction::Output => default_out.as_ref() == Some(&id),
                Direction::Input => default_in.as_ref() == Some(&id),
            };
            out.push(DeviceInfo {
                host: kind,
                id: id.id().to_owned(),
                description,
                direction,
                default_config,
                is_default,
            });
        }
    }
    Ok(out)
}

pub(crate) fn sample_format_name(f: cpal::SampleFormat) -> &'static str {
    use cpal::SampleFormat as F;
    match f {
        F::I8 => "i8",
        F::I16 => "i16",
        F::I24 => "i24",
        F::I32 => "i32",
        F::I64 => "i64",
        F::U8 => "u8",
        F::U16 => "u16",
        F::U24 => "u24",
        F::U32 => "u32",
        F::U64 => "u64",
        F::F32 => "f32",
        F::F64 => "f64",
        _ => "other",
    }
}

/// A device found by [`resolve`], with the names used in errors and reports.
pub(crate) struct Resolved {
    pub device: cpal::Device,
    pub host: HostKind,
    /// `host:id`, e.g. `PulseAudio:loop`.
    pub label: String,
}

/// Finds the device a selector names, in one direction.
pub(crate) fn resolve(sel: &DeviceSelector, direction: Direction) -> Result<Resolved, DeviceError> {
    let kinds: &[HostKind] = match sel.backend {
        Backend::Auto => &[HostKind::PulseAudio, HostKind::Alsa],
        Backend::PulseAudio => &[HostKind::PulseAudio],
        Backend::Alsa => &[HostKind::Alsa],
    };
    let mut last_err = None;
    for (i, &kind) in kinds.iter().enumerate() {
        let host = match open_host(kind) {
            Ok(h) => h,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        match find_on(&host, kind, sel.device.as_deref(), direction) {
            Ok(r) => return Ok(r),
            // With Auto, a device missing on PulseAudio may still exist on ALSA; a reachable
            // PulseAudio without the device is the more useful error, so keep the first.
            Err(e) => {
                if i == 0 || last_err.is_none() {
                    last_err = Some(e);
                }
            }
        }
    }
    Err(last_err.unwrap_or_else(|| DeviceError::NotFound {
        host: "none".into(),
        wanted: sel.to_string(),
        direction,
        available: String::new(),
    }))
}

fn find_on(
    host: &cpal::Host,
    kind: HostKind,
    name: Option<&str>,
    direction: Direction,
) -> Result<Resolved, DeviceError> {
    let label = |d: &cpal::Device| {
        d.id()
            .map(|id| format!("{kind}:{}", id.id()))
            .unwrap_or_else(|_| format!("{kind}:?"))
    };
    let not_found = |available: String| DeviceError::NotFound {
        host: kind.name().to_owned(),
        wanted: name.unwrap_or("default").to_owned(),
        direction,
        available,
    };
    let Some(name) = name else {
        let device = match direction {
            Direction::Output => host.default_output_device(),
            Direction::Input => host.default_input_device(),
        }
        .ok_or_else(|| not_found(String::new()))?;
        let label = label(&device);
        return Ok(Resolved {
            device,
            host: kind,
            label,
        });
    };
    let devices: Vec<cpal::Device> = match direction {
        Direction::Output => host.output_devices().map(|d| d.collect()),
        Direction::Input => host.input_devices().map(|d| d.collect()),
    }
    .map_err(|e| DeviceError::device(kind.name(), "list devices", e))?;
    let id_of = |d: &cpal::Device| d.id().map(|id| id.id().to_owned()).unwrap_or_default();
    let desc_of = |d: &cpal::Device| d.description().map(|d| d.name().to_owned()).ok();
    let found = devices
        .iter()
        .position(|d| id_of(d) == name)
        .or_else(|| {
            devices
                .iter()
                .position(|d| desc_of(d).as_deref() == Some(name))
        })
        .or_else(|| {
            devices.iter().position(|d| {
                id_of(d).eq_ignore_ascii_case(name)
                    || desc_of(d).is_some_and(|s| s.eq_ignore_ascii_case(name))
            })
        });
    match found {
        Some(i) => {
            let device = devices[i].clone();
            let label = label(&device);
            Ok(Resolved {
                device,
                host: kind,
                label,
            })
        }
        None => Err(not_found(
            devices.iter().map(id_of).collect::<Vec<_>>().join(", "),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_parsing() {
        let p = |s: &str| s.parse::<DeviceSelector>().expect("infallible");
        assert_eq!(p("default"), DeviceSelector::default());
        assert_eq!(p("loop"), DeviceSelector::named("loop"));
        assert_eq!(
            p("pulseaudio:loop.monitor"),
            DeviceSelector::named("loop.monitor").on(Backend::PulseAudio)
        );
        assert_eq!(
            p("pulseaudio:default"),
            DeviceSelector::default().on(Backend::PulseAudio)
        );
        // ALSA has a PCM literally called `default`.
        assert_eq!(
            p("alsa:default"),
            DeviceSelector::named("default").on(Backend::Alsa)
        );
        assert_eq!(p("alsa:"), DeviceSelector::default().on(Backend::Alsa));
        assert_eq!(p("pulseaudio:loop").to_string(), "pulseaudio:loop");
        assert_eq!(DeviceSelector::default().to_string(), "default");
    }
}
