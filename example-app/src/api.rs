//! The basket shop's JSON API.
//!
//! Every read-modify-write of the basket goes through `Session::update`, so two requests
//! adding items at once (on one server or two) both land.

use http::StatusCode;
use rondo::channels::Channels;
use rondo::jobs::{JobStats, Jobs};
use rondo::{
    ErrorPage, Json, RequestHead, Responder, Response, Session, SessionError, SessionManager, State,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One basket line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Stock-keeping unit: 1 to 64 of `A-Z a-z 0-9 _ -`.
    pub sku: String,
    /// Quantity, 1 to 1000 per request.
    pub qty: u32,
}

/// The basket as the API returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basket {
    /// Lines in the order they were first added.
    pub items: Vec<Item>,
    /// Sum of the quantities.
    pub total_qty: u64,
}

impl Basket {
    /// The basket stored under `basket` (a list of lines).
    pub fn from_items(items: Vec<Item>) -> Self {
        let total_qty = items.iter().map(|i| u64::from(i.qty)).sum();
        Self { items, total_qty }
    }
}

/// Adds `item` to `items`, merging lines of the same SKU.
pub fn add_to(mut items: Vec<Item>, item: &Item) -> Vec<Item> {
    match items.iter_mut().find(|i| i.sku == item.sku) {
        Some(line) => line.qty = line.qty.saturating_add(item.qty),
        None => items.push(item.clone()),
    }
    items
}

/// Errors of the API: bad input is a 400 with `{"error": ...}`, session failures keep
/// their own status (503 when the store is down).
#[derive(Debug)]
pub enum ApiError {
    /// The request was not valid; the message says why.
    Invalid(String),
    /// The session could not be read or written.
    Session(SessionError),
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        Self::Session(err)
    }
}

impl Responder for ApiError {
    fn respond(self, head: &RequestHead) -> Response {
        match self {
            Self::Invalid(message) => {
                ErrorPage::new(StatusCode::BAD_REQUEST, message).respond(head)
            }
            Self::Session(err) => err.respond(head),
        }
    }
}

/// Checks an item given as JSON.
///
/// # Errors
///
/// A message for the client naming what is wrong.
pub fn parse_item(value: &Value) -> Result<Item, String> {
    let sku = value
        .get("sku")
        .and_then(Value::as_str)
        .ok_or("\"sku\" must be a string")?;
    let valid = (1..=64).contains(&sku.len())
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err("\"sku\" must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -".into());
    }
    let qty = value
        .get("qty")
        .and_then(Value::as_u64)
        .ok_or("\"qty\" must be a whole number")?;
    if !(1..=1000).contains(&qty) {
        return Err("\"qty\" must be between 1 and 1000".into());
    }
    Ok(Item {
        sku: sku.to_owned(),
        qty: u32::try_from(qty).map_err(|_| "\"qty\" is too large")?,
    })
}

/// Checks a user name: 1 to 64 printable characters.
///
/// # Errors
///
/// A message for the client.
pub fn parse_user(value: &Value) -> Result<String, String> {
    let user = value
        .get("user")
        .and_then(Value::as_str)
        .ok_or("\"user\" must be a string")?
        .trim();
    if user.is_empty() || user.chars().count() > 64 || user.chars().any(char::is_control) {
        return Err("\"user\" must be 1 to 64 printable characters".into());
    }
    Ok(user.to_owned())
}

/// `GET /api/basket`.
pub async fn basket(session: Session) -> Result<Json<Basket>, ApiError> {
    let items = session
        .get::<Vec<Item>>("basket")
        .await?
        .unwrap_or_default();
    Ok(Json(Basket::from_items(items)))
}

/// `POST /api/basket/items` with `{"sku": ..., "qty": ...}`.
pub async fn add_item(
    session: Session,
    State(channels): State<Channels>,
    Json(body): Json<Value>,
) -> Result<Json<Basket>, ApiError> {
    let item = parse_item(&body).map_err(ApiError::Invalid)?;
    let items = session
        .update("basket", move |items: Option<Vec<Item>>| {
            add_to(items.unwrap_or_default(), &item)
        })
        .await?;
    let basket = Basket::from_items(items);
    basket_changed(&channels, &session, &basket).await;
    Ok(Json(basket))
}

/// `DELETE /api/basket`.
pub async fn clear_basket(
    session: Session,
    State(channels): State<Channels>,
) -> Result<Json<Basket>, ApiError> {
    if session.contains("basket").await? {
        session.remove("basket")?;
        session.persist().await?;
        basket_changed(&channels, &session, &Basket::default()).await;
    }
    Ok(Json(Basket::default()))
}

/// Who is logged in.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Me {
    /// The user name, or `null`.
    pub user: Option<String>,
}

/// `POST /api/login` with `{"user": ...}`: a new session id, then the user, then a job
/// that fills `recommendations` in the background.
pub async fn log_in(
    session: Session,
    State(jobs): State<Jobs>,
    Json(body): Json<Value>,
) -> Result<Json<Me>, ApiError> {
    let user = parse_user(&body).map_err(ApiError::Invalid)?;
    session.regenerate().await?;
    session.put("user", &user)?;
    // The previous user's recommendations are not this one's.
    session.remove(crate::jobs::RECOMMENDATIONS)?;
    crate::jobs::hydrate_after_login(&session, &jobs).await?;
    Ok(Json(Me { user: Some(user) }))
}

/// What `GET /api/recommendations` answers.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recommendations {
    /// Whether the hydration job has stored them yet.
    pub ready: bool,
    /// The recommendations (empty until ready).
    pub items: Vec<String>,
}

/// `GET /api/recommendations`: `{"ready": bool, "items": [...]}`, from the session.
pub async fn recommendations(session: Session) -> Result<Json<Recommendations>, ApiError> {
    let items: Option<Vec<String>> = session.get(crate::jobs::RECOMMENDATIONS).await?;
    Ok(Json(Recommendations {
        ready: items.is_some(),
        items: items.unwrap_or_default(),
    }))
}

/// `GET /api/jobs/stats`: this server's job counters.
pub async fn job_stats(State(jobs): State<Jobs>) -> Json<JobStats> {
    Json(jobs.stats())
}

/// `POST /api/logout`: the session is destroyed and its cookie expired.
pub async fn log_out(session: Session) -> Result<Json<Me>, ApiError> {
    session.destroy().await?;
    Ok(Json(Me { user: None }))
}

/// `GET /api/me`.
pub async fn me(session: Session) -> Result<Json<Me>, ApiError> {
    Ok(Json(Me {
        user: session.get("user").await?,
    }))
}

/// `GET /readyz`: 200 when the session store answers, 503 otherwise.
pub async fn ready(State(sessions): State<SessionManager>) -> Result<&'static str, SessionError> {
    sessions.ready().await.map(|()| "ready")
}

/// Tells every tab of `session` its basket is now `basket` (logged, never fatal: the change
/// itself stands).
pub async fn basket_changed(channels: &Channels, session: &Session, basket: &Basket) {
    crate::live::publish(channels, session, crate::live::BASKET_UPDATED, basket).await;
}
