//! The HTML shop: the basket page and its CSRF-protected forms.
//!
//! The page is rendered from `templates/basket.html` (which extends `templates/base.html`).
//! Each form posts to its own path and carries a single-use token issued for that path; the
//! controllers take a [`CsrfForm`] argument, so a post without a valid token is refused with
//! 400 before they run. After each action they flash a message and redirect back to `/`.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use rondo::channels::Channels;
use rondo::jobs::Jobs;
use rondo::session::Backend;
use rondo::{
    CsrfForm, Redirect, Session, SessionError, SessionManager, State, Template, Templates,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{add_to, basket_changed, parse_item, parse_user, Basket, Item};
use crate::live::LivePage;

/// What `basket.html` shows.
#[derive(Debug, Serialize)]
struct Home {
    user: Option<String>,
    notice: Option<String>,
    basket: Basket,
    /// Filled by a background job after log-in; `None` until then.
    recommendations: Option<Vec<String>>,
    csrf: Tokens,
    /// Where the sessions are kept, for the footer.
    store: &'static str,
    /// The live basket's settings (`None` with channels off).
    live: Option<crate::live::LivePage>,
}

/// One token per form on the page. Only the forms shown get one: every token issued is
/// kept in the session until it is used or pushed out.
#[derive(Debug, Default, Serialize)]
struct Tokens {
    login: Option<String>,
    logout: Option<String>,
    add: String,
    clear: Option<String>,
}

/// `GET /`: the basket, the user, the recommendations and the forms.
pub async fn home(
    State(templates): State<Templates>,
    State(sessions): State<SessionManager>,
    State(channels): State<Channels>,
    session: Session,
) -> Result<Template, SessionError> {
    let user: Option<String> = session.get("user").await?;
    let basket = Basket::from_items(session.get("basket").await?.unwrap_or_default());
    let mut csrf = Tokens {
        add: session.csrf_token("/basket/add").await?,
        ..Tokens::default()
    };
    if user.is_some() {
        csrf.logout = Some(session.csrf_token("/logout").await?);
    } else {
        csrf.login = Some(session.csrf_token("/login").await?);
    }
    // Issued even for an empty basket when the page is live: the form shows once an
    // item arrives from another tab.
    let live = LivePage::of(&channels, &session);
    if !basket.items.is_empty() || live.is_some() {
        csrf.clear = Some(session.csrf_token("/basket/clear").await?);
    }
    // Its basket channel names the session, which exists once a token was issued.
    let live = live.or_else(|| LivePage::of(&channels, &session));
    let page = Home {
        notice: session.flash_get("notice").await?,
        recommendations: session.get("recommendations").await?,
        user,
        basket,
        csrf,
        store: match sessions.backend() {
            Backend::Redis => "Redis",
            _ => "this process's memory (not shared between servers, lost on restart)",
        },
        live,
    };
    Ok(templates.template("basket.html", page))
}

/// `GET /static/shop.css`: the stylesheet, compiled into the binary, cached for a day.
pub async fn stylesheet() -> (StatusCode, HeaderMap, &'static str) {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    (StatusCode::OK, headers, include_str!("../static/shop.css"))
}

/// `GET /static/live.js`: the page's channel client, compiled into the binary.
pub async fn live_script() -> (StatusCode, HeaderMap, &'static str) {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (StatusCode::OK, headers, include_str!("../static/live.js"))
}

/// The add-item form.
#[derive(Debug, Deserialize)]
pub struct AddForm {
    sku: String,
    qty: String,
}

/// `POST /basket/add`.
pub async fn add_item(
    session: Session,
    State(channels): State<Channels>,
    CsrfForm(form): CsrfForm<AddForm>,
) -> Result<Redirect, SessionError> {
    let qty = form.qty.trim().parse::<u64>().unwrap_or(0);
    match parse_item(&json!({ "sku": form.sku.trim(), "qty": qty })) {
        Ok(item) => {
            let notice = format!("Added {} × {}.", item.qty, item.sku);
            let items = session
                .update("basket", move |items: Option<Vec<Item>>| {
                    add_to(items.unwrap_or_default(), &item)
                })
                .await?;
            basket_changed(&channels, &session, &Basket::from_items(items)).await;
            session.flash("notice", &notice)?;
        }
        Err(why) => session.flash("notice", &format!("Not added: {why}."))?,
    }
    Ok(Redirect::to("/"))
}

/// A form with no fields but its token.
#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// `POST /basket/clear`.
pub async fn clear_basket(
    session: Session,
    State(channels): State<Channels>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Redirect, SessionError> {
    session.remove("basket")?;
    session.persist().await?;
    basket_changed(&channels, &session, &Basket::default()).await;
    session.flash("notice", "Your basket is empty now.")?;
    Ok(Redirect::to("/"))
}

/// The log-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    user: String,
}

/// `POST /login`: a new session id, then the user.
pub async fn log_in(
    session: Session,
    State(jobs): State<Jobs>,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Redirect, SessionError> {
    match parse_user(&json!({ "user": form.user })) {
        Ok(user) => {
            session.regenerate().await?;
            session.flash("notice", &format!("Welcome, {user}."))?;
            session.put("user", &user)?;
            // Slow per-user work runs in the background and lands in the session.
            crate::jobs::hydrate_after_login(&session, &jobs).await?;
        }
        Err(why) => session.flash("notice", &format!("Not logged in: {why}."))?,
    }
    Ok(Redirect::to("/"))
}

/// `POST /logout`: the session ends; the notice lives in a new one.
pub async fn log_out(
    session: Session,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Redirect, SessionError> {
    session.destroy().await?;
    session.flash("notice", "You are logged out.")?;
    Ok(Redirect::to("/"))
}
