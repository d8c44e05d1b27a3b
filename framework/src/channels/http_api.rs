//! Pusher's HTTP events API: `POST /apps/{app_id}/events` and `/batch_events`, so that the
//! official server libraries (and Laravel's `pusher` broadcaster) publish here unchanged.
//!
//! Each request is authenticated by its signed query (`auth_key`, `auth_timestamp`,
//! `auth_version`, `body_md5`, `auth_signature`): a bad signature, a body that does not
//! match its MD5 or a timestamp more than 600 s off answers 401. The body is validated
//! with Pusher's limits (413 for data over 10 KB, 400 for the rest), and every event is
//! published through the bus, in order.

use bytes::Bytes;
use http::{StatusCode, Uri};

use super::handle::Channels;
use super::protocol::{
    parse_batch, parse_trigger, verify_request, EventLimits, Frame, PublishedEvent, SignedRequest,
    MAX_TIMESTAMP_SKEW_SECS,
};
use crate::extract::{Path, State};
use crate::respond::{ErrorPage, Json};

type Answer = Result<Json<serde_json::Value>, ErrorPage>;

/// `POST /apps/{app_id}/events`.
pub(crate) async fn trigger(
    State(channels): State<Channels>,
    Path(app_id): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Answer {
    if let Some(refusal) = check(&channels, &app_id, &uri, &body) {
        return Err(refusal);
    }
    let event = parse_trigger(&body, &EventLimits::default()).map_err(refused)?;
    publish(&channels, event).await?;
    Ok(Json(serde_json::json!({})))
}

/// `POST /apps/{app_id}/batch_events`.
pub(crate) async fn trigger_batch(
    State(channels): State<Channels>,
    Path(app_id): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Answer {
    if let Some(refusal) = check(&channels, &app_id, &uri, &body) {
        return Err(refusal);
    }
    let events = parse_batch(&body, &EventLimits::default()).map_err(refused)?;
    let count = events.len();
    for event in events {
        publish(&channels, event).await?;
    }
    let batch: Vec<serde_json::Value> = (0..count).map(|_| serde_json::json!({})).collect();
    Ok(Json(serde_json::json!({ "batch": batch })))
}

fn refused(err: super::protocol::EventsApiError) -> ErrorPage {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ErrorPage::new(status, err.to_string())
}

/// Checks the app id and the request's signature: the refusal, if any.
fn check(channels: &Channels, app_id: &str, uri: &Uri, body: &[u8]) -> Option<ErrorPage> {
    let shared = &channels.shared;
    if app_id != shared.config.app_id {
        return Some(ErrorPage::new(StatusCode::NOT_FOUND, "no such app"));
    }
    let request = SignedRequest {
        method: "POST",
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        body,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let err = verify_request(&request, &shared.credentials, now, MAX_TIMESTAMP_SKEW_SECS).err()?;
    tracing::info!(error = %err, "events API request refused");
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    Some(ErrorPage::new(status, err.to_string()))
}

async fn publish(channels: &Channels, event: PublishedEvent) -> Result<(), ErrorPage> {
    for channel in &event.channels {
        let frame = Frame::event(&event.name, channel, &event.data);
        channels
            .shared
            .publish(channel.as_str(), frame, event.socket_id.clone())
            .await
            .map_err(|err| ErrorPage::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string()))?;
    }
    Ok(())
}
