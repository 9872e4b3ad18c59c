"""A Pipecat bot for Twilio Media Streams or Vonage WebSockets, for ws-link's
outbound bot-link test: the PyPI package `pipecat-ai`'s WebSocket server transport with
its TwilioFrameSerializer (µ-law 8 kHz in and out, `clear` on an interruption) or
VonageFrameSerializer (binary L16 16 kHz, `{"action":"clear"}`), and a pipeline that
echoes what it hears. DTMF "2" makes it interrupt itself (Pipecat's barge-in: the
serializer sends the dialect's clear). Events are printed as `EVENT <json>`;
`LISTENING <port>` once the server is up.

The WebSocket server transport builds its serializer before any stream starts, so the
serializer's streamSid is a placeholder (Pipecat's FastAPI runner reads `start` first;
this processor does not check the streamSid a bot sends).

Usage: pipecat_twilio_bot.py PORT twilio|vonage
"""

import asyncio
import json
import sys

from loguru import logger
from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.serializers.vonage import VonageFrameSerializer
from pipecat.transports.websocket.server import (
    SingleClientWebsocketServerParams,
    SingleClientWebsocketServerTransport,
)
from pipecat.workers.runner import WorkerRunner

PORT = int(sys.argv[1])
DIALECT = sys.argv[2]


def log(kind, **fields):
    print("EVENT " + json.dumps({"kind": kind, **fields}), flush=True)


class Echo(FrameProcessor):
    """What the caller says goes back; DTMF 2 interrupts (barge-in)."""

    def __init__(self):
        super().__init__()
        self.frames = 0

    async def process_frame(self, frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.frames += 1
            if self.frames == 1:
                log("first_audio", sample_rate=frame.sample_rate, bytes=len(frame.audio))
            await self.push_frame(
                OutputAudioRawFrame(
                    audio=frame.audio,
                    sample_rate=frame.sample_rate,
                    num_channels=frame.num_channels,
                )
            )
        elif isinstance(frame, InputDTMFFrame):
            log("dtmf", digit=frame.button.value)
            if frame.button.value == "2":
                await self.broadcast_interruption()
                log("interrupted")
        else:
            await self.push_frame(frame, direction)


async def main():
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    if DIALECT == "twilio":
        serializer = TwilioFrameSerializer(
            stream_sid="MZ-set-by-start",
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
    else:
        serializer = VonageFrameSerializer()
    transport = SingleClientWebsocketServerTransport(
        params=SingleClientWebsocketServerParams(
            serializer=serializer,
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
        ),
        host="127.0.0.1",
        port=PORT,
    )

    @transport.event_handler("on_websocket_ready")
    async def on_ready(_transport):
        print(f"LISTENING {PORT}", flush=True)

    @transport.event_handler("on_client_connected")
    async def on_connected(_transport, _ws):
        log("connected")

    @transport.event_handler("on_client_disconnected")
    async def on_disconnected(_transport, _ws):
        log("disconnected")

    pipeline = Pipeline([transport.input(), Echo(), transport.output()])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=16000),
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


if __name__ == "__main__":
    asyncio.run(main())
