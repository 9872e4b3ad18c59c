//! PESQ-WB (ITU-T P.862.2) scores of 16 kHz WAV files, from PyPI `pesq` run as a Python
//! subprocess.
//!
//! The scorer is `scripts/pesq_score.py` (compiled into this crate and fed to
//! `python3 -` on standard input, so it works from any directory): each degraded file
//! is aligned to the reference by cross-correlation, its first second skipped
//! (jitter-buffer start-up), and scored with `pesq(16000, ref, deg, 'wb')`.
//! `scripts/install-deps.sh` installs `numpy` and `pesq`; the interpreter is `python3`
//! unless `PESQ_PYTHON` names another.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::eval::EvalReport;

/// The scoring script (`scripts/pesq_score.py`).
pub const SCRIPT: &str = include_str!("../../../scripts/pesq_score.py");

/// Seconds at the start of every file that are not scored.
pub const SKIP_S: f64 = 1.0;

/// Why files could not be scored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PesqError {
    /// The Python interpreter could not be started.
    #[error("starting {python}: {source} (install Python 3, then scripts/install-deps.sh)")]
    Spawn {
        /// The interpreter.
        python: String,
        /// The error.
        source: std::io::Error,
    },
    /// The scorer failed as a whole (typically: `numpy` or `pesq` missing).
    #[error(
        "the PESQ scorer failed ({status}): {stderr} (scripts/install-deps.sh installs numpy and pesq)"
    )]
    Failed {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its standard error.
        stderr: String,
    },
    /// The scorer printed something other than one JSON object per file.
    #[error("unexpected output from the PESQ scorer: {0}")]
    BadOutput(String),
}

/// Scores each of `degraded` against `reference`: `None` for a file that could not be
/// scored (the scorer's reason is dropped; too short, wrong format).
pub fn score(reference: &Path, degraded: &[PathBuf]) -> Result<Vec<Option<f64>>, PesqError> {
    if degraded.is_empty() {
        return Ok(Vec::new());
    }
    let python = std::env::var("PESQ_PYTHON").unwrap_or_else(|_| "python3".into());
    let spawn_err = |source| PesqError::Spawn {
        python: python.clone(),
        source,
    };
    let mut child = Command::new(&python)
        .arg("-")
        .arg("--skip-s")
        .arg(SKIP_S.to_string())
        .arg(reference)
        .args(degraded)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(SCRIPT.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        return Err(PesqError::Failed {
            status: out.status,
            stderr: tail,
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let scores: Vec<Option<f64>> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v.get("pesq").and_then(serde_json::Value::as_f64))
                .map_err(|_| PesqError::BadOutput(l.chars().take(200).collect()))
        })
        .collect::<Result<_, _>>()?;
    if scores.len() != degraded.len() {
        return Err(PesqError::BadOutput(format!(
            "{} scores for {} files",
            scores.len(),
            degraded.len()
        )));
    }
    Ok(scores)
}

/// Scores every profile's output and codec ceiling of an evaluation that wrote its
/// WAV files ([`crate::eval::EvalConfig::out_dir`]), filling
/// [`crate::eval::ProfileReport::pesq`], `ceiling_pesq`, `stretch_ceiling_pesq`, `played_ceiling_pesq` and `oracle_ceiling_pesq`. Nothing to do without a
/// reference file.
pub fn score_report(report: &mut EvalReport) -> Result<(), PesqError> {
    let Some(reference) = report.reference_wav.clone() else {
        return Ok(());
    };
    let mut files = Vec::new();
    for p in &report.profiles {
        files.extend(p.wav.iter().cloned());
        files.extend(p.ceiling_wav.iter().cloned());
        files.extend(p.stretch_ceiling_wav.iter().cloned());
        files.extend(p.played_ceiling_wav.iter().cloned());
        files.extend(p.oracle_ceiling_wav.iter().cloned());
    }
    let mut scores = score(&reference, &files)?.into_iter();
    for p in &mut report.profiles {
        if p.wav.is_some() {
            p.pesq = scores.next().flatten();
        }
        if p.ceiling_wav.is_some() {
            p.ceiling_pesq = scores.next().flatten();
        }
        if p.stretch_ceiling_wav.is_some() {
            p.stretch_ceiling_pesq = scores.next().flatten();
        }
        if p.played_ceiling_wav.is_some() {
            p.played_ceiling_pesq = scores.next().flatten();
        }
        if p.oracle_ceiling_wav.is_some() {
            p.oracle_ceiling_pesq = scores.next().flatten();
        }
    }
    Ok(())
}
