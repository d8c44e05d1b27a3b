//! Rondo's procedural macros, used through the `rondo` crate (`rondo::debug_handler`, behind
//! its default feature `macros`).
//!
//! # Layout
//!
//! - `debug_handler`: the attribute's expansion: the function unchanged, then one check per
//!   rule a controller must follow, each spanned to the argument or type it is about.

use proc_macro::TokenStream;

mod debug_handler;

/// Points a controller's compile error at the argument or return type at fault.
///
/// A function that is not a valid controller gets one error where it is registered
/// (`app.get("/", controller)`): "... is not a Rondo controller", whatever the cause. Put
/// `#[rondo::debug_handler]` on the controller and each broken rule gets its own error, on
/// the argument or type that breaks it:
///
/// - every argument but the last implements `FromRequestParts` (it reads only the request
///   head: `Path`, `Query`, `State`, `Session`, `HeaderMap`, `Method`, `Uri`);
/// - the last argument implements `FromRequest`: a body extractor (`Json`, `Form`,
///   `CsrfForm`, `String`, `Bytes`, `Request`) is called out by name anywhere else, since
///   the body is read once, after the head;
/// - `State<T>` needs `T: Clone + Send + Sync + 'static`;
/// - the controller is an `async fn`, of at most eight arguments;
/// - its future is `Send` (the error is on the function's name);
/// - its return type implements `Responder` (not checked for `impl Trait` return types).
///
/// The function itself is emitted unchanged; the checks are items the compiler checks and
/// then drops, so the attribute costs nothing at run time. It is meant for the time a
/// controller does not compile, though leaving it on is harmless.
///
/// The attribute checks free `async fn`s that are not generic. It refuses methods (anything
/// with `self`), generic functions and `impl Trait` arguments with an error saying so; on an
/// associated function without `self` its checks do not compile, so keep controllers free
/// functions. The checks name the framework as `::rondo`, so the crate must not be renamed.
///
/// # Examples
///
/// A controller that compiles, with the attribute on:
///
/// ```
/// use rondo::{debug_handler, App, Json, Path, Session, SessionError};
///
/// #[debug_handler]
/// async fn rename(
///     session: Session,
///     Path(id): Path<u64>,
///     Json(name): Json<String>, // the body extractor comes last
/// ) -> Result<Json<u64>, SessionError> {
///     session.put("name", &name)?;
///     Ok(Json(id))
/// }
///
/// fn routes(app: App) -> App {
///     app.post("/items/{id}/name", rename)
/// }
/// ```
///
/// The same controller with the body first. Without the attribute the error at
/// `app.post(...)` only says the function is not a Rondo controller; with it, the error is
/// on `Json<String>`: "`Json<String>` reads the request body, so it must be the controller's
/// last argument".
///
/// ```compile_fail,E0277
/// use rondo::{debug_handler, Json, Path, Session, SessionError};
///
/// #[debug_handler]
/// async fn rename(
///     Json(name): Json<String>,
///     session: Session,
///     Path(id): Path<u64>,
/// ) -> Result<Json<u64>, SessionError> {
///     session.put("name", &name)?;
///     Ok(Json(id))
/// }
/// ```
#[proc_macro_attribute]
pub fn debug_handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    debug_handler::expand(attr.into(), item.into()).into()
}
