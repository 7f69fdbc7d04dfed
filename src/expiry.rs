//! Group expiry (`--push.expire-after`, `Pushgateway-Expire-After`): a task that deletes each
//! group once its deadline passes, through the store like a DELETE (so the deletion is kept by
//! the backend before it counts), logs it and counts it.
//!
//! The task wakes at the soonest deadline and at least every [`SCAN_INTERVAL`], so a group is
//! deleted at most that late (a push can bring a deadline closer while the task sleeps). At
//! start-up it runs once before the gateway serves, so that a gateway restarted after a
//! deadline never serves the expired group.

use std::sync::Arc;
use std::time::Duration;

use crate::model::Timestamp;
use crate::store::Store;
use crate::telemetry::{self, Telemetry};

/// The longest the task sleeps between looks at the deadlines.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// The most groups one deletion takes. Deleting 10,000 expired groups in one step held the
/// store for half a second, and every push waited that long; in steps of this size a push
/// waits about a millisecond at most, and pushes get in between the steps.
const BATCH: usize = 64;

/// Deletes every group whose deadline has passed, [`BATCH`] at a time. A backend that cannot
/// keep the deletions now (persistence failing) leaves them for the next sweep.
pub async fn sweep(store: &Store, telemetry: &Telemetry) {
    loop {
        let now = Timestamp::now();
        if store.next_deadline().is_none_or(|deadline| deadline > now) {
            return;
        }
        match store.expire(now, BATCH).await {
            Ok(expired) => {
                for key in &expired {
                    tracing::info!(grouping_key = %key, "group expired");
                }
                telemetry.add(telemetry::GROUPS_EXPIRED, &[], expired.len() as f64);
                if expired.len() < BATCH {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(err = %err, "expired groups could not be deleted yet");
                return;
            }
        }
        tokio::task::yield_now().await;
    }
}

/// Sweeps whenever a deadline passes, until the task is dropped.
pub async fn run(store: Arc<Store>, telemetry: Arc<Telemetry>) {
    loop {
        let wait = store.next_deadline().map_or(SCAN_INTERVAL, |deadline| {
            Timestamp::now().until(deadline).min(SCAN_INTERVAL)
        });
        tokio::time::sleep(wait).await;
        sweep(&store, &telemetry).await;
    }
}
