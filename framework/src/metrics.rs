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
//! Recording a request costs one lookup in a read-locked map and two atomic updates: the
//! labels are a static method name, the route *pattern* (never the raw path, which would let
//! clients create series at will) and the status.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, StatusCode};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use prometheus_client;

use crate::{Body, Response};

/// The route label of requests that matched no route (404, 405).
const UNMATCHED: &str = "(unmatched)";

/// A route pattern as a label value, shared with the router (no allocation per request).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct RouteLabel(pub(crate) Arc<str>);

impl RouteLabel {
    pub(crate) fn unmatched() -> Self {
        Self(Arc::from(UNMATCHED))
    }
}

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

/// The request metrics the framework records itself.
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    /// New metrics, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            seconds_histogram,
        );
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

    /// Records one answered request.
    pub(crate) fn observe(
        &self,
        method: &Method,
        route: &RouteLabel,
        status: StatusCode,
        took: Duration,
    ) {
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.clone(),
                status: status.as_u16(),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
    }
}

/// A static label for `method`: custom methods are one series, not one per name.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
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

    #[test]
    fn requests_are_counted_by_pattern_and_status() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let route = RouteLabel(Arc::from("/users/{id}"));
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
            &RouteLabel::unmatched(),
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
    }
}
