//! The HTML shop: the basket page and its CSRF-protected forms.
//!
//! Each form posts to its own path and carries a single-use token issued for that path; the
//! controllers take a [`CsrfForm`] argument, so a post without a valid token is refused with
//! 400 before they run. After each action they flash a message and redirect back to `/`.

use rondo::respond::escape_html;
use rondo::{CsrfForm, Html, Redirect, Session, SessionError};
use serde::Deserialize;
use serde_json::json;

use crate::api::{add_to, parse_item, parse_user, Basket, Item};

/// `GET /`: the basket, the user and the forms.
pub async fn home(session: Session) -> Result<Html<String>, SessionError> {
    let user: Option<String> = session.get("user").await?;
    let basket = Basket::from_items(
        session
            .get::<Vec<Item>>("basket")
            .await?
            .unwrap_or_default(),
    );
    let notice: Option<String> = session.flash_get("notice").await?;
    let mut page = String::from(concat!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>Rondo shop</title></head>\n<body><h1>Rondo shop</h1>\n"
    ));
    if let Some(notice) = notice {
        page += &format!(
            "<p class=\"flash\" role=\"status\">{}</p>\n",
            escape_html(&notice)
        );
    }
    match &user {
        Some(user) => {
            page += &format!(
                "<p>Logged in as <strong id=\"user\">{}</strong>.</p>\n",
                escape_html(user)
            );
            page += &form(
                "/logout",
                &session.csrf_token("/logout").await?,
                "",
                "Log out",
            );
        }
        None => {
            let fields = "<label>Name <input name=\"user\" required maxlength=\"64\"></label>";
            page += &form(
                "/login",
                &session.csrf_token("/login").await?,
                fields,
                "Log in",
            );
        }
    }
    page += "<h2>Basket</h2>\n";
    if basket.items.is_empty() {
        page += "<p id=\"empty\">Your basket is empty.</p>\n";
    } else {
        page += "<table id=\"basket\"><tr><th>SKU</th><th>Quantity</th></tr>\n";
        for item in &basket.items {
            page += &format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                escape_html(&item.sku),
                item.qty
            );
        }
        page += &format!(
            "</table>\n<p>Total items: <span id=\"total\">{}</span></p>\n",
            basket.total_qty
        );
        page += &form(
            "/basket/clear",
            &session.csrf_token("/basket/clear").await?,
            "",
            "Empty the basket",
        );
    }
    let fields = concat!(
        "<label>SKU <input name=\"sku\" required maxlength=\"64\" pattern=\"[A-Za-z0-9_-]+\"></label> ",
        "<label>Quantity <input name=\"qty\" type=\"number\" min=\"1\" max=\"1000\" value=\"1\"></label>"
    );
    page += &form(
        "/basket/add",
        &session.csrf_token("/basket/add").await?,
        fields,
        "Add to basket",
    );
    page += "</body></html>\n";
    Ok(Html(page))
}

fn form(action: &str, token: &str, fields: &str, button: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"_csrf\" value=\"{}\">{fields} \
         <button type=\"submit\">{button}</button></form>\n",
        escape_html(token)
    )
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
    CsrfForm(form): CsrfForm<AddForm>,
) -> Result<Redirect, SessionError> {
    let qty = form.qty.trim().parse::<u64>().unwrap_or(0);
    match parse_item(&json!({ "sku": form.sku.trim(), "qty": qty })) {
        Ok(item) => {
            let notice = format!("Added {} × {}.", item.qty, item.sku);
            session
                .update("basket", move |items: Option<Vec<Item>>| {
                    add_to(items.unwrap_or_default(), &item)
                })
                .await?;
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
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Redirect, SessionError> {
    session.remove("basket")?;
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
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Redirect, SessionError> {
    match parse_user(&json!({ "user": form.user })) {
        Ok(user) => {
            session.regenerate().await?;
            session.flash("notice", &format!("Welcome, {user}."))?;
            session.put("user", &user)?;
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
