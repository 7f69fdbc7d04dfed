//! `--store.nats.url`: several gateways as one, sharing a store kept in a NATS JetStream
//! key-value bucket (one key per group, the store's own record as the value) that NATS
//! replicates on its servers with Raft.
//!
//! The order is propose, then apply (see [`crate::store`]'s backend module):
//! - a change is planned against this replica's view, and each group it writes is proposed
//!   to the bucket on condition that the key is still at the revision the view had (compare
//!   and set); on a conflict the replica waits until its view has caught up with the bucket
//!   and plans again (bounded by `--store.nats.timeout`);
//! - JetStream acknowledges a write once a quorum of servers has it; only then is the change
//!   answered with success, after this replica's view has applied it (read your writes; a
//!   view that has not within `--store.nats.timeout` is logged, and the push is still
//!   answered with success, since a quorum keeps it);
//! - every replica applies the bucket's changes in the bucket's order from one watch, so all
//!   views converge; clashes between groups written at the same moment through different
//!   replicas are settled the same way everywhere (see the view's replicated module); a watch
//!   that fails, or stays silent while the bucket is ahead of the view, is resumed after the
//!   last revision applied;
//! - the watch depends on a consumer that NATS places on one server, and making one can fail
//!   until the timeout for as long as NATS still places consumers on a server that died: so
//!   whenever the view stays behind (a change waited for longer than [`NUDGE_AFTER`], or the
//!   monitor saw no progress between two checks), the watch's task reads what the view lacks
//!   straight from the stream's leader, as a write reaches it. The view thus keeps up
//!   whenever writes are acknowledged. One task applies changes, in the bucket's order, and
//!   skips what it has applied already.
//!
//! A replica is ready (`/-/ready`) only once its view has caught up with the bucket, after
//! start-up and after every reconnect. Without NATS, changes get 503 after the timeout and
//! scrapes keep serving the last view; the gateway's own metrics say so.

mod keys;
mod options;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{Notify, OnceCell, watch};

pub use options::{Auth, ClusterOptions, TlsFiles};

use crate::store::codec::{self, Record};
use crate::store::{Applied, Backend, Change, Commit, PersistedGroup, Proposal, StoreError, View};
use crate::telemetry::{self, Telemetry};

/// How often the replica compares its view with the bucket.
const MONITOR_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait before trying again after NATS failed a request.
const BACKOFF: Duration = Duration::from_millis(250);
/// How long the view may stay behind the bucket without applying anything before the watch is
/// resumed: a watch whose consumer was lost with a server (a partition, a restart of the whole
/// cluster) can stay silent without ever failing, and the replica would never catch up.
const STALL_LIMIT: Duration = Duration::from_secs(3);
/// How long a change waits for the view to apply its own write before the view is brought up
/// to date from the stream (the watch normally delivers within milliseconds).
const NUDGE_AFTER: Duration = Duration::from_millis(250);
/// The most changes read one by one from the stream in one catch-up: beyond that, a new watch
/// is the faster way.
const CATCH_UP_LIMIT: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid --store.nats settings: {0}")]
    Config(String),
    #[error("the NATS connection cannot be made through the FIPS-validated module: {0}")]
    NotFips(String),
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
}

/// The replicated store's backend.
pub struct Cluster {
    view: Arc<View>,
    options: ClusterOptions,
    /// Checked at start-up; used by [`Cluster::run`].
    connect: async_nats::ConnectOptions,
    servers: Vec<async_nats::ServerAddr>,
    /// Set once the bucket is open.
    connection: OnceCell<Connection>,
    telemetry: Arc<Telemetry>,
    /// The revision the view has applied, for waiters.
    applied: watch::Sender<u64>,
    connected: AtomicBool,
    ready: AtomicBool,
    /// The bucket's last revision when the view was last found behind it (ready once the
    /// view has applied it).
    target: AtomicU64,
    /// Since when the replica waits to be ready (start-up or reconnect).
    waiting_since: Mutex<Option<Instant>>,
    /// When the view was last known to match the bucket.
    current_at: Mutex<Instant>,
    /// Wakes the monitor at once (after a reconnect).
    recheck: Notify,
    /// Tells the watch to start again after the last revision applied (it stalled).
    resume_watch: Notify,
    /// Asks the watch's task to read what the view lacks straight from the stream.
    catch_up: Notify,
}

/// The NATS client and the bucket.
struct Connection {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    bucket: kv::Store,
}

impl Cluster {
    /// Checks the options (reading the files they name) at start-up; [`Cluster::run`]
    /// connects.
    pub fn new(
        options: ClusterOptions,
        view: Arc<View>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let connect = options.connect_options()?;
        let servers = options
            .urls
            .iter()
            .map(|url| {
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|e| ClusterError::Config(format!("--store.nats.url {url:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (applied, _) = watch::channel(0);
        telemetry.set(telemetry::CLUSTER_CONNECTED, &[], 0.0);
        telemetry.set(telemetry::CLUSTER_READY, &[], 0.0);
        Ok(Arc::new(Cluster {
            view,
            options,
            connect,
            servers,
            connection: OnceCell::new(),
            telemetry,
            applied,
            connected: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            target: AtomicU64::new(u64::MAX),
            waiting_since: Mutex::new(Some(Instant::now())),
            current_at: Mutex::new(Instant::now()),
            recheck: Notify::new(),
            resume_watch: Notify::new(),
            catch_up: Notify::new(),
        }))
    }

    /// Connects (waiting for NATS as long as it takes), opens or creates the bucket, imports a
    /// persistence file into an empty one, then keeps the view in step with the bucket and
    /// watches readiness, until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let (events, mut event_rx) = tokio::sync::mpsc::unbounded_channel();
        let connect = self.connect.clone().event_callback(move |event| {
            let events = events.clone();
            async move {
                let _ = events.send(event);
            }
        });
        let client = loop {
            match connect.clone().connect(self.servers.as_slice()).await {
                Ok(client) => break client,
                Err(err) => {
                    tracing::error!(err = %err, "cannot connect to NATS; retrying");
                    tokio::time::sleep(MONITOR_INTERVAL).await;
                }
            }
        };
        self.set_connected(client.connection_state() == async_nats::connection::State::Connected);
        let events = tokio::spawn({
            let cluster = self.clone();
            async move {
                while let Some(event) = event_rx.recv().await {
                    cluster.on_event(event);
                }
            }
        });
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(self.options.timeout);
        let bucket = self.open_bucket(&jetstream).await;
        self.open_claims(&jetstream).await;
        let _ = self.connection.set(Connection {
            client,
            jetstream,
            bucket: bucket.clone(),
        });
        if let Some(file) = self.options.import.clone() {
            self.import(&bucket, &file).await;
        }
        let monitor = tokio::spawn(self.clone().monitor(bucket.clone()));
        self.watch(bucket).await;
        monitor.abort();
        events.abort();
    }

    async fn open_bucket(&self, jetstream: &jetstream::Context) -> kv::Store {
        let mut created = false;
        loop {
            match jetstream.get_key_value(&self.options.bucket).await {
                Ok(bucket) => {
                    if !created {
                        let config = &bucket.stream.cached_info().config;
                        tracing::info!(
                            bucket = %self.options.bucket,
                            replicas = config.num_replicas,
                            storage = ?config.storage,
                            "using the existing NATS key-value bucket as it is"
                        );
                    }
                    return bucket;
                }
                Err(err) if err.kind() == jetstream::context::KeyValueErrorKind::GetBucket => {
                    // The stream of a key-value bucket, made directly: the client's own
                    // bucket creation first asks for account details in a form that
                    // nats-server 2.9 does not give.
                    let config = jetstream::stream::Config {
                        name: format!("KV_{}", self.options.bucket),
                        description: Some("Pushgateway groups".into()),
                        subjects: vec![format!("$KV.{}.>", self.options.bucket)],
                        max_messages_per_subject: 1,
                        storage: jetstream::stream::StorageType::File,
                        num_replicas: self.options.replicas,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: jetstream::stream::DiscardPolicy::New,
                        ..Default::default()
                    };
                    match jetstream.create_stream(config).await {
                        Ok(_) => {
                            tracing::info!(bucket = %self.options.bucket, replicas = self.options.replicas, "created the NATS key-value bucket");
                            created = true;
                            continue;
                        }
                        Err(err) => {
                            tracing::warn!(err = %err, bucket = %self.options.bucket, "cannot create the NATS key-value bucket yet");
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(err = %err, bucket = %self.options.bucket, "cannot open the NATS key-value bucket yet");
                }
            }
            tokio::time::sleep(MONITOR_INTERVAL).await;
        }
    }

    /// Makes sure the claims stream exists (see [`Cluster::claim`]).
    async fn open_claims(&self, jetstream: &jetstream::Context) {
        let name = format!("PGWCLAIMS_{}", self.options.bucket);
        loop {
            let config = jetstream::stream::Config {
                name: name.clone(),
                description: Some("Pushgateway write claims".into()),
                subjects: vec![format!("{}.>", claims_prefix(&self.options.bucket))],
                max_messages_per_subject: 1,
                discard: jetstream::stream::DiscardPolicy::New,
                discard_new_per_subject: true,
                max_age: self.options.timeout * 2,
                // On disk, although claims live seconds: a server restarted under writes
                // never caught up a replicated in-memory stream in nats-server 2.9 (it
                // reset the stream's state in a loop and stayed unhealthy for over 30 s).
                storage: jetstream::stream::StorageType::File,
                num_replicas: self.options.replicas,
                ..Default::default()
            };
            match jetstream.get_or_create_stream(config).await {
                Ok(_) => return,
                Err(err) => {
                    tracing::warn!(err = %err, stream = %name, "cannot open the NATS claims stream yet");
                    tokio::time::sleep(MONITOR_INTERVAL).await;
                }
            }
        }
    }

    /// Applies every change of the bucket to the view, in the bucket's order: first the
    /// latest value of every key, then every change as it comes. A broken watch is resumed
    /// after the last revision applied.
    async fn watch(&self, bucket: kv::Store) {
        let mut first = true;
        loop {
            let (initial, from, bucket_ref) = (first, self.view.applied_revision() + 1, &bucket);
            let start = async move {
                if initial {
                    bucket_ref.watch_with_history(">").await
                } else {
                    bucket_ref.watch_all_from_revision(from).await
                }
            };
            tokio::pin!(start);
            // Making the consumer can take until the timeout; the view keeps up meanwhile.
            let watch = loop {
                tokio::select! {
                    watch = &mut start => break watch,
                    () = self.catch_up.notified(), if !first => self.catch_up(&bucket).await,
                }
            };
            let mut entries = match watch {
                Ok(entries) => entries,
                Err(err) => {
                    tracing::warn!(err = %err, "cannot watch the NATS key-value bucket; retrying");
                    tokio::time::sleep(MONITOR_INTERVAL).await;
                    continue;
                }
            };
            first = false;
            loop {
                let entry = tokio::select! {
                    entry = entries.next() => entry,
                    () = self.catch_up.notified() => {
                        self.catch_up(&bucket).await;
                        continue;
                    }
                    () = self.resume_watch.notified() => {
                        tracing::warn!(applied_revision = self.view.applied_revision(), "the watch of the NATS key-value bucket stalled behind the bucket; resuming");
                        break;
                    }
                };
                match entry {
                    Some(Ok(entry)) => self.apply(entry),
                    Some(Err(err)) => {
                        tracing::warn!(err = %err, "the watch of the NATS key-value bucket failed; resuming");
                        break;
                    }
                    None => break,
                }
            }
            tokio::time::sleep(BACKOFF).await;
        }
    }

    /// Reads the changes the view lacks straight from the bucket's stream, each the first
    /// message after the last one applied (the stream's leader answers, as it does a write),
    /// up to the bucket's last revision or [`CATCH_UP_LIMIT`] changes. Called only from the
    /// watch's task, so that changes are applied by one task in the bucket's order.
    async fn catch_up(&self, bucket: &kv::Store) {
        let Ok(last) = self.last_revision(bucket).await else {
            return;
        };
        let subjects = format!("{}>", bucket.prefix);
        let mut next = self.view.applied_revision() + 1;
        let mut read = 0;
        while next <= last && read < CATCH_UP_LIMIT {
            match bucket
                .stream
                .get_first_raw_message_by_subject(&subjects, next)
                .await
            {
                Ok(message) => {
                    next = message.sequence + 1;
                    read += 1;
                    self.apply(entry_of(bucket, message));
                }
                Err(err) => {
                    if err.kind() != jetstream::stream::RawMessageErrorKind::NoMessageFound {
                        tracing::debug!(err = %err, "cannot read the bucket's stream to catch up");
                    }
                    break;
                }
            }
        }
        if read > 0 {
            tracing::debug!(
                changes = read,
                applied_revision = self.view.applied_revision(),
                "the view caught up by reading the bucket's stream"
            );
        }
    }

    fn apply(&self, entry: kv::Entry) {
        // Already read from the stream by a catch-up.
        if entry.revision <= self.view.applied_revision() {
            return;
        }
        let Some(key) = keys::decode(&entry.key) else {
            tracing::warn!(key = %entry.key, "ignoring a key of the bucket that this gateway did not write");
            return;
        };
        let value = match entry.operation {
            kv::Operation::Put => match decode_value(&entry.value) {
                Some(group) if group.key == key => Some(group),
                _ => {
                    tracing::error!(grouping_key = %key, revision = entry.revision, "ignoring a value of the bucket that does not decode as a group");
                    None
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => None,
        };
        let exclusions = self.view.apply_replicated(key, entry.revision, value);
        for exclusion in exclusions {
            match &exclusion.reason {
                Some(reason) => tracing::warn!(
                    grouping_key = %exclusion.key,
                    family = %exclusion.family,
                    reason = %reason,
                    "metric family left out of the scrape: it clashes with a group written earlier"
                ),
                None => tracing::info!(
                    grouping_key = %exclusion.key,
                    family = %exclusion.family,
                    "metric family back in the scrape"
                ),
            }
            if exclusion.reason.is_some() {
                self.telemetry
                    .increment(telemetry::CLUSTER_CONFLICTS_TOTAL, &[]);
            }
        }
        self.applied.send_replace(entry.revision);
        if !self.ready.load(Ordering::Relaxed)
            && entry.revision >= self.target.load(Ordering::Relaxed)
        {
            self.become_ready();
        }
        if entry.seen_current && !self.ready.load(Ordering::Relaxed) && self.connected() {
            self.become_ready();
        }
    }

    /// Every second (and at once after a reconnect): compares the view with the bucket, and
    /// reports connection, lag and view age.
    async fn monitor(self: Arc<Self>, bucket: kv::Store) {
        // The revision applied when the view was first seen behind the bucket, and when.
        let mut behind: Option<(u64, Instant)> = None;
        loop {
            if self.connected() {
                match self.last_revision(&bucket).await {
                    Ok(last) => {
                        let applied = self.view.applied_revision();
                        behind = match behind {
                            _ if applied >= last => None,
                            Some((at, since)) if at == applied => {
                                if since.elapsed() >= STALL_LIMIT {
                                    self.resume_watch.notify_one();
                                    None
                                } else {
                                    // No progress since the last check.
                                    self.catch_up.notify_one();
                                    Some((at, since))
                                }
                            }
                            _ => Some((applied, Instant::now())),
                        };
                        self.telemetry.set(
                            telemetry::CLUSTER_REVISION_LAG,
                            &[],
                            last.saturating_sub(applied) as f64,
                        );
                        if applied >= last {
                            *lock(&self.current_at) = Instant::now();
                            if !self.ready.load(Ordering::Relaxed) {
                                self.become_ready();
                            }
                        } else if !self.ready.load(Ordering::Relaxed) {
                            self.target.store(last, Ordering::Relaxed);
                        }
                    }
                    Err(err) => {
                        tracing::debug!(err = %err, "cannot read the bucket's state");
                    }
                }
            }
            self.telemetry.set(
                telemetry::CLUSTER_VIEW_AGE,
                &[],
                lock(&self.current_at).elapsed().as_secs_f64(),
            );
            self.telemetry.set(
                telemetry::CLUSTER_APPLIED_REVISION,
                &[],
                self.view.applied_revision() as f64,
            );
            self.telemetry.set(
                telemetry::CLUSTER_LEFT_OUT,
                &[],
                self.view.left_out_count() as f64,
            );
            tokio::select! {
                () = tokio::time::sleep(MONITOR_INTERVAL) => {}
                () = self.recheck.notified() => {}
            }
        }
    }

    fn on_event(&self, event: async_nats::Event) {
        match event {
            async_nats::Event::Connected => {
                tracing::info!("connected to NATS");
                self.set_connected(true);
                self.recheck.notify_one();
            }
            async_nats::Event::Disconnected => {
                tracing::warn!(
                    "disconnected from NATS; changes are refused and scrapes serve the last view until it is back"
                );
                self.set_connected(false);
                // Not ready until the view has caught up again.
                self.ready.store(false, Ordering::Relaxed);
                self.target.store(u64::MAX, Ordering::Relaxed);
                *lock(&self.waiting_since) = Some(Instant::now());
                self.telemetry.set(telemetry::CLUSTER_READY, &[], 0.0);
            }
            other => tracing::info!(event = %other, "NATS connection event"),
        }
    }

    fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        self.telemetry.set(
            telemetry::CLUSTER_CONNECTED,
            &[],
            if connected { 1.0 } else { 0.0 },
        );
    }

    fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn become_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
        *lock(&self.current_at) = Instant::now();
        self.telemetry.set(telemetry::CLUSTER_READY, &[], 1.0);
        if let Some(since) = lock(&self.waiting_since).take() {
            let seconds = since.elapsed().as_secs_f64();
            self.telemetry
                .set(telemetry::CLUSTER_TIME_TO_READY, &[], seconds);
            tracing::info!(
                revision = self.view.applied_revision(),
                seconds,
                "the view has caught up with the cluster store; ready"
            );
        }
    }

    /// Imports a persistence file (ours or upstream's) into the bucket, if the bucket is empty.
    async fn import(&self, bucket: &kv::Store, file: &std::path::Path) {
        let Some(connection) = self.connection.get() else {
            return;
        };
        let messages = match connection.jetstream.get_stream(&bucket.stream_name).await {
            Ok(stream) => stream.cached_info().state.messages,
            Err(err) => {
                tracing::error!(err = %err, "cannot tell whether the bucket is empty; nothing imported");
                return;
            }
        };
        if messages > 0 {
            tracing::info!(file = %file.display(), "the bucket is not empty; the persistence file is not imported");
            return;
        }
        let groups = match crate::persist::read_only(file) {
            Ok(groups) => groups,
            Err(err) => {
                tracing::error!(err = %err, file = %file.display(), "cannot import the persistence file");
                return;
            }
        };
        let mut imported = 0usize;
        for group in groups {
            let mut value = Vec::new();
            Record::Group {
                key: group.key.clone(),
                meta: group.meta,
                families: group.families,
            }
            .encode(&mut value);
            match bucket.create(keys::encode(&group.key), value.into()).await {
                Ok(_) => imported += 1,
                Err(err) => {
                    tracing::error!(err = %err, grouping_key = %group.key, "cannot import a group");
                }
            }
        }
        tracing::info!(file = %file.display(), groups = imported, "imported the persistence file into the bucket");
    }

    /// Waits (bounded by `deadline`) until the view has applied `revision`; asks for a
    /// catch-up from the stream if the watch has not delivered it after [`NUDGE_AFTER`].
    async fn caught_up(&self, revision: u64, deadline: Instant) -> bool {
        let mut applied = self.applied.subscribe();
        let nudge_at = deadline.min(Instant::now() + NUDGE_AFTER);
        if tokio::time::timeout_at(nudge_at.into(), applied.wait_for(|a| *a >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            return true;
        }
        self.catch_up.notify_one();
        tokio::time::timeout_at(deadline.into(), applied.wait_for(|a| *a >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The bucket's last revision now.
    async fn last_revision(&self, bucket: &kv::Store) -> Result<u64, String> {
        let connection = self.connection.get().ok_or("not connected")?;
        connection
            .jetstream
            .get_stream(&bucket.stream_name)
            .await
            .map(|stream| stream.cached_info().state.last_sequence)
            .map_err(|e| e.to_string())
    }

    async fn carry_out(&self, change: Change) -> Result<Applied, StoreError> {
        let deadline = Instant::now() + self.options.timeout;
        let Some(bucket) = self.connection.get().map(|c| c.bucket.clone()) else {
            return Err(StoreError::NotKept(
                "the cluster store has not been reached yet; nothing was changed".into(),
            ));
        };
        // Several groups at once (wipe, bulk deletion, expiry): a group changed since the
        // plan was made is skipped, as if the change came after.
        let many = matches!(
            change,
            Change::Wipe | Change::DeleteMatching { .. } | Change::Expire { .. }
        );
        loop {
            let plan = self.view.plan(&change);
            let mut revisions = Vec::new();
            let mut deleted = Vec::new();
            let mut conflict = false;
            for proposal in plan.proposals {
                let key = proposal.key.clone();
                let is_delete = proposal.group.is_none();
                match self.propose(&bucket, proposal, deadline).await {
                    Ok(revision) => {
                        revisions.push(revision);
                        if is_delete {
                            deleted.push(key);
                        }
                    }
                    Err(Proposed::Conflict) if many => {}
                    Err(Proposed::Conflict) => {
                        conflict = true;
                        break;
                    }
                    Err(Proposed::Refused(err)) => return Err(err),
                }
            }
            if conflict {
                self.telemetry
                    .increment(telemetry::CLUSTER_CAS_RETRIES, &[]);
                let last = self
                    .last_revision(&bucket)
                    .await
                    .map_err(|e| unreachable(&e))?;
                if !self.caught_up(last, deadline).await {
                    return Err(StoreError::NotKept(
                        format!("the view did not catch up with the cluster store within {:?}; nothing was changed", self.options.timeout).into(),
                    ));
                }
                continue;
            }
            if let Some(last) = revisions.iter().max()
                && !self.caught_up(*last, deadline).await
            {
                tracing::warn!(
                    revision = last,
                    "a change was acknowledged by the cluster but this replica's view has not applied it yet"
                );
            }
            return match plan.refused {
                Some(err) => Err(err),
                None => Ok(Applied { deleted }),
            };
        }
    }

    /// Writes one proposal to the bucket, retrying while NATS is unavailable (leader
    /// election, a lost connection) until the deadline. Returns its revision.
    async fn propose(
        &self,
        bucket: &kv::Store,
        proposal: Proposal,
        deadline: Instant,
    ) -> Result<u64, Proposed> {
        let key = keys::encode(&proposal.key);
        let value = proposal.group.as_ref().map(|group| {
            let mut bytes = Vec::with_capacity(group.encoded_len() + 256);
            codec::encode_group(group, &mut bytes);
            Bytes::from(bytes)
        });
        if let Some(value) = &value
            && let Some(connection) = self.connection.get()
        {
            let limit = connection.client.server_info().max_payload;
            if value.len() > limit {
                return Err(Proposed::Refused(StoreError::TooLarge {
                    bytes: value.len(),
                    limit,
                    what: "the NATS servers' max_payload",
                }));
            }
        }
        let base = proposal.expected.unwrap_or(0);
        loop {
            let result = match self.claim(&key, base).await {
                Ok(()) => {
                    self.write(bucket, &key, value.as_ref(), proposal.expected)
                        .await
                }
                Err(outcome) => Err(outcome),
            };
            match result {
                Ok(revision) => return Ok(revision),
                Err(Outcome::Conflict) => return Err(Proposed::Conflict),
                Err(Outcome::Unavailable(reason)) => {
                    if Instant::now() + BACKOFF >= deadline {
                        return Err(Proposed::Refused(unreachable(&reason)));
                    }
                    tokio::time::sleep(BACKOFF).await;
                }
            }
        }
    }

    /// Claims the right to write `key` on top of revision `base`. JetStream does not serialize
    /// its compare-and-set on a key's last revision in clustered streams before nats-server
    /// 2.10 (two writes against the same revision can both be accepted: nats-server issue
    /// #4320), but it does apply a subject's message limit at storage, in log order: so each
    /// write first stores the one message of the subject `<key>.<base>` in the claims
    /// stream, and only the writer that got it writes. Claims expire after twice the
    /// timeout, so that a replica that died holding one blocks that key only that long.
    async fn claim(&self, key: &str, base: u64) -> Result<(), Outcome> {
        let connection = self
            .connection
            .get()
            .ok_or_else(|| Outcome::Unavailable("not connected".into()))?;
        let subject = format!("{}.{key}.{base}", claims_prefix(&self.options.bucket));
        let ack = connection
            .jetstream
            .publish(subject, Bytes::new())
            .await
            .map_err(|e| Outcome::Unavailable(e.to_string()))?
            .await;
        match ack {
            Ok(_) => Ok(()),
            Err(err) if subject_full(&err) => {
                // Somebody else writes on top of this revision now: its write will show in
                // the view (or its claim expire) before the next try.
                tokio::time::sleep(BACKOFF / 5).await;
                Err(Outcome::Conflict)
            }
            Err(err) => Err(Outcome::Unavailable(err.to_string())),
        }
    }

    /// Writes (or deletes) `key` if it is still at `expected`; returns the write's revision.
    async fn write(
        &self,
        bucket: &kv::Store,
        key: &str,
        value: Option<&Bytes>,
        expected: Option<u64>,
    ) -> Result<u64, Outcome> {
        match (value, expected) {
            (Some(value), None) => bucket
                .create(key, value.clone())
                .await
                .map_err(|e| outcome(e.kind() == kv::CreateErrorKind::AlreadyExists, e)),
            (Some(value), Some(revision)) => bucket
                .update(key, value.clone(), revision)
                .await
                .map_err(|e| outcome(e.kind() == kv::UpdateErrorKind::WrongLastRevision, e)),
            (None, Some(revision)) => self.delete(bucket, key, revision).await,
            // Nothing to delete.
            (None, None) => Ok(0),
        }
    }

    /// Deletes a key if it is still at `revision`; returns the deletion's revision.
    async fn delete(&self, bucket: &kv::Store, key: &str, revision: u64) -> Result<u64, Outcome> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("KV-Operation", "DEL");
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            revision.to_string().as_str(),
        );
        let subject = format!("{}{key}", bucket.prefix);
        let connection = self
            .connection
            .get()
            .ok_or_else(|| Outcome::Unavailable("not connected".into()))?;
        let ack = connection
            .jetstream
            .publish_with_headers(subject, headers, Bytes::new())
            .await
            .map_err(|e| Outcome::Unavailable(e.to_string()))?
            .await;
        match ack {
            Ok(ack) => Ok(ack.sequence),
            Err(err) => Err(outcome(
                err.kind() == jetstream::context::PublishErrorKind::WrongLastSequence,
                err,
            )),
        }
    }
}

/// What became of one proposal.
enum Proposed {
    /// The key is no longer at the revision the plan was made against.
    Conflict,
    Refused(StoreError),
}

/// What a failed write means.
enum Outcome {
    Conflict,
    Unavailable(String),
}

fn outcome(conflict: bool, err: impl std::fmt::Display) -> Outcome {
    if conflict {
        Outcome::Conflict
    } else {
        Outcome::Unavailable(err.to_string())
    }
}

/// The subjects of write claims for a bucket.
fn claims_prefix(bucket: &str) -> String {
    format!("$PGWCLAIM.{bucket}")
}

/// Whether a publish was refused because its subject already holds its one message (a claim
/// somebody else has).
fn subject_full(err: &jetstream::context::PublishError) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .is_some_and(|err| {
            err.error_code() == jetstream::ErrorCode::STREAM_STORE_FAILED
                && err.to_string().contains("maximum messages per subject")
        })
}

fn unreachable(reason: &str) -> StoreError {
    StoreError::NotKept(
        format!("the cluster store did not acknowledge the change ({reason}); it may or may not have been applied: retry it").into(),
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A message of the bucket's stream as the watch would have delivered it.
fn entry_of(bucket: &kv::Store, message: jetstream::message::StreamMessage) -> kv::Entry {
    let operation = match message.headers.get("KV-Operation").map(|v| v.as_str()) {
        Some("DEL") => kv::Operation::Delete,
        Some("PURGE") => kv::Operation::Purge,
        _ => kv::Operation::Put,
    };
    kv::Entry {
        bucket: bucket.name.clone(),
        key: message
            .subject
            .strip_prefix(bucket.prefix.as_str())
            .unwrap_or_default()
            .to_string(),
        value: message.payload,
        revision: message.sequence,
        delta: 0,
        created: message.time,
        operation,
        seen_current: false,
    }
}

/// A value of the bucket: one group record in the store's own encoding.
fn decode_value(value: &Bytes) -> Option<PersistedGroup> {
    match codec::decode_record(value).ok()? {
        Record::Group {
            key,
            meta,
            families,
        } => Some(PersistedGroup {
            key,
            meta,
            families,
        }),
        _ => None,
    }
}

impl Backend for Cluster {
    fn commit(&self, change: Change) -> Commit<'_> {
        Box::pin(self.carry_out(change))
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
