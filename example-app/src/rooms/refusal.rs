//! [`RefusedPage`]: the answer to a join link that does not let the visitor in. Browsers
//! get a page of its own (`templates/rooms/refused.html`: why, and for a link not open yet
//! when it opens, with a countdown), everybody else `{"error", "status", "reason"}` (and
//! `starts_at`); each reason has its status, and a link not open yet says when to come back
//! (`Retry-After`).

use http::header::{HeaderValue, RETRY_AFTER};
use http::StatusCode;
use rondo::signed::unix_now;
use rondo::{Json, RequestHead, Responder, Response, Templates};
use serde_json::json;

use super::invites::Refused;
use super::model::{utc_iso, utc_text};

/// Why a join link did not let a visitor in, as an answer.
pub struct RefusedPage {
    /// Why.
    pub refused: Refused,
    /// The templates, for browsers.
    pub templates: Templates,
}

impl RefusedPage {
    fn status(&self) -> StatusCode {
        match self.refused {
            Refused::NotStarted(_) | Refused::Full | Refused::Removed => StatusCode::FORBIDDEN,
            Refused::Expired | Refused::Revoked | Refused::Closed => StatusCode::GONE,
            Refused::Invalid => StatusCode::NOT_FOUND,
        }
    }

    fn text(&self) -> (&'static str, String) {
        match self.refused {
            Refused::NotStarted(at) => (
                "Not started yet",
                format!("This room opens to this link at {}.", utc_text(at)),
            ),
            Refused::Expired => (
                "This link has expired",
                "Ask the host for a new one.".into(),
            ),
            Refused::Full => (
                "This room is full",
                "Every place this link (or the room) has is taken.".into(),
            ),
            Refused::Revoked => (
                "This link was withdrawn",
                "The host withdrew it; ask them for a new one.".into(),
            ),
            Refused::Invalid => (
                "This link is not valid",
                "Check that you copied all of it.".into(),
            ),
            Refused::Closed => ("This room has been closed", "The host closed it.".into()),
            Refused::Removed => (
                "You were removed from this room",
                "The host removed you; this link does not let you back in.".into(),
            ),
        }
    }
}

impl Responder for RefusedPage {
    fn respond(self, head: &RequestHead) -> Response {
        let status = self.status();
        let (title, message) = self.text();
        let starts_at = match self.refused {
            Refused::NotStarted(at) => Some(at),
            _ => None,
        };
        let mut response = if head.prefers_html() {
            let context = json!({
                "reason": self.refused.code(),
                "title": title,
                "message": message,
                "starts_at": starts_at,
                "starts_iso": starts_at.map(utc_iso),
                "starts": starts_at.map(utc_text),
            });
            (
                status,
                self.templates.template("rooms/refused.html", context),
            )
                .respond(head)
        } else {
            let mut body = json!({
                "error": title,
                "status": status.as_u16(),
                "reason": self.refused.code(),
            });
            if let Some(at) = starts_at {
                body["starts_at"] = at.into();
            }
            (status, Json(body)).respond(head)
        };
        if let Some(at) = starts_at {
            let wait = at.saturating_sub(unix_now()).max(1);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(wait));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, Method};

    use super::*;

    #[test]
    fn each_refusal_has_its_status_and_only_not_started_says_when() {
        let templates = Templates::from_sources([("rooms/refused.html", "{{ reason }}")])
            .unwrap_or_else(|e| panic!("{e}"));
        let later = unix_now() + 120;
        let cases = [
            (Refused::NotStarted(later), 403),
            (Refused::Expired, 410),
            (Refused::Full, 403),
            (Refused::Revoked, 410),
            (Refused::Invalid, 404),
            (Refused::Closed, 410),
            (Refused::Removed, 403),
        ];
        let mut browser = HeaderMap::new();
        browser.insert("accept", HeaderValue::from_static("text/html"));
        for head in [
            RequestHead::new(&Method::GET, &HeaderMap::new()),
            RequestHead::new(&Method::GET, &browser),
        ] {
            for (refused, status) in cases {
                let page = RefusedPage {
                    refused,
                    templates: templates.clone(),
                };
                let response = page.respond(&head);
                assert_eq!(response.status().as_u16(), status, "{refused:?}");
                let retry = response.headers().get(RETRY_AFTER);
                match refused {
                    Refused::NotStarted(_) => {
                        let wait: u64 = retry
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        assert!((110..=120).contains(&wait), "{wait}");
                    }
                    _ => assert!(retry.is_none(), "{refused:?}"),
                }
            }
        }
    }
}
