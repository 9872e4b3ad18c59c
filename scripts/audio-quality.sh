#!/usr/bin/env bash
# Audio quality at the codec's ceiling: PESQ-WB of `media-processor jb-eval --pesq` for
# PCM and Opus over every network profile, on three inputs: the built-in synthetic
# talker and espeak-ng sentences in a male and a female voice. Prints one markdown
# table per codec (PESQ now / codec ceiling per input, mean gap, delays), the table of
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

for codec in pcm opus; do
  for input in synthetic male female; do
    wav=()
    [ "$input" = synthetic ] || wav=(--wav "$out/speech/$input.wav")
    "$bin" jb-eval "${wav[@]}" --codec "$codec" --seed "$seed" --duration-s "$duration" \
      --pesq --json --out "$out/$codec-$input" >"$out/$codec-$input.json"
  done
done

python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
inputs = ["synthetic", "male", "female"]
for codec in ["pcm", "opus"]:
    reps = {i: json.load(open(f"{out}/{codec}-{i}.json")) for i in inputs}
    print(f"\n{codec}: PESQ-WB now / codec ceiling")
    print("| profile | " + " | ".join(inputs) + " | mean gap | mean delay ms | oracle ms |")
    print("|---|" + "---:|" * (len(inputs) + 3))
    for k, p in enumerate(reps[inputs[0]]["profiles"]):
        cells, gaps, delays, oracles = [], [], [], []
        for i in inputs:
            q = reps[i]["profiles"][k]
            now, ceil = q["pesq"], q["ceiling_pesq"]
            cells.append(f"{now:.2f} / {ceil:.2f}" if now is not None and ceil is not None else "-")
            if now is not None and ceil is not None:
                gaps.append(ceil - now)
            delays.append(q["mean_added_delay_ms"])
            oracles.append(q["oracle_delay_ms"])
        gap = f"{sum(gaps) / len(gaps):.2f}" if gaps else "-"
        print(f"| {p['profile']} | " + " | ".join(cells)
              + f" | {gap} | {sum(delays) / len(delays):.0f} | {sum(oracles) / len(oracles):.0f} |")
EOF
