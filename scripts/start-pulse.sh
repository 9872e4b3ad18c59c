#!/usr/bin/env bash
# Starts (idempotently) a headless PulseAudio daemon with a null sink `loop`, so tests and
# demos have a real, clocked audio device and its monitor on a machine without sound cards.
#
#   eval "$(scripts/start-pulse.sh)"     # exports PULSE_SERVER for this shell
#
# - Works as root (CI containers): the per-user daemon runs as root with a warning, which is
#   harmless; `--system` is not used (it needs a `pulse` user and refuses module loading).
# - The daemon's runtime directory (socket, pid file, log) is fixed and known, so every client
#   finds it through PULSE_SERVER=unix:<dir>/native, whatever XDG_RUNTIME_DIR is or is not.
# - Clients connect anonymously (auth-anonymous=1): no cookie or HOME needed.
# - The null sink `loop` (48 kHz stereo s16le) becomes the default sink and its monitor
#   `loop.monitor` the default source: what is played to `loop` can be recorded from
#   `loop.monitor`.
# - The daemon asks for realtime scheduling and a high nice level (granted to root; silently
#   refused otherwise), so a busy build machine does not starve the sink's clock. PulseAudio
#   gives realtime only to its I/O threads (the null sink's render thread); its main thread,
#   which carries every client's audio between the client's socket and those threads, gets
#   nice -11 and, with two CPUs busy, answers a client's data tens of ms late. A playback
#   stream (cpal's: 40 ms of server buffer) then underruns inside the server, which plays
#   silence and keeps the late audio: the stream's timeline slips, out of the client's sight.
#   So the main thread is raised to realtime round-robin too (priority 4, below the I/O
#   threads' 5), on every call, also for a daemon that is already running (needs root or
#   CAP_SYS_NICE; otherwise a warning on stderr, and audio under CPU load may slip).
# - Waits (about 5 s at most, polling every 0.1 s) until `pactl info` answers.
#
# stdout: only `export VAR=value` lines (eval-able); diagnostics go to stderr.
# Environment: MEDIA_PULSE_DIR overrides the runtime directory
# (default /tmp/media-processor-pulse-<uid>). Exit status is non-zero if the daemon cannot be
# started or does not answer; the daemon log is then printed to stderr.
set -euo pipefail

dir="${MEDIA_PULSE_DIR:-/tmp/media-processor-pulse-$(id -u)}"
socket="$dir/native"
log="$dir/pulse.log"
server="unix:$socket"

for tool in pulseaudio pactl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "start-pulse: '$tool' not found; install the packages: pulseaudio libasound2-plugins" \
      "(scripts/install-deps.sh does it)" >&2
    exit 1
  fi
done

# pactl must talk to our daemon only, and never autospawn another one.
export PULSE_SERVER="$server"
export PULSE_RUNTIME_PATH="$dir"

answers() { timeout 2 pactl info >/dev/null 2>&1; }

mkdir -p "$dir"
chmod 700 "$dir"
# Serialise concurrent callers (parallel tests): one starts the daemon, the others wait.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/lock"
  flock -w 20 9 || { echo "start-pulse: timed out waiting for $dir/lock" >&2; exit 1; }
fi

if ! answers; then
  # A daemon that does not answer is useless: stop it (if it is still a live pulseaudio) and
  # remove its pid file and socket, which would otherwise make pulseaudio refuse to start (a
  # killed daemon can linger as a zombie in containers whose init does not reap).
  if [ -f "$dir/pid" ]; then
    pid="$(cat "$dir/pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = pulseaudio ] \
      && ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null; then
      echo "start-pulse: stopping unresponsive PulseAudio (pid $pid)" >&2
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null && break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
  fi
  rm -f "$socket"
  echo "start-pulse: starting PulseAudio in $dir" >&2
  # HOME may be unset or read-only in CI: keep the daemon's state (cookie etc.) in $dir.
  HOME="$dir" XDG_CONFIG_HOME="$dir/config" XDG_STATE_HOME="$dir/state" \
    pulseaudio --daemonize=yes --exit-idle-time=-1 -n \
      --use-pid-file=yes --disable-shm=yes --realtime=yes --high-priority=yes --no-cpu-limit=yes \
      --log-target="file:$log" \
      --load="module-native-protocol-unix socket=$socket auth-anonymous=1" \
      --load="module-null-sink sink_name=loop rate=48000 channels=2 format=s16le sink_properties=device.description=loop" \
      </dev/null 2>>"$dir/stderr.log" 9>&- || true
  # Bounded wait: ~5 s whatever each probe costs.
  deadline=$((SECONDS + 5))
  ready=no
  while [ "$SECONDS" -le "$deadline" ]; do
    if answers; then ready=yes; break; fi
    sleep 0.1
  done
  if [ "$ready" != yes ]; then
    echo "start-pulse: PulseAudio did not answer at $server" >&2
    cat "$dir/stderr.log" "$log" >&2 2>/dev/null || true
    exit 1
  fi
fi

# Realtime for the main thread too (see the header); idempotent.
main_pid="$(cat "$dir/pid" 2>/dev/null || true)"
if [ -n "$main_pid" ] && [ "$(cat "/proc/$main_pid/comm" 2>/dev/null || true)" = pulseaudio ]; then
  if ! command -v chrt >/dev/null 2>&1; then
    echo "start-pulse: 'chrt' not found (util-linux): PulseAudio's main thread stays at normal" \
      "priority; under CPU load its clients' audio may slip" >&2
  elif ! chrt --rr --pid 4 "$main_pid" 2>/dev/null; then
    echo "start-pulse: cannot give PulseAudio's main thread (pid $main_pid) realtime priority" \
      "(needs root or CAP_SYS_NICE); under CPU load its clients' audio may slip" >&2
  fi
fi

# An already running daemon may lack the sink (or have other defaults): fix it up.
if ! pactl list short sinks | awk '{print $2}' | grep -qx loop; then
  pactl load-module module-null-sink sink_name=loop rate=48000 channels=2 format=s16le \
    sink_properties=device.description=loop >/dev/null
fi
pactl set-default-sink loop
pactl set-default-source loop.monitor

echo "start-pulse: PulseAudio ready at $server (sink loop, source loop.monitor)" >&2
echo "export PULSE_SERVER=$server"
