//! media-core: the real-time 20 ms `Pcm16K` engine of media-processor.
//!
//! Its job: turn audio into 20 ms packets and packets back into a steady stream of
//! 20 ms frames (320 samples of 16 kHz mono PCM, 50 per second each way), over a network
//! that delays, reorders and loses them, without ever blocking or allocating on the
//! per-frame path. It is sans-IO: no sockets, no threads, no clock. Time is an argument
//! (`now: Instant`), so a whole call runs deterministically on a virtual clock with a
//! seeded impaired network ([`sim`]).
//!
//! # Data flow
//!
//! ```text
//!  send:    bot frame ───────────────┐
//!           device chunk ─ resample ─┴─ framer ─ VAD ─ encode ─▶ AudioPacket
//!                       (send::SendPipeline)
//!
//!  receive: AudioPacket ─▶ jitter buffer ─▶ decode │ FEC │ conceal ─▶ time-stretch
//!                       (playout::ReceivePipeline)        ─▶ one Pcm16kFrame per tick
//!                                                            (+ timestamp, is-silence)
//!
//!  devices: real-time callback ◀─▶ ring (lock-free SPSC) ◀─▶ pipeline tick
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`frame`], [`time`], [`packet`] | the units: 20 ms frames, media time, 100 ns ticks, packets |
//! | [`framer`] | any chunk size to exact frames and back |
//! | [`resample`] | rubato between 16 kHz mono and 8–48 kHz device formats, drift-following |
//! | [`codec`] | raw PCM16K and Opus (PLC, in-band FEC), behind one trait |
//! | [`vad`] | energy-based voice activity with hangover |
//! | [`jitter`] | the adaptive jitter buffer (NetEQ-like target delay, time-stretching) |
//! | [`send`], [`playout`] | the two pipelines |
//! | [`ring`] | lock-free hand-off to real-time device threads |
//! | [`sim`] | seeded network impairment and a virtual clock |
//! | [`speech`], [`wav`] | a deterministic speech-like test signal; 16 kHz mono WAV files |
//! | [`alloc_count`] | the counting global allocator of the zero-allocation tests |
//!
//! # Realtime safety
//! Every buffer is sized at construction; hot functions write into caller-owned
//! buffers and return small `Copy` errors. `tests/dsp_alloc.rs` and
//! `tests/jb_alloc.rs` run 10,000 ticks of both pipelines under a counting global
//! allocator ([`alloc_count`]) and assert zero allocations. libopus allocates its state with C `malloc`
//! when a codec is created (outside the per-frame path), which that counter cannot see.
//!
//! # Example: one call's audio through both pipelines on a virtual clock
//!
//! ```
//! use std::time::{Duration, Instant};
//! use media_core::codec::{self, Codec};
//! use media_core::frame::Pcm16kFrame;
//! use media_core::packet::AudioPacket;
//! use media_core::playout::{ReceiveConfig, ReceivePipeline};
//! use media_core::send::{SendConfig, SendPipeline};
//!
//! let mut send = SendPipeline::new(&SendConfig::default()).expect("send pipeline");
//! let decoder = codec::new_decoder(Codec::Pcm16k).expect("decoder");
//! let mut receive = ReceivePipeline::new(ReceiveConfig::default(), decoder);
//!
//! let start = Instant::now();
//! let mut packet = AudioPacket::empty(Codec::Pcm16k);
//! let mut tone = Pcm16kFrame::silent();
//! for (i, s) in tone.samples_mut().iter_mut().enumerate() {
//!     *s = ((i as f32 * 0.2).sin() * 8000.0) as i16;
//! }
//! let mut out = Pcm16kFrame::silent();
//! let mut heard = 0;
//! for tick in 0..50u32 {
//!     let now = start + Duration::from_millis(20 * u64::from(tick));
//!     send.push_pcm16k_frame(&tone).expect("room for one frame");
//!     while send.poll_packet(&mut packet) {
//!         // A perfect network: the packet arrives at once.
//!         let _ = receive.handle_packet(now, &packet);
//!     }
//!     let info = receive.poll_frame(now, &mut out); // exactly one frame per tick
//!     if !info.silence && !info.concealed {
//!         heard += 1;
//!     }
//! }
//! assert!(heard > 40, "after the start-up delay every frame is the tone");
//! ```

pub mod alloc_count;
pub mod call;
pub mod codec;
pub mod control;
pub mod frame;
pub mod framer;
pub mod jitter;
pub mod link;
pub mod packet;
pub mod playout;
pub mod resample;
pub mod ring;
pub mod send;
pub mod sim;
pub mod speech;
pub mod tick;
pub mod time;
pub mod vad;
pub mod wav;
