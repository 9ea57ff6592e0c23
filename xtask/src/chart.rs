//! docs/benchmarks.png: events/s and CPU seconds per million events for each contender.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

/// The font used for labels (Debian's fonts-dejavu-core; `cargo xtask bench` installs it).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// One bar group: contender name, events/s, CPU s per M events.
pub struct Bar {
    pub name: String,
    pub events_per_s: f64,
    pub cpu_per_million: f64,
}

pub fn draw(path: &Path, bars: &[Bar]) -> Result<()> {
    if bars.is_empty() {
        return Ok(());
    }
    let font = std::fs::read(FONT).with_context(|| format!("cannot read the label font {FONT}"))?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| anyhow!("{FONT} is not a usable font"))?;
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(600);
    panel(
        &left,
        bars,
        "events/s (higher is better)",
        |b| b.events_per_s,
        &BLUE,
    )?;
    panel(
        &right,
        bars,
        "CPU s per million events (lower is better)",
        |b| b.cpu_per_million,
        &RED,
    )?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    bars: &[Bar],
    title: &str,
    value: impl Fn(&Bar) -> f64,
    color: &RGBColor,
) -> Result<()> {
    let max = bars.iter().map(&value).fold(0.0f64, f64::max) * 1.15;
    let n = bars.len() as u32;
    // Horizontal bars: the contender names read as they are on the left.
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(140)
        .build_cartesian_2d(0f64..max.max(1e-9), (0u32..n).into_segmented())
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => bars.get(*i as usize).map(|b| b.name.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|x| {
            if *x >= 1e6 {
                format!("{:.1}M", x / 1e6)
            } else if *x >= 1e3 {
                format!("{:.0}k", x / 1e3)
            } else {
                format!("{x:.1}")
            }
        })
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(
            Histogram::horizontal(&chart)
                .style(color.filled())
                .margin(6)
                .data(bars.iter().enumerate().map(|(i, b)| (i as u32, value(b)))),
        )
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Redraws a chart from the table `cargo xtask bench` wrote into docs/benchmarks.md after
/// `marker` (`cargo xtask bench chart`), so the picture can be regenerated without rerunning.
pub fn from_docs(doc: &Path, marker: &str, png: &Path) -> Result<()> {
    let text = std::fs::read_to_string(doc).with_context(|| format!("cannot read {}", doc.display()))?;
    let start = text
        .find(marker)
        .with_context(|| format!("no benchmark table after {marker} in {}", doc.display()))?;
    // The first table after the marker: its header, separator, then a row per contender.
    let bars: Vec<Bar> = text[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| contender"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            Some(Bar {
                name: cells.first()?.to_string(),
                events_per_s: cells.get(1)?.parse().ok()?,
                cpu_per_million: cells.get(3)?.parse().ok()?,
            })
        })
        .collect();
    draw(png, &bars)
}
