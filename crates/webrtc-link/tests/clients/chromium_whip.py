#!/usr/bin/env python3
"""Headless Chromium calls a WHIP endpoint: the page at BASE_URL sends WAV (Chromium's
fake microphone, looped) through WHIP, records what comes back, and reports getStats;
then it sends the DTMF tones 1, 9, # (RTCDTMFSender) and hangs up (DELETE).

The echo is recorded twice: as played (an AudioWorklet on the page's audio rendering
clock) and as received (`wire`: every Opus frame that arrived, decoded with WebCodecs
and placed by its RTP timestamp, so it does not lose time when the browser's audio
rendering is starved). Each gets the figures below.

Prints one JSON object: the echo's energy-envelope correlation with the sent speech,
segment by segment (`segmentEnvelopeCorrelation`, the median of 1 s segments each at
its own lag, with every segment's score and lag) and whole (`envelopeCorrelation`, one
lag: a figure for information, it falls when the jitter buffer stretches time), how much
was recorded (`recordedSeconds`, the samples the page's recorder delivered, against
`recorderWallSeconds`, the time it ran), levels, PESQ-WB (information), getStats
figures, the DELETE status. Exit code 0 when it ran (the caller judges the figures), 2
when Chromium or Playwright is missing.

Usage: chromium_whip.py BASE_URL WAV SECONDS [TOKEN]
(CHROMIUM_WHIP_SAVE=FILE.wav keeps the recording.)
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


def window_correlations(ref_env, e):
    """Correlation of `e` with every window of its length of the looped reference
    envelope, one per starting frame of the reference (the fake microphone loops it)."""
    seg = len(e)
    looped = np.tile(ref_env, int(np.ceil(seg / len(ref_env))) + 1)
    w = np.lib.stride_tricks.sliding_window_view(looped, seg)[: len(ref_env)]
    wc = w - w.mean(axis=1, keepdims=True)
    ec = e - e.mean()
    den = np.sqrt((wc**2).sum(axis=1) * (ec**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(den > 0, (wc @ ec) / np.where(den > 0, den, 1.0), -1.0)
    return c


SEGMENT = 50  # envelope frames of 20 ms: 1 s
QUIET_DB = 40.0  # a frame this far below the reference's loudest is silence


def segment_correlation(ref_env, echo_env, seg=SEGMENT):
    """The echo's envelope cut into 1 s segments, each aligned on its own against the
    looped reference envelope (robust to the jitter buffer stretching or shrinking time,
    and to a gap in the recording); returns the median score and every segment's
    {startS, score, lagMs} (lagMs: where in the reference the segment matched).

    Skipped: the echo before its first sound and its first second of sound (the call
    coming up: the first packets sent, the jitter buffer starting), and a last segment
    shorter than 1 s. A silent echo segment is skipped only when the reference is silent
    there too (at the lag of the nearest segment that was scored, +-200 ms); otherwise
    it scores 0, so a silent or broken echo cannot pass. No scored segment: -1."""
    quiet = float(np.max(ref_env)) - QUIET_DB
    loud = np.nonzero(echo_env > quiet)[0]
    first = int(loud[0]) + seg if len(loud) else len(echo_env)
    segs = []
    for start in range(first, len(echo_env) - seg + 1, seg):
        e = echo_env[start : start + seg]
        seg_info = {"startS": round(start * 0.02, 2)}
        if np.max(e) > quiet:
            c = window_correlations(ref_env, e)
            lag = int(np.argmax(c))
            seg_info.update(score=round(float(c[lag]), 3), lagMs=lag * 20)
        segs.append(seg_info)
    scored = [i for i, s in enumerate(segs) if "score" in s]
    looped = np.tile(ref_env, int(np.ceil(seg / len(ref_env))) + 2)
    for i, s in enumerate(segs):
        if "score" in s:
            continue
        if not scored:
            s.update(score=0.0, silent="echo silent, no segment to align it")
            continue
        near = min(scored, key=lambda j: abs(j - i))
        lag = segs[near]["lagMs"] // 20
        ref_silent = any(
            np.max(looped[(lag + d) % len(ref_env) :][:seg]) <= quiet for d in range(-10, 11)
        )
        if ref_silent:
            s.update(skipped="silent in the echo and the reference")
        else:
            s.update(score=0.0, silent="echo silent where the reference speaks", lagMs=lag * 20)
    scores = sorted(s["score"] for s in segs if "score" in s)
    median = round(float(np.median(scores)), 3) if scores else -1.0
    return median, segs, first


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
        location = page.evaluate("(t) => whip.start(t, { wire: true })", token)
        page.wait_for_timeout(int(seconds * 1000))
        stats = page.evaluate("() => whip.stats()")
        rec = page.evaluate("() => whip.recording()")
        # DTMF after the recording (a browser sends no audio while a tone plays).
        page.evaluate("() => whip.pc.getSenders()[0].dtmf.insertDTMF('19#', 100, 70)")
        page.wait_for_timeout(800)
        deleted = page.evaluate("() => whip.stop()")
        browser.close()
    if os.environ.get("CHROMIUM_WHIP_SAVE"):  # the recordings, to listen to or study
        save(os.environ["CHROMIUM_WHIP_SAVE"], rec)
        if rec.get("wire"):
            save(os.environ["CHROMIUM_WHIP_SAVE"].replace(".wav", "") + "-wire.wav", rec["wire"])
    playout = analyse(rec, ref, ref_rate)
    wire = rec.get("wire")
    if wire:
        decoded = {k: wire.get(k) for k in ("frames", "skipped", "errors", "lastError")}
        wire = {**decoded, **analyse(wire, ref, ref_rate, pesq=False)}
    print(
        json.dumps(
            {
                "location": location,
                "deleteStatus": deleted,
                "stats": stats,
                "callSeconds": seconds,
                "recorder": rec.get("recorder"),
                "recorderWallSeconds": rec.get("wallSeconds"),
                "recorderBlocks": rec.get("blocks"),
                "workletSeconds": rec["workletFrames"] / rec["rate"] if rec.get("workletFrames") else None,
                **playout,
                "refRms": rms(ref),
                "wire": wire,
            }
        )
    )


def rms(x):
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0


def save(path, rec):
    with wave.open(path, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(int(rec["rate"]))
        w.writeframes(base64.b64decode(rec["pcm"]))


def analyse(rec, ref, ref_rate, pesq=True):
    """One recording (`pcm` base64 16-bit at `rate`) scored against the reference."""
    echo = np.frombuffer(base64.b64decode(rec["pcm"]), dtype="<i2").astype(np.float64)
    rate = int(rec["rate"])
    recorded_seconds = len(echo) / rate if rate else 0.0
    # Compare at the reference's rate (linear interpolation: enough for envelopes).
    if rate != ref_rate:
        idx = np.arange(0, len(echo) * ref_rate // rate) * rate / ref_rate
        echo = np.interp(idx, np.arange(len(echo)), echo)
    ref_env = envelope_db(ref, ref_rate)
    echo_env = envelope_db(echo, ref_rate)
    seg_corr, segments, first = segment_correlation(ref_env, echo_env)
    # The whole-echo figure and PESQ (information) on the same part of the echo.
    echo = echo[first * ref_rate // 50 :]
    echo_env = echo_env[first:]
    corr, lag = best_envelope_correlation(ref_env, echo_env, len(ref_env)) if len(echo_env) else (-1.0, 0)
    scored = pesq_wb(
        resample(ref, ref_rate, 16000), resample(echo, ref_rate, 16000), lag * 320
    ) if pesq and len(echo) > ref_rate else None
    return {
        "recordedSeconds": recorded_seconds,
        "skippedSeconds": first * 0.02,  # before the first segment: see segment_correlation
        "echoRms": rms(echo),
        "segmentEnvelopeCorrelation": seg_corr,
        "segments": segments,
        "envelopeCorrelation": corr,
        "envelopeLagMs": lag * 20,
        "pesqWb": scored[0] if scored else None,
        "waveformCorrelation": scored[1] if scored else None,
    }


if __name__ == "__main__":
    main()
