//! The one body type Rondo uses for requests and responses.
//!
//! Requests arrive as hyper's streaming `Incoming`; responses are mostly built in memory (a
//! responder renders its whole answer before returning), and stream when they must (a file,
//! server-sent events): [`Body::new`] wraps any `http_body::Body`, [`Body::from_stream`] a
//! stream of chunks. One type covers them all so that handlers, middleware and tests can
//! build requests and responses without generic body parameters.
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

/// The error of a streaming body: whatever its source failed with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body of any source, type-erased.
type Streaming = Pin<Box<dyn http_body::Body<Data = Bytes, Error = BoxError> + Send>>;

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
    Streaming(Streaming),
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

    /// A body streamed from `body` (a file, an event stream, another library's body).
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            inner: Inner::Streaming(Box::pin(http_body_util::BodyExt::map_err(body, Into::into))),
            after_sent: None,
        }
    }

    /// A body streamed from `stream`, one data frame per chunk; an error ends the response
    /// (the connection is closed, since its length or last chunk was promised).
    pub fn from_stream<S, E>(stream: S) -> Self
    where
        S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        use futures_util::TryStreamExt;
        let frames = stream.map_ok(Frame::data).map_err(Into::into);
        Self::new(http_body_util::StreamBody::new(frames))
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
            Inner::Incoming(_) | Inner::Streaming(_) => None,
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
            Inner::Streaming(_) => "streaming",
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
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Full(data) => Poll::Ready(data.take().map(|b| Ok(Frame::data(b)))),
            Inner::Incoming(incoming) => Pin::new(incoming).poll_frame(cx).map_err(BoxError::from),
            Inner::Streaming(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty | Inner::Full(None) => true,
            Inner::Full(Some(_)) => false,
            Inner::Incoming(incoming) => incoming.is_end_stream(),
            Inner::Streaming(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty | Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Incoming(incoming) => incoming.size_hint(),
            Inner::Streaming(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// A streamed body yields its chunks in order, and its after-sent hook runs when it is
    /// dropped, as an in-memory body's does.
    #[tokio::test]
    async fn a_streamed_body_yields_its_chunks() {
        let chunks = futures_util::stream::iter(
            ["a", "bc", "def"].map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c.as_bytes()))),
        );
        let mut body = Body::from_stream(chunks);
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = sent.clone();
        body.on_sent(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
        assert_eq!(body.as_bytes(), None);
        let mut collected = Vec::new();
        while let Some(frame) = body.frame().await {
            collected.push(frame.expect("a frame").into_data().expect("data"));
        }
        assert_eq!(collected, ["a", "bc", "def"]);
        drop(body);
        assert!(sent.load(std::sync::atomic::Ordering::SeqCst));
    }
}
