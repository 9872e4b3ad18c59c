#!/usr/bin/env bash
# Compares two release binaries of media-processor with the load tool.
#   scripts/load-compare.sh seq  ROUNDS OLD NEW LOADTEST-ARGS...   each alone, in turn, order alternating
#   scripts/load-compare.sh pair ROUNDS OLD NEW LOADTEST-ARGS...   both at once, first-started alternating
# Prints, per run, the processor's CPU per call (% of a core), the whole process's, and
# the late ticks (%), from `loadtest --json`.
set -euo pipefail
mode=$1 rounds=$2 old=$3 new=$4
shift 4
fig() {
  python3 -c '
import json, sys
def find(o, k):
    if isinstance(o, dict):
        if k in o: return o[k]
        o = list(o.values())
    if isinstance(o, list):
        for v in o:
            r = find(v, k)
            if r is not None: return r
o = json.load(open(sys.argv[1]))
print(sys.argv[2], *(round(find(o, k), 4) for k in ("processor_cpu_per_call_pct", "process_cpu_per_call_pct", "late_ticks_pct")))
' "$1" "$2"
}
out=$(mktemp -d)
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) = 1 ]; then order=(old new); else order=(new old); fi
  for b in "${order[@]}"; do
    bin=$old; [ "$b" = new ] && bin=$new
    if [ "$mode" = pair ]; then
      "$bin" loadtest "$@" --json > "$out/$i.$b" 2>/dev/null &
      sleep 0.2
    else
      "$bin" loadtest "$@" --json > "$out/$i.$b" 2>/dev/null
    fi
  done
  wait
  for b in "${order[@]}"; do fig "$out/$i.$b" "$i $b"; done
done
