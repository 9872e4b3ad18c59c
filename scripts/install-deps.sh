#!/usr/bin/env bash
# Installs the system packages the build and the tests need, if any are missing.
#   cmake, a C compiler  - libopus is built from source by opusic-sys
#   pkg-config, libasound2-dev - cpal's ALSA backend
#   pulseaudio, libasound2-plugins - the null-sink audio device used by the tests and demo
#   espeak-ng, python3 + pip: numpy, pesq - speech and PESQ-WB scores of `jb-eval --pesq`
#   chromium + pip playwright; gstreamer (webrtcbin, nice, opus) + python3-gi and libnice's bindings (gir1.2-nice-0.1), openssl (an
#     ECDSA certificate for webrtcbin) - the WebRTC clients of the WHIP tests
#     (crates/webrtc-link/tests/clients)
#   nodejs, npm (unless node brings its own, as NodeSource's does) - the ACS bot on
#     Microsoft's JS SDK of ws-link's bot-link test (crates/ws-link/tests/bots/acs_bot)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
packages=(cmake pkg-config gcc libasound2-dev pulseaudio libasound2-plugins fonts-dejavu-core espeak-ng chromium gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-nice gstreamer1.0-tools python3-gi gir1.2-gst-plugins-bad-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-nice-0.1 openssl nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
# PyPI packages for the PESQ-WB scorer (scripts/pesq_score.py), if missing.
python_packages() {
  command -v python3 >/dev/null 2>&1 || { echo "warning: python3 not found: jb-eval --pesq will not work" >&2; return 0; }
  # websockets and twilio: the third-party Twilio Media Streams bot of ws-link's bot-link test.
  # playwright: drives Debian's chromium (no browser download) in the WHIP tests.
  # pipecat-ai: the Pipecat bot (its Twilio serializer) of ws-link's bot-link test; held to
  #   1.14.x, the API the test was written against (Pipecat changes it between minors).
  # prometheus_client: its parser reads the host's /metrics in tests/host_drain.rs.
  python3 -c 'import yaml, kubernetes_validate' 2>/dev/null || { echo "installing Python packages: pyyaml kubernetes-validate (tests/deploy_manifests.rs)"; python3 -m pip install -q pyyaml 'kubernetes-validate>=1.37,<1.40' 2>/dev/null || python3 -m pip install -q --break-system-packages pyyaml 'kubernetes-validate>=1.37,<1.40'; }
  python3 -c 'import numpy, pesq, websockets.asyncio.server, twilio.request_validator, playwright.sync_api, pipecat.serializers.twilio, prometheus_client.parser' 2>/dev/null && return 0
  echo "installing Python packages: numpy pesq websockets twilio playwright pipecat-ai prometheus_client"
  python3 -m pip install -q numpy pesq 'websockets>=13' twilio playwright 'pipecat-ai>=1.14,<1.15' prometheus_client 2>/dev/null \
    || python3 -m pip install -q --break-system-packages numpy pesq 'websockets>=13' twilio playwright 'pipecat-ai>=1.14,<1.15' prometheus_client
}
# npm packages of the ACS bot (its package-lock.json), if not installed yet.
node_packages() {
  local dir="$root/crates/ws-link/tests/bots/acs_bot"
  [ -d "$dir/node_modules" ] && return 0
  command -v npm >/dev/null 2>&1 || { echo "warning: npm not found: ws-link's ACS bot test needs it" >&2; return 0; }
  echo "installing npm packages: @azure/communication-call-automation ws (crates/ws-link/tests/bots/acs_bot)"
  (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
}
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
if [ ${#missing[@]} -eq 0 ]; then python_packages; node_packages; exit 0; fi
if [ "$(id -u)" -eq 0 ]; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  echo "installing system packages with sudo: ${missing[*]}"
  sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "error: missing system packages: ${missing[*]}" >&2
  echo "run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
python_packages
node_packages
