//! The etcd backend against a real etcd: every trait method's semantics, the
//! errors etcd reports, and an etcd outage with a watch open.
//!
//! Each test starts its own `EtcdServer`, which is killed and removed when
//! the test ends, passed or failed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use store::*;
use testkit::EtcdServer;

/// How long a test waits for an event that should arrive.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Starts etcd and connects a store to it.
async fn start() -> (EtcdServer, EtcdStore) {
    let etcd = EtcdServer::start().expect("etcd starts");
    let store = EtcdStore::connect(vec![etcd.endpoint()])
        .await
        .expect("store connects");
    (etcd, store)
}

/// Puts `key` = `value` and returns the new revision.
async fn put(store: &EtcdStore, key: &str, value: &str) -> Revision {
    store
        .put(PutRequest::new(key.to_string(), value.to_string()))
        .await
        .expect("put succeeds")
        .revision
}

/// Reads one key.
async fn get(store: &EtcdStore, key: &str) -> Option<KeyValue> {
    let mut resp = store
        .range(RangeRequest::key(key.to_string()))
        .await
        .expect("range succeeds");
    assert!(resp.kvs.len() <= 1);
    resp.kvs.pop()
}

/// Keys of a range answer, as strings.
fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

/// Waits for the next batch of a watch; panics if none comes in time.
async fn next_batch(watch: &mut WatchStream) -> Result<WatchResponse> {
    tokio::time::timeout(EVENT_WAIT, watch.next())
        .await
        .expect("a watch response arrives in time")
        .expect("the watch is still open")
}

/// Collects exactly `n` events from a watch.
async fn next_events(watch: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    while events.len() < n {
        events.extend(next_batch(watch).await.expect("no watch error").events);
    }
    assert_eq!(events.len(), n, "more events than expected: {events:?}");
    events
}

/// Reads a gauge from etcd's `/metrics` page.
fn metric(etcd: &EtcdServer, name: &str) -> f64 {
    let hostport = etcd.endpoint().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&hostport).expect("connect to etcd's metrics");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .expect("send a metrics request");
    let mut page = String::new();
    stream.read_to_string(&mut page).expect("read the metrics");
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not found"))
}

#[tokio::test]
async fn reads_and_writes_follow_etcd_revisions() {
    let (etcd, store) = start().await;
    assert_eq!(store.describe(), format!("etcd at {}", etcd.endpoint()));

    // A fresh etcd is at revision 1; each write makes exactly one more.
    assert_eq!(store.current_revision().await.unwrap(), 1);
    assert_eq!(put(&store, "/a/1", "one").await, 2);
    assert_eq!(put(&store, "/a/2", "two").await, 3);
    assert_eq!(put(&store, "/b/1", "three").await, 4);

    let updated = store
        .put(PutRequest::new("/a/1", "uno").with_prev_kv())
        .await
        .unwrap();
    assert_eq!(updated.revision, 5);
    let prev = updated.prev_kv.expect("previous value returned");
    assert_eq!(
        (&prev.value[..], prev.mod_revision, prev.version),
        (&b"one"[..], 2, 1)
    );
    let created = store
        .put(PutRequest::new("/c", "x").with_prev_kv())
        .await
        .unwrap();
    assert_eq!((created.revision, created.prev_kv), (6, None));

    let kv = get(&store, "/a/1").await.expect("key exists");
    assert_eq!(
        kv,
        KeyValue {
            key: Bytes::from_static(b"/a/1"),
            value: Bytes::from_static(b"uno"),
            create_revision: 2,
            mod_revision: 5,
            version: 2,
            lease: 0,
        }
    );
    assert_eq!(get(&store, "/nope").await, None);

    // Prefix, span, from-key and all-keys ranges; the answer's revision is
    // the current one.
    let all = store.range(RangeRequest::prefix("")).await.unwrap();
    assert_eq!(keys(&all.kvs), ["/a/1", "/a/2", "/b/1", "/c"]);
    assert_eq!((all.revision, all.count, all.more), (6, 4, false));
    let under_a = store.range(RangeRequest::prefix("/a/")).await.unwrap();
    assert_eq!(keys(&under_a.kvs), ["/a/1", "/a/2"]);
    let span = store
        .range(RangeRequest::new(KeyRange::span("/a/2", "/c")))
        .await
        .unwrap();
    assert_eq!(keys(&span.kvs), ["/a/2", "/b/1"]);
    let from = store
        .range(RangeRequest::new(KeyRange::from_key("/b")))
        .await
        .unwrap();
    assert_eq!(keys(&from.kvs), ["/b/1", "/c"]);
    let everything = store
        .range(RangeRequest::new(KeyRange::from_key("")))
        .await
        .unwrap();
    assert_eq!(everything.count, 4);

    // Limit: `more` says keys were left out and `count` counts them all.
    let limited = store
        .range(RangeRequest::prefix("").with_limit(2))
        .await
        .unwrap();
    assert_eq!(
        (keys(&limited.kvs), limited.more, limited.count),
        (vec!["/a/1".into(), "/a/2".into()], true, 4)
    );
    let exact = store
        .range(RangeRequest::prefix("").with_limit(4))
        .await
        .unwrap();
    assert_eq!((exact.kvs.len(), exact.more), (4, false));
    // etcd: with count_only, `more` stays false even when the limit is
    // below the count, since no keys are returned to be cut.
    let counted = store
        .range(RangeRequest::prefix("").count_only().with_limit(1))
        .await
        .unwrap();
    assert_eq!(
        (counted.kvs.len(), counted.more, counted.count),
        (0, false, 4)
    );
    let keys_only = store
        .range(RangeRequest::prefix("/a/").keys_only())
        .await
        .unwrap();
    assert_eq!(keys(&keys_only.kvs), ["/a/1", "/a/2"]);
    assert!(
        keys_only
            .kvs
            .iter()
            .all(|kv| kv.value.is_empty() && kv.version > 0)
    );

    // A read at a past revision sees that revision's data, but reports the
    // current revision.
    let past = store
        .range(RangeRequest::prefix("").at_revision(3))
        .await
        .unwrap();
    assert_eq!(keys(&past.kvs), ["/a/1", "/a/2"]);
    assert_eq!((past.revision, &past.kvs[0].value[..]), (6, &b"one"[..]));
    let future = store
        .range(RangeRequest::key("/a/1").at_revision(7))
        .await
        .unwrap_err();
    assert!(
        matches!(future, StoreError::FutureRevision { requested: 7 }),
        "{future}"
    );

    // A delete of nothing leaves the revision alone; a delete of a range
    // makes one revision for all its keys.
    let nothing = store.delete(DeleteRequest::key("/nope")).await.unwrap();
    assert_eq!((nothing.revision, nothing.deleted), (6, 0));
    let deleted = store
        .delete(DeleteRequest::prefix("/a/").with_prev_kv())
        .await
        .unwrap();
    assert_eq!((deleted.revision, deleted.deleted), (7, 2));
    assert_eq!(keys(&deleted.prev_kvs), ["/a/1", "/a/2"]);
    assert_eq!(store.current_revision().await.unwrap(), 7);
    assert_eq!(get(&store, "/a/2").await, None);
    let recreated = put(&store, "/a/1", "again").await;
    let kv = get(&store, "/a/1").await.unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (recreated, recreated, 1)
    );
}

#[tokio::test]
async fn transactions_compare_then_run_one_branch() {
    let (_etcd, store) = start().await;
    let rev = put(&store, "k", "v1").await;

    // Compare-and-swap on the modification revision: first it holds...
    let cas = |expected: Revision, value: &'static str| {
        TxnRequest::when(vec![Compare::mod_revision("k", CompareOp::Equal, expected)])
            .and_then(vec![TxnOp::Put(PutRequest::new("k", value).with_prev_kv())])
            .or_else(vec![TxnOp::Range(RangeRequest::key("k"))])
    };
    let won = store.txn(cas(rev, "v2")).await.unwrap();
    assert!(won.succeeded);
    assert_eq!(won.revision, rev + 1);
    match &won.responses[..] {
        [TxnOpResponse::Put(p)] => {
            assert_eq!(p.revision, rev + 1);
            assert_eq!(p.prev_kv.as_ref().map(|kv| &kv.value[..]), Some(&b"v1"[..]));
        }
        other => panic!("unexpected responses {other:?}"),
    }
    // ...then it does not, the failure branch runs and nothing is written.
    let lost = store.txn(cas(rev, "v3")).await.unwrap();
    assert!(!lost.succeeded);
    assert_eq!(lost.revision, rev + 1);
    match &lost.responses[..] {
        [TxnOpResponse::Range(r)] => assert_eq!(&r.kvs[0].value[..], b"v2"),
        other => panic!("unexpected responses {other:?}"),
    }

    // Every compare target and operator.
    let kv = get(&store, "k").await.unwrap();
    let holds = [
        Compare::version("k", CompareOp::Equal, 2),
        Compare::version("k", CompareOp::Greater, 1),
        Compare::create_revision("k", CompareOp::Equal, kv.create_revision),
        Compare::mod_revision("k", CompareOp::Less, kv.mod_revision + 1),
        Compare::value("k", CompareOp::Equal, "v2"),
        Compare::value("k", CompareOp::NotEqual, "v1"),
        Compare::value("k", CompareOp::Greater, "v1"),
        Compare::lease("k", CompareOp::Equal, 0),
        Compare::mod_revision("absent", CompareOp::Equal, 0),
        Compare::version("absent", CompareOp::Less, 1),
    ];
    for c in holds {
        let resp = store.txn(TxnRequest::when(vec![c.clone()])).await.unwrap();
        assert!(resp.succeeded, "{c:?} should hold");
        assert_eq!(
            resp.revision,
            rev + 1,
            "a transaction without writes makes no revision"
        );
    }
    let fails = [
        Compare::version("k", CompareOp::NotEqual, 2),
        Compare::value("k", CompareOp::Less, "v2"),
        Compare::lease("k", CompareOp::Greater, 0),
        // etcd: a value compare on an absent key is false, whatever the
        // operator.
        Compare::value("absent", CompareOp::NotEqual, "x"),
        Compare::value("absent", CompareOp::Equal, ""),
    ];
    for c in fails {
        let resp = store.txn(TxnRequest::when(vec![c.clone()])).await.unwrap();
        assert!(!resp.succeeded, "{c:?} should fail");
    }

    // All writes of a branch share one revision; reads in the branch see
    // the writes before them. Each answer's revision is etcd's: a read
    // before any write reports the revision the transaction started at.
    let start = store.current_revision().await.unwrap();
    let mixed = store
        .txn(TxnRequest::when(vec![]).and_then(vec![
            TxnOp::Range(RangeRequest::key("k")),
            TxnOp::Put(PutRequest::new("k", "v4")),
            TxnOp::Put(PutRequest::new("other", "o")),
            TxnOp::Range(RangeRequest::key("k")),
            TxnOp::Delete(DeleteRequest::key("absent")),
        ]))
        .await
        .unwrap();
    assert!(mixed.succeeded);
    assert_eq!(mixed.revision, start + 1);
    match &mixed.responses[..] {
        [
            TxnOpResponse::Range(before),
            TxnOpResponse::Put(p1),
            TxnOpResponse::Put(p2),
            TxnOpResponse::Range(after),
            TxnOpResponse::Delete(d),
        ] => {
            assert_eq!(
                (before.revision, &before.kvs[0].value[..]),
                (start, &b"v2"[..])
            );
            assert_eq!((p1.revision, p2.revision), (start + 1, start + 1));
            assert_eq!(
                (after.revision, &after.kvs[0].value[..]),
                (start + 1, &b"v4"[..])
            );
            assert_eq!((d.revision, d.deleted), (start + 1, 0));
        }
        other => panic!("unexpected responses {other:?}"),
    }
    assert_eq!(get(&store, "other").await.unwrap().mod_revision, start + 1);

    // Writing one key twice in a branch is refused (two deletes are not).
    let dup = TxnRequest::when(vec![]).and_then(vec![
        TxnOp::Put(PutRequest::new("d", "1")),
        TxnOp::Put(PutRequest::new("d", "2")),
    ]);
    assert_eq!(store.txn(dup).await.unwrap_err().kind(), "duplicate-key");
    let put_then_delete = TxnRequest::when(vec![]).and_then(vec![
        TxnOp::Put(PutRequest::new("d", "1")),
        TxnOp::Delete(DeleteRequest::key("d")),
    ]);
    assert_eq!(
        store.txn(put_then_delete).await.unwrap_err().kind(),
        "duplicate-key"
    );
    let two_deletes = TxnRequest::when(vec![]).and_then(vec![
        TxnOp::Delete(DeleteRequest::key("d")),
        TxnOp::Delete(DeleteRequest::key("d")),
    ]);
    assert!(store.txn(two_deletes).await.is_ok());

    // More than 128 operations in a branch, or compares, is refused.
    let many: Vec<TxnOp> = (0..=MAX_TXN_OPS)
        .map(|i| TxnOp::Range(RangeRequest::key(format!("r{i}"))))
        .collect();
    let err = store
        .txn(TxnRequest::when(vec![]).and_then(many))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::TooManyOps {
                ops: 129,
                limit: 128
            }
        ),
        "{err}"
    );
    let compares: Vec<Compare> = (0..=MAX_TXN_OPS)
        .map(|i| Compare::version(format!("r{i}"), CompareOp::Equal, 0))
        .collect();
    let err = store.txn(TxnRequest::when(compares)).await.unwrap_err();
    assert_eq!(err.kind(), "too-many-ops");
}

#[tokio::test]
async fn compaction_discards_history_for_reads_and_watches() {
    let (_etcd, store) = start().await;
    for i in 0..6 {
        put(&store, "k", &format!("v{i}")).await;
    }
    // Revisions 2..=7 hold v0..v5.
    let resp = store.compact(5).await.unwrap();
    assert_eq!(resp.revision, 7);

    let err = store
        .range(RangeRequest::key("k").at_revision(4))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Compacted {
                requested: 4,
                compacted: None
            }
        ),
        "{err}"
    );
    // The compaction revision itself stays readable.
    let at = store
        .range(RangeRequest::key("k").at_revision(5))
        .await
        .unwrap();
    assert_eq!(&at.kvs[0].value[..], b"v3");

    // A watch below the compaction point fails with its first item, naming
    // the compaction revision, and then ends.
    let mut below = store
        .watch(WatchRequest::new(KeyRange::key("k")).from_revision(4))
        .await
        .unwrap();
    match next_batch(&mut below).await {
        Err(StoreError::Compacted {
            requested: 4,
            compacted: Some(5),
        }) => {}
        other => panic!("expected a compaction error, got {other:?}"),
    }
    assert!(below.next().await.is_none());
    // A watch from the compaction revision gets every event from it on.
    let mut at = store
        .watch(WatchRequest::new(KeyRange::key("k")).from_revision(5))
        .await
        .unwrap();
    let events = next_events(&mut at, 3).await;
    let revisions: Vec<Revision> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, [5, 6, 7]);

    // Compacting at or below the compaction point again, or in the future,
    // is refused; compacting at the current revision is allowed.
    let again = store.compact(5).await.unwrap_err();
    assert!(
        matches!(again, StoreError::Compacted { requested: 5, .. }),
        "{again}"
    );
    let future = store.compact(8).await.unwrap_err();
    assert!(
        matches!(future, StoreError::FutureRevision { requested: 8 }),
        "{future}"
    );
    assert_eq!(store.compact(7).await.unwrap().revision, 7);
}

#[tokio::test]
async fn leases_keep_and_revoke_their_keys() {
    let (_etcd, store) = start().await;

    // etcd raises a TTL below its minimum (2 s for a single member with
    // default timings) to that minimum, including 0 and negative TTLs.
    for ttl in [-1, 0, 1] {
        let grant = store.lease_grant(ttl, 0).await.unwrap();
        assert_eq!(grant.ttl, MIN_LEASE_TTL, "TTL {ttl}");
    }

    let lease = store.lease_grant(30, 0).await.unwrap();
    assert_ne!(lease.id, 0);
    assert_eq!(lease.ttl, 30);
    let chosen = store.lease_grant(30, 0x1234).await.unwrap();
    assert_eq!(chosen.id, 0x1234);
    let err = store.lease_grant(30, 0x1234).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseExists(0x1234)), "{err}");

    for key in ["/l/c", "/l/a", "/l/b"] {
        store
            .put(PutRequest::new(key, "v").with_lease(lease.id))
            .await
            .unwrap();
    }
    assert_eq!(get(&store, "/l/a").await.unwrap().lease, lease.id);
    let info = store.lease_time_to_live(lease.id).await.unwrap();
    assert_eq!(info.id, lease.id);
    assert_eq!(info.granted_ttl, 30);
    assert!((28..=30).contains(&info.remaining_ttl), "{info:?}");
    assert_eq!(info.keys, ["/l/a", "/l/b", "/l/c"]);
    assert_eq!(store.lease_keep_alive(lease.id).await.unwrap(), 30);

    // A revoke deletes every attached key in one revision, which watches see.
    let mut watch = store
        .watch(WatchRequest::new(KeyRange::prefix("/l/")))
        .await
        .unwrap();
    let before = store.current_revision().await.unwrap();
    let revoked = store.lease_revoke(lease.id).await.unwrap();
    assert_eq!(revoked, before + 1);
    let events = next_events(&mut watch, 3).await;
    assert!(
        events
            .iter()
            .all(|e| e.kind == EventKind::Delete && e.kv.mod_revision == revoked)
    );
    assert_eq!(
        store
            .range(RangeRequest::prefix("/l/"))
            .await
            .unwrap()
            .count,
        0
    );
    // A revoke of a lease without keys writes nothing.
    let empty = store.lease_grant(30, 0).await.unwrap();
    assert_eq!(store.lease_revoke(empty.id).await.unwrap(), revoked);

    // A lease that is gone is reported as such by every lease call, and a
    // put cannot attach a key to it.
    for id in [lease.id, 0x4242] {
        let errs = [
            store.lease_keep_alive(id).await.unwrap_err(),
            store.lease_time_to_live(id).await.unwrap_err(),
            store.lease_revoke(id).await.unwrap_err(),
            store
                .put(PutRequest::new("/x", "v").with_lease(id))
                .await
                .unwrap_err(),
        ];
        for err in errs {
            assert!(
                matches!(err, StoreError::LeaseNotFound(found) if found == id),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn an_expired_lease_deletes_its_keys() {
    let (_etcd, store) = start().await;
    let lease = store.lease_grant(2, 0).await.unwrap();
    let put_rev = store
        .put(PutRequest::new("/e/k", "v").with_lease(lease.id))
        .await
        .unwrap()
        .revision;
    let mut watch = store
        .watch(WatchRequest::new(KeyRange::prefix("/e/")).with_prev_kv())
        .await
        .unwrap();
    let started = Instant::now();
    let events = next_events(&mut watch, 1).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "expired after {waited:?}");
    let event = &events[0];
    assert_eq!(event.kind, EventKind::Delete);
    assert_eq!(
        (&event.kv.key[..], event.kv.mod_revision),
        (&b"/e/k"[..], put_rev + 1)
    );
    assert_eq!(event.prev_kv.as_ref().map(|kv| kv.lease), Some(lease.id));
    assert_eq!(get(&store, "/e/k").await, None);
    let err = store.lease_time_to_live(lease.id).await.unwrap_err();
    assert_eq!(err.kind(), "lease-not-found");
}

#[tokio::test]
async fn watches_deliver_changes_in_order() {
    let (etcd, store) = start().await;
    let first = put(&store, "/w/a", "1").await;

    // From the current revision on (start 0), with previous values.
    let mut live = store
        .watch(WatchRequest::new(KeyRange::prefix("/w/")).with_prev_kv())
        .await
        .unwrap();
    put(&store, "/w/a", "2").await;
    store.delete(DeleteRequest::key("/w/a")).await.unwrap();
    put(&store, "/other", "x").await;
    let txn_rev = store
        .txn(TxnRequest::when(vec![]).and_then(vec![
            TxnOp::Put(PutRequest::new("/w/b", "1")),
            TxnOp::Put(PutRequest::new("/w/c", "1")),
        ]))
        .await
        .unwrap()
        .revision;
    let events = next_events(&mut live, 4).await;
    assert_eq!(events[0].kind, EventKind::Put);
    assert_eq!(&events[0].kv.value[..], b"2");
    assert_eq!(
        events[0].prev_kv.as_ref().map(|kv| &kv.value[..]),
        Some(&b"1"[..])
    );
    // etcd's delete events carry only the key and the revision; the old
    // value is in prev_kv.
    assert_eq!(events[1].kind, EventKind::Delete);
    assert_eq!(
        events[1].kv,
        KeyValue {
            key: Bytes::from_static(b"/w/a"),
            mod_revision: first + 2,
            ..KeyValue::default()
        }
    );
    assert_eq!(
        events[1].prev_kv.as_ref().map(|kv| &kv.value[..]),
        Some(&b"2"[..])
    );
    assert_eq!(
        events[2..]
            .iter()
            .map(|e| e.kv.mod_revision)
            .collect::<Vec<_>>(),
        [txn_rev, txn_rev]
    );

    // From a past revision: history first, in order, without prev_kv.
    let mut replay = store
        .watch(WatchRequest::new(KeyRange::key("/w/a")).from_revision(first))
        .await
        .unwrap();
    let batch = next_batch(&mut replay).await.unwrap();
    assert_eq!(
        batch.revision, txn_rev,
        "a batch carries the current revision"
    );
    let revisions: Vec<Revision> = batch.events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, [first, first + 1, first + 2]);
    assert!(batch.events.iter().all(|e| e.prev_kv.is_none()));

    // Dropping the stream cancels the watch in etcd.
    let watchers = "etcd_debugging_mvcc_watcher_total";
    assert_eq!(metric(&etcd, watchers), 2.0);
    drop(live);
    drop(replay);
    let deadline = Instant::now() + EVENT_WAIT;
    while metric(&etcd, watchers) > 0.0 {
        assert!(
            Instant::now() < deadline,
            "watchers still registered in etcd"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bad_requests_get_etcds_errors() {
    let (_etcd, store) = start().await;
    for err in [
        store.put(PutRequest::new("", "v")).await.unwrap_err(),
        store.range(RangeRequest::key("")).await.unwrap_err(),
        store.delete(DeleteRequest::key("")).await.unwrap_err(),
        // etcd: a span needs a start key too; only the all-keys range may
        // start empty.
        store
            .range(RangeRequest::new(KeyRange::span("", "b")))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::EmptyKey), "{err}");
    }

    // Above etcd's request limit (1.5 MiB) etcd refuses the request; above
    // gRPC's (the limit plus 512 KiB) gRPC does. Both are too large.
    for size in [1_600_000, 2 << 20] {
        let err = store
            .put(PutRequest::new("big", vec![b'x'; size]))
            .await
            .unwrap_err();
        match err {
            StoreError::RequestTooLarge {
                size: reported,
                limit,
            } => {
                assert!(reported >= size && limit < reported, "{reported} {limit}");
            }
            other => panic!("{size} bytes: expected request-too-large, got {other}"),
        }
    }
    // A value just under the limit goes through.
    store
        .put(PutRequest::new("big", vec![b'x'; 1_500_000]))
        .await
        .unwrap();
}

#[tokio::test]
async fn connecting_to_nothing_is_unavailable_quickly() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = EtcdStore::connect(vec![format!("http://127.0.0.1:{port}")])
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_survives_an_etcd_outage() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (mut etcd, store) = start().await;
    let mut watch = store
        .watch(WatchRequest::new(KeyRange::prefix("/o/")))
        .await
        .unwrap();
    let start_rev = store.current_revision().await.unwrap() + 1;
    let mut written = Vec::new();
    for i in 0..5 {
        let key = format!("/o/before-{i}");
        written.push((key.clone(), put(&store, &key, "v").await));
    }
    let mut seen = next_events(&mut watch, 5).await;

    // etcd goes away: a write fails as unavailable, promptly.
    etcd.kill().unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        store.put(PutRequest::new("/o/during", "v")),
    )
    .await
    .expect("a put with etcd down does not hang")
    .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );

    // Stay down long enough for the watch to fail to reconnect a few times.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // etcd comes back: writes succeed again within 10 s.
    etcd.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.put(PutRequest::new("/o/after-0", "v")).await {
            Ok(resp) => {
                written.push(("/o/after-0".into(), resp.revision));
                break;
            }
            Err(e) if e.kind() == "unavailable" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("writes did not resume: {e}"),
        }
    }
    for i in 1..20 {
        let key = format!("/o/after-{i}");
        written.push((key.clone(), put(&store, &key, "v").await));
    }

    // The same watch, never re-opened by this test, delivers everything
    // written after the restart: each revision once, in order, no gaps.
    // (A put that failed as unavailable might still have been applied, so
    // the check is on revisions being consecutive, plus every put that
    // succeeded being there.)
    let last = written.last().unwrap().1;
    while seen.last().map(|e| e.kv.mod_revision) != Some(last) {
        seen.extend(next_batch(&mut watch).await.expect("no watch error").events);
    }
    let revisions: Vec<Revision> = seen.iter().map(|e| e.kv.mod_revision).collect();
    let expected: Vec<Revision> = (start_rev..=last).collect();
    assert_eq!(revisions, expected);
    for (key, rev) in &written {
        assert!(
            seen.iter()
                .any(|e| &e.kv.key[..] == key.as_bytes() && e.kv.mod_revision == *rev),
            "{key} at {rev} missing"
        );
    }
}
