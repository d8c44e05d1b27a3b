//! Channel rules: who may join which private and presence channels, decided by the
//! application from the session of the request that asks.
//!
//! A rule pairs a pattern with an async check. Patterns name the channel without its
//! `private-` or `presence-` prefix, as Laravel's `Broadcast::channel` does: `basket.{id}`
//! matches `private-basket.42` with `id = "42"`. A `{name}` stands for one dot-separated
//! segment; everything else must match exactly. The first rule whose pattern matches
//! decides; a channel no rule matches is refused.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::protocol::{ChannelKind, PresenceMember};
use crate::session::{Session, SessionError};

/// The parameters a rule's pattern captured from a channel name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelParams {
    channel: String,
    values: Vec<(String, String)>,
}

impl ChannelParams {
    /// The value captured by `{name}`, if the pattern has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The full channel name asked for (`private-basket.42`).
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

/// What a rule decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Join (a private channel).
    Allow,
    /// Join a presence channel as this member.
    Member(PresenceMember),
    /// Refused: 403.
    Deny,
    /// The rule could not decide (its store is unreachable): 503.
    Unavailable(String),
}

/// What a private channel's rule may return: `bool`, or `Result<bool, SessionError>` (an
/// unreachable session store answers 503, not 403).
pub trait IntoAllow {
    /// The decision.
    fn into_decision(self) -> Decision;
}

impl IntoAllow for bool {
    fn into_decision(self) -> Decision {
        if self {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }
}

impl IntoAllow for Result<bool, SessionError> {
    fn into_decision(self) -> Decision {
        match self {
            Ok(allowed) => allowed.into_decision(),
            Err(SessionError::Gone) => Decision::Deny,
            Err(err) => Decision::Unavailable(err.to_string()),
        }
    }
}

/// What a presence channel's rule may return: the member (`Some`) or a refusal (`None`),
/// optionally in a `Result<_, SessionError>`.
pub trait IntoMember {
    /// The decision.
    fn into_decision(self) -> Decision;
}

impl IntoMember for Option<PresenceMember> {
    fn into_decision(self) -> Decision {
        self.map_or(Decision::Deny, Decision::Member)
    }
}

impl IntoMember for Result<Option<PresenceMember>, SessionError> {
    fn into_decision(self) -> Decision {
        match self {
            Ok(member) => member.into_decision(),
            Err(SessionError::Gone) => Decision::Deny,
            Err(err) => Decision::Unavailable(err.to_string()),
        }
    }
}

type Check = Arc<dyn Fn(Session, ChannelParams) -> BoxFuture<'static, Decision> + Send + Sync>;

/// One rule.
#[derive(Clone)]
struct Rule {
    kind: ChannelKind,
    pattern: Vec<Segment>,
    check: Check,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// The rules of an app, in the order they were added.
#[derive(Clone, Default)]
pub(crate) struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    pub(crate) fn private<F, Fut>(&mut self, pattern: &str, check: F)
    where
        F: Fn(Session, ChannelParams) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoAllow,
    {
        let check = Arc::new(move |session, params| {
            let fut = check(session, params);
            Box::pin(async move { fut.await.into_decision() }) as BoxFuture<'static, Decision>
        });
        self.rules.push(Rule {
            kind: ChannelKind::Private,
            pattern: parse(pattern),
            check,
        });
    }

    pub(crate) fn presence<F, Fut>(&mut self, pattern: &str, check: F)
    where
        F: Fn(Session, ChannelParams) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoMember,
    {
        let check = Arc::new(move |session, params| {
            let fut = check(session, params);
            Box::pin(async move { fut.await.into_decision() }) as BoxFuture<'static, Decision>
        });
        self.rules.push(Rule {
            kind: ChannelKind::Presence,
            pattern: parse(pattern),
            check,
        });
    }

    /// Asks the first rule matching `channel` (with its prefix); `Deny` when none does or
    /// when a private rule is asked about a presence channel.
    pub(crate) async fn decide(&self, session: Session, channel: &str) -> Decision {
        let kind = ChannelKind::of(channel);
        let bare = match kind {
            ChannelKind::Private => &channel["private-".len()..],
            ChannelKind::Presence => &channel["presence-".len()..],
            ChannelKind::Public | ChannelKind::Encrypted => return Decision::Deny,
        };
        let found = self.rules.iter().find_map(|rule| {
            if rule.kind != kind {
                return None;
            }
            matches(&rule.pattern, bare).map(|values| (rule.check.clone(), values))
        });
        let Some((check, values)) = found else {
            return Decision::Deny;
        };
        let params = ChannelParams {
            channel: channel.to_owned(),
            values,
        };
        match (kind, check(session, params).await) {
            (ChannelKind::Presence, Decision::Allow) => Decision::Deny,
            (_, decision) => decision,
        }
    }
}

fn parse(pattern: &str) -> Vec<Segment> {
    pattern
        .split('.')
        .map(
            |part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_owned()),
                None => Segment::Literal(part.to_owned()),
            },
        )
        .collect()
}

fn matches(pattern: &[Segment], name: &str) -> Option<Vec<(String, String)>> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() != pattern.len() {
        return None;
    }
    let mut values = Vec::new();
    for (segment, part) in pattern.iter().zip(parts) {
        match segment {
            Segment::Literal(literal) if literal == part => {}
            Segment::Param(param) if !part.is_empty() => {
                values.push((param.clone(), part.to_owned()));
            }
            _ => return None,
        }
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        let p = parse("basket.{id}");
        assert_eq!(
            matches(&p, "basket.42"),
            Some(vec![("id".to_owned(), "42".to_owned())])
        );
        assert_eq!(matches(&p, "basket.42.x"), None);
        assert_eq!(matches(&p, "basket."), None);
        assert_eq!(matches(&p, "baskets.42"), None);
        let p = parse("App.Models.User.{id}");
        assert!(matches(&p, "App.Models.User.7").is_some());
        assert_eq!(matches(&parse("lobby"), "lobby"), Some(vec![]));
    }
}
