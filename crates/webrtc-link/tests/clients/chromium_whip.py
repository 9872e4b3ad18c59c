#!/usr/bin/env python3
"""Headless Chromium calls a WHIP endpoint: the page at BASE_URL sends WAV (Chromium's
fake microphone, looped) through WHIP, records what comes back, and reports getStats;
then it sends the DTMF tones 1, 9, # (RTCDTMFSender) and hangs up (DELETE).

Prints one JSON object: the echo's energy-envelope correlation with the sent speech
(best lag), levels, getStats figures, the DELETE status. Exit code 0 when it ran (the
caller judges the figures), 2 when Chromium or Playwright is missing.

Usage: chromium_whip.py BASE_URL WAV SECONDS [TOKEN]
"""
import base64
import json
import os
import sys
import wave

try:
    import numpy as np
    from playwright.sync_api import sync_playwright
except ImportError as e:  # the caller decides whether a missing client is a failure
    print(json.dumps({"missing": f"python module: {e.name}"}))
    sys.exit(2)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, "16-bit mono WAV expected"
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        return pcm, w.getframerate()


def envelope_db(x, rate, ms=20):
    n = int(rate * ms / 1000)
    frames = len(x) // n
    e = np.sqrt(np.mean(x[: frames * n].reshape(frames, n) ** 2, axis=1) + 1e-9)
    return 20 * np.log10(e + 1.0)


def resample(x, rate_in, rate_out):
    """FFT resampling (band-limited): enough for scoring, no scipy needed."""
    n_out = int(round(len(x) * rate_out / rate_in))
    spec = np.fft.rfft(x)
    keep = n_out // 2 + 1
    spec = spec[:keep] if len(spec) >= keep else np.pad(spec, (0, keep - len(spec)))
    return np.fft.irfft(spec, n_out) * (n_out / len(x))


def pesq_wb(ref16, echo16, lag_samples):
    """PESQ-WB of the echo against the looped reference, aligned at `lag_samples` then
    refined by cross-correlation (±40 ms); None without the pesq module."""
    try:
        from pesq import pesq
    except ImportError:
        return None
    looped = np.tile(ref16, int(np.ceil((len(echo16) + lag_samples) / len(ref16))) + 2)
    seg = echo16[: min(len(echo16), 16000 * 4)]
    best, best_off = -1.0, lag_samples
    for off in range(max(0, lag_samples - 640), lag_samples + 641, 4):
        r = looped[off : off + len(seg)]
        c = float(np.dot(r, seg) / (np.linalg.norm(r) * np.linalg.norm(seg) + 1e-9))
        if c > best:
            best, best_off = c, off
    ref_seg = looped[best_off : best_off + len(seg)]
    try:
        return float(pesq(16000, ref_seg.astype(np.float32), seg.astype(np.float32), "wb")), best
    except Exception:  # noqa: BLE001 - a score that cannot be computed is reported as none
        return None


def best_envelope_correlation(ref_env, echo_env, max_lag):
    """Correlation of the echo's envelope with the (looped) reference's at the best lag."""
    looped = np.tile(ref_env, int(np.ceil((len(echo_env) + max_lag) / len(ref_env))) + 1)
    best = (-1.0, 0)
    for lag in range(max_lag):
        r = looped[lag : lag + len(echo_env)]
        if np.std(r) == 0 or np.std(echo_env) == 0:
            continue
        c = float(np.corrcoef(r, echo_env)[0, 1])
        if c > best[0]:
            best = (c, lag)
    return best


def main():
    base, wav, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    token = sys.argv[4] if len(sys.argv) > 4 else ""
    if not os.path.exists(CHROMIUM):
        print(json.dumps({"missing": f"Chromium at {CHROMIUM}"}))
        sys.exit(2)
    ref, ref_rate = read_wav(wav)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}",
                "--allow-loopback-in-peer-connection",
                "--autoplay-policy=no-user-gesture-required",
                "--no-sandbox",
                "--disable-dev-shm-usage",
            ],
        )
        page = browser.new_page()
        page.goto(base)
        location = page.evaluate("(t) => whip.start(t)", token)
        page.wait_for_timeout(int(seconds * 1000))
        stats = page.evaluate("() => whip.stats()")
        rec = page.evaluate("() => whip.recording()")
        # DTMF after the recording (a browser sends no audio while a tone plays).
        page.evaluate("() => whip.pc.getSenders()[0].dtmf.insertDTMF('19#', 100, 70)")
        page.wait_for_timeout(800)
        deleted = page.evaluate("() => whip.stop()")
        browser.close()
    echo = np.frombuffer(base64.b64decode(rec["pcm"]), dtype="<i2").astype(np.float64)
    rate = int(rec["rate"])
    # Compare at the reference's rate: decimate the 48 kHz recording by averaging.
    if rate != ref_rate:
        idx = np.arange(0, len(echo) * ref_rate // rate) * rate / ref_rate
        echo = np.interp(idx, np.arange(len(echo)), echo)
    # Skip the first second (connection set-up, jitter buffer start).
    echo = echo[ref_rate:]
    ref_env = envelope_db(ref, ref_rate)
    echo_env = envelope_db(echo, ref_rate)
    corr, lag = best_envelope_correlation(ref_env, echo_env, len(ref_env))
    rms = lambda x: float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    scored = pesq_wb(
        resample(ref, ref_rate, 16000), resample(echo, ref_rate, 16000), lag * 320
    )
    print(
        json.dumps(
            {
                "location": location,
                "deleteStatus": deleted,
                "stats": stats,
                "recordedSeconds": len(echo) / ref_rate + 1.0,
                "echoRms": rms(echo),
                "refRms": rms(ref),
                "envelopeCorrelation": corr,
                "envelopeLagMs": lag * 20,
                "pesqWb": scored[0] if scored else None,
                "waveformCorrelation": scored[1] if scored else None,
            }
        )
    )


if __name__ == "__main__":
    main()
