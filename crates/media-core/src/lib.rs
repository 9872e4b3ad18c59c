//! media-core: the real-time 20 ms `Pcm16K` engine (being written).
#![allow(missing_docs)]

pub mod codec;
pub mod frame;
pub mod framer;
pub mod jitter;
pub mod packet;
pub mod playout;
pub mod resample;
pub mod send;
pub mod sim;
pub mod time;
pub mod vad;
