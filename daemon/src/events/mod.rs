//! Events: every state change the store records, fanned out in process.
//!
//! The store appends each event to its append-only `events` tree in the same transaction as
//! the change it describes and, for the kinds of API.md §9, an `outbox` entry for the webhook
//! dispatcher. After the transaction commits it publishes the event on the [`EventBus`], from
//! which in-process consumers (the webhook dispatcher's wake-up, metrics, the anomaly
//! monitor) read. The bus never applies back-pressure: a consumer that falls behind loses
//! the oldest events and learns how many it lost (`Lagged`), so a slow consumer can never
//! slow a payment.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::domain::events::EventKind;
use crate::domain::records::EventRecord;

/// How many events a consumer may fall behind before it starts losing the oldest.
const BUS_CAPACITY: usize = 8192;

/// The in-process fan-out of committed events.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<EventRecord>>,
}

impl EventBus {
    pub fn new() -> EventBus {
        let (sender, _) = broadcast::channel(BUS_CAPACITY);
        EventBus { sender }
    }

    /// Publishes committed events; with no consumer they are simply dropped (they are in
    /// the store).
    pub fn publish(&self, events: impl IntoIterator<Item = EventRecord>) {
        for event in events {
            let _ = self.sender.send(Arc::new(event));
        }
    }

    /// A new consumer, seeing the events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.sender.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

/// Feeds the metrics that follow from events: events by kind, and the collected volume per
/// currency.
/// A lag (more than the bus holds, unread) loses volume from the metric, never from the
/// store, and is logged.
pub fn spawn_event_metrics(bus: &EventBus, metrics: Arc<crate::metrics::Metrics>) {
    let mut events = bus.subscribe();
    tokio::spawn(async move {
        loop {
            let received = events.recv().await;
            if let Ok(event) = &received {
                metrics.count_event(event.kind.as_str());
            }
            match received {
                Ok(event) if event.kind == EventKind::PaymentSucceeded => {
                    let fields = event.fields();
                    if let (Some(minor), Some(currency)) = (fields.amount_minor, fields.currency) {
                        metrics.add_payment_volume(&currency, minor);
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "event metrics fell behind; volume undercounted");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> EventRecord {
        EventRecord {
            id: format!("evt_{n}"),
            kind: EventKind::PaymentCreated,
            created_at_ms: 0,
            object_id: "pay_1".into(),
            data: serde_json::Value::Null,
            object_version: 0,
            object: None,
        }
    }

    #[tokio::test]
    async fn a_slow_consumer_loses_the_oldest_events_and_is_told_how_many() {
        let bus = EventBus::new();
        let mut slow = bus.subscribe();
        // Publishing never waits for the consumer.
        bus.publish((0..BUS_CAPACITY + 10).map(event));
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(lost)) => assert_eq!(lost, 10),
            other => panic!("expected a lag report, got {other:?}"),
        }
        assert_eq!(slow.recv().await.unwrap().id, "evt_10");
    }
}
