//! Output files: WAVs and the plot of a demo run.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::demo::DemoSecond;

/// A plotted line: legend name, colour, value of a second.
type Line = (&'static str, RGBColor, fn(&DemoSecond) -> f64);

/// The font the plot's text uses, when installed (package `fonts-dejavu-core`).
pub const PLOT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Writes 16 kHz mono 16-bit PCM to `path`.
pub fn write_wav(path: &Path, samples: &[i16]) -> Result<(), String> {
    media_core::wav::write_mono_16k(path, samples).map_err(|e| format!("{}: {e}", path.display()))
}

/// Registers [`PLOT_FONT`] as "sans-serif" once; false if it is not available.
fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let Ok(bytes) = std::fs::read(PLOT_FONT) else {
            return false;
        };
        // Registered fonts must live for the whole program: leak the one copy.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    })
}

fn plot_err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

/// Draws the bot's jitter-buffer delay and target and the loss and concealment over
/// time (two panels) into a PNG at `path`. `title` goes on top when a font is
/// available; without one the plot is drawn without text.
pub fn write_plot(path: &Path, title: &str, series: &[DemoSecond]) -> Result<(), String> {
    let text = font_available();
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = if text {
        root.titled(title, ("sans-serif", 20)).map_err(plot_err)?
    } else {
        root
    };
    let (top, bottom) = root.split_vertically(340);
    let t_max = series.last().map(|s| s.t).unwrap_or(1.0).max(1.0);
    let delay_max = series
        .iter()
        .flat_map(|s| [s.jb_delay_ms, s.jb_target_ms, s.far_jb_delay_ms])
        .fold(20.0f64, f64::max)
        * 1.15;
    let loss_max = series
        .iter()
        .flat_map(|s| [s.loss_pct, s.conceal_pct])
        .fold(2.0f64, f64::max)
        * 1.15;

    let delay_lines: [Line; 3] = [
        ("delay", BLUE, |s| s.jb_delay_ms),
        ("target", RED, |s| s.jb_target_ms),
        ("far-end delay", RGBColor(120, 120, 120), |s| {
            s.far_jb_delay_ms
        }),
    ];
    let loss_lines: [Line; 2] = [
        ("loss", MAGENTA, |s| s.loss_pct),
        ("concealment", GREEN, |s| s.conceal_pct),
    ];
    let panel = Panel {
        series,
        t_max,
        text,
    };
    panel.draw(
        &top,
        "bot jitter buffer (far end -> bot)",
        "ms",
        delay_max,
        &delay_lines,
    )?;
    panel.draw(
        &bottom,
        "loss and concealment (far end -> bot)",
        "%",
        loss_max,
        &loss_lines,
    )?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// What both panels of the plot share.
struct Panel<'a> {
    series: &'a [DemoSecond],
    t_max: f64,
    text: bool,
}

impl Panel<'_> {
    /// One panel: `lines` over time on `0..y_max` (unit `unit`), with caption and
    /// legend when a font is available.
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        caption: &str,
        unit: &str,
        y_max: f64,
        lines: &[Line],
    ) -> Result<(), String> {
        let mut chart = ChartBuilder::on(area);
        chart.margin(10);
        if self.text {
            chart
                .caption(caption, ("sans-serif", 16))
                .x_label_area_size(30)
                .y_label_area_size(50);
        }
        let mut chart = chart
            .build_cartesian_2d(0.0..self.t_max, 0.0..y_max)
            .map_err(plot_err)?;
        let mut mesh = chart.configure_mesh();
        if self.text {
            mesh.y_desc(unit).x_desc("s");
        } else {
            mesh.disable_x_axis().disable_y_axis();
        }
        mesh.draw().map_err(plot_err)?;
        for &(name, color, f) in lines {
            let drawn = chart
                .draw_series(LineSeries::new(
                    self.series.iter().map(|s| (s.t, f(s))),
                    color.stroke_width(2),
                ))
                .map_err(plot_err)?;
            if self.text {
                drawn
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
        }
        if self.text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(plot_err)?;
        }
        Ok(())
    }
}
