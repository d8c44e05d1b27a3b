//! Server-sent events: a response that stays open and carries a stream of events
//! (`text/event-stream`), which browsers read with `EventSource` and reconnect by themselves.
//!
//! A controller returns [`Sse`] around any stream of [`Event`]s. While the stream has
//! nothing to say, a comment line goes out every `keep_alive` (15 s by default), so that
//! proxies and load balancers do not take the connection for dead. A browser that
//! reconnects sends the id of the last event it saw in `Last-Event-ID`; take
//! [`LastEventId`] as an argument to resume from there. When the server shuts down, the
//! stream ends as soon as the drain begins (it would otherwise hold the drain until its
//! deadline), and the browser reconnects to another server.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! use rondo::respond::sse::{Event, LastEventId, Sse};
//!
//! async fn ticks(LastEventId(last): LastEventId) -> Sse<impl futures_util::Stream<Item = Event> + Send> {
//!     let start: u64 = last.and_then(|id| id.parse().ok()).map_or(0, |n: u64| n + 1);
//!     let events = futures_util::stream::iter(start..start + 3)
//!         .map(|n| Event::default().id(n.to_string()).event("tick").data(n.to_string()));
//!     Sse::new(events).keep_alive(Some(Duration::from_secs(5)))
//! }
//! # use futures_util::StreamExt;
//! let app = rondo::App::new(rondo::Config::default()).get("/ticks", ticks);
//! ```

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::request::Parts;

use crate::body::{Body, Response};
use crate::connections::EndsAtShutdown;
use crate::context::AppContext;
use crate::extract::FromRequestParts;
use crate::respond::IntoResponse;

/// How often a keep-alive comment goes out by default while no event does.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A server-sent event stream as a response; see the [module](self) docs.
#[must_use]
pub struct Sse<S> {
    events: S,
    keep_alive: Option<Duration>,
}

impl<S> Sse<S>
where
    S: Stream<Item = Event> + Send + 'static,
{
    /// A response streaming `events`, with a keep-alive comment every
    /// [`DEFAULT_KEEP_ALIVE`] while it is quiet.
    pub fn new(events: S) -> Self {
        Self {
            events,
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
        }
    }

    /// Sends a keep-alive comment after `every` without an event (`None`: never).
    pub fn keep_alive(mut self, every: Option<Duration>) -> Self {
        self.keep_alive = every.filter(|d| !d.is_zero());
        self
    }
}

impl<S> IntoResponse for Sse<S>
where
    S: Stream<Item = Event> + Send + 'static,
{
    fn into_response(self) -> Response {
        let stream = Encoded {
            events: Box::pin(self.events),
            keep_alive: self
                .keep_alive
                .map(|every| (every, Box::pin(tokio::time::sleep(every)))),
        };
        let mut response = Response::new(Body::from_stream(stream));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // nginx buffers proxied responses by default, which would hold events back.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response.extensions_mut().insert(EndsAtShutdown);
        response
    }
}

/// The events of an [`Sse`], encoded, with keep-alive comments in the quiet moments.
struct Encoded {
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
    /// The period and the timer of the next keep-alive comment.
    keep_alive: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

impl Stream for Encoded {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.events.as_mut().poll_next(cx) {
            Poll::Ready(Some(event)) => {
                if let Some((every, timer)) = &mut this.keep_alive {
                    timer.as_mut().reset(tokio::time::Instant::now() + *every);
                }
                return Poll::Ready(Some(Ok(Bytes::from(event))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if let Some((every, timer)) = &mut this.keep_alive {
            if timer.as_mut().poll(cx).is_ready() {
                timer.as_mut().reset(tokio::time::Instant::now() + *every);
                return Poll::Ready(Some(Ok(Bytes::from_static(b":\n\n"))));
            }
        }
        Poll::Pending
    }
}

/// One server-sent event, built field by field. Line breaks in `data` become several
/// `data:` lines (the browser joins them back with `\n`); in the other fields, where the
/// format cannot carry them, they are replaced by spaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The encoded fields so far, without the closing blank line.
    buf: String,
}

impl Event {
    /// Sets the event's type (`event:`): `EventSource` dispatches it to the listeners of
    /// that name instead of `onmessage`.
    pub fn event(self, name: impl AsRef<str>) -> Self {
        self.field("event", name.as_ref())
    }

    /// Sets the event's id (`id:`), which the browser sends back as `Last-Event-ID` when it
    /// reconnects. NUL characters are dropped (the browser would ignore the whole id).
    pub fn id(self, id: impl AsRef<str>) -> Self {
        self.field("id", &id.as_ref().replace('\0', ""))
    }

    /// Appends `data` (`data:` lines, one per line of `data`).
    pub fn data(mut self, data: impl AsRef<str>) -> Self {
        for line in data.as_ref().split(['\n']) {
            let line = line.strip_suffix('\r').unwrap_or(line);
            self.line("data", line);
        }
        self
    }

    /// Appends `value` serialized as JSON (one line).
    ///
    /// # Errors
    ///
    /// `value` cannot be serialized as JSON.
    pub fn json_data<T: serde::Serialize + ?Sized>(
        self,
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(self.data(serde_json::to_string(value)?))
    }

    /// Tells the browser how long to wait before reconnecting (`retry:`).
    pub fn retry(mut self, after: Duration) -> Self {
        let millis = after.as_millis();
        let _ = writeln!(self.buf, "retry:{millis}");
        self
    }

    /// Adds a comment line (ignored by browsers; useful for debugging).
    pub fn comment(self, text: impl AsRef<str>) -> Self {
        self.field("", text.as_ref())
    }

    fn field(mut self, name: &str, value: &str) -> Self {
        let value = value.replace(['\r', '\n'], " ");
        self.line(name, &value);
        self
    }

    fn line(&mut self, name: &str, value: &str) {
        self.buf.push_str(name);
        self.buf.push(':');
        self.buf.push_str(value);
        self.buf.push('\n');
    }
}

impl From<Event> for Bytes {
    /// The event as it goes on the wire, closing blank line included.
    fn from(mut event: Event) -> Self {
        event.buf.push('\n');
        Bytes::from(event.buf)
    }
}

/// The id of the last event a reconnecting `EventSource` saw (`Last-Event-ID`), if it sent
/// one; as a controller argument.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastEventId(pub Option<String>);

impl FromRequestParts for LastEventId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _app: &AppContext) -> Result<Self, Infallible> {
        let id = parts
            .headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_encode_field_by_field() {
        let event = Event::default()
            .id("7")
            .event("basket")
            .data("line one\nline two\r\nthree")
            .retry(Duration::from_millis(1500));
        assert_eq!(
            Bytes::from(event),
            "id:7\nevent:basket\ndata:line one\ndata:line two\ndata:three\nretry:1500\n\n"
        );
    }

    #[test]
    fn line_breaks_cannot_inject_fields() {
        let event = Event::default()
            .event("a\ndata: forged")
            .id("1\r\n\0x")
            .comment("c");
        assert_eq!(Bytes::from(event), "event:a data: forged\nid:1  x\n:c\n\n");
    }

    #[test]
    fn json_data_is_one_line() {
        let event = Event::default()
            .json_data(&serde_json::json!({"a": "x\ny"}))
            .map(Bytes::from);
        assert_eq!(
            event.ok(),
            Some(Bytes::from_static(b"data:{\"a\":\"x\\ny\"}\n\n"))
        );
    }
}
