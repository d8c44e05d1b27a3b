//! Prometheus metrics, through the `prometheus-client` crate (re-exported as
//! [`prometheus_client`]).
//!
//! Every app has one registry. The framework fills it with request counts and latencies by
//! route; the session manager adds its actors, loads, commits and conflicts and its Redis
//! pool; applications add their own through [`App::register_metric`](crate::App::register_metric)
//! and [`App::register_collector`](crate::App::register_collector). `GET [app] metrics_path`
//! (default `/metrics`) serves the registry in the Prometheus text format; an empty
//! `metrics_path` turns the endpoint and the per-request recording off.
//!
//! The labels of a request are a static method name, the route *pattern* (never the raw
//! path, which would let clients create series at will) and the status. Each route keeps the
//! series it has used (`RouteSeries`), so recording a request costs a counter increment
//! and a histogram update, with no hashing of labels.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{header, Method, StatusCode};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use prometheus_client;

use crate::body::{Body, Response};

/// The route label of requests that matched no route (404, 405).
const UNMATCHED: &str = "(unmatched)";

/// A route pattern as a label value, shared with the router (no allocation per request).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct RouteLabel(pub(crate) Arc<str>);

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: RouteLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: RouteLabel,
}

/// A histogram of durations in seconds, from 100 µs to about 3 s.
pub(crate) fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Upper bounds of [`Latency`]'s buckets: 100 µs doubling up to about 3.3 s, like
/// [`seconds_histogram`], then +Inf.
const LATENCY_BUCKETS: usize = 16;

/// A request-latency histogram that records with two relaxed atomic additions and no lock
/// (`prometheus-client`'s histogram takes a mutex on every observation). Encoded as an
/// ordinary Prometheus histogram with the buckets of [`seconds_histogram`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Latency(Arc<LatencyInner>);

#[derive(Debug, Default)]
struct LatencyInner {
    /// Observations per bucket (not cumulative); the last one is +Inf.
    buckets: [std::sync::atomic::AtomicU64; LATENCY_BUCKETS + 1],
    /// Sum of the observations, in microseconds.
    micros: std::sync::atomic::AtomicU64,
}

impl Latency {
    /// Records one duration.
    pub(crate) fn observe(&self, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        // The first bound of 100 µs << i that holds `micros`: i = ceil(log2(ceil(m / 100))).
        let hundreds = micros.div_ceil(100).max(1);
        let bucket = (64 - (hundreds - 1).leading_zeros()) as usize;
        self.0.buckets[bucket.min(LATENCY_BUCKETS)].fetch_add(1, Relaxed);
        self.0.micros.fetch_add(micros, Relaxed);
    }
}

impl prometheus_client::metrics::TypedMetric for Latency {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Histogram;
}

impl prometheus_client::encoding::EncodeMetric for Latency {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut buckets = [(0.0, 0); LATENCY_BUCKETS + 1];
        for (i, (bound, count)) in buckets.iter_mut().enumerate() {
            *bound = if i == LATENCY_BUCKETS {
                f64::INFINITY
            } else {
                0.0001 * f64::from(1u32 << i)
            };
            *count = self.0.buckets[i].load(Relaxed);
        }
        // The count is the buckets' sum, so the two always agree.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.micros.load(Relaxed) as f64 / 1e6;
        encoder
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        <Self as prometheus_client::metrics::TypedMetric>::TYPE
    }
}

/// Methods with a label of their own (the last one, `other`, stands for every custom method).
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "other",
];
/// Statuses a route keeps its counters for; further ones go through the family's map.
const STATUSES_PER_ROUTE: usize = 6;

/// The series one route pattern has used, resolved on its first request with each method and
/// status and kept, so that later requests skip the family's map (a lock and a label hash).
pub(crate) struct RouteSeries {
    label: RouteLabel,
    by_method: [OnceLock<MethodSeries>; METHODS.len()],
}

struct MethodSeries {
    duration: Latency,
    /// `(status, its counter)`, filled in the order statuses first occur.
    statuses: [OnceLock<(u16, Counter)>; STATUSES_PER_ROUTE],
}

impl RouteSeries {
    /// The series of `pattern`.
    pub(crate) fn new(pattern: Arc<str>) -> Self {
        Self {
            label: RouteLabel(pattern),
            by_method: Default::default(),
        }
    }

    /// The series of requests that matched no route (404, 405).
    pub(crate) fn unmatched() -> Self {
        Self::new(Arc::from(UNMATCHED))
    }

    /// The route pattern.
    pub(crate) fn pattern(&self) -> &str {
        &self.label.0
    }
}

/// The request metrics the framework records itself.
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Latency>,
}

impl HttpMetrics {
    /// New metrics, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Latency>::default();
        registry.register(
            "rondo_http_requests",
            "Requests answered, by method, route pattern and status",
            requests.clone(),
        );
        registry.register(
            "rondo_http_request_duration_seconds",
            "Time from routing to the response being ready, by method and route pattern",
            durations.clone(),
        );
        Self {
            requests,
            durations,
        }
    }

    /// Records one answered request of `route`.
    pub(crate) fn observe(
        &self,
        method: &Method,
        route: &RouteSeries,
        status: StatusCode,
        took: Duration,
    ) {
        let index = method_index(method);
        let method = METHODS[index];
        let series = route.by_method[index].get_or_init(|| MethodSeries {
            duration: self
                .durations
                .get_or_create(&RouteLabels {
                    method,
                    route: route.label.clone(),
                })
                .clone(),
            statuses: Default::default(),
        });
        series.duration.observe(took);
        let status = status.as_u16();
        let labels = || RequestLabels {
            method,
            route: route.label.clone(),
            status,
        };
        for slot in &series.statuses {
            let (seen, counter) =
                slot.get_or_init(|| (status, self.requests.get_or_create(&labels()).clone()));
            if *seen == status {
                counter.inc();
                return;
            }
        }
        self.requests.get_or_create(&labels()).inc();
    }
}

/// The index of `method`'s label in [`METHODS`]: custom methods are one series, not one per
/// name.
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// The registry as the Prometheus text format (a 500 if encoding fails, which only a
/// broken custom collector can cause).
pub(crate) fn exposition(registry: &Registry) -> Response {
    let mut text = String::with_capacity(8 * 1024);
    let (status, body) = match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => (StatusCode::OK, text),
        Err(_) => {
            tracing::error!("a metrics collector failed to encode");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics could not be encoded\n".to_owned(),
            )
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock-free latency histogram encodes exactly as `prometheus-client`'s own would
    /// with the same buckets, bucket edges included.
    #[test]
    fn latency_histogram_matches_the_library_histogram() {
        let ours = Latency::default();
        let theirs = seconds_histogram();
        for micros in [
            0, 50, 100, 101, 200, 201, 250, 1_000, 3_276_800, 3_276_801, 10_000_000,
        ] {
            ours.observe(Duration::from_micros(micros));
            theirs.observe(micros as f64 / 1e6);
        }
        fn text(metric: impl prometheus_client::registry::Metric) -> String {
            let mut registry = Registry::default();
            registry.register("latency", "help", metric);
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
            text
        }
        let (ours, theirs) = (text(ours), text(theirs));
        let buckets = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.contains("_bucket") || l.contains("_count"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(buckets(&ours), buckets(&theirs), "{ours}\n{theirs}");
        assert!(ours.contains("latency_sum 16.555503"), "{ours}");
    }

    #[test]
    fn requests_are_counted_by_pattern_and_status() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let route = RouteSeries::new(Arc::from("/users/{id}"));
        for status in [200, 200, 200, 201, 202, 203, 204, 205, 206, 206] {
            http.observe(
                &Method::POST,
                &route,
                StatusCode::from_u16(status).expect("a status"),
                Duration::from_millis(1),
            );
        }
        for _ in 0..3 {
            http.observe(
                &Method::GET,
                &route,
                StatusCode::OK,
                Duration::from_millis(2),
            );
        }
        http.observe(
            &Method::from_bytes(b"BREW").expect("valid"),
            &RouteSeries::unmatched(),
            StatusCode::NOT_FOUND,
            Duration::from_micros(50),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains(
                r#"rondo_http_requests_total{method="GET",route="/users/{id}",status="200"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"rondo_http_requests_total{method="other",route="(unmatched)",status="404"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"rondo_http_request_duration_seconds_count{method="GET",route="/users/{id}"} 3"#
            ),
            "{text}"
        );
        // More statuses on one route than it keeps counters for still count exactly.
        for (status, count) in [(200, 3), (201, 1), (205, 1), (206, 2)] {
            let line = format!(
                r#"rondo_http_requests_total{{method="POST",route="/users/{{id}}",status="{status}"}} {count}"#
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
    }
}
