//! WAV source and sink round trips (no device needed).

use devices::{SampleSink, SampleSource, WavSink, WavSource};

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("devices-{name}-{}.wav", std::process::id()))
}

/// Writes `samples` with hound, as (channels, rate, bits, format) says.
fn write_wav<S: hound::Sample + Copy>(
    path: &std::path::Path,
    (channels, sample_rate, bits_per_sample, sample_format): (u16, u32, u16, hound::SampleFormat),
    samples: &[S],
) {
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample,
        sample_format,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create");
    for &v in samples {
        w.write_sample(v).expect("write");
    }
    w.finalize().expect("finalize");
}

#[test]
fn wav_sink_then_source_round_trips_stereo_48k() {
    let path = temp("stereo");
    let samples: Vec<i16> = (0..48_000 * 2)
        .map(|i| ((i * 37) % 65_536 - 32_768) as i16)
        .collect();
    let mut sink = WavSink::create(&path, 48_000, 2).expect("create");
    // Odd chunk sizes: a frame split across writes is kept until completed.
    for chunk in samples.chunks(333) {
        assert_eq!(sink.write(chunk).expect("write"), chunk.len());
    }
    sink.finalize().expect("finalize");
    let source = WavSource::open(&path, false).expect("open");
    assert_eq!((source.sample_rate(), source.channels()), (48_000, 2));
    assert_eq!(source.frames(), 48_000);
    // Default chunks: 20 ms at the file's rate.
    let chunks: Vec<Vec<i16>> = source.collect();
    assert_eq!(chunks.len(), 50);
    assert!(chunks.iter().all(|c| c.len() == 960 * 2));
    assert_eq!(chunks.concat(), samples);
    std::fs::remove_file(&path).ok();
}

#[test]
fn wav_source_converts_24_bit_and_float_and_loops() {
    let path = temp("i24");
    write_wav(
        &path,
        (1, 16_000, 24, hound::SampleFormat::Int),
        &[0i32, 256, -256, 8_388_607, -8_388_608],
    );
    let mut src = WavSource::open(&path, true).expect("open");
    let mut out = [0i16; 7];
    assert_eq!(src.read(&mut out), 7);
    assert_eq!(out, [0, 1, -1, 32_767, -32_768, 0, 1]);
    std::fs::remove_file(&path).ok();

    let path = temp("f32");
    write_wav(
        &path,
        (2, 44_100, 32, hound::SampleFormat::Float),
        &[0.5f32, -0.5, 1.0, -1.0],
    );
    let mut src = WavSource::open(&path, false).expect("open");
    assert_eq!((src.sample_rate(), src.channels()), (44_100, 2));
    let mut out = [0i16; 6];
    assert_eq!(src.read(&mut out), 4);
    assert_eq!(out[..4], [16_384, -16_384, 32_767, -32_768]);
    assert_eq!(src.read(&mut out), 0);
    std::fs::remove_file(&path).ok();
}

#[test]
fn missing_wav_is_an_error_naming_the_file() {
    let err = WavSource::open("/nonexistent/devices-test.wav", false).expect_err("missing");
    assert!(
        err.to_string().contains("/nonexistent/devices-test.wav"),
        "{err}"
    );
}
