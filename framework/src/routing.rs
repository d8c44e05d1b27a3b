//! Routing: method + path pattern -> handler.
//!
//! Patterns use `matchit` syntax: `/items/{id}` for a parameter, `/files/{*rest}` for the
//! rest of the path. One path may carry several methods; a path that exists with another
//! method answers 405 with an `Allow` header, and a GET route also answers HEAD (hyper sends
//! the headers and no body). Parameters are percent-decoded here, once, for every extractor.
//!
//! The table is generic over what a route leads to (`H`): it knows nothing of controllers,
//! only of patterns, methods and parameters.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use http::Method;

use crate::metrics::RouteSeries;

/// Path parameters of the matched route, percent-decoded, in pattern order.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathParams(Vec<(String, String)>);

impl PathParams {
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    pub(crate) fn as_slice(&self) -> &[(String, String)] {
        &self.0
    }
}

/// The handlers registered for one path.
struct MethodRoutes<H> {
    /// Few methods per path: a vector beats a map here.
    handlers: Vec<(Method, H)>,
    /// The `Allow` header value, rebuilt when a method is added.
    allow: String,
}

impl<H> Default for MethodRoutes<H> {
    fn default() -> Self {
        Self {
            handlers: Vec::new(),
            allow: String::new(),
        }
    }
}

impl<H> MethodRoutes<H> {
    fn add(&mut self, method: Method, handler: H) -> Result<(), RouteError> {
        if self.handlers.iter().any(|(m, _)| *m == method) {
            return Err(RouteError(format!("duplicate {method} route")));
        }
        self.handlers.push((method, handler));
        let mut methods: Vec<&str> = self.handlers.iter().map(|(m, _)| m.as_str()).collect();
        if methods.contains(&"GET") && !methods.contains(&"HEAD") {
            methods.push("HEAD");
        }
        self.allow = methods.join(", ");
        Ok(())
    }

    fn find(&self, method: &Method) -> Option<&H> {
        let exact = self.handlers.iter().find(|(m, _)| m == method);
        let fallback = || {
            (*method == Method::HEAD)
                .then(|| self.handlers.iter().find(|(m, _)| *m == Method::GET))
                .flatten()
        };
        exact.or_else(fallback).map(|(_, h)| h)
    }
}

/// A route could not be added (bad pattern, conflict, duplicate).
#[derive(Debug, thiserror::Error)]
#[error("invalid route: {0}")]
pub struct RouteError(String);

impl RouteError {
    pub(crate) fn new(message: String) -> Self {
        Self(message)
    }
}

/// What the router found for a request.
#[allow(clippy::enum_variant_names)] // NotFound reads better than Missing here
pub(crate) enum Found<'a, H> {
    /// A handler, with the route's index (see [`Router::series`]) and decoded parameters.
    Handler(&'a H, usize, PathParams),
    /// The path exists, the method does not: the `Allow` value.
    MethodNotAllowed(&'a str),
    /// No route; or a parameter that is not valid percent-encoded UTF-8.
    NotFound,
}

/// FNV-1a over a request path: a few instructions per byte instead of SipHash's setup. The
/// map it serves is fixed at start-up and only looked up, so a client who could make its
/// path collide with a route's would only make that lookup compare one more key.
#[derive(Default)]
struct PathHasher(u64);

impl Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The route table.
pub(crate) struct Router<H> {
    paths: matchit::Router<usize>,
    /// Patterns without parameters, by their exact path: a hash lookup instead of a walk
    /// down `paths`. `matchit` prefers a static route to a parameter anyway, so a hit here
    /// is always what it would have found.
    statics: std::collections::HashMap<Box<str>, usize, BuildHasherDefault<PathHasher>>,
    /// Each pattern with its metric series (which label requests with the pattern).
    routes: Vec<(RouteSeries, MethodRoutes<H>)>,
}

impl<H> Default for Router<H> {
    fn default() -> Self {
        Self {
            paths: matchit::Router::new(),
            statics: std::collections::HashMap::default(),
            routes: Vec::new(),
        }
    }
}

/// Refuses patterns that would be accepted and then never match: one that does not start
/// with `/` (request paths always do), or one with a `:name` or `*name` segment (the syntax
/// of axum 0.7 and Express; here a parameter is `{name}` and the rest of the path `{*name}`).
/// Groups check their relative patterns with it too ([`crate::Routes`]), before the prefix
/// would hide a missing `/`.
pub(crate) fn check_pattern(pattern: &str) -> Result<(), RouteError> {
    if !pattern.starts_with('/') {
        return Err(RouteError(format!(
            "{pattern:?}: a route pattern starts with /; expected \"/{pattern}\""
        )));
    }
    let old_style = |s: &&str| s.starts_with(':') || (s.starts_with('*') && s.len() > 1);
    if let Some(segment) = pattern.split('/').find(old_style) {
        let name = &segment[1..];
        return Err(RouteError(format!(
            "{pattern:?}: `{segment}` is a literal segment here; a parameter is written {{{name}}} \
             and the rest of the path {{*{name}}}"
        )));
    }
    Ok(())
}

impl<H> Router<H> {
    pub(crate) fn add(
        &mut self,
        method: Method,
        pattern: &str,
        handler: H,
    ) -> Result<(), RouteError> {
        check_pattern(pattern)?;
        let index = match self.routes.iter().position(|(p, _)| p.pattern() == pattern) {
            Some(index) => index,
            None => {
                let index = self.routes.len();
                self.paths
                    .insert(pattern, index)
                    .map_err(|e| RouteError(format!("{pattern}: {e}")))?;
                if !pattern.contains(['{', '}']) {
                    self.statics.insert(pattern.into(), index);
                }
                self.routes.push((
                    RouteSeries::new(Arc::from(pattern)),
                    MethodRoutes::default(),
                ));
                index
            }
        };
        let (_, routes) = &mut self.routes[index];
        routes
            .add(method, handler)
            .map_err(|e| RouteError(format!("{pattern}: {}", e.0)))
    }

    /// Every route: method, pattern and what it leads to.
    pub(crate) fn routes(&self) -> impl Iterator<Item = (&Method, &str, &H)> {
        self.routes.iter().flat_map(|(series, routes)| {
            routes
                .handlers
                .iter()
                .map(move |(method, handler)| (method, series.pattern(), handler))
        })
    }

    /// The index of the route `path` matches, whatever the method.
    pub(crate) fn route_of(&self, path: &str) -> Option<usize> {
        if let Some(index) = self.statics.get(path) {
            return Some(*index);
        }
        self.paths.at(path).ok().map(|matched| *matched.value)
    }

    /// The metric series (and pattern) of route `index`.
    pub(crate) fn series(&self, index: usize) -> Option<&RouteSeries> {
        self.routes.get(index).map(|(series, _)| series)
    }

    pub(crate) fn find(&self, method: &Method, path: &str) -> Found<'_, H> {
        // A static route has no parameters; any other match comes with matchit's.
        let (index, raw) = match self.statics.get(path) {
            Some(&index) => (index, None),
            None => match self.paths.at(path) {
                Ok(matched) => (*matched.value, Some(matched.params)),
                Err(_) => return Found::NotFound,
            },
        };
        let Some((_, routes)) = self.routes.get(index) else {
            return Found::NotFound;
        };
        let Some(handler) = routes.find(method) else {
            return Found::MethodNotAllowed(&routes.allow);
        };
        let mut params = Vec::new();
        for (key, raw) in raw.iter().flat_map(matchit::Params::iter) {
            match percent_decode(raw) {
                Some(value) => params.push((key.to_owned(), value)),
                None => return Found::NotFound,
            }
        }
        Found::Handler(handler, index, PathParams(params))
    }
}

/// `raw` with `%XX` escapes decoded; `None` unless the result is UTF-8 and every escape is
/// well-formed (such a path names no route).
pub(crate) fn percent_decode(raw: &str) -> Option<String> {
    if !raw.contains('%') {
        return Some(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler() -> &'static str {
        "ok"
    }

    /// Patterns that could never match are refused with the syntax to use instead.
    #[test]
    fn unrooted_and_colon_patterns_are_refused() {
        let mut router = Router::default();
        let refused = |router: &mut Router<&'static str>, pattern| {
            router
                .add(Method::GET, pattern, handler())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(refused(&mut router, "users").contains("expected \"/users\""));
        assert!(refused(&mut router, "/old/:id").contains("written {id}"));
        assert!(refused(&mut router, "/files/*rest").contains("the rest of the path {*rest}"));
        assert_eq!(refused(&mut router, "/new/{id}"), "");
        assert_eq!(refused(&mut router, "/"), "");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%4"), None);
    }

    fn found(router: &Router<&'static str>, method: &Method, path: &str) -> String {
        match router.find(method, path) {
            Found::Handler(_, index, params) => {
                let pattern = router.series(index).map(RouteSeries::pattern);
                format!("{} {:?}", pattern.unwrap_or("?"), params.as_slice())
            }
            Found::MethodNotAllowed(allow) => format!("405 {allow}"),
            Found::NotFound => "404".to_owned(),
        }
    }

    /// Static patterns (looked up by exact path) and parameter patterns (through matchit)
    /// answer as matchit alone would: the static route wins where both match.
    #[test]
    fn static_routes_win_over_parameters() {
        let mut router = Router::default();
        router
            .add(Method::GET, "/users/new", handler())
            .expect("added");
        router
            .add(Method::GET, "/users/{id}", handler())
            .expect("added");
        router
            .add(Method::POST, "/users/new", handler())
            .expect("added");
        router.add(Method::GET, "/", handler()).expect("added");
        assert_eq!(found(&router, &Method::GET, "/users/new"), "/users/new []");
        assert_eq!(
            found(&router, &Method::GET, "/users/7"),
            r#"/users/{id} [("id", "7")]"#
        );
        assert_eq!(found(&router, &Method::HEAD, "/users/new"), "/users/new []");
        assert_eq!(
            found(&router, &Method::DELETE, "/users/new"),
            "405 GET, POST, HEAD"
        );
        assert_eq!(found(&router, &Method::GET, "/"), "/ []");
        assert_eq!(found(&router, &Method::GET, "/users/new/"), "404");
        let pattern = |path| {
            router
                .route_of(path)
                .and_then(|i| router.series(i))
                .map(RouteSeries::pattern)
        };
        assert_eq!(pattern("/users/new"), Some("/users/new"));
        assert_eq!(pattern("/users/8"), Some("/users/{id}"));
        assert_eq!(pattern("/nope"), None);
    }
}
