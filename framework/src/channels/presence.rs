//! Presence: who is on each presence channel, kept per user, not per socket.
//!
//! A user with several sockets on a channel (two tabs, two servers) is one member: they
//! join with their first socket (`member_added` goes out) and leave with their last
//! (`member_removed`). [`Presence`] is that bookkeeping; [`MemoryPresence`] keeps it for
//! one process, the Redis one (`redis_presence.rs`) for every server, with heartbeats so
//! that the members of a server that died are removed by another.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use super::protocol::{PresenceMember, SocketId};
use super::ChannelError;

/// The outcome of a join.
#[derive(Debug)]
pub(crate) struct Joined {
    /// Whether this was the user's first socket on the channel (so others learn of them).
    pub(crate) first: bool,
    /// The channel's members now, the joining one included, each user once.
    pub(crate) members: Vec<PresenceMember>,
}

/// Presence bookkeeping.
pub(crate) trait Presence: Send + Sync + 'static {
    /// Socket `socket` joins `channel` as `member`.
    fn join<'a>(
        &'a self,
        channel: &'a str,
        socket: &'a SocketId,
        member: &'a PresenceMember,
    ) -> BoxFuture<'a, Result<Joined, ChannelError>>;

    /// Socket `socket` leaves `channel`; the user's id when it was their last socket there.
    fn leave<'a>(
        &'a self,
        channel: &'a str,
        socket: &'a SocketId,
    ) -> BoxFuture<'a, Result<Option<String>, ChannelError>>;

    /// Renews this server's claim on its members of `channel`, and removes the members of
    /// servers that stopped renewing theirs: the ids of the users who left with them.
    fn beat<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<String>, ChannelError>>;
}

#[derive(Default)]
struct Members {
    /// Socket → user id.
    sockets: HashMap<SocketId, String>,
    /// Users in order of arrival: id, info, sockets.
    users: Vec<(PresenceMember, usize)>,
}

/// Presence within one process.
#[derive(Default)]
pub(crate) struct MemoryPresence {
    channels: Mutex<HashMap<String, Members>>,
}

impl Presence for MemoryPresence {
    fn join<'a>(
        &'a self,
        channel: &'a str,
        socket: &'a SocketId,
        member: &'a PresenceMember,
    ) -> BoxFuture<'a, Result<Joined, ChannelError>> {
        let mut channels = self.channels.lock();
        let members = channels.entry(channel.to_owned()).or_default();
        let mut first = false;
        if !members.sockets.contains_key(socket) {
            members
                .sockets
                .insert(socket.clone(), member.user_id.clone());
            match members
                .users
                .iter_mut()
                .find(|(m, _)| m.user_id == member.user_id)
            {
                Some((_, count)) => *count += 1,
                None => {
                    members.users.push((member.clone(), 1));
                    first = true;
                }
            }
        }
        let list = members.users.iter().map(|(m, _)| m.clone()).collect();
        Box::pin(std::future::ready(Ok(Joined {
            first,
            members: list,
        })))
    }

    fn leave<'a>(
        &'a self,
        channel: &'a str,
        socket: &'a SocketId,
    ) -> BoxFuture<'a, Result<Option<String>, ChannelError>> {
        let mut channels = self.channels.lock();
        let mut left = None;
        if let Some(members) = channels.get_mut(channel) {
            if let Some(user) = members.sockets.remove(socket) {
                if let Some(at) = members.users.iter().position(|(m, _)| m.user_id == user) {
                    members.users[at].1 -= 1;
                    if members.users[at].1 == 0 {
                        members.users.remove(at);
                        left = Some(user);
                    }
                }
            }
            if members.sockets.is_empty() {
                channels.remove(channel);
            }
        }
        Box::pin(std::future::ready(Ok(left)))
    }

    fn beat<'a>(&'a self, _channel: &'a str) -> BoxFuture<'a, Result<Vec<String>, ChannelError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user with two sockets joins once and leaves with the last.
    #[tokio::test]
    async fn users_join_once_and_leave_with_their_last_socket() {
        let presence = MemoryPresence::default();
        let ana = PresenceMember::new("1", Some(serde_json::json!({"name": "Ana"})));
        let bo = PresenceMember::new("2", None);
        let (s1, s2, s3) = (
            SocketId::from_parts(1, 1),
            SocketId::from_parts(1, 2),
            SocketId::from_parts(1, 3),
        );
        let ch = "presence-room";
        assert!(presence
            .join(ch, &s1, &ana)
            .await
            .map(|j| j.first)
            .unwrap_or(false));
        assert!(!presence
            .join(ch, &s2, &ana)
            .await
            .map(|j| j.first)
            .unwrap_or(true));
        let joined = presence.join(ch, &s3, &bo).await.ok();
        assert_eq!(joined.map(|j| j.members.len()), Some(2));
        assert_eq!(presence.leave(ch, &s1).await.ok(), Some(None));
        assert_eq!(
            presence.leave(ch, &s2).await.ok(),
            Some(Some("1".to_owned()))
        );
        assert_eq!(presence.leave(ch, &s2).await.ok(), Some(None));
        assert_eq!(
            presence.leave(ch, &s3).await.ok(),
            Some(Some("2".to_owned()))
        );
    }
}
