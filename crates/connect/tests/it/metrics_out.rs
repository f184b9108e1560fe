//! The client's metrics, captured by a recorder installed for this test binary.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ferry_mock::Faults;
use ferry_testkit::{Backend, TestDb};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use serde_json::json;

use crate::{Env, quick};

#[derive(Default)]
struct Capture {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

struct Cell(Arc<AtomicU64>);

impl metrics::CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// `name{k=v,…}` with labels sorted.
fn render(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for &'static Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let cell = self
            .counters
            .lock()
            .unwrap()
            .entry(render(key))
            .or_default()
            .clone();
        Counter::from_arc(Arc::new(Cell(cell)))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::default());
        // Another test of this binary may have installed it first: same object either way.
        let _ = metrics::set_global_recorder(c);
        c
    })
}

fn count(name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    want.sort();
    let key = format!("{name}{{{}}}", want.join(","));
    capture()
        .counters
        .lock()
        .unwrap()
        .get(&key)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_counted_per_store_endpoint_and_outcome() {
    capture();
    let Some(db) = TestDb::new(Backend::Sqlite).await else {
        return;
    };
    let env = Env::start(db).await;
    let p = env.mock.platform();
    let s = p.create_store(Some("shop")).unwrap();
    let rest = env.rest(&s, quick());
    p.set_faults("shop", Faults::with(|f| f.error_5xx = 1.0))
        .unwrap();
    rest.put("a", &json!({})).await.unwrap_err();
    p.set_faults("shop", Faults::default()).unwrap();
    rest.put("a", &json!({})).await.unwrap();
    let labels = |outcome| {
        [
            ("connector", "rest"),
            ("store", rest.key()),
            ("endpoint", "PUT items/{id}"),
            ("outcome", outcome),
        ]
    };
    assert_eq!(
        count("ferry_connector_calls_total", &labels("transient")),
        4
    );
    assert_eq!(count("ferry_connector_calls_total", &labels("ok")), 1);
    assert_eq!(
        count("ferry_connector_retries_total", &[("store", rest.key())]),
        3
    );
}
