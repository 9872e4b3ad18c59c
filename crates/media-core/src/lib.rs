//! media-core: the real-time 20 ms `Pcm16K` engine (being written).
#![allow(missing_docs)]

pub mod codec;
pub mod frame;
pub mod time;
