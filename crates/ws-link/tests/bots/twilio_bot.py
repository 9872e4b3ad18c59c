"""A Twilio Media Streams bot, written against Twilio's documented protocol with the
PyPI packages `websockets` (server) and `twilio` (RequestValidator checks the
handshake's X-Twilio-Signature), for ws-link's outbound bot-link test.

It behaves as bots written for Twilio do: echoes each `media` message back; on DTMF
"1" it clears, sends 4 s of a 440 Hz tone at once (faster than real time), a mark, and
1 s later a `clear` (barge-in); on DTMF "2" it sends 500 ms of tone and a mark. Every
event it gets is printed as `EVENT <json>` on stdout; the first line is
`LISTENING <port>`.

Usage: twilio_bot.py AUTH_TOKEN
"""

import asyncio
import base64
import http
import json
import math
import sys
import time

from twilio.request_validator import RequestValidator
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

TOKEN = sys.argv[1]
VALIDATOR = RequestValidator(TOKEN)


def log(kind, **fields):
    print("EVENT " + json.dumps({"kind": kind, **fields}), flush=True)


def mulaw_encode(sample):
    """G.711 mu-law of one 16-bit sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone(ms, hz=440.0, level=8000):
    n = 8 * ms
    return bytes(
        mulaw_encode(int(level * math.sin(2 * math.pi * hz * i / 8000))) for i in range(n)
    )


def check_signature(connection, request):
    host = request.headers.get("Host", "")
    url = f"ws://{host}{request.path}"
    signature = request.headers.get("X-Twilio-Signature", "")
    if VALIDATOR.validate(url, {}, signature):
        log("signature_ok", url=url)
        return None
    log("signature_refused", url=url)
    return connection.respond(http.HTTPStatus.FORBIDDEN, "X-Twilio-Signature does not match\n")


async def handler(ws):
    sid = None
    marks_sent = {}

    async def send(msg):
        try:
            await ws.send(json.dumps(msg))
        except ConnectionClosed:
            # The platform sent `stop` and closed: what is still buffered is read.
            pass

    async def burst(ms, mark, clear_after_ms=None):
        if clear_after_ms is not None:
            # Barge in on whatever is queued (the echo), then speak.
            await send({"event": "clear", "streamSid": sid})
        audio = tone(ms)
        # 20 ms per message, all at once: the platform paces.
        for i in range(0, len(audio), 160):
            payload = base64.b64encode(audio[i : i + 160]).decode()
            await send({"event": "media", "streamSid": sid, "media": {"payload": payload}})
        await send({"event": "mark", "streamSid": sid, "mark": {"name": mark}})
        marks_sent[mark] = time.monotonic()
        log("sent_burst", ms=ms, mark=mark)
        if clear_after_ms is not None:
            await asyncio.sleep(clear_after_ms / 1000)
            await send({"event": "clear", "streamSid": sid})
            log("sent_clear")

    tasks = []
    async for raw in ws:
        msg = json.loads(raw)
        event = msg.get("event")
        if event == "connected":
            log("connected", protocol=msg.get("protocol"), version=msg.get("version"))
        elif event == "start":
            start = msg["start"]
            sid = start["streamSid"]
            log(
                "start",
                streamSid=sid,
                callSid=start.get("callSid"),
                mediaFormat=start.get("mediaFormat"),
                sequenceNumber=msg.get("sequenceNumber"),
                topStreamSid=msg.get("streamSid"),
            )
        elif event == "media":
            media = msg["media"]
            if media["chunk"] == "1":
                log("first_media", track=media.get("track"), timestamp=media.get("timestamp"))
            await send({"event": "media", "streamSid": sid, "media": {"payload": media["payload"]}})
        elif event == "dtmf":
            digit = msg["dtmf"]["digit"]
            log("dtmf", digit=digit, track=msg["dtmf"].get("track"))
            if digit == "1":
                tasks.append(asyncio.create_task(burst(4000, "long-tone", clear_after_ms=1000)))
            elif digit == "2":
                tasks.append(asyncio.create_task(burst(500, "short-tone")))
        elif event == "mark":
            name = msg["mark"]["name"]
            sent = marks_sent.get(name)
            after = None if sent is None else round((time.monotonic() - sent) * 1000)
            log("mark", name=name, ms_after_sent=after)
        elif event == "stop":
            log("stop", callSid=msg.get("stop", {}).get("callSid"))
    for t in tasks:
        t.cancel()
    log("closed")


async def main():
    async with serve(handler, "127.0.0.1", 0, process_request=check_signature) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"LISTENING {port}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main())
