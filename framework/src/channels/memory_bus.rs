//! The bus of one process (channels within one process, on the memory store): publishing
//! is local delivery, and a channel is ready as soon as it has a subscriber.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::bus::{Bus, Envelope};
use super::hub::Hub;
use super::ChannelError;

/// The bus of one process: publishing is local delivery.
pub(crate) struct MemoryBus {
    hub: Arc<Hub>,
}

impl MemoryBus {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Bus for MemoryBus {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        envelope: Envelope,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        self.hub.deliver(channel, &envelope);
        Box::pin(std::future::ready(Ok(())))
    }

    fn interest(&self, _channel: &str, _on: bool, ready: tokio::sync::watch::Sender<bool>) {
        let _ = ready.send(true);
    }

    fn describe(&self) -> &'static str {
        "memory (this process only)"
    }
}
