//! Join links: the host makes them (open ones, or personal invitations that name the
//! participant), lists and withdraws them; a visitor redeems one and becomes a member, or
//! learns why not ([`Refused`]).

use rondo::links::{LinkInfo, NewLink, Refusal};
use rondo::signed::unix_now;
use rondo::Session;
use serde::Serialize;

use super::error::RoomError;
use super::model::{is_room_id, parse_name, random_hex, Member, Room, ROOM_LIFETIME_SECS};
use super::store::Joined;
use super::visitor::{self, guest_name};
use super::Rooms;

/// The shortest and longest a join link may stay valid.
const LINK_VALID_SECS: (u64, u64) = (60, ROOM_LIFETIME_SECS);
/// The prefix of a room link's target: `room:{id}`.
const TARGET: &str = "room:";

/// A new join link, as the form or the API gives it.
#[derive(Debug, Clone, Default)]
pub struct NewRoomLink {
    /// How many people it admits; the room's capacity when absent.
    pub max_uses: Option<u64>,
    /// When it opens (Unix seconds); the room's start when absent.
    pub starts_at: Option<u64>,
    /// How long it stays valid from when it opens (seconds); an hour when absent.
    pub valid_for: Option<u64>,
    /// For a personal invitation, the participant's name.
    pub participant: Option<String>,
}

/// A join link as the host sees it.
#[derive(Debug, Clone, Serialize)]
pub struct RoomLink {
    /// Its id.
    pub id: String,
    /// `/join/{id}`.
    pub path: String,
    /// When it opens (Unix seconds).
    pub starts_at: u64,
    /// Its last valid second.
    pub expires_at: u64,
    /// How many it admits.
    pub max_uses: u32,
    /// How many it admitted.
    pub uses: u32,
    /// For a personal invitation, whom.
    pub participant: Option<String>,
    /// Withdrawn by the host (or by closing the room).
    pub revoked: bool,
}

impl From<LinkInfo> for RoomLink {
    fn from(info: LinkInfo) -> Self {
        Self {
            path: format!("/join/{}", info.id.as_str()),
            id: info.id.as_str().to_owned(),
            starts_at: info.starts_at,
            expires_at: info.expires_at,
            max_uses: info.max_uses,
            uses: info.uses,
            participant: info.participant,
            revoked: info.revoked,
        }
    }
}

/// Why a link did not let a visitor in: a link's own refusal, or the room's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not open yet; opens at (Unix seconds).
    NotStarted(u64),
    /// Past its time.
    Expired,
    /// Every place taken (the link's or the room's).
    Full,
    /// Withdrawn by the host.
    Revoked,
    /// Not a link of this app (unknown, malformed, purged).
    Invalid,
    /// The room was closed.
    Closed,
    /// The host removed this visitor from the room.
    Removed,
}

impl Refused {
    /// A stable name for programs: `not_started`, `expired`, `full`, `revoked`,
    /// `invalid`, `closed` or `removed`.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotStarted(_) => "not_started",
            Self::Expired => "expired",
            Self::Full => "full",
            Self::Revoked => "revoked",
            Self::Invalid => "invalid",
            Self::Closed => "closed",
            Self::Removed => "removed",
        }
    }

    fn from_link(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotStarted { starts_at } => Self::NotStarted(starts_at),
            Refusal::Expired => Self::Expired,
            Refusal::UsedUp => Self::Full,
            Refusal::Revoked => Self::Revoked,
            Refusal::NotForYou | Refusal::Unknown => Self::Invalid,
        }
    }
}

/// A visitor a link admitted.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The room.
    pub room: Room,
    /// The visitor, now a member.
    pub member: Member,
}

impl Rooms {
    /// Makes a join link for room `id` (host only).
    ///
    /// # Errors
    ///
    /// [`RoomError::HostOnly`] and the other refusals of [`Rooms::as_host`],
    /// [`RoomError::Closed`], [`RoomError::Invalid`] for bad numbers or a participant's
    /// name, or a store failure.
    pub async fn create_link(
        &self,
        session: &Session,
        id: &str,
        new: NewRoomLink,
    ) -> Result<RoomLink, RoomError> {
        let (room, _) = self.as_host(session, id).await?;
        if room.closed {
            return Err(RoomError::Closed);
        }
        let max_uses = new.max_uses.unwrap_or(u64::from(room.capacity));
        let max_uses = u32::try_from(max_uses)
            .ok()
            .filter(|n| (1..=room.capacity.max(1)).contains(n))
            .ok_or_else(|| {
                RoomError::Invalid(format!(
                    "a link admits 1 to {} people (the room's places)",
                    room.capacity
                ))
            })?;
        let now = unix_now();
        let starts_at = new.starts_at.unwrap_or(room.starts_at);
        let valid_for = new.valid_for.unwrap_or(3600);
        if !(LINK_VALID_SECS.0..=LINK_VALID_SECS.1).contains(&valid_for) {
            return Err(RoomError::Invalid(format!(
                "a link is valid for {} to {} seconds",
                LINK_VALID_SECS.0, LINK_VALID_SECS.1
            )));
        }
        // Valid for `valid_for` from when it opens (or from now, for a start in the
        // past), and never past the room's own end.
        let expires_at = (starts_at.max(now) + valid_for).min(room.expires_at);
        if starts_at > expires_at {
            return Err(RoomError::Invalid(
                "the link would open after the room is gone".to_owned(),
            ));
        }
        let mut link = NewLink::new(
            format!("{TARGET}{}", room.id),
            starts_at,
            expires_at,
            max_uses,
        );
        if let Some(name) = new.participant.as_deref().filter(|n| !n.trim().is_empty()) {
            link = link.for_participant(parse_name(name).map_err(RoomError::Invalid)?);
        }
        let link_id = self.links.create(link).await?;
        self.store.add_link(&room, link_id.as_str()).await?;
        let info = self
            .links
            .inspect(link_id.as_str())
            .await?
            .ok_or_else(|| RoomError::Corrupt("a new link vanished".to_owned()))?;
        Ok(info.into())
    }

    /// Room `id`'s links, latest first (host only).
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_host`], or a store failure.
    pub async fn room_links(
        &self,
        session: &Session,
        id: &str,
    ) -> Result<Vec<RoomLink>, RoomError> {
        let (room, _) = self.as_host(session, id).await?;
        self.links_of(&room).await
    }

    /// Room `room`'s links, latest first, whoever asks.
    pub(crate) async fn links_of(&self, room: &Room) -> Result<Vec<RoomLink>, RoomError> {
        let mut links = Vec::new();
        for link in self.store.links(&room.id).await? {
            if let Some(info) = self.links.inspect(&link).await? {
                links.push(RoomLink::from(info));
            }
        }
        // Latest first.
        links.sort_by(|a, b| {
            b.starts_at
                .cmp(&a.starts_at)
                .then(b.expires_at.cmp(&a.expires_at))
                .then_with(|| b.id.cmp(&a.id))
        });
        Ok(links)
    }

    /// Withdraws link `link` of room `id` (host only); whether it was one of the room's.
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_host`], or a store failure.
    pub async fn revoke_link(
        &self,
        session: &Session,
        id: &str,
        link: &str,
    ) -> Result<bool, RoomError> {
        let (room, _) = self.as_host(session, id).await?;
        if !self.store.links(&room.id).await?.iter().any(|l| l == link) {
            return Ok(false);
        }
        Ok(self.links.revoke(link).await?)
    }

    /// Redeems join link `link` for `session`: on success the visitor is a member, the
    /// session's id rotated and the room bound to it. A member already (the host, a reload)
    /// is let through without using a place.
    ///
    /// # Errors
    ///
    /// A store or session failure; refusals are the `Err` of the inner result.
    pub async fn redeem(
        &self,
        session: &Session,
        link: &str,
    ) -> Result<Result<Admitted, Refused>, RoomError> {
        let Some(info) = self.links.inspect(link).await? else {
            return Ok(Err(Refused::Invalid));
        };
        let Some(id) = info.target.strip_prefix(TARGET).filter(|id| is_room_id(id)) else {
            return Ok(Err(Refused::Invalid));
        };
        let Some(room) = self.store.get(id).await? else {
            return Ok(Err(Refused::Invalid));
        };
        if room.closed {
            return Ok(Err(Refused::Closed));
        }
        let known = visitor::member_id(session).await?;
        if let Some(me) = &known {
            if let Some(member) = self.store.member(&room.id, me).await? {
                return Ok(Ok(Admitted { room, member }));
            }
        }
        let me = match known {
            Some(me) => me,
            None => {
                // Kept even if the visitor is turned away below, so that trying again is
                // the same redeemer and takes no second place.
                let me = format!("g-{}", random_hex(12)?);
                session.put(visitor::VISITOR, &me)?;
                me
            }
        };
        // A personal invitation names who redeems it: whoever holds it is that person.
        let redeemer = info.participant.clone().unwrap_or_else(|| me.clone());
        if let Err(refusal) = self.links.redeem(link, &redeemer).await? {
            return Ok(Err(Refused::from_link(refusal)));
        }
        let name = match (&info.participant, visitor::user(session).await?) {
            (Some(participant), _) => participant.clone(),
            (None, Some(user)) => user,
            (None, None) => guest_name(&me),
        };
        let member = Member {
            id: me.clone(),
            name,
            host: false,
            joined_at: unix_now(),
        };
        let refused = match self.store.join(&room.id, &member).await? {
            Joined::Joined | Joined::Again => None,
            Joined::Full => Some(Refused::Full),
            Joined::Closed => Some(Refused::Closed),
            Joined::Removed => Some(Refused::Removed),
            Joined::Unknown => Some(Refused::Invalid),
        };
        if let Some(refused) = refused {
            return Ok(Err(refused));
        }
        // New privileges, new session id; the visitor id moves with the data.
        session.regenerate().await?;
        visitor::bind_room(session, &room.id).await?;
        let member = self.store.member(&room.id, &me).await?.unwrap_or(member);
        tracing::info!(room = %room.id, "a visitor joined by a link");
        Ok(Ok(Admitted { room, member }))
    }
}
