//! Test support for code that needs a real sound server: PulseAudio with the null sink
//! `loop` (the default output) and its monitor (the default input), as
//! `scripts/start-pulse.sh` starts it. Used by this crate's device and device-bridge tests
//! and by the binary's `serve --devices` test.
//!
//! cpal's PulseAudio client finds the server through `PULSE_SERVER` in the environment, and
//! setting environment variables inside a multi-threaded test process is unsound (and
//! `unsafe` is denied here). So [`with_pulse`] re-runs a test in a child process whose
//! environment carries the `PULSE_SERVER` that the script printed; [`pulse_server`] gives it
//! to tests that start other processes themselves. Children run one at a time: they share
//! one sink, and its monitor hears everything played to it.
//!
//! ```no_run
//! #[test]
//! fn plays_to_the_null_sink() {
//!     devices::testing::with_pulse("plays_to_the_null_sink", || {
//!         // open devices::PlaybackStream / CaptureStream here
//!     });
//! }
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Set in the environment of the child process a test re-runs itself in.
const CHILD: &str = "MEDIA_PROCESSOR_PULSE_TEST_CHILD";

/// `scripts/start-pulse.sh` of this source tree.
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/start-pulse.sh")
}

/// Starts PulseAudio (once per test process) and returns its `PULSE_SERVER`; panics with the
/// script's output when it cannot be started.
pub fn pulse_server() -> String {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    let result = SERVER.get_or_init(|| {
        let out = Command::new("bash")
            .arg(script())
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}):\n{stdout}\n{stderr}",
                script().display(),
                out.status
            ));
        }
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("export PULSE_SERVER="))
            .map(str::to_owned)
            .ok_or_else(|| format!("no PULSE_SERVER in the script's output:\n{stdout}\n{stderr}"))
    });
    match result {
        Ok(s) => s.clone(),
        Err(e) => panic!("PulseAudio could not be started: {e}"),
    }
}

/// Runs `body` in a child process connected to the test PulseAudio server. `name` is the
/// test function's name (the child runs exactly that test).
pub fn with_pulse(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let server = pulse_server();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().expect("test executable path");
    // Audio threads need the CPU on time; on a loaded build machine a normal-priority client
    // misses its 20 ms deadlines and the server drops or inserts audio. Like a production
    // media engine, run at a raised priority when allowed (root), else normally.
    let nice_ok = Command::new("nice")
        .args(["-n", "-15", "true"])
        .output()
        .is_ok_and(|o| o.status.success() && o.stderr.is_empty());
    let mut cmd = if nice_ok {
        let mut c = Command::new("nice");
        c.args(["-n", "-15"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    let out = cmd
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("PULSE_SERVER", &server)
        .output()
        .expect("re-run the test in a child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "child test {name} failed ({})",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed;"),
        "child did not run test {name}"
    );
}
