//! The etcd backend: the [`Store`] trait mapped onto a real etcd v3 cluster
//! through `etcd-client`.
//!
//! Three things need more than a one-to-one call:
//! - Errors. etcd reports most failures as gRPC statuses whose message is
//!   the only thing telling them apart; [`status_to_error`] turns those
//!   messages into [`StoreError`] variants, and anything that means "etcd
//!   could not be reached" into [`StoreError::Unavailable`].
//! - Timeouts. A tonic channel applies `Endpoint::timeout` only until the
//!   response headers arrive, and a request queued on a balanced channel
//!   with no live endpoint waits for one without bound, so every unary call
//!   here runs under its own [`REQUEST_TIMEOUT`]; watch streams run without
//!   one.
//! - Watches. A watch outlives connections: [`WatchTask`] remembers the next
//!   revision to deliver and, when the stream breaks, watches again from
//!   there, so the caller sees every event exactly once.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use etcd_client as ec;
use tokio::sync::mpsc;

use crate::error::{Result, StoreError};
use crate::types::*;
use crate::{Store, WatchStream};

/// How long connecting to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the probe that `connect` sends may take, connection included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one unary request (or opening a stream) may take before the
/// store reports etcd unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// HTTP/2 ping interval on busy connections. etcd's server rejects pings
/// more often than every 5 s (`--grpc-keepalive-min-time`), and pings on
/// idle connections altogether, so pings are sent only while a call or a
/// watch is open.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a ping may go unanswered before the connection counts as dead.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response accepted. etcd answers a range with every key in it, and
/// tonic's default of 4 MiB would refuse a large list; etcd's own client
/// allows up to `i32::MAX`.
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// First pause before watching again after a watch stream broke.
const WATCH_BACKOFF_START: Duration = Duration::from_millis(100);

/// Longest pause between attempts to watch again.
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Watch responses buffered for a caller that is not reading.
const WATCH_CHANNEL_CAPACITY: usize = 128;

/// A store backed by a real etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    /// Key-value calls.
    kv: ec::KvClient,
    /// Watch streams.
    watch: ec::WatchClient,
    /// Lease calls.
    lease: ec::LeaseClient,
    /// "etcd at http://h1:2379,http://h2:2379", for errors and logs.
    backend: String,
    /// The client the three above came from, held so that the channel's
    /// endpoint list stays open for as long as the store lives.
    _client: ec::Client,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("backend", &self.backend)
            .finish()
    }
}

impl EtcdStore {
    /// Connects to an etcd cluster at these client endpoints
    /// (`http://host:port`) and checks that it answers.
    ///
    /// Fails with [`StoreError::Unavailable`] when no endpoint answers within
    /// a few seconds, and with [`StoreError::Invalid`] for malformed
    /// endpoints.
    pub async fn connect(endpoints: Vec<String>) -> Result<Self> {
        let backend = format!("etcd at {}", endpoints.join(","));
        if endpoints.is_empty() {
            return Err(StoreError::Invalid(
                "etcd store needs at least one endpoint".into(),
            ));
        }
        let options = ec::ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
            .with_keep_alive_while_idle(false);
        // The client connects lazily, so this fails only on malformed
        // endpoints; the probe below finds out whether etcd is there.
        let client = ec::Client::connect(&endpoints, Some(options))
            .await
            .map_err(|e| map_error(e, &backend, "connect", &ErrorContext::default()))?;
        let store = Self {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            lease: client.lease_client(),
            backend,
            _client: client,
        };
        let mut kv = store.kv.clone();
        let probe = kv.get(
            vec![0],
            Some(ec::GetOptions::new().with_count_only().with_limit(1)),
        );
        store
            .call_within(PROBE_TIMEOUT, "connect", &ErrorContext::default(), probe)
            .await?;
        Ok(store)
    }

    /// Runs one unary call under [`REQUEST_TIMEOUT`], mapping its error.
    async fn call<T>(
        &self,
        what: &'static str,
        cx: &ErrorContext,
        fut: impl Future<Output = std::result::Result<T, ec::Error>>,
    ) -> Result<T> {
        self.call_within(REQUEST_TIMEOUT, what, cx, fut).await
    }

    /// Runs one call under `limit`, mapping its error; a call that takes
    /// longer means etcd is unavailable.
    async fn call_within<T>(
        &self,
        limit: Duration,
        what: &'static str,
        cx: &ErrorContext,
        fut: impl Future<Output = std::result::Result<T, ec::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(map_error(e, &self.backend, what, cx)),
            Err(_) => Err(StoreError::Unavailable {
                backend: self.backend.clone(),
                reason: format!("{what}: no answer within {limit:?}"),
            }),
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let cx = ErrorContext::at_revision(req.revision);
        let (key, opts) = get_options(&req);
        let mut kv = self.kv.clone();
        let resp = self.call("range", &cx, kv.get(key, Some(opts))).await?;
        Ok(range_response(resp))
    }

    async fn put(&self, req: PutRequest) -> Result<PutResponse> {
        let cx = ErrorContext {
            lease: req.lease,
            size: req.key.len() + req.value.len(),
            ..ErrorContext::default()
        };
        let opts = put_options(&req);
        // `Vec::from` takes the buffer over without copying when the caller
        // holds the only reference to it.
        let (key, value) = (Vec::from(req.key), Vec::from(req.value));
        let mut kv = self.kv.clone();
        let resp = self
            .call("put", &cx, kv.put(key, value, Some(opts)))
            .await?;
        Ok(put_response(resp))
    }

    async fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        let (key, opts) = delete_options(&req);
        let mut kv = self.kv.clone();
        let resp = self
            .call(
                "delete",
                &ErrorContext::default(),
                kv.delete(key, Some(opts)),
            )
            .await?;
        Ok(delete_response(resp))
    }

    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        let cx = ErrorContext::of_txn(&req);
        let txn = ec::Txn::new()
            .when(req.compare.iter().map(compare).collect::<Vec<_>>())
            .and_then(req.success.iter().map(txn_op).collect::<Vec<_>>())
            .or_else(req.failure.iter().map(txn_op).collect::<Vec<_>>());
        let mut kv = self.kv.clone();
        let resp = self.call("txn", &cx, kv.txn(txn)).await?;
        let revision = header_revision(resp.header());
        let responses = resp
            .op_responses()
            .into_iter()
            .map(|op| match op {
                ec::TxnOpResponse::Get(r) => Ok(TxnOpResponse::Range(range_response(r))),
                ec::TxnOpResponse::Put(r) => Ok(TxnOpResponse::Put(put_response(r))),
                ec::TxnOpResponse::Delete(r) => Ok(TxnOpResponse::Delete(delete_response(r))),
                ec::TxnOpResponse::Txn(_) => Err(StoreError::Invalid(format!(
                    "{}: txn: etcd answered with a nested transaction nobody asked for",
                    self.backend
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TxnResponse {
            succeeded: resp.succeeded(),
            revision,
            responses,
        })
    }

    async fn watch(&self, req: WatchRequest) -> Result<WatchStream> {
        // Pin "from now on" to a revision before anything else, so the task
        // knows where to resume if the first stream breaks before an event.
        let next = if req.start_revision > 0 {
            req.start_revision
        } else {
            self.current_revision().await? + 1
        };
        let (tx, rx) = mpsc::channel(WATCH_CHANNEL_CAPACITY);
        let task = WatchTask {
            client: self.watch.clone(),
            backend: self.backend.clone(),
            range: req.range,
            prev_kv: req.prev_kv,
            next,
            tx,
        };
        // Open the first stream here so that an unreachable etcd is reported
        // to the caller rather than retried behind its back.
        let stream = task.open().await?;
        tokio::spawn(task.run(stream));
        Ok(WatchStream::new(rx))
    }

    async fn compact(&self, revision: Revision) -> Result<CompactResponse> {
        let cx = ErrorContext::at_revision(revision);
        // Physical: the call returns once the old revisions are gone, so a
        // read that follows sees the compaction.
        let opts = ec::CompactionOptions::new().with_physical();
        let mut kv = self.kv.clone();
        let resp = self
            .call("compact", &cx, kv.compact(revision, Some(opts)))
            .await?;
        Ok(CompactResponse {
            revision: header_revision(resp.header()),
        })
    }

    async fn lease_grant(&self, ttl: i64, id: LeaseId) -> Result<LeaseGrant> {
        let cx = ErrorContext {
            lease: id,
            ..ErrorContext::default()
        };
        let opts = ec::LeaseGrantOptions::new().with_id(id);
        let mut lease = self.lease.clone();
        let resp = self
            .call("lease grant", &cx, lease.grant(ttl, Some(opts)))
            .await?;
        if !resp.error().is_empty() {
            return Err(StoreError::Invalid(format!(
                "{}: lease grant: {}",
                self.backend,
                resp.error()
            )));
        }
        Ok(LeaseGrant {
            id: resp.id(),
            ttl: resp.ttl(),
        })
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<Revision> {
        let cx = ErrorContext {
            lease: id,
            ..ErrorContext::default()
        };
        let mut lease = self.lease.clone();
        let resp = self.call("lease revoke", &cx, lease.revoke(id)).await?;
        Ok(header_revision(resp.header()))
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<i64> {
        let cx = ErrorContext {
            lease: id,
            ..ErrorContext::default()
        };
        let mut lease = self.lease.clone();
        let renew = async move {
            // `keep_alive` sends the first renewal itself but keeps its
            // answer (and the TTL in it) to itself, failing only when the
            // lease is gone; a second renewal on the same stream yields the
            // TTL. Renewing twice in a row is harmless.
            let (mut keeper, mut answers) = lease.keep_alive(id).await?;
            keeper.keep_alive().await?;
            match answers.message().await? {
                Some(answer) => Ok(answer.ttl()),
                None => Err(ec::Error::LeaseKeepAliveError(
                    "keep-alive stream closed without an answer".into(),
                )),
            }
        };
        let ttl = self.call("lease keep-alive", &cx, renew).await?;
        // etcd answers TTL 0 (rather than an error) for a lease that does
        // not exist, for instance one that expired between the renewals.
        if ttl <= 0 {
            return Err(StoreError::LeaseNotFound(id));
        }
        Ok(ttl)
    }

    async fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseInfo> {
        let cx = ErrorContext {
            lease: id,
            ..ErrorContext::default()
        };
        let opts = ec::LeaseTimeToLiveOptions::new().with_keys();
        let mut lease = self.lease.clone();
        let resp = self
            .call(
                "lease time-to-live",
                &cx,
                lease.time_to_live(id, Some(opts)),
            )
            .await?;
        // etcd answers TTL -1 (rather than an error) for an unknown lease.
        if resp.ttl() < 0 {
            return Err(StoreError::LeaseNotFound(id));
        }
        // etcd lists the keys in no particular order (they come from a Go
        // map); the trait promises key order.
        let mut keys: Vec<Bytes> = resp
            .keys()
            .iter()
            .map(|k| Bytes::copy_from_slice(k))
            .collect();
        keys.sort();
        Ok(LeaseInfo {
            id: resp.id(),
            remaining_ttl: resp.ttl(),
            granted_ttl: resp.granted_ttl(),
            keys,
        })
    }

    fn describe(&self) -> String {
        self.backend.clone()
    }
}

/// A watch kept alive across broken streams: it forwards etcd's events to
/// the caller's channel and, when the stream breaks, watches again from the
/// next revision it has not delivered.
struct WatchTask {
    /// The watch client (it shares the store's channel).
    client: ec::WatchClient,
    /// The store's description, for errors and logs.
    backend: String,
    /// The keys watched.
    range: KeyRange,
    /// Whether events carry previous values.
    prev_kv: bool,
    /// The first revision not yet delivered; a new stream starts here.
    next: Revision,
    /// The caller's end of the watch.
    tx: mpsc::Sender<Result<WatchResponse>>,
}

/// How one etcd watch stream ended.
enum StreamEnd {
    /// The caller dropped its [`WatchStream`]; the task cancels the etcd
    /// watch (whose identifier, once etcd has told it, is carried) and ends.
    ReceiverGone(Option<i64>),
    /// The watch ended for good (an error was sent to the caller).
    Finished,
    /// The stream broke with this error; the task watches again after a
    /// pause if the error means etcd was unreachable. Also says whether the
    /// stream had been answering (so the back-off starts over).
    Broken(StoreError, bool),
}

impl WatchTask {
    /// Opens an etcd watch stream starting at [`WatchTask::next`].
    async fn open(&self) -> Result<ec::WatchStream> {
        let (key, range_end) = etcd_key_range(&self.range);
        let mut opts = ec::WatchOptions::new()
            .with_range(range_end)
            .with_start_revision(self.next);
        if self.prev_kv {
            opts = opts.with_prev_key();
        }
        let mut client = self.client.clone();
        match tokio::time::timeout(REQUEST_TIMEOUT, client.watch(key, Some(opts))).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(map_error(
                e,
                &self.backend,
                "watch",
                &ErrorContext::at_revision(self.next),
            )),
            Err(_) => Err(StoreError::Unavailable {
                backend: self.backend.clone(),
                reason: format!("watch: no answer within {REQUEST_TIMEOUT:?}"),
            }),
        }
    }

    /// Forwards events until the caller goes away or the watch ends,
    /// watching again with back-off whenever the stream breaks.
    async fn run(mut self, first: ec::WatchStream) {
        let mut stream = Some(first);
        let mut backoff = WATCH_BACKOFF_START;
        loop {
            let err = match stream.take() {
                Some(mut s) => match self.forward(&mut s).await {
                    StreamEnd::ReceiverGone(watch_id) => {
                        cancel(s, watch_id).await;
                        return;
                    }
                    StreamEnd::Finished => return,
                    StreamEnd::Broken(err, answered) => {
                        if answered {
                            backoff = WATCH_BACKOFF_START;
                        }
                        err
                    }
                },
                None => match self.open().await {
                    Ok(s) => {
                        stream = Some(s);
                        continue;
                    }
                    Err(err) => err,
                },
            };
            // Only a lost connection is worth waiting out; etcd refusing the
            // watch (say, permission denied) would refuse it again.
            if !matches!(err, StoreError::Unavailable { .. }) {
                let _ = self.tx.send(Err(err)).await;
                return;
            }
            tracing::warn!(
                backend = %self.backend,
                next_revision = self.next,
                retry_in = ?backoff,
                "etcd watch broke, watching again: {err}"
            );
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.tx.closed() => return,
            }
            backoff = (backoff * 2).min(WATCH_BACKOFF_MAX);
        }
    }

    /// Forwards the responses of one etcd stream.
    async fn forward(&mut self, stream: &mut ec::WatchStream) -> StreamEnd {
        let mut answered = false;
        let mut watch_id = None;
        loop {
            let message = tokio::select! {
                _ = self.tx.closed() => return StreamEnd::ReceiverGone(watch_id),
                message = stream.message() => message,
            };
            let resp = match message {
                Ok(Some(resp)) => resp,
                Ok(None) => {
                    let err = StoreError::Unavailable {
                        backend: self.backend.clone(),
                        reason: "watch: etcd closed the watch stream".into(),
                    };
                    return StreamEnd::Broken(err, answered);
                }
                Err(e) => {
                    let cx = ErrorContext::at_revision(self.next);
                    let err = map_error(e, &self.backend, "watch", &cx);
                    return StreamEnd::Broken(err, answered);
                }
            };
            answered = true;
            if resp.created() {
                watch_id = Some(resp.watch_id());
            }
            if resp.compact_revision() > 0 {
                // etcd cancels a watch whose start has been compacted away;
                // the events in between are lost, which only the caller can
                // handle (by listing again).
                let err = StoreError::Compacted {
                    requested: self.next,
                    compacted: Some(resp.compact_revision()),
                };
                let _ = self.tx.send(Err(err)).await;
                return StreamEnd::Finished;
            }
            if resp.canceled() {
                let reason = resp.cancel_reason();
                let err = StoreError::Invalid(format!(
                    "{}: watch: etcd canceled the watch: {}",
                    self.backend,
                    if reason.is_empty() {
                        "no reason given"
                    } else {
                        reason
                    }
                ));
                let _ = self.tx.send(Err(err)).await;
                return StreamEnd::Finished;
            }
            // A stream that was re-established never repeats a revision, as
            // it starts at `next`; the filter makes that a property of this
            // code rather than of etcd.
            let events: Vec<Event> = resp
                .events()
                .iter()
                .map(event)
                .filter(|e| e.kv.mod_revision >= self.next)
                .collect();
            let Some(last) = events.last().map(|e| e.kv.mod_revision) else {
                // The "created" answer and progress notifications carry no
                // events, and a response is never empty.
                continue;
            };
            let batch = WatchResponse {
                revision: header_revision(resp.header()),
                events,
            };
            if self.tx.send(Ok(batch)).await.is_err() {
                return StreamEnd::ReceiverGone(watch_id);
            }
            self.next = last + 1;
        }
    }
}

/// Cancels an etcd watch whose caller has gone. Dropping the stream resets
/// it, which ends the watch on the server anyway; the explicit cancel lets
/// etcd release the watcher without waiting to notice the reset.
async fn cancel(mut stream: ec::WatchStream, watch_id: Option<i64>) {
    if let Some(id) = watch_id {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.cancel(id)).await;
    }
}

/// What a request asked for, to fill in the fields of an error that etcd's
/// message leaves out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ErrorContext {
    /// The oldest revision the request reads at (for `Compacted`).
    oldest_revision: Revision,
    /// The newest revision the request reads at (for `FutureRevision`).
    newest_revision: Revision,
    /// The lease the request names (for `LeaseNotFound`, `LeaseExists`).
    lease: LeaseId,
    /// Bytes of keys and values in the request (for `RequestTooLarge`).
    size: usize,
    /// Most entries in one part of a transaction (for `TooManyOps`).
    ops: usize,
}

impl ErrorContext {
    /// A request that reads at one revision.
    fn at_revision(revision: Revision) -> Self {
        Self {
            oldest_revision: revision,
            newest_revision: revision,
            ..Self::default()
        }
    }

    /// A transaction: its reads' revisions, its first lease, its size, and
    /// its longest list (etcd limits compares as well as each branch).
    fn of_txn(req: &TxnRequest) -> Self {
        let ops = req.success.iter().chain(&req.failure);
        let revisions: Vec<Revision> = ops
            .clone()
            .filter_map(|op| match op {
                TxnOp::Range(r) if r.revision > 0 => Some(r.revision),
                _ => None,
            })
            .collect();
        let lease = ops
            .clone()
            .find_map(|op| match op {
                TxnOp::Put(p) if p.lease != 0 => Some(p.lease),
                _ => None,
            })
            .unwrap_or(0);
        let size = req
            .compare
            .iter()
            .map(|c| {
                c.key.len()
                    + match &c.target {
                        CompareTarget::Value(v) => v.len(),
                        _ => 0,
                    }
            })
            .sum::<usize>()
            + ops
                .map(|op| match op {
                    TxnOp::Range(r) => r.range.start.len(),
                    TxnOp::Put(p) => p.key.len() + p.value.len(),
                    TxnOp::Delete(d) => d.range.start.len(),
                })
                .sum::<usize>();
        Self {
            oldest_revision: revisions.iter().copied().min().unwrap_or(0),
            newest_revision: revisions.iter().copied().max().unwrap_or(0),
            lease,
            size,
            ops: req
                .compare
                .len()
                .max(req.success.len())
                .max(req.failure.len()),
        }
    }
}

/// Turns an `etcd-client` error into a [`StoreError`]. `what` names the
/// operation, for messages.
fn map_error(err: ec::Error, backend: &str, what: &str, cx: &ErrorContext) -> StoreError {
    let unavailable = |reason: String| StoreError::Unavailable {
        backend: backend.to_string(),
        reason: format!("{what}: {reason}"),
    };
    match err {
        ec::Error::GRpcStatus(status) => status_to_error(&status, backend, what, cx),
        ec::Error::TransportError(e) => unavailable(error_chain(&e)),
        ec::Error::IoError(e) => unavailable(error_chain(&e)),
        // etcd-client's own word for a keep-alive whose first answer had
        // TTL 0, which is how etcd says the lease does not exist.
        ec::Error::LeaseKeepAliveError(msg) if msg == "lease not found" => {
            StoreError::LeaseNotFound(cx.lease)
        }
        // These two wrap a request channel into a stream that has closed,
        // that is, a stream the connection took down.
        ec::Error::LeaseKeepAliveError(msg) | ec::Error::WatchError(msg) => unavailable(msg),
        other => StoreError::Invalid(format!("{backend}: {what}: {other}")),
    }
}

/// Turns a gRPC status into a [`StoreError`], by etcd's message where etcd
/// chose the status, and by code where the transport did.
fn status_to_error(
    status: &tonic::Status,
    backend: &str,
    what: &str,
    cx: &ErrorContext,
) -> StoreError {
    use tonic::Code;
    let message = status.message();
    // etcd's messages are "etcdserver: " plus the error; match the error
    // itself so a proxy that strips or changes the prefix still maps.
    if message.contains("required revision has been compacted") {
        return StoreError::Compacted {
            requested: cx.oldest_revision,
            compacted: None,
        };
    }
    if message.contains("required revision is a future revision") {
        return StoreError::FutureRevision {
            requested: cx.newest_revision,
        };
    }
    if message.contains("requested lease not found") {
        return StoreError::LeaseNotFound(cx.lease);
    }
    if message.contains("lease already exists") {
        return StoreError::LeaseExists(cx.lease);
    }
    if message.contains("key is not provided") {
        return StoreError::EmptyKey;
    }
    if message.contains("request is too large") {
        return StoreError::RequestTooLarge {
            size: cx.size,
            limit: MAX_REQUEST_BYTES,
        };
    }
    // gRPC's own limit (etcd's plus 512 KiB of slack) rejects a request
    // before etcd sees it: "grpc: received message larger than max (N vs. M)".
    if status.code() == Code::ResourceExhausted && message.contains("larger than max") {
        let (size, limit) = parse_sizes(message).unwrap_or((cx.size, MAX_REQUEST_BYTES));
        return StoreError::RequestTooLarge { size, limit };
    }
    if message.contains("too many operations in txn request") {
        return StoreError::TooManyOps {
            ops: cx.ops,
            limit: MAX_TXN_OPS,
        };
    }
    if message.contains("duplicate key given in txn request") {
        return StoreError::DuplicateKey;
    }
    let unavailable = StoreError::Unavailable {
        backend: backend.to_string(),
        reason: format!("{what}: {}", status_text(status)),
    };
    match status.code() {
        // etcd's transient failures (no leader, timeouts, a request canceled
        // by a shutdown) and the transport's "cannot connect" both come as
        // these codes.
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => unavailable,
        // A status built on this side of the wire carries the transport error
        // it came from; one etcd sent never does.
        _ if std::error::Error::source(status).is_some() => unavailable,
        Code::Unknown | Code::Internal if message.starts_with("h2 protocol error") => unavailable,
        _ => StoreError::Invalid(format!("{backend}: {what}: {}", status_text(status))),
    }
}

/// The numbers in "grpc: received message larger than max (N vs. M)".
fn parse_sizes(message: &str) -> Option<(usize, usize)> {
    let inside = message.rsplit_once('(')?.1.strip_suffix(')')?;
    let (size, limit) = inside.split_once(" vs. ")?;
    Some((size.trim().parse().ok()?, limit.trim().parse().ok()?))
}

/// A status's message followed by the chain of errors that caused it.
fn status_text(status: &tonic::Status) -> String {
    let text = status.message().to_string();
    let text = if text.is_empty() {
        format!("{:?}", status.code())
    } else {
        text
    };
    match std::error::Error::source(status) {
        Some(source) => append_chain(text, source),
        None => text,
    }
}

/// An error followed by the chain of errors that caused it; transport errors
/// say little at the top ("transport error") and everything underneath.
fn error_chain(err: &dyn std::error::Error) -> String {
    match err.source() {
        Some(source) => append_chain(err.to_string(), source),
        None => err.to_string(),
    }
}

/// Appends `source` and its own sources to `text`. Transport errors repeat
/// their source's text in their own, and the sources repeat each other, so
/// each part is kept once.
fn append_chain(mut text: String, source: &(dyn std::error::Error + 'static)) -> String {
    let mut next = Some(source);
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

/// The key and range end etcd expects for a [`KeyRange`]. An empty range end
/// means one key and `"\0"` means "every key from the start on"; every key
/// of all is `"\0"` to `"\0"`, since keys are never empty.
fn etcd_key_range(range: &KeyRange) -> (Vec<u8>, Vec<u8>) {
    match &range.end {
        RangeEnd::Single => (range.start.to_vec(), Vec::new()),
        RangeEnd::Before(end) => (range.start.to_vec(), end.to_vec()),
        RangeEnd::Unbounded if range.start.is_empty() => (vec![0], vec![0]),
        RangeEnd::Unbounded => (range.start.to_vec(), vec![0]),
    }
}

/// The key and options of an etcd range request.
fn get_options(req: &RangeRequest) -> (Vec<u8>, ec::GetOptions) {
    let (key, range_end) = etcd_key_range(&req.range);
    let mut opts = ec::GetOptions::new()
        .with_range(range_end)
        .with_revision(req.revision)
        .with_limit(req.limit);
    if req.count_only {
        opts = opts.with_count_only();
    }
    if req.keys_only {
        opts = opts.with_keys_only();
    }
    (key, opts)
}

/// The options of an etcd put request.
fn put_options(req: &PutRequest) -> ec::PutOptions {
    let mut opts = ec::PutOptions::new().with_lease(req.lease);
    if req.prev_kv {
        opts = opts.with_prev_key();
    }
    opts
}

/// The key and options of an etcd delete request.
fn delete_options(req: &DeleteRequest) -> (Vec<u8>, ec::DeleteOptions) {
    let (key, range_end) = etcd_key_range(&req.range);
    let mut opts = ec::DeleteOptions::new().with_range(range_end);
    if req.prev_kv {
        opts = opts.with_prev_key();
    }
    (key, opts)
}

/// An etcd compare.
fn compare(c: &Compare) -> ec::Compare {
    let op = match c.op {
        CompareOp::Equal => ec::CompareOp::Equal,
        CompareOp::NotEqual => ec::CompareOp::NotEqual,
        CompareOp::Less => ec::CompareOp::Less,
        CompareOp::Greater => ec::CompareOp::Greater,
    };
    let key = c.key.to_vec();
    match &c.target {
        CompareTarget::Version(v) => ec::Compare::version(key, op, *v),
        CompareTarget::CreateRevision(r) => ec::Compare::create_revision(key, op, *r),
        CompareTarget::ModRevision(r) => ec::Compare::mod_revision(key, op, *r),
        CompareTarget::Value(v) => ec::Compare::value(key, op, v.to_vec()),
        CompareTarget::Lease(l) => ec::Compare::lease(key, op, *l),
    }
}

/// An etcd transaction operation.
fn txn_op(op: &TxnOp) -> ec::TxnOp {
    match op {
        TxnOp::Range(r) => {
            let (key, opts) = get_options(r);
            ec::TxnOp::get(key, Some(opts))
        }
        TxnOp::Put(p) => ec::TxnOp::put(p.key.to_vec(), p.value.to_vec(), Some(put_options(p))),
        TxnOp::Delete(d) => {
            let (key, opts) = delete_options(d);
            ec::TxnOp::delete(key, Some(opts))
        }
    }
}

/// The revision in a response header; etcd always sends one.
fn header_revision(header: Option<&ec::ResponseHeader>) -> Revision {
    header.map_or(0, ec::ResponseHeader::revision)
}

/// A key-value from etcd, moving the key and value rather than copying them.
fn key_value(kv: ec::KeyValue) -> KeyValue {
    let (create_revision, mod_revision, version, lease) = (
        kv.create_revision(),
        kv.mod_revision(),
        kv.version(),
        kv.lease(),
    );
    let (key, value) = kv.into_key_value();
    KeyValue {
        key: Bytes::from(key),
        value: Bytes::from(value),
        create_revision,
        mod_revision,
        version,
        lease,
    }
}

/// A key-value from etcd, copied out of a response that is only borrowed.
fn key_value_ref(kv: &ec::KeyValue) -> KeyValue {
    KeyValue {
        key: Bytes::copy_from_slice(kv.key()),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }
}

/// A watch event from etcd.
fn event(e: &ec::Event) -> Event {
    Event {
        kind: match e.event_type() {
            ec::EventType::Put => EventKind::Put,
            ec::EventType::Delete => EventKind::Delete,
        },
        kv: e.kv().map(key_value_ref).unwrap_or_default(),
        prev_kv: e.prev_kv().map(key_value_ref),
    }
}

/// A range answer from etcd.
fn range_response(mut resp: ec::GetResponse) -> RangeResponse {
    RangeResponse {
        revision: header_revision(resp.header()),
        more: resp.more(),
        count: resp.count(),
        kvs: resp.take_kvs().into_iter().map(key_value).collect(),
    }
}

/// A put answer from etcd.
fn put_response(mut resp: ec::PutResponse) -> PutResponse {
    PutResponse {
        revision: header_revision(resp.header()),
        prev_kv: resp.take_prev_key().map(key_value),
    }
}

/// A delete answer from etcd.
fn delete_response(mut resp: ec::DeleteResponse) -> DeleteResponse {
    DeleteResponse {
        revision: header_revision(resp.header()),
        deleted: resp.deleted(),
        prev_kvs: resp.take_prev_kvs().into_iter().map(key_value).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    /// The description errors are expected to name.
    const BACKEND: &str = "etcd at http://127.0.0.1:2379";

    /// A request context with a distinct value in every field, so a test can
    /// see which field an error took.
    fn cx() -> ErrorContext {
        ErrorContext {
            oldest_revision: 3,
            newest_revision: 9,
            lease: 0x77,
            size: 2_000_000,
            ops: 200,
        }
    }

    /// The kind and text of the error a status maps to.
    fn kind_of(code: Code, message: &str) -> String {
        let err = status_to_error(&Status::new(code, message), BACKEND, "put", &cx());
        format!("{}: {err}", err.kind())
    }

    #[test]
    fn maps_etcd_statuses_by_message() {
        let table = [
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
                "compacted: required revision 3 has been compacted",
            ),
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
                "future-revision: required revision 9 is a future revision",
            ),
            (
                Code::NotFound,
                "etcdserver: requested lease not found",
                "lease-not-found: lease 77 not found",
            ),
            (
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
                "lease-exists: lease 77 already exists",
            ),
            (
                Code::InvalidArgument,
                "etcdserver: key is not provided",
                "empty-key: key is not provided",
            ),
            (
                Code::InvalidArgument,
                "etcdserver: request is too large",
                "request-too-large: request of 2000000 bytes is too large (limit 1572864)",
            ),
            (
                Code::ResourceExhausted,
                "grpc: received message larger than max (2097169 vs. 2097152)",
                "request-too-large: request of 2097169 bytes is too large (limit 2097152)",
            ),
            (
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
                "too-many-ops: too many operations in transaction (200, limit 128)",
            ),
            (
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
                "duplicate-key: duplicate key given in transaction",
            ),
            (
                Code::Unavailable,
                "etcdserver: no leader",
                "unavailable: store unavailable: etcd at http://127.0.0.1:2379: put: etcdserver: no leader",
            ),
            (
                Code::Unavailable,
                "etcdserver: request timed out",
                "unavailable: store unavailable: etcd at http://127.0.0.1:2379: put: etcdserver: request timed out",
            ),
            (
                Code::DeadlineExceeded,
                "context deadline exceeded",
                "unavailable: store unavailable: etcd at http://127.0.0.1:2379: put: context deadline exceeded",
            ),
            (
                Code::Cancelled,
                "operation was canceled",
                "unavailable: store unavailable: etcd at http://127.0.0.1:2379: put: operation was canceled",
            ),
            (
                Code::Unknown,
                "h2 protocol error: connection reset",
                "unavailable: store unavailable: etcd at http://127.0.0.1:2379: put: h2 protocol error: connection reset",
            ),
            (
                Code::InvalidArgument,
                "etcdserver: too large lease TTL",
                "invalid: invalid request: etcd at http://127.0.0.1:2379: put: etcdserver: too large lease TTL",
            ),
            (
                Code::PermissionDenied,
                "etcdserver: permission denied",
                "invalid: invalid request: etcd at http://127.0.0.1:2379: put: etcdserver: permission denied",
            ),
        ];
        for (code, message, expected) in table {
            assert_eq!(kind_of(code, message), expected, "{code:?} {message:?}");
        }
    }

    #[test]
    fn statuses_from_the_transport_mean_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
        let status = Status::from_error(Box::new(io));
        assert_eq!(status.code(), Code::Unknown);
        let err = status_to_error(&status, BACKEND, "range", &cx());
        assert_eq!(err.kind(), "unavailable");
        assert!(err.to_string().contains("range: connection reset"), "{err}");
    }

    #[test]
    fn client_errors_map_to_store_errors() {
        let lease_gone = ec::Error::LeaseKeepAliveError("lease not found".into());
        assert!(matches!(
            map_error(lease_gone, BACKEND, "lease keep-alive", &cx()),
            StoreError::LeaseNotFound(0x77)
        ));
        let closed = ec::Error::WatchError("channel closed".into());
        assert_eq!(
            map_error(closed, BACKEND, "watch", &cx()).kind(),
            "unavailable"
        );
        let io = ec::Error::IoError(std::io::Error::other("broken pipe"));
        assert_eq!(map_error(io, BACKEND, "put", &cx()).kind(), "unavailable");
        let args = ec::Error::InvalidArgs("empty endpoints".into());
        let err = map_error(args, BACKEND, "connect", &cx());
        assert_eq!(err.kind(), "invalid");
        assert!(
            err.to_string()
                .contains("etcd at http://127.0.0.1:2379: connect"),
            "{err}"
        );
    }

    #[test]
    fn key_ranges_use_etcd_conventions() {
        assert_eq!(etcd_key_range(&KeyRange::key("a")), (b"a".to_vec(), vec![]));
        assert_eq!(
            etcd_key_range(&KeyRange::prefix("a/")),
            (b"a/".to_vec(), b"a0".to_vec())
        );
        assert_eq!(etcd_key_range(&KeyRange::prefix("")), (vec![0], vec![0]));
        assert_eq!(
            etcd_key_range(&KeyRange::from_key("m")),
            (b"m".to_vec(), vec![0])
        );
        assert_eq!(etcd_key_range(&KeyRange::from_key("")), (vec![0], vec![0]));
        assert_eq!(
            etcd_key_range(&KeyRange::span("a", "c")),
            (b"a".to_vec(), b"c".to_vec())
        );
    }

    #[test]
    fn transactions_report_what_errors_need() {
        let req = TxnRequest::when(vec![Compare::value("k", CompareOp::Equal, "vv")])
            .and_then(vec![
                TxnOp::Range(RangeRequest::key("a").at_revision(7)),
                TxnOp::Put(PutRequest::new("b", "xyz").with_lease(5)),
            ])
            .or_else(vec![TxnOp::Range(RangeRequest::key("a").at_revision(4))]);
        assert_eq!(
            ErrorContext::of_txn(&req),
            ErrorContext {
                oldest_revision: 4,
                newest_revision: 7,
                lease: 5,
                size: 3 + 1 + 4 + 1,
                ops: 2,
            }
        );
    }

    #[test]
    fn parses_grpc_size_messages() {
        assert_eq!(
            parse_sizes("grpc: received message larger than max (2097169 vs. 2097152)"),
            Some((2097169, 2097152))
        );
        assert_eq!(parse_sizes("something else"), None);
    }
}
