//! Testing an app in-process: requests sent straight to the built app, no socket, with a
//! cookie jar so that sessions carry from one request to the next as in a browser.
//!
//! Everything a request goes through runs as it would behind the server — middleware,
//! routing, extractors, the controller, the session's cookie and its commit after the
//! response — on the test's own runtime.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use rondo::testing::TestClient;
//! use rondo::session::store::MemoryStore;
//! use rondo::{App, Config, Session, SessionError, SessionManager};
//!
//! async fn visits(session: Session) -> Result<String, SessionError> {
//!     let n = session.update("visits", |n: Option<u64>| n.unwrap_or(0) + 1).await?;
//!     Ok(n.to_string())
//! }
//!
//! let config = Config::default();
//! let sessions = SessionManager::new(MemoryStore::new(), &config, "");
//! let client = TestClient::new(App::new(config).with(sessions).get("/", visits));
//! assert_eq!(client.get("/").send().await.text(), "1");
//! assert_eq!(client.get("/").send().await.text(), "2"); // the jar kept the cookie
//! client.shutdown().await;
//! # }
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::{App, ShutdownHooks};
use crate::body::Body;
use crate::dispatch::Service;

/// An app built for tests, and a cookie jar.
pub struct TestClient {
    service: Service,
    hooks: Mutex<Option<ShutdownHooks>>,
    /// Cookies by name, as a browser keeps them for this one host (paths and expiry
    /// dates aside: `Max-Age=0` or an empty value removes one).
    jar: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("cookies", &self.jar.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TestClient {
    /// Builds `app` to answer requests in-process.
    ///
    /// # Panics
    ///
    /// When the app cannot start ([`App::check`]).
    #[track_caller]
    pub fn new(app: App) -> Self {
        let (service, hooks) = app.into_service();
        Self {
            service,
            hooks: Mutex::new(Some(hooks)),
            jar: Mutex::default(),
        }
    }

    /// A request of `method` to `path` (with its query, if any).
    pub fn request(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            client: self,
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// A `GET` to `path`.
    pub fn get(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::GET, path)
    }

    /// A `POST` to `path`.
    pub fn post(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::POST, path)
    }

    /// A `PUT` to `path`.
    pub fn put(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::PUT, path)
    }

    /// A `DELETE` to `path`.
    pub fn delete(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::DELETE, path)
    }

    /// The value of the cookie `name` in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().get(name).cloned()
    }

    /// Forgets every cookie (a new browser).
    pub fn clear_cookies(&self) {
        self.jar.lock().clear();
    }

    /// Runs the app's shutdown hooks (jobs stop, sessions make their last commits), as the
    /// server does at the end.
    pub async fn shutdown(&self) {
        let hooks = self.hooks.lock().take();
        if let Some(hooks) = hooks {
            hooks.run().await;
        }
    }

    fn keep_cookies(&self, headers: &HeaderMap) {
        let mut jar = self.jar.lock();
        for header in headers.get_all(SET_COOKIE) {
            let Ok(text) = header.to_str() else { continue };
            let Ok(cookie) = cookie::Cookie::parse(text) else {
                continue;
            };
            let expired = cookie.value().is_empty()
                || cookie
                    .max_age()
                    .is_some_and(|age| age.is_zero() || age.is_negative());
            if expired {
                jar.remove(cookie.name());
            } else {
                jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
    }
}

/// A request being built; [`TestRequest::send`] answers it.
#[derive(Debug)]
pub struct TestRequest<'a> {
    client: &'a TestClient,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl TestRequest<'_> {
    /// Adds a header.
    ///
    /// # Panics
    ///
    /// When `name` or `value` is not valid in a header (a bug in the test).
    #[must_use]
    #[track_caller]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        let value = HeaderValue::from_str(value).expect("a valid header value");
        self.headers.append(name, value);
        self
    }

    /// `value` as a JSON body, with its `Content-Type`.
    ///
    /// # Panics
    ///
    /// When `value` cannot be serialized.
    #[must_use]
    #[track_caller]
    pub fn json(mut self, value: &impl Serialize) -> Self {
        self.body = serde_json::to_vec(value).expect("serializable").into();
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self
    }

    /// `value` as a URL-encoded form body, with its `Content-Type`.
    ///
    /// # Panics
    ///
    /// When `value` cannot be encoded as a form.
    #[must_use]
    #[track_caller]
    pub fn form(mut self, value: &impl Serialize) -> Self {
        let encoded = serde_urlencoded::to_string(value).expect("encodable as a form");
        self.body = encoded.into();
        self.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self
    }

    /// A raw body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request (with the jar's cookies) and reads the whole response; the jar
    /// keeps the cookies it sets.
    ///
    /// # Panics
    ///
    /// When the path is not a valid URI, or the response body fails (a bug in the test or
    /// the app).
    pub async fn send(self) -> TestResponse {
        let mut builder = http::Request::builder()
            .method(self.method)
            .uri(self.path.as_str());
        let cookies: Vec<String> = self
            .client
            .jar
            .lock()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if let Some(headers) = builder.headers_mut() {
            *headers = self.headers;
            if !cookies.is_empty() && !headers.contains_key(COOKIE) {
                if let Ok(value) = HeaderValue::from_str(&cookies.join("; ")) {
                    headers.insert(COOKIE, value);
                }
            }
        }
        let request = builder
            .body(Body::full(self.body))
            .expect("a valid request");
        let response = self.client.service.handle(request).await;
        let (parts, body) = response.into_parts();
        self.client.keep_cookies(&parts.headers);
        // Collecting drops the body: what was arranged for after the response (a session's
        // commit) starts now, as it would once the server had sent it.
        let body = body
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .expect("the response body");
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// When the body is not JSON of type `T`.
    #[track_caller]
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).expect("a JSON body of the expected type")
    }

    /// The first value of header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
