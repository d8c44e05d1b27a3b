//! What `#[rondo::debug_handler]` expands to. Not an API: only the macro's output names
//! these, as `rondo::__private`.
//!
//! The macro checks each rule by naming an item of a trait for one type, as
//! `<Json<Item> as FromRequestParts>::DEFERS`: where the type does not implement the trait,
//! the error is on the type, with the trait's `#[diagnostic::on_unimplemented]` message.
//! The framework's own traits carry the messages for most rules; the two traits here add the
//! rules that have no trait of their own. Each has one blanket impl over the bound it stands
//! for, and when that bound fails the compiler reports the trait asked for, with its message
//! here, rather than the bound behind it, because both are about the same type.

use std::future::Future;

pub use crate::extract::{FromRequest, FromRequestParts};
pub use crate::respond::Responder;

/// A body extractor (`Json`, `Form`, ...) given before another argument: it passes only if
/// the type reads the head alone after all.
#[diagnostic::on_unimplemented(
    message = "`{Self}` reads the request body, so it must be the controller's last argument",
    label = "a body extractor before another argument",
    note = "the body is read once, after the head: a controller takes at most one body extractor (`Json`, `Form`, `CsrfForm`, `String`, `Bytes` or `Request`), as its last argument",
    note = "every argument before it must implement `FromRequestParts`: `Path`, `Query`, `State`, `Session`, `HeaderMap`, `Method`, `Uri`"
)]
pub trait ArgumentBeforeTheLast {
    /// What the check names.
    const CHECK: () = ();
}

impl<T: FromRequestParts> ArgumentBeforeTheLast for T {}

/// The `T` of a `State<T>` argument.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be app state: `State<T>` needs `T: Clone + Send + Sync + 'static`",
    label = "`State<{Self}>` needs `{Self}: Clone + Send + Sync + 'static`",
    note = "each request gets a clone of the value registered with `App::state`: derive `Clone`, or share what cannot be cloned in an `Arc` (with a `Mutex` if it changes)"
)]
pub trait StateValue {
    /// What the check names.
    const CHECK: () = ();
}

impl<T: Clone + Send + Sync + 'static> StateValue for T {}

/// Asks that a controller's future be `Send`; never called. The compiler's own message for a
/// future that is not `Send` says which value is held across which `.await`, better than a
/// message of ours could, so this asks for `Send` directly.
pub fn controller_future_must_be_send<F: Future + Send>(_future: F) {}
