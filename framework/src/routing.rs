//! Routing: method + path pattern -> handler.
//!
//! Patterns use `matchit` syntax: `/items/{id}` for a parameter, `/files/{*rest}` for the
//! rest of the path. One path may carry several methods; a path that exists with another
//! method answers 405 with an `Allow` header, and a GET route also answers HEAD (hyper sends
//! the headers and no body).

use std::sync::Arc;

use http::Method;

use crate::handler::BoxedHandler;
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
#[derive(Default)]
struct MethodRoutes {
    /// Few methods per path: a vector beats a map here.
    handlers: Vec<(Method, BoxedHandler)>,
    /// The `Allow` header value, rebuilt when a method is added.
    allow: String,
}

impl MethodRoutes {
    fn add(&mut self, method: Method, handler: BoxedHandler) -> Result<(), RouteError> {
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

    fn find(&self, method: &Method) -> Option<&BoxedHandler> {
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

/// What the router found for a request.
#[allow(clippy::enum_variant_names)] // NotFound reads better than Missing here
pub(crate) enum Found<'a> {
    /// A handler, with the route's index (see [`Router::series`]) and decoded parameters.
    Handler(&'a BoxedHandler, usize, PathParams),
    /// The path exists, the method does not: the `Allow` value.
    MethodNotAllowed(&'a str),
    /// No route; or a parameter that is not valid percent-encoded UTF-8.
    NotFound,
}

/// The route table.
#[derive(Default)]
pub(crate) struct Router {
    paths: matchit::Router<usize>,
    /// Each pattern with its metric series (which label requests with the pattern).
    routes: Vec<(RouteSeries, MethodRoutes)>,
}

impl Router {
    pub(crate) fn add(
        &mut self,
        method: Method,
        pattern: &str,
        handler: BoxedHandler,
    ) -> Result<(), RouteError> {
        let index = match self.routes.iter().position(|(p, _)| p.pattern() == pattern) {
            Some(index) => index,
            None => {
                let index = self.routes.len();
                self.paths
                    .insert(pattern, index)
                    .map_err(|e| RouteError(format!("{pattern}: {e}")))?;
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

    /// The index of the route `path` matches, whatever the method.
    pub(crate) fn route_of(&self, path: &str) -> Option<usize> {
        self.paths.at(path).ok().map(|matched| *matched.value)
    }

    /// The metric series (and pattern) of route `index`.
    pub(crate) fn series(&self, index: usize) -> Option<&RouteSeries> {
        self.routes.get(index).map(|(series, _)| series)
    }

    pub(crate) fn find(&self, method: &Method, path: &str) -> Found<'_> {
        let Ok(matched) = self.paths.at(path) else {
            return Found::NotFound;
        };
        let index = *matched.value;
        let Some((_, routes)) = self.routes.get(index) else {
            return Found::NotFound;
        };
        let Some(handler) = routes.find(method) else {
            return Found::MethodNotAllowed(&routes.allow);
        };
        let mut params = Vec::new();
        for (key, raw) in matched.params.iter() {
            match crate::extract::percent_decode(raw) {
                Some(value) => params.push((key.to_owned(), value)),
                None => return Found::NotFound,
            }
        }
        Found::Handler(handler, index, PathParams(params))
    }
}
