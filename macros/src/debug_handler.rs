//! `#[debug_handler]`: the controller unchanged, followed by checks the compiler reports one
//! by one.
//!
//! The checks sit in an anonymous `const` block after the function. Each states one rule
//! about one type by naming an item of a trait for it (`<Json<Item> as
//! FromRequestParts>::DEFERS`): where the type does not implement the trait, the error is on
//! the user's own type, with the trait's `#[diagnostic::on_unimplemented]` message (see
//! `rondo::handler::checks`). The future is checked by passing it to a function that asks
//! for `Send`, spanned to the function's name. A rule the type system cannot state (an
//! `async fn`, no `self`) is an error from here, and then no check is emitted.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

/// As many arguments as `Handler` has implementations for.
const MAX_ARGS: usize = 8;

/// Rondo's extractors that read the body (they implement `FromRequest` only), by the last
/// segment of their path. A user type of the same name that does implement
/// `FromRequestParts` still passes: the name only picks the message.
const BODY_EXTRACTORS: &[&str] = &["Json", "Form", "CsrfForm", "String", "Bytes", "Request"];

/// Expands the attribute; errors become `compile_error!`s next to the unchanged item, so a
/// refused function still exists and its callers are not reported as well.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "`#[debug_handler]` goes on a controller: an `async fn`",
            );
            return with_errors(item, error);
        }
    };
    let mut errors = Errors::default();
    if !attr.is_empty() {
        errors.push(&attr, "`#[debug_handler]` takes no arguments");
    }
    refuse_unsupported(&function, &mut errors);
    if let Some(error) = errors.take() {
        return with_errors(function.into_token_stream(), error);
    }
    let checks = checks(&function);
    quote! {
        #function
        #[doc(hidden)]
        #[allow(warnings, clippy::all)]
        const _: () = {
            #checks
        };
    }
}

/// The item followed by the errors.
fn with_errors(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    quote! { #item #error }
}

/// Refuses what is not a free, non-generic `async fn` of at most eight arguments.
fn refuse_unsupported(function: &ItemFn, errors: &mut Errors) {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        errors.push(
            sig.fn_token,
            "a controller must be an `async fn`: write `async fn`, and `.await` what it calls",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(unsafety, "a controller cannot be an `unsafe fn`");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(
            &sig.generics,
            "`#[debug_handler]` does not check generic functions: \
             check a copy with the type parameters filled in",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(variadic, "a controller cannot be variadic");
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(
                receiver,
                "`#[debug_handler]` checks free functions, not methods: \
                 a controller takes no `self`",
            ),
            FnArg::Typed(arg) => {
                if let Type::ImplTrait(_) = &*arg.ty {
                    errors.push(
                        &arg.ty,
                        "`#[debug_handler]` does not check generic functions: \
                         name the argument's type instead of `impl Trait`",
                    );
                }
            }
        }
    }
    if let Some(extra) = sig.inputs.iter().nth(MAX_ARGS) {
        errors.push(
            extra,
            "a controller takes at most 8 arguments: \
             gather some into one type that implements `FromRequestParts`",
        );
    }
}

/// One check per argument, one for the return type, one for the future.
fn checks(function: &ItemFn) -> TokenStream {
    let name = &function.sig.ident;
    let types: Vec<&Type> = function
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(arg) => Some(&*arg.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let mut rules = TokenStream::new();
    for (index, ty) in types.iter().enumerate() {
        let is_last = index + 1 == types.len();
        rules.extend(if let Some([value]) = type_arguments(ty, "State") {
            rule(value, quote!(StateValue), quote!(CHECK))
        } else if is_last {
            rule(ty, quote!(FromRequest), quote!(DEFERS))
        } else if is_body_extractor(ty) {
            rule(ty, quote!(ArgumentBeforeTheLast), quote!(CHECK))
        } else {
            rule(ty, quote!(FromRequestParts), quote!(DEFERS))
        });
    }
    if let ReturnType::Type(_, output) = &function.sig.output {
        if mentions_impl_trait(output) {
            // Checked by the compiler where the function is defined.
        } else if let Some([ok, err]) = type_arguments(output, "Result") {
            // `Result<T, E>` is a responder when both are: name the one that is not.
            rules.extend(rule(ok, quote!(Responder), quote!(respond)));
            rules.extend(rule(err, quote!(Responder), quote!(respond)));
        } else {
            rules.extend(rule(output, quote!(Responder), quote!(respond)));
        }
    }
    let args: Vec<_> = (1..=types.len())
        .map(|index| format_ident!("argument_{}", index, span = Span::mixed_site()))
        .collect();
    let send = quote_spanned! {name.span()=>
        ::rondo::__private::controller_future_must_be_send(#name(#(#args),*));
    };
    quote! {
        fn __rondo_rules() {
            #rules
        }
        fn __rondo_future(#(#args: #types),*) {
            #send
        }
    }
}

/// `<ty as Trait>::item`: an error on `ty`, with `Trait`'s message, where `ty` does not
/// implement `Trait`. Elided lifetimes in `ty` are inferred, as in any function body.
fn rule(ty: &Type, rule: TokenStream, item: TokenStream) -> TokenStream {
    quote! {
        let _ = <#ty as ::rondo::__private::#rule>::#item;
    }
}

/// The type arguments of `Name<A, B, ...>`, by the path's last segment: `State<T>` gives
/// `[T]`. Only the name is known here: a user's own `State` or two-argument `Result` would
/// be checked as Rondo's and the standard one.
fn type_arguments<'a, const N: usize>(ty: &'a Type, name: &str) -> Option<[&'a Type; N]> {
    let segment = last_segment(ty)?;
    if segment.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(generics) = &segment.arguments else {
        return None;
    };
    let types: Vec<&Type> = generics
        .args
        .iter()
        .map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect::<Option<_>>()?;
    types.try_into().ok()
}

/// Whether the type's name is one of Rondo's body extractors.
fn is_body_extractor(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|segment| {
        BODY_EXTRACTORS
            .iter()
            .any(|extractor| segment.ident == extractor)
    })
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        Type::Paren(inner) => last_segment(&inner.elem),
        Type::Group(inner) => last_segment(&inner.elem),
        _ => None,
    }
}

/// Whether `impl` appears anywhere in the type: such a type cannot be named in a check
/// (`<impl Responder as ...>`), and the compiler checks an opaque return type itself.
fn mentions_impl_trait(ty: &Type) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Ident(ident) => ident == "impl",
            TokenTree::Group(group) => scan(group.stream()),
            _ => false,
        })
    }
    scan(ty.to_token_stream())
}

/// Errors gathered so that every refusal is reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error covering `tokens`, from the first to the last.
    fn push(&mut self, tokens: impl ToTokens, message: &str) {
        let error = syn::Error::new_spanned(tokens, message);
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn take(&mut self) -> Option<syn::Error> {
        self.0.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(source: &str) -> Type {
        syn::parse_str(source).expect("a type")
    }

    fn expand_str(attr: &str, item: &str) -> String {
        let attr: TokenStream = attr.parse().expect("tokens");
        let item: TokenStream = item.parse().expect("tokens");
        expand(attr, item).to_string()
    }

    #[test]
    fn body_extractors_are_known_by_their_last_segment() {
        assert!(is_body_extractor(&ty("Json<Item>")));
        assert!(is_body_extractor(&ty("rondo::Form<Item>")));
        assert!(is_body_extractor(&ty("String")));
        assert!(!is_body_extractor(&ty("Session")));
        assert!(!is_body_extractor(&ty("Path<String>")));
        assert!(!is_body_extractor(&ty("&str")));
    }

    #[test]
    fn type_arguments_match_name_and_count() {
        let state = ty("rondo::State<Hits>");
        assert!(
            matches!(type_arguments::<1>(&state, "State"), Some([inner]) if *inner == ty("Hits"))
        );
        assert!(type_arguments::<2>(&state, "State").is_none());
        assert!(type_arguments::<1>(&state, "Json").is_none());
        let result = ty("Result<String, ApiError>");
        assert!(type_arguments::<2>(&result, "Result").is_some());
        assert!(type_arguments::<2>(&ty("io::Result<String>"), "Result").is_none());
        assert!(type_arguments::<1>(&ty("Cow<'static, str>"), "Cow").is_none());
    }

    #[test]
    fn impl_trait_is_found_anywhere_in_a_type() {
        assert!(mentions_impl_trait(&ty("impl Responder")));
        assert!(mentions_impl_trait(&ty(
            "Result<impl Responder, ErrorPage>"
        )));
        assert!(!mentions_impl_trait(&ty("Result<Json<Item>, ErrorPage>")));
    }

    #[test]
    fn a_controller_gets_one_check_per_argument_and_the_future() {
        let out = expand_str(
            "",
            "async fn add(session: Session, Json(item): Json<Item>) -> Result<String, ApiError> { todo!() }",
        );
        assert!(out.starts_with("async fn add"), "{out}");
        assert!(
            out.contains("< Session as :: rondo :: __private :: FromRequestParts >"),
            "{out}"
        );
        assert!(
            out.contains("< Json < Item > as :: rondo :: __private :: FromRequest >"),
            "{out}"
        );
        assert!(
            out.contains("< ApiError as :: rondo :: __private :: Responder >"),
            "{out}"
        );
        assert!(
            out.contains("controller_future_must_be_send (add ("),
            "{out}"
        );
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn refusals_keep_the_function_and_emit_no_check() {
        for (attr, item) in [
            ("", "fn sync() -> String { String::new() }"),
            ("", "async fn method(&self) -> String { String::new() }"),
            (
                "",
                "async fn generic<T>(value: Path<T>) -> String { String::new() }",
            ),
            ("strict", "async fn fine() -> String { String::new() }"),
        ] {
            let out = expand_str(attr, item);
            assert!(out.contains("compile_error"), "{out}");
            assert!(!out.contains("__rondo_rules"), "{out}");
            assert!(out.contains("-> String { String :: new () }"), "{out}");
        }
        let out = expand_str("", "struct NotAFunction;");
        assert!(out.starts_with("struct NotAFunction ;"), "{out}");
        assert!(out.contains("compile_error"), "{out}");
    }
}
