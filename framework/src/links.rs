//! Links with a quota and a start time: "the first five people", "from 18:00", "only Ann".
//!
//! A [signed link](crate::signed) needs no storage, but it cannot count. A session app also
//! hands out invitations that may be used only `max_uses` times, only inside a time window,
//! perhaps only by one person, and that can be withdrawn. Those need shared state, and the
//! state must change atomically: when fifty people click the link of a five-place room at
//! the same moment, on however many servers, exactly five get in.
//!
//! An app uses [`Links`] (a component: `State<Links>` in controllers), built on the
//! sessions' store ([`Links::from_config`]): Redis when the sessions are in Redis, this
//! process's memory otherwise.
//!
//! # Rules
//!
//! A link is valid from `starts_at` up to and including `expires_at` (Unix seconds; the
//! same inclusive expiry as signed links). [`LinkStore::redeem`] answers with the first
//! rule that applies, in this order:
//!
//! 1. no such link (never made, purged, or a malformed id): [`Refusal::Unknown`];
//! 2. a personal invitation for someone else: [`Refusal::NotForYou`] (a stranger learns
//!    nothing more about it);
//! 3. withdrawn: [`Refusal::Revoked`];
//! 4. too early: [`Refusal::NotStarted`], with the opening time;
//! 5. too late: [`Refusal::Expired`];
//! 6. this redeemer got in before: admitted again, using no new place (`first_time: false`),
//!    so reloading the page or opening it on a second device never burns a place;
//! 7. every place taken: [`Refusal::UsedUp`];
//! 8. otherwise: admitted, one place used (`first_time: true`).
//!
//! Who the redeemer is, is the app's to say: a user id, a [`SessionRef`](crate::SessionRef)
//! for anonymous visitors. A personal invitation ([`NewLink::for_participant`]) admits only
//! the identity it names, so whoever holds the link must also be that person.
//!
//! As an answer, a [`Refusal`] is `404` (unknown), `403` (not for you, not started — with
//! `Retry-After` —, used up) or `410` (revoked, expired), with its message and, for JSON
//! clients, its [`code`](Refusal::code).
//!
//! # Stores
//!
//! [`RedisLinks`] keeps each link in Redis and decides in one Lua script, by **Redis'
//! clock** (`TIME`), so application servers with skewed clocks still agree on when a link
//! opens and closes, and no two redeemers can take the last place. Its two keys per link
//! share a hash tag, so it runs on Redis Cluster as on one Redis. [`MemoryLinks`] follows
//! the same rules in process, by the system clock, for development and tests; its links are
//! not shared between servers. Both implement [`LinkStore`], and one test suite runs against
//! both.
//!
//! A stored link is kept for a grace period after it expires ([`DEFAULT_GRACE`]), so that a
//! late visitor is told "expired" rather than "unknown", and then purged.

mod component;
mod id;
mod memory;
mod redis;
mod scripts;

pub use self::component::Links;
pub use self::id::LinkId;
pub use self::memory::MemoryLinks;
pub use self::redis::RedisLinks;

use std::time::Duration;

use futures_util::future::BoxFuture;
use http::header::{HeaderValue, RETRY_AFTER};
use http::StatusCode;

use crate::body::Response;
use crate::respond::{ErrorPage, Json, RequestHead, Responder};

/// How long a link is kept after it expires, unless the store is told otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// The latest accepted time, 9999-12-31T23:59:59Z: Lua numbers (doubles) and Redis'
/// `EXPIREAT` represent every second up to it exactly.
pub const MAX_TIMESTAMP: u64 = 253_402_300_799;

/// A link to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    /// Where the link leads once redeemed (a path, a room name, ...): opaque to the store.
    pub target: String,
    /// The first second it may be redeemed (Unix seconds).
    pub starts_at: u64,
    /// The last second it may be redeemed (Unix seconds, inclusive).
    pub expires_at: u64,
    /// How many distinct redeemers it admits; at least 1.
    pub max_uses: u32,
    /// For a personal invitation, the only identity that may redeem it.
    pub participant: Option<String>,
}

impl NewLink {
    /// A link to `target` for `max_uses` distinct redeemers, from `starts_at` through
    /// `expires_at`, open to anyone who has it.
    pub fn new(target: impl Into<String>, starts_at: u64, expires_at: u64, max_uses: u32) -> Self {
        Self {
            target: target.into(),
            starts_at,
            expires_at,
            max_uses,
            participant: None,
        }
    }

    /// Makes it a personal invitation: only `identity` may redeem it.
    #[must_use]
    pub fn for_participant(mut self, identity: impl Into<String>) -> Self {
        self.participant = Some(identity.into());
        self
    }

    /// Checks what can be checked without a clock.
    ///
    /// # Errors
    ///
    /// [`LinkError::InvalidLink`] naming the problem.
    pub(crate) fn validate(&self) -> Result<(), LinkError> {
        let problem = if self.target.is_empty() {
            "the target is empty"
        } else if self.max_uses == 0 {
            "max_uses must be at least 1"
        } else if self.expires_at < self.starts_at {
            "it expires before it starts"
        } else if self.expires_at > MAX_TIMESTAMP {
            "it expires after the year 9999"
        } else if self.participant.as_deref() == Some("") {
            "the participant identity is empty"
        } else {
            return Ok(());
        };
        Err(LinkError::InvalidLink(problem))
    }
}

/// A stored link, as [`LinkStore::inspect`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Its id.
    pub id: LinkId,
    /// Where it leads.
    pub target: String,
    /// The first second it may be redeemed.
    pub starts_at: u64,
    /// The last second it may be redeemed.
    pub expires_at: u64,
    /// How many distinct redeemers it admits.
    pub max_uses: u32,
    /// How many distinct redeemers it has admitted.
    pub uses: u32,
    /// For a personal invitation, who it is for.
    pub participant: Option<String>,
    /// Whether it was withdrawn by [`LinkStore::revoke`].
    pub revoked: bool,
}

/// An admission by [`LinkStore::redeem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// Where the link leads.
    pub target: String,
    /// How many distinct redeemers the link has admitted so far, this one included.
    pub uses: u32,
    /// Whether this redeemer took a new place now (`false`: admitted before, no new place).
    pub first_time: bool,
}

/// Why [`LinkStore::redeem`] turned a redeemer away. Each message is fit for the error page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The link does not open before `starts_at` (`403`, with `Retry-After`).
    #[error("This link is not open yet.")]
    NotStarted {
        /// When it opens (Unix seconds), for a "come back at ..." message.
        starts_at: u64,
    },
    /// The link's time is up (`410`).
    #[error("This link has expired.")]
    Expired,
    /// Every place has been taken (`403`).
    #[error("This link has already been used as many times as it allows.")]
    UsedUp,
    /// The link was withdrawn (`410`).
    #[error("This link has been withdrawn.")]
    Revoked,
    /// A personal invitation for someone else (`403`).
    #[error("This link is a personal invitation for someone else.")]
    NotForYou,
    /// No such link (`404`).
    #[error("This link does not exist.")]
    Unknown,
}

impl Refusal {
    /// Every refusal, for metrics that list each reason from the start.
    pub const ALL: [Refusal; 6] = [
        Refusal::NotStarted { starts_at: 0 },
        Refusal::Expired,
        Refusal::UsedUp,
        Refusal::Revoked,
        Refusal::NotForYou,
        Refusal::Unknown,
    ];

    /// A stable name for programs and metrics: `not_started`, `expired`, `used_up`,
    /// `revoked`, `not_for_you` or `unknown`.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotStarted { .. } => "not_started",
            Self::Expired => "expired",
            Self::UsedUp => "used_up",
            Self::Revoked => "revoked",
            Self::NotForYou => "not_for_you",
            Self::Unknown => "unknown",
        }
    }

    /// The status this refusal answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::NotStarted { .. } | Self::UsedUp | Self::NotForYou => StatusCode::FORBIDDEN,
            Self::Expired | Self::Revoked => StatusCode::GONE,
            Self::Unknown => StatusCode::NOT_FOUND,
        }
    }
}

/// The refusal's status and message: an HTML error page for browsers; for everybody else
/// `{"error": message, "status": code, "reason": code()}`, plus `starts_at` for a link not
/// open yet. A link not open yet also says when to come back (`Retry-After`, in seconds).
impl Responder for Refusal {
    fn respond(self, head: &RequestHead) -> Response {
        let status = self.status();
        let mut response = if head.prefers_html() {
            ErrorPage::new(status, self.to_string()).respond(head)
        } else {
            let mut body = serde_json::json!({
                "error": self.to_string(),
                "status": status.as_u16(),
                "reason": self.code(),
            });
            if let Self::NotStarted { starts_at } = self {
                body["starts_at"] = starts_at.into();
            }
            (status, Json(body)).respond(head)
        };
        if let Self::NotStarted { starts_at } = self {
            let wait = starts_at.saturating_sub(crate::signed::unix_now()).max(1);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(wait));
        }
        response
    }
}

/// What a redemption came to: admitted, or turned away with a reason.
pub type Redemption = Result<Redeemed, Refusal>;

/// A failure of the store itself, or a request it cannot take.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The new link breaks a rule (no target, no places, ends before it starts, already
    /// expired, ...).
    #[error("invalid link: {0}")]
    InvalidLink(&'static str),
    /// The redeemer identity is empty.
    #[error("a redeemer identity must not be empty")]
    InvalidRedeemer,
    /// The freshly drawn id is already taken (two random 128-bit ids collided: in practice,
    /// a broken random source).
    #[error("the new link id is already in use")]
    IdCollision,
    /// No randomness for a new id.
    #[error("no randomness for a link id: {0}")]
    Random(String),
    /// Redis could not be reached, or did not answer within the pool's timeout.
    #[error("link store unavailable: {0}")]
    Unavailable(String),
    /// Redis answered in a shape the store does not write (a foreign key, a changed script).
    #[error("unexpected link data in redis: {0}")]
    Corrupt(String),
}

/// `400` for a link or redeemer the caller got wrong, `503` (with `Retry-After: 1`) while
/// the store is unreachable, `500` (logged) for the rest.
impl Responder for LinkError {
    fn respond(self, head: &RequestHead) -> Response {
        let page = match &self {
            Self::InvalidLink(_) | Self::InvalidRedeemer => {
                ErrorPage::new(StatusCode::BAD_REQUEST, self.to_string())
            }
            Self::Unavailable(_) => {
                tracing::warn!(error = %self, "links: store unavailable");
                ErrorPage::new(StatusCode::SERVICE_UNAVAILABLE, "links are unavailable")
                    .retry_after(1)
            }
            Self::IdCollision | Self::Random(_) | Self::Corrupt(_) => {
                tracing::error!(error = %self, "links: store failure");
                ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        };
        page.respond(head)
    }
}

/// Where links live: created, redeemed, revoked and inspected with the rules of the
/// [module documentation](self).
///
/// Object-safe, so an application can hold an `Arc<dyn LinkStore>` and pick the store at
/// start-up. Ids are taken as text straight from the URL: a malformed id is simply an
/// unknown link.
pub trait LinkStore: Send + Sync {
    /// Stores a new link under a fresh random id and returns the id.
    ///
    /// # Errors
    ///
    /// [`LinkError::InvalidLink`] when it breaks a rule, including expiring before now by
    /// the store's clock; otherwise a store failure.
    fn create(&self, link: NewLink) -> BoxFuture<'_, Result<LinkId, LinkError>>;

    /// Redeems link `id` for `redeemer` (a user id, a session reference: whoever should
    /// count as one place), atomically.
    ///
    /// # Errors
    ///
    /// [`LinkError::InvalidRedeemer`] for an empty identity, otherwise a store failure. A
    /// refusal is not an error: it is the `Err` of the returned [`Redemption`].
    fn redeem<'a>(
        &'a self,
        id: &'a str,
        redeemer: &'a str,
    ) -> BoxFuture<'a, Result<Redemption, LinkError>>;

    /// Withdraws link `id` for everyone, those already admitted included. Returns whether
    /// there was such a link.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn revoke<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, LinkError>>;

    /// The stored state of link `id`, `None` when there is no such link.
    ///
    /// # Errors
    ///
    /// A store failure.
    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<LinkInfo>, LinkError>>;
}

/// A grace period in whole seconds, at least one, so that a link's keys never expire in
/// the same second as the link itself.
pub(crate) fn grace_seconds(grace: Duration) -> u64 {
    grace.as_secs().max(1)
}
