//! A queue's page: its depth and throughput over 1 hour to 7 days, drawn as SVG on the server
//! from the per-minute samples the workers record (no script, no image from elsewhere).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use ferry_queue::Sample;
use serde::Deserialize;

use super::page::{action, age, enc, esc, page, when};
use super::session::Session;
use super::{capped, failed};
use crate::app::AppState;

/// The ranges a chart shows: (name, span, bucket). Buckets keep every chart near 60–170
/// points, so a week reads as fast as an hour.
const RANGES: [(&str, i64, i64); 4] = [
    ("1h", 3_600_000, 60_000),
    ("6h", 6 * 3_600_000, 5 * 60_000),
    ("24h", 24 * 3_600_000, 15 * 60_000),
    ("7d", 7 * 24 * 3_600_000, 60 * 60_000),
];

#[derive(Deserialize, Default)]
pub(super) struct ChartQuery {
    range: Option<String>,
}

pub(super) async fn queue(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    Path(name): Path<String>,
    Query(q): Query<ChartQuery>,
) -> Response {
    let chosen = q.range.as_deref().unwrap_or("1h");
    let (range, span, bucket) = RANGES
        .iter()
        .copied()
        .find(|(n, _, _)| *n == chosen)
        .unwrap_or(RANGES[0]);
    let now = app.queue.now_ms();
    let from = now - span;
    let samples = match app.queue.samples(&name, from, bucket).await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let stats = match app.queue.glance_all(super::COUNT_CAP).await {
        Ok(all) => all.into_iter().find(|g| g.queue == name),
        Err(e) => return failed(e),
    };
    // A queue with nothing waiting, running or dead may still have a history to chart.
    let stats = match stats {
        Some(st) => Some(st),
        None if !samples.is_empty() => match app.queue.stats(&name).await {
            Ok(st) => Some(st),
            Err(e) => return failed(e),
        },
        None => None,
    };
    let Some(stats) = stats else {
        return super::message(
            axum::http::StatusCode::NOT_FOUND,
            "No such queue",
            "No job was ever put in a queue of that name.",
        );
    };
    let toggle = if stats.paused {
        action(
            &s,
            &format!("/ui/queues/{}/resume", enc(&name)),
            "Resume",
            None,
        )
    } else {
        action(
            &s,
            &format!("/ui/queues/{}/pause", enc(&name)),
            "Pause",
            Some("Pause this queue? Its jobs wait until it is resumed."),
        )
    };
    let ranges = RANGES
        .iter()
        .map(|(n, _, _)| {
            if *n == range {
                format!("<strong>{n}</strong>")
            } else {
                format!(r#"<a href="/ui/queues/{}?range={n}">{n}</a>"#, enc(&name))
            }
        })
        .collect::<Vec<_>>()
        .join(" · ");
    let done: i64 = samples.iter().map(|p| p.completed).sum();
    let failures: i64 = samples.iter().map(|p| p.failed).sum();
    let per_min = done as f64 / (span as f64 / 60_000.0);
    let depth = chart(
        &samples,
        from,
        now,
        bucket,
        &[
            ("ready", |p: &Sample| p.ready),
            ("running", |p: &Sample| p.running),
            ("dead", |p: &Sample| p.dead),
        ],
    );
    let throughput = chart(
        &samples,
        from,
        now,
        bucket,
        &[
            ("completed", |p: &Sample| Some(p.completed)),
            ("failed", |p: &Sample| Some(p.failed)),
        ],
    );
    let body = format!(
        r#"<h1>Queue {qname}{paused}</h1><div class="actions">{toggle}</div>
<p>Ready now {ready} · running {running} · dead <a href="/ui/jobs?queue={qenc}&amp;state=dead">{dead}</a> · oldest ready {oldest} · <a href="/ui/jobs?queue={qenc}">jobs</a></p>
<p class="ranges">{ranges}</p>
<div data-live>
<section><h2>Depth</h2>{depth}</section>
<section><h2>Throughput per {bucket_label}</h2><p>{done} completed, {failures} failed in the last {range} ({per_min:.1} a minute)</p>{throughput}</section>
</div>"#,
        qname = esc(&name),
        qenc = enc(&name),
        paused = if stats.paused { " (paused)" } else { "" },
        ready = capped(stats.ready),
        running = capped(stats.running),
        dead = capped(stats.dead),
        oldest = if stats.ready > 0 {
            age(stats.oldest_ready_age_ms)
        } else {
            "–".into()
        },
        bucket_label = age(bucket),
    );
    page(&format!("Queue {name}"), Some(&s), &body)
}

type Series = (&'static str, fn(&Sample) -> Option<i64>);

/// An SVG line chart of `series` over [from, to], one point per bucket; a bucket nobody
/// sampled breaks the line instead of drawing a zero.
fn chart(samples: &[Sample], from: i64, to: i64, bucket: i64, series: &[Series]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 160.0;
    const PAD: f64 = 4.0;
    if samples.is_empty() {
        return r#"<p class="hint">No sample in this range yet: workers record one a minute.</p>"#
            .to_owned();
    }
    let max = samples
        .iter()
        .flat_map(|p| series.iter().filter_map(move |(_, f)| f(p)))
        .max()
        .unwrap_or(0)
        .max(1);
    let x = |at: i64| PAD + (at - from).max(0) as f64 / (to - from).max(1) as f64 * (W - 2.0 * PAD);
    let y = |v: i64| H - PAD - v as f64 / max as f64 * (H - 2.0 * PAD);
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{names}"><line class="axis" x1="{PAD}" y1="{base}" x2="{right}" y2="{base}"/>"#,
        names = series
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", "),
        base = H - PAD,
        right = W - PAD,
    );
    for (name, f) in series {
        let mut path = String::new();
        let mut last: Option<i64> = None;
        for p in samples {
            let Some(v) = f(p) else {
                last = None;
                continue;
            };
            // A gap of more than a bucket starts a new segment.
            let cmd = match last {
                Some(prev) if p.at_ms - prev <= bucket => 'L',
                _ => 'M',
            };
            let _ = write!(path, "{cmd}{:.1} {:.1} ", x(p.at_ms), y(v));
            last = Some(p.at_ms);
        }
        let _ = write!(
            svg,
            r#"<path class="series-{name}" d="{}"/>"#,
            path.trim_end()
        );
    }
    svg.push_str("</svg>");
    let legend = series
        .iter()
        .map(|(n, _)| format!(r#"<span class="key series-{n}">{n}</span>"#))
        .collect::<String>();
    format!(
        r#"<figure>{svg}<figcaption><span>{start}</span> {legend} <span>peak {max}</span> <span>{end}</span></figcaption></figure>"#,
        start = when(from),
        end = when(to),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at_ms: i64, completed: i64, ready: Option<i64>) -> Sample {
        Sample {
            at_ms,
            completed,
            failed: 0,
            ready,
            running: None,
            dead: None,
        }
    }

    #[test]
    fn a_missing_bucket_breaks_the_line() {
        let samples = [
            point(0, 1, Some(5)),
            point(60_000, 2, Some(3)),
            point(240_000, 4, Some(1)),
        ];
        let svg = chart(
            &samples,
            0,
            300_000,
            60_000,
            &[("ready", |p: &Sample| p.ready)],
        );
        let d = svg
            .split(r#"class="series-ready" d=""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        // Two segments: the first two minutes, then the lone point after the gap.
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        // The highest value touches the top, zero would sit on the axis.
        assert!(svg.contains("peak 5"));
    }

    #[test]
    fn no_samples_say_so() {
        assert!(chart(&[], 0, 1, 60_000, &[("ready", |p: &Sample| p.ready)]).contains("No sample"));
    }
}
