#!/usr/bin/env python3
"""GStreamer's webrtcbin (Debian gstreamer1.0-plugins-bad + gstreamer1.0-nice) as a WHIP
client: sends a WAV (16 kHz 16-bit mono, looped) as Opus, paced in real time from the
moment the connection is up, and records the Opus that comes back, decoded to 16 kHz.

Prints one JSON object: how many RTP packets came back (webrtcbin's stats), the echo's
energy-envelope correlation with what was sent (at the best lag over the whole echo,
and the median over 1 s segments each at its own lag), levels, the DELETE status.
Exit code 0 when it ran (the caller judges the figures), 2 when GStreamer, its WebRTC
elements or PyGObject are missing, 1 on a failure (reason in the JSON).

Usage: gst_whip.py WHIP_URL WAV SECONDS [TOKEN]   (WAV: 16 kHz 16-bit mono)
Debugging: WHIP_DEBUG=1 prints offer and answer to stderr; WHIP_ECHO_WAV=PATH keeps
the echo.

libnice (under webrtcbin) gathers no loopback candidates by itself: the script gives
webrtcbin's NiceAgent 127.0.0.1 as its one local address (Debian gir1.2-nice-0.1), so
the call stays on loopback.
"""
import array
import json
import math
import os
import subprocess
import tempfile
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import wave

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstWebRTC", "1.0")
    gi.require_version("GstSdp", "1.0")
    gi.require_version("Nice", "0.1")
    from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402
except (ImportError, ValueError) as e:
    print(json.dumps({"missing": f"python module: {e}"}))
    sys.exit(2)


# Plain Python (no numpy): Debian's python3-gi lives in the system Python, which may
# not have numpy.
def pcm16(data):
    return array.array("h", data)


def envelope_db(x, rate, ms=20):
    n = rate * ms // 1000
    out = []
    for i in range(0, len(x) - n + 1, n):
        e = math.sqrt(sum(s * s for s in x[i : i + n]) / n)
        out.append(20 * math.log10(e + 1.0))
    return out


def correlation(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else -1.0


def best_envelope_correlation(ref_env, echo_env, max_lag):
    """Best correlation over relative shifts either way (the first audio sent may be
    lost while the connection comes up), with at least 75 frames (1.5 s) overlapping;
    the lag is positive when the echo is later."""
    best = (-1.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        a = ref_env[max(0, -lag):]
        b = echo_env[max(0, lag):]
        n = min(len(a), len(b))
        if n < 75:
            continue
        c = correlation(a[:n], b[:n])
        if c > best[0]:
            best = (c, lag)
    return best


def segment_correlation(sent_env, echo_env, seg=50, max_lag=50):
    """Median over 1 s segments of the sent envelope of each one's best correlation
    with the echo's (lags -1 s..1 s): robust to the jitter buffer stretching time."""
    scores = []
    for start in range(0, len(sent_env) - seg + 1, seg):
        a = sent_env[start : start + seg]
        best = -1.0
        for lag in range(-max_lag, max_lag + 1):
            at = start + lag
            if at < 0 or at + seg > len(echo_env):
                continue
            best = max(best, correlation(a, echo_env[at : at + seg]))
        scores.append(best)
    scores.sort()
    return scores[len(scores) // 2] if scores else -1.0


def rms(x):
    return math.sqrt(sum(s * s for s in x) / len(x)) if x else 0.0


def ecdsa_pem():
    """A self-signed ECDSA P-256 certificate and its key (PEM), and the certificate's
    SHA-256 fingerprint (openssl CLI)."""
    with tempfile.TemporaryDirectory() as d:
        key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=gst-whip",
             "-keyout", key, "-out", cert],
            check=True, capture_output=True,
        )
        fp = subprocess.run(
            ["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
            check=True, capture_output=True, text=True,
        ).stdout.strip().split("=", 1)[1]
        with open(cert) as c, open(key) as k:
            return c.read() + k.read(), fp


class Client:
    def __init__(self, url, ref, token):
        self.url, self.token = url, token
        self.ref = ref
        self.sent = array.array("h")
        self.connected = False
        self.clock_start = None
        self.location = None
        self.error = None
        self.received = []
        self.loop = GLib.MainLoop()
        self.pipe = Gst.parse_launch(
            # A live source paced by this script: silence until the connection is up,
            # then the speech, looped (what is sent is kept for the comparison).
            "appsrc name=src is-live=true do-timestamp=true format=time "
            "caps=audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved "
            "! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 "
            "! opusenc bitrate=32000 "
            "! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,"
            "payload=111,clock-rate=48000 ! webrtcbin name=w bundle-policy=max-bundle"
        )
        self.w = self.pipe.get_by_name("w")
        self.src = self.pipe.get_by_name("src")
        # libnice skips loopback interfaces when it discovers addresses itself; an
        # address added by hand is used instead of discovery: gather on 127.0.0.1 only.
        loopback = Nice.Address.new()
        loopback.set_from_string("127.0.0.1")
        # Keep the wrappers for the whole run: PyGObject drops a reference when one is
        # collected, which would free webrtcbin's ICE object under it.
        self.ice = self.w.get_property("ice-agent")
        self.agent = self.ice.get_property("agent")
        if not self.agent.add_local_address(loopback):
            raise RuntimeError("libnice refused 127.0.0.1 as a local address")
        self.w.connect("notify::connection-state", self.on_connection)
        # GStreamer's default DTLS certificate is RSA; str0m's DTLS (dimpl) takes ECDSA
        # client certificates only: give webrtcbin's DTLS element an ECDSA P-256 one.
        self.pem, self.fingerprint = ecdsa_pem()
        self.pipe.connect("deep-element-added", self.on_element)
        self.w.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.w.connect("notify::ice-gathering-state", self.on_gathering)
        self.w.connect("pad-added", self.on_pad_added)
        self.offered = False

    def on_connection(self, w, _pspec):
        state = w.get_property("connection-state")
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            self.connected = True

    def push(self):
        """One 20 ms frame, on the 20 ms grid of the monotonic clock."""
        now = GLib.get_monotonic_time()
        if self.clock_start is None:
            self.clock_start, self.pushed = now, 0
        while self.pushed * 20_000 <= now - self.clock_start:
            if self.connected:
                at = (len(self.sent)) % (len(self.ref) - 320)
                frame = self.ref[at : at + 320]
                self.sent.extend(frame)
            else:
                frame = array.array("h", bytes(640))
            self.src.emit("push-buffer", Gst.Buffer.new_wrapped(frame.tobytes()))
            self.pushed += 1
        return True

    def fail(self, why):
        self.error = why
        self.loop.quit()

    def on_element(self, _bin, _sub, element):
        factory = element.get_factory()
        if factory is not None and factory.get_name() == "dtlssrtpdec":
            element.set_property("pem", self.pem)

    def on_negotiation_needed(self, _w):
        promise = Gst.Promise.new_with_change_func(self.on_offer, None)
        self.w.emit("create-offer", None, promise)

    def on_offer(self, promise, _data):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        self.w.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering(self, w, _pspec):
        if w.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        if self.offered:
            return
        self.offered = True
        sdp = w.get_property("local-description").sdp.as_text()
        # webrtcbin 1.22 writes the fingerprint of its default (RSA) certificate before
        # the ECDSA one reaches its DTLS element: offer the one DTLS will present.
        sdp = "\r\n".join(
            f"a=fingerprint:sha-256 {self.fingerprint}" if l.startswith("a=fingerprint:") else l
            for l in sdp.replace("\r\n", "\n").split("\n")
        )
        if os.environ.get("WHIP_DEBUG"):
            print("OFFER:\n" + sdp, file=sys.stderr)
        threading.Thread(target=self.post, args=(sdp,), daemon=True).start()

    def post(self, sdp):
        req = urllib.request.Request(self.url, data=sdp.encode(), method="POST")
        req.add_header("Content-Type", "application/sdp")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                if res.status != 201:
                    return GLib.idle_add(self.fail, f"POST answered {res.status}")
                self.location = urllib.parse.urljoin(self.url, res.headers["Location"])
                answer = res.read().decode()
        except urllib.error.HTTPError as e:
            return GLib.idle_add(self.fail, f"POST answered {e.code}: {e.read().decode().strip()}")
        except OSError as e:
            return GLib.idle_add(self.fail, f"POST failed: {e}")
        GLib.idle_add(self.set_answer, answer)

    def set_answer(self, answer):
        if os.environ.get("WHIP_DEBUG"):
            print("ANSWER:\n" + answer, file=sys.stderr)
        _, msg = GstSdp.SDPMessage.new_from_text(answer)
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.w.emit("set-remote-description", desc, Gst.Promise.new())
        return False

    def on_pad_added(self, _w, pad):
        if pad.direction != Gst.PadDirection.SRC:
            return
        sink = Gst.parse_bin_from_description(
            "rtpopusdepay ! opusdec ! audioconvert ! audioresample "
            "! audio/x-raw,format=S16LE,rate=16000,channels=1 "
            "! appsink name=rec emit-signals=true sync=false",
            True,
        )
        self.pipe.add(sink)
        sink.sync_state_with_parent()
        sink.get_by_name("rec").connect("new-sample", self.on_sample)
        pad.link(sink.get_static_pad("sink"))

    def on_sample(self, appsink):
        buf = appsink.emit("pull-sample").get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        if ok:
            self.received.append(bytes(info.data))
            buf.unmap(info)
        return Gst.FlowReturn.OK

    def stats(self):
        """Packets sent and received as webrtcbin counts them."""
        promise = Gst.Promise.new()
        self.w.emit("get-stats", None, promise)
        promise.wait()
        reply = promise.get_reply()
        out = {"packetsSent": 0, "packetsReceived": 0}

        def each(_field, value, _data):
            if isinstance(value, Gst.Structure):
                name = value.get_name()
                if name == "outbound-rtp":
                    out["packetsSent"] += value.get_value("packets-sent") or 0
                elif name == "inbound-rtp":
                    out["packetsReceived"] += value.get_value("packets-received") or 0
                elif name == "remote-inbound-rtp" and value.has_field("round-trip-time"):
                    out["remoteRttMs"] = value.get_value("round-trip-time") * 1000
            return True

        reply.foreach(each, None)
        return out

    def delete(self):
        if not self.location:
            return 0
        req = urllib.request.Request(self.location, method="DELETE")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                return res.status
        except urllib.error.HTTPError as e:
            return e.code


def main():
    url, wav, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    token = sys.argv[4] if len(sys.argv) > 4 else ""
    Gst.init(None)
    missing = [e for e in ("webrtcbin", "nicesrc", "opusenc", "rtpopuspay", "wavparse")
               if Gst.ElementFactory.find(e) is None]
    if missing:
        print(json.dumps({"missing": "GStreamer elements: " + ", ".join(missing)}))
        sys.exit(2)
    with wave.open(wav, "rb") as w:
        if w.getframerate() != 16000 or w.getsampwidth() != 2 or w.getnchannels() != 1:
            print(json.dumps({"missing": "a 16 kHz 16-bit mono WAV"}))
            sys.exit(1)
        ref = pcm16(w.readframes(w.getnframes()))
    c = Client(url, ref, token)
    c.pipe.set_state(Gst.State.PLAYING)
    GLib.timeout_add(10, c.push)
    GLib.timeout_add(int(seconds * 1000), lambda: c.loop.quit() or False)
    c.loop.run()
    stats = c.stats() if c.error is None else {}
    status = c.delete()
    c.pipe.set_state(Gst.State.NULL)
    echo = pcm16(b"".join(c.received))
    if os.environ.get("WHIP_ECHO_WAV"):
        with wave.open(os.environ["WHIP_ECHO_WAV"], "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(echo.tobytes())
    report = {"location": c.location, "deleteStatus": status, "stats": stats,
              "error": c.error, "receivedSeconds": len(echo) / 16000}
    if c.error is None and len(echo) > 16000:
        # Skip the first second of each (connection and jitter buffer start-up).
        sent_env, echo_env = envelope_db(c.sent[16000:], 16000), envelope_db(echo[16000:], 16000)
        corr, lag = best_envelope_correlation(sent_env, echo_env, 50)
        report.update({"envelopeCorrelation": corr, "envelopeLagMs": lag * 20,
                       "segmentEnvelopeCorrelation": segment_correlation(sent_env, echo_env),
                       "echoRms": rms(echo[16000:]), "sentRms": rms(c.sent[16000:]),
                       "sentSeconds": len(c.sent) / 16000})
    print(json.dumps(report))
    sys.exit(0 if c.error is None else 1)


if __name__ == "__main__":
    main()
