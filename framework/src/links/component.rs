//! [`Links`]: the app's link store with its counters, installed as a component.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::{
    LinkError, LinkId, LinkInfo, LinkStore, MemoryLinks, NewLink, Redemption, RedisLinks, Refusal,
};
use crate::component::{Component, Installer};
use crate::config::Config;
use crate::redis::Redis;
use crate::session::{Backend, SessionManager};

/// The app's links: a [`LinkStore`] with the `rondo_links_*` counters. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use rondo::links::{LinkError, Links, NewLink, Refusal};
/// use rondo::signed::unix_now;
/// use rondo::{App, Config, Path, SessionManager, State};
///
/// /// Lets `user` in if the link still has a place (a refusal answers 403, 404 or 410).
/// async fn join(
///     State(links): State<Links>,
///     Path((id, user)): Path<(String, String)>,
/// ) -> Result<Result<String, Refusal>, LinkError> {
///     let redemption = links.redeem(&id, &user).await?;
///     Ok(redemption.map(|admitted| format!("welcome to {}", admitted.target)))
/// }
///
/// let app = App::new(Config::load("config.ini")?);
/// let sessions = SessionManager::from_config(app.config(), app.redis()).await?;
/// let links = Links::from_config(app.config(), app.redis(), &sessions).await?;
/// let now = unix_now();
/// let id = links.create(NewLink::new("/rooms/blue", now, now + 3600, 5)).await?;
/// println!("invite: /join/{id}/<user>");
/// let app = app.with(sessions).with(links).post("/join/{id}/{user}", join);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Links {
    store: Arc<dyn LinkStore>,
    metrics: LinkMetrics,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlaceLabel {
    /// `new` for a first admission, `again` for a redeemer who had a place.
    place: &'static str,
}

/// The counters, shared handles updated where things happen.
#[derive(Clone, Default)]
struct LinkMetrics {
    created: Counter,
    redeemed: Family<PlaceLabel, Counter>,
    refused: Family<ReasonLabel, Counter>,
}

impl Links {
    /// Links on `store`.
    pub fn new(store: impl LinkStore + 'static) -> Self {
        let metrics = LinkMetrics::default();
        // Every series from the start, so a dashboard sees zeros rather than gaps.
        for place in ["new", "again"] {
            let _ = metrics.redeemed.get_or_create(&PlaceLabel { place });
        }
        for refusal in Refusal::ALL {
            let _ = metrics.refused.get_or_create(&ReasonLabel {
                reason: refusal.code(),
            });
        }
        Self {
            store: Arc::new(store),
            metrics,
        }
    }

    /// Links where the sessions are: in Redis, on the sessions' pool (`[session]
    /// redis_connection_pool`), when `sessions` keeps them there; in this process's memory
    /// otherwise (not shared between servers, lost on restart), which is logged.
    ///
    /// # Errors
    ///
    /// [`LinkError::Unavailable`] when the pool cannot be built.
    pub async fn from_config(
        config: &Config,
        redis: &Redis,
        sessions: &SessionManager,
    ) -> Result<Self, LinkError> {
        if sessions.backend() == Backend::Redis {
            let pool = redis
                .pool(&config.session.redis_connection_pool)
                .await
                .map_err(|e| LinkError::Unavailable(e.to_string()))?;
            Ok(Self::new(RedisLinks::new(pool)))
        } else {
            tracing::warn!(
                "links are kept in this process's memory (the sessions are): they are not \
                 shared between servers and are lost on restart"
            );
            Ok(Self::new(MemoryLinks::new()))
        }
    }

    /// The store behind it.
    pub fn store(&self) -> &dyn LinkStore {
        self.store.as_ref()
    }

    /// Stores a new link; see [`LinkStore::create`].
    ///
    /// # Errors
    ///
    /// As [`LinkStore::create`].
    pub async fn create(&self, link: NewLink) -> Result<LinkId, LinkError> {
        let id = self.store.create(link).await?;
        self.metrics.created.inc();
        Ok(id)
    }

    /// Redeems link `id` for `redeemer`, atomically; see [`LinkStore::redeem`]. Counted by
    /// outcome.
    ///
    /// # Errors
    ///
    /// As [`LinkStore::redeem`]: a refusal is the `Err` of the [`Redemption`], not an error.
    pub async fn redeem(&self, id: &str, redeemer: &str) -> Result<Redemption, LinkError> {
        let redemption = self.store.redeem(id, redeemer).await?;
        match &redemption {
            Ok(admitted) => {
                let place = if admitted.first_time { "new" } else { "again" };
                self.metrics
                    .redeemed
                    .get_or_create(&PlaceLabel { place })
                    .inc();
            }
            Err(refusal) => {
                let reason = refusal.code();
                self.metrics
                    .refused
                    .get_or_create(&ReasonLabel { reason })
                    .inc();
            }
        }
        Ok(redemption)
    }

    /// Withdraws link `id`; see [`LinkStore::revoke`].
    ///
    /// # Errors
    ///
    /// As [`LinkStore::revoke`].
    pub async fn revoke(&self, id: &str) -> Result<bool, LinkError> {
        self.store.revoke(id).await
    }

    /// The stored state of link `id`; see [`LinkStore::inspect`].
    ///
    /// # Errors
    ///
    /// As [`LinkStore::inspect`].
    pub async fn inspect(&self, id: &str) -> Result<Option<LinkInfo>, LinkError> {
        self.store.inspect(id).await
    }
}

/// Installed, it is the state behind `State<Links>` and the metrics
/// `rondo_links_created_total`, `rondo_links_redeemed_total{place="new"|"again"}` and
/// `rondo_links_refused_total{reason}` (one series per [`Refusal::code`]).
impl Component for Links {
    fn install(self, app: &mut Installer<'_>) {
        let metrics = self.metrics.clone();
        app.register_metric("rondo_links_created", "Links created", metrics.created);
        app.register_metric(
            "rondo_links_redeemed",
            "Redemptions admitted: place=new took a place, place=again had one",
            metrics.redeemed,
        );
        app.register_metric(
            "rondo_links_refused",
            "Redemptions refused, by reason",
            metrics.refused,
        );
        app.state(self);
    }
}
