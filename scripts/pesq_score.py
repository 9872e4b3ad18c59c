#!/usr/bin/env python3
"""Scores degraded 16 kHz mono WAVs against a reference with PESQ-WB (ITU-T P.862.2).

Usage: pesq_score.py [--skip-s 1.0] REFERENCE.wav DEGRADED.wav [DEGRADED.wav ...]

Each degraded file is aligned to the reference by cross-correlation (the lag, 0..2 s,
at which the degraded signal best matches the reference), the first --skip-s seconds
of the reference timeline are skipped (jitter-buffer start-up), both are cut to the
same length and scored with `pesq(16000, ref, deg, 'wb')` from PyPI `pesq`.

Prints one JSON object per degraded file: {"file", "pesq", "lag_samples"}; "pesq" is
null and "error" says why when a file cannot be scored. Used by
`media-processor jb-eval --pesq`; needs `pip install numpy pesq`
(scripts/install-deps.sh).
"""

import argparse
import json
import sys
import wave

import numpy as np
from pesq import pesq

RATE = 16_000
MAX_LAG_S = 2.0


def read(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit PCM")
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float64)


def best_lag(ref, deg):
    """The lag L in 0..MAX_LAG_S (deg[t + L] ~ ref[t]) with the highest correlation."""
    n = len(ref) + len(deg)
    size = 1 << (n - 1).bit_length()
    spec = np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size))
    corr = np.fft.irfft(spec, size)
    max_lag = min(int(MAX_LAG_S * RATE), len(deg) - 1)
    return int(np.argmax(corr[: max_lag + 1]))


def score(ref, deg, skip):
    lag = best_lag(ref, deg)
    deg = deg[lag:]
    n = min(len(ref), len(deg))
    start = min(int(skip * RATE), n)
    r, d = ref[start:n], deg[start:n]
    if len(r) < RATE:
        raise ValueError("less than one second left to score after alignment")
    return float(pesq(RATE, r, d, "wb")), lag


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-s", type=float, default=1.0)
    ap.add_argument("reference")
    ap.add_argument("degraded", nargs="+")
    args = ap.parse_args()
    ref = read(args.reference)
    for path in args.degraded:
        out = {"file": path}
        try:
            out["pesq"], out["lag_samples"] = score(ref, read(path), args.skip_s)
        except Exception as e:  # noqa: BLE001 - reported per file, the run goes on
            out["pesq"], out["error"] = None, str(e)
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
