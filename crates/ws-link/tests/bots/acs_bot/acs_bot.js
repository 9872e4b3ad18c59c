// An ACS (Azure Communication Services) bidirectional audio streaming bot, for
// ws-link's outbound bot-link test, written with Microsoft's JS SDK
// (npm @azure/communication-call-automation 1.6.0) and the npm package `ws`.
//
// Every message is read with the SDK's `StreamingData.parse`, the parser an ACS app
// uses; one it refuses (it throws on an unknown kind or a missing object) is reported
// as a `parse_error` event. What the bot sends is built by the SDK's
// `createOutboundAudioData` and `createOutboundStopAudioData` (1.6.0 returns their
// JSON, camelCase: `{"kind":"audioData","audioData":{"data":..,"isSilent":false},
// "stopAudio":{}}` and `{"kind":"stopAudio","stopAudio":{}}`; the .NET SDK writes
// `Kind`/`AudioData`/`StopAudio`).
//
// It behaves as ACS bots do: echoes each AudioData back; on DTMF "1" it sends 4 s of
// a 440 Hz tone at once (faster than real time); on DTMF "2" it sends StopAudio
// (barge-in). Events are printed as `EVENT <json>` on stdout; the first line is
// `LISTENING <port>`.
//
// Usage: node acs_bot.js

"use strict";

const {
  StreamingData,
  createOutboundAudioData,
  createOutboundStopAudioData,
} = require("@azure/communication-call-automation");
const { WebSocketServer } = require("ws");

function log(kind, fields = {}) {
  process.stdout.write(`EVENT ${JSON.stringify({ kind, ...fields })}\n`);
}

/** `ms` of a 440 Hz tone, PCM16LE at `rate`, in 20 ms pieces. */
function tone(ms, rate) {
  const per = rate / 50;
  const chunks = [];
  for (let c = 0; c < ms / 20; c++) {
    const b = Buffer.alloc(per * 2);
    for (let i = 0; i < per; i++) {
      const n = c * per + i;
      b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * n) / rate)), i * 2);
    }
    chunks.push(b.toString("base64"));
  }
  return chunks;
}

/** A builder's message, or a `builder_error` event where it returned no JSON. */
function built(name, json) {
  if (typeof json !== "string") {
    log("builder_error", { builder: name, returned: String(json) });
    return null;
  }
  return json;
}

const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });

server.on("listening", () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});

server.on("connection", (ws, request) => {
  log("connected", { authorization: request.headers.authorization ?? null, path: request.url });
  let messages = 0;
  let rate = 16000;
  const audio = { messages: 0, silent: 0, lengths: {}, badTimestamps: 0, participants: {} };
  const send = (name, json) => {
    const m = built(name, json);
    if (m !== null && ws.readyState === ws.OPEN) {
      ws.send(m);
    }
  };

  ws.on("message", (data, isBinary) => {
    const index = messages++;
    let parsed;
    try {
      parsed = StreamingData.parse(isBinary ? data : data.toString());
    } catch (e) {
      log("parse_error", { index, error: String(e), message: data.toString().slice(0, 200) });
      return;
    }
    const kind = StreamingData.getStreamingKind();
    switch (kind) {
      case "AudioMetadata":
        rate = parsed.sampleRate;
        log("audio_metadata", { index, ...parsed });
        break;
      case "AudioData": {
        const bytes = Buffer.from(parsed.data, "base64").length;
        audio.messages++;
        audio.lengths[bytes] = (audio.lengths[bytes] ?? 0) + 1;
        if (parsed.isSilent) audio.silent++;
        if (Number.isNaN(Date.parse(parsed.timestamp))) audio.badTimestamps++;
        const who = JSON.stringify(parsed.participant ?? null);
        audio.participants[who] = (audio.participants[who] ?? 0) + 1;
        if (audio.messages === 1) {
          log("first_audio", {
            index,
            bytes,
            timestamp: parsed.timestamp,
            isSilent: parsed.isSilent,
            participant: parsed.participant ?? null,
          });
        }
        send("createOutboundAudioData", createOutboundAudioData(parsed.data));
        break;
      }
      case "DtmfData":
        log("dtmf", { index, digit: parsed.data });
        if (parsed.data === "1") {
          const chunks = tone(4000, rate);
          for (const c of chunks) {
            send("createOutboundAudioData", createOutboundAudioData(c));
          }
          log("sent_tone", { ms: 4000, messages: chunks.length });
        } else if (parsed.data === "2") {
          send("createOutboundStopAudioData", createOutboundStopAudioData());
          log("sent_stop_audio");
        }
        break;
      default:
        log("unexpected_kind", { index, streamingKind: kind });
    }
  });

  ws.on("close", (code) => {
    log("closed", { code, messages, audio });
  });
});
