//! The one body type Rondo uses for requests and responses.
//!
//! Requests arrive as hyper's streaming `Incoming`; responses are built in memory (every
//! responder renders its whole answer before returning). One enum covers both so that handlers,
//! middleware and tests can build requests and responses without generic body parameters.
//!
//! A response body can carry an *after-sent hook*: a closure that runs when hyper drops the body,
//! which happens once the body has been written to the connection (or the client went away).
//! The session layer uses it to persist a session only after its response has left.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

/// A request as controllers and middleware see it.
pub type Request = http::Request<Body>;

/// A response as controllers and middleware build it.
pub type Response = http::Response<Body>;

/// A closure run once, when the response body is dropped.
type AfterSent = Box<dyn FnOnce() + Send>;

/// A request or response body.
pub struct Body {
    inner: Inner,
    /// Runs on drop; `None` for almost every body, so plain responses pay nothing.
    after_sent: Option<AfterSent>,
}

enum Inner {
    Empty,
    Full(Option<Bytes>),
    Incoming(Incoming),
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self {
            inner: Inner::Empty,
            after_sent: None,
        }
    }

    /// A body holding `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Self::empty();
        }
        Self {
            inner: Inner::Full(Some(bytes)),
            after_sent: None,
        }
    }

    /// Runs `hook` once this body is dropped: after hyper has written it, or when the
    /// connection was lost. Hooks already present run first.
    pub fn on_sent(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.after_sent = Some(match self.after_sent.take() {
            None => Box::new(hook),
            Some(previous) => Box::new(move || {
                previous();
                hook();
            }),
        });
    }

    /// The in-memory bytes, if this is not a streaming request body.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Empty => Some(&[]),
            Inner::Full(Some(b)) => Some(b),
            Inner::Full(None) => Some(&[]),
            Inner::Incoming(_) => None,
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(hook) = self.after_sent.take() {
            hook();
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            Inner::Empty => "empty",
            Inner::Full(_) => "full",
            Inner::Incoming(_) => "incoming",
        };
        f.debug_struct("Body").field("kind", &kind).finish()
    }
}

impl From<Incoming> for Body {
    fn from(incoming: Incoming) -> Self {
        Self {
            inner: Inner::Incoming(incoming),
            after_sent: None,
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self::full(s)
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self::full(Bytes::from_static(s.as_bytes()))
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Self::full(v)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Full(data) => Poll::Ready(data.take().map(|b| Ok(Frame::data(b)))),
            Inner::Incoming(incoming) => Pin::new(incoming).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty | Inner::Full(None) => true,
            Inner::Full(Some(_)) => false,
            Inner::Incoming(incoming) => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty | Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Incoming(incoming) => incoming.size_hint(),
        }
    }
}
