//! Groups of routes: built apart, with middleware of their own, then nested under a prefix
//! ([`App::nest`](crate::App::nest)) or merged as they are
//! ([`App::merge`](crate::App::merge)), as an axum user would with `Router::nest`.
//!
//! A group's middleware wraps only its routes, inside the app's own middleware: for a
//! request to `/admin/users`, the app's middleware runs first, then the `/admin` group's,
//! then the controller.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::Method;

use crate::body::{Request, Response};
use crate::context::AppContext;
use crate::handler::{self, BoxedHandler, Handler};
use crate::middleware::{Chain, Middleware, Next};
use crate::respond::RequestHead;
use crate::routing::{check_pattern, RouteError};

/// A group of routes with middleware of its own.
///
/// Patterns are written relative to where the group is nested: `/` is the prefix itself.
///
/// # Examples
///
/// ```
/// use rondo::middleware::from_fn;
/// use rondo::{App, Config, Routes};
///
/// let admin = Routes::new()
///     .get("/", || async { "admin home" })
///     .get("/users/{id}", || async { "a user" })
///     .middleware(from_fn(|req, next| async move {
///         // for instance: refuse requests without a login
///         next.run(req).await
///     }));
/// let api = Routes::new().get("/health", || async { "ok" });
/// let app = App::new(Config::default())
///     .nest("/admin", admin) // GET /admin, GET /admin/users/{id}
///     .merge(api); // GET /health
/// ```
#[derive(Default)]
pub struct Routes {
    routes: Vec<(Method, String, BoxedHandler)>,
    middleware: Vec<Arc<dyn Middleware>>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|(method, pattern, _)| format!("{method} {pattern}"))
            .collect();
        f.debug_struct("Routes")
            .field("routes", &routes)
            .field("middleware", &self.middleware.len())
            .finish()
    }
}

impl Routes {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route, its pattern relative to where the group will be nested and written as
    /// for [`App::route`](crate::App::route): it starts with `/` (`/` is the prefix itself),
    /// `{id}` is a parameter and `{*rest}` the rest of the path. Patterns are checked when
    /// the group is nested or merged.
    #[must_use]
    pub fn route<H: Handler<Args>, Args>(
        mut self,
        method: Method,
        pattern: &str,
        handler: H,
    ) -> Self {
        self.routes
            .push((method, pattern.to_owned(), handler::boxed(handler)));
        self
    }

    /// Adds a GET route (which also answers HEAD); `pattern` as for [`Routes::route`].
    #[must_use]
    pub fn get<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::GET, pattern, handler)
    }

    /// Adds a POST route; `pattern` as for [`Routes::route`].
    #[must_use]
    pub fn post<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::POST, pattern, handler)
    }

    /// Adds a PUT route; `pattern` as for [`Routes::route`].
    #[must_use]
    pub fn put<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::PUT, pattern, handler)
    }

    /// Adds a PATCH route; `pattern` as for [`Routes::route`].
    #[must_use]
    pub fn patch<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::PATCH, pattern, handler)
    }

    /// Adds a DELETE route; `pattern` as for [`Routes::route`].
    #[must_use]
    pub fn delete<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::DELETE, pattern, handler)
    }

    /// Adds middleware around this group's routes only; the first added is the outermost.
    #[must_use]
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Nests `inner` under `prefix` within this group: its routes get the prefix and run
    /// inside this group's middleware as well as their own.
    ///
    /// # Errors
    ///
    /// `prefix` is not a path prefix (see [`App::nest`](crate::App::nest)), or a pattern of
    /// `inner` does not start with `/`.
    pub fn try_nest(mut self, prefix: &str, inner: Routes) -> Result<Self, RouteError> {
        self.routes.extend(inner.resolve(prefix)?);
        Ok(self)
    }

    /// [`Routes::try_nest`], panicking on an invalid prefix (routes are fixed at start-up).
    ///
    /// # Panics
    ///
    /// As [`Routes::try_nest`]'s errors.
    #[must_use]
    #[track_caller]
    pub fn nest(self, prefix: &str, inner: Routes) -> Self {
        match self.try_nest(prefix, inner) {
            Ok(routes) => routes,
            Err(err) => panic!("{err}"),
        }
    }

    /// The group's routes with `prefix` before their patterns, each wrapped in the group's
    /// middleware.
    pub(crate) fn resolve(
        self,
        prefix: &str,
    ) -> Result<Vec<(Method, String, BoxedHandler)>, RouteError> {
        check_prefix(prefix)?;
        // Checked before joining: under "/admin", "users" would become "/adminusers".
        for (_, pattern, _) in &self.routes {
            check_pattern(pattern)?;
        }
        let middleware: Arc<[Arc<dyn Middleware>]> = self.middleware.into();
        Ok(self
            .routes
            .into_iter()
            .map(|(method, pattern, handler)| {
                let handler = if middleware.is_empty() {
                    handler
                } else {
                    wrap(handler, middleware.clone())
                };
                (method, join(prefix, &pattern), handler)
            })
            .collect())
    }
}

/// A prefix is empty (merge) or a path without a trailing `/`.
fn check_prefix(prefix: &str) -> Result<(), RouteError> {
    let ok = prefix.is_empty()
        || (prefix.starts_with('/') && !prefix.ends_with('/') && !prefix.contains(['{', '}']));
    if ok {
        Ok(())
    } else {
        Err(RouteError::new(format!(
            "{prefix:?}: a prefix to nest under starts with / and does not end with one, and has \
             no parameters (e.g. \"/admin\"; \"\" merges)"
        )))
    }
}

/// `prefix` and a pattern relative to it: the group's `/` is the prefix itself.
fn join(prefix: &str, pattern: &str) -> String {
    match (prefix, pattern) {
        ("", pattern) => pattern.to_owned(),
        (prefix, "/") => prefix.to_owned(),
        (prefix, pattern) => format!("{prefix}{pattern}"),
    }
}

/// `handler` inside `middleware`: a request runs through them, then the handler.
fn wrap(handler: BoxedHandler, middleware: Arc<[Arc<dyn Middleware>]>) -> BoxedHandler {
    let needs = handler.needs.clone();
    BoxedHandler::from_fn(
        move |req, app, head| {
            let chain = Arc::new(GroupChain {
                middleware: middleware.clone(),
                handler: handler.clone(),
                app: app.clone(),
                head,
            });
            Box::pin(Next::new(chain).run(req))
        },
        needs,
    )
}

/// One request through a group's middleware to its controller.
struct GroupChain {
    middleware: Arc<[Arc<dyn Middleware>]>,
    handler: BoxedHandler,
    app: AppContext,
    head: RequestHead,
}

impl Chain for GroupChain {
    fn middleware(&self) -> &[Arc<dyn Middleware>] {
        &self.middleware
    }

    fn route(self: Arc<Self>, req: Request) -> BoxFuture<'static, Response> {
        self.handler.call(req, &self.app, self.head.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_patterns_join() {
        assert_eq!(join("/admin", "/"), "/admin");
        assert_eq!(join("/admin", "/users/{id}"), "/admin/users/{id}");
        assert_eq!(join("", "/x"), "/x");
        assert!(check_prefix("/admin").is_ok());
        assert!(check_prefix("").is_ok());
        for bad in ["admin", "/admin/", "/", "/{id}"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    /// A group's pattern without its leading `/` is refused, not glued to the prefix.
    #[test]
    fn relative_patterns_start_with_a_slash() {
        let refused = |pattern: &str| {
            Routes::new()
                .get(pattern, || async { "x" })
                .resolve("/admin")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(refused("users").contains("expected \"/users\""));
        assert!(refused("/users/:id").contains("written {id}"));
        assert_eq!(refused("/users/{id}"), "");
        assert_eq!(refused("/"), "");
    }
}
