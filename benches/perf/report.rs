//! The results: one row per leg next to its limit, printed and written as
//! Markdown, and drawn as a PNG chart of each leg's ratio to its limit.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use plotters::coord::ranged1d::{IntoSegmentedCoord as _, SegmentValue};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// DejaVu Sans (licence in `benches/perf/DejaVuSans-LICENSE.txt`): text in
/// the chart needs a font, and a fresh machine may have none installed.
const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");

/// Which way a ratio should go.
#[derive(Clone, Copy)]
pub enum Target {
    /// The ratio should be at least this.
    AtLeast(f64),
    /// The ratio should be at most this.
    AtMost(f64),
}

impl Target {
    fn value(self) -> f64 {
        match self {
            Target::AtLeast(v) | Target::AtMost(v) => v,
        }
    }

    fn holds(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(v) => ratio >= v,
            Target::AtMost(v) => ratio <= v,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtLeast(v) => format!("≥ {v:.2}"),
            Target::AtMost(v) => format!("≤ {v:.2}"),
        }
    }
}

/// One leg of the run.
pub struct Row {
    pub leg: String,
    /// What it achieved: `3,880 req/s`, `902 ms`, `410 B`.
    pub result: String,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Non-2xx answers and failed requests.
    pub failures: u64,
    /// Peak resident memory of the account service after the leg, MiB.
    pub peak_rss_mib: Option<f64>,
    /// The limit or peer it is compared with, and its figure.
    pub limit: String,
    pub ratio: Option<f64>,
    pub target: Option<Target>,
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "—".into(),
        |d| format!("{:.2} ms", d.as_secs_f64() * 1e3),
    )
}

/// `12345.6` → `12,346`
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

/// The table, as Markdown.
pub fn markdown(rows: &[Row], heading: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{heading}");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| leg | result | p50 | p99 | non-2xx | peak RSS after | limit / peer in the same run | ratio | target |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|---:|---|");
    for row in rows {
        let ratio = row.ratio.map_or_else(|| "—".into(), |r| format!("{r:.2}"));
        let target = match (row.target, row.ratio) {
            (Some(t), Some(r)) => format!(
                "{} {}",
                t.describe(),
                if t.holds(r) { "holds" } else { "missed" }
            ),
            (Some(t), None) => t.describe(),
            (None, _) => "—".into(),
        };
        let rss = row
            .peak_rss_mib
            .map_or_else(|| "—".into(), |m| format!("{m:.0} MiB"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.leg,
            row.result,
            ms(row.p50),
            ms(row.p99),
            row.failures,
            rss,
            row.limit,
            ratio,
            target
        );
    }
    out
}

/// Draws each row that has a ratio as a bar, its target as a red mark.
pub fn chart(rows: &[Row], title: &str, path: &Path) -> anyhow::Result<()> {
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the bundled font does not load"))?;
    // Reversed: the first leg at the top.
    let bars: Vec<&Row> = rows.iter().rev().filter(|r| r.ratio.is_some()).collect();
    let max = bars
        .iter()
        .flat_map(|r| [r.ratio.unwrap_or(0.0), r.target.map_or(0.0, Target::value)])
        .fold(1.0_f64, f64::max)
        * 1.6;
    let height = 120 + 60 * bars.len() as u32;
    let root = BitMapBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let labels: Vec<String> = bars.iter().map(|r| r.leg.replace('`', "")).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(420)
        // `0..n - 1` segmented: exactly n bands, one per bar.
        .build_cartesian_2d(0.0..max, (0..bars.len().saturating_sub(1)).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_max_light_lines(2)
        .x_desc("ratio to its limit or peer (red mark: the target)")
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, row) in bars.iter().enumerate() {
        let ratio = row.ratio.unwrap_or(0.0);
        let colour = match row.target {
            Some(t) if !t.holds(ratio) => RGBColor(230, 150, 60),
            _ => RGBColor(70, 130, 180),
        };
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (ratio, SegmentValue::Exact(i + 1)),
            ],
            colour.filled(),
        );
        bar.set_margin(10, 10, 0, 0);
        chart.draw_series(std::iter::once(bar))?;
        chart.draw_series(std::iter::once(Text::new(
            shortened(
                &format!(
                    "{:.2}  ({} vs {})",
                    ratio,
                    row.result,
                    row.limit.replace('`', "")
                ),
                LABEL_CHARS,
            ),
            (ratio + max * 0.01, SegmentValue::CenterOf(i)),
            ("sans-serif", 13).into_font().color(&BLACK),
        )))?;
        if let Some(target) = row.target {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![
                    (target.value(), SegmentValue::Exact(i)),
                    (target.value(), SegmentValue::Exact(i + 1)),
                ],
                RED.stroke_width(3),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

/// The most characters of a bar's label that fit right of a bar reaching
/// 1.0 (the table has the whole text).
const LABEL_CHARS: usize = 88;

/// `text` cut to `max` characters, an ellipsis marking the cut.
fn shortened(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}
