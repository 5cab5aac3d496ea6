//! The conformance suite: every case runs unchanged against a fresh embedded
//! store and a fresh real etcd, and asserts exact revisions, versions, events
//! and errors. Passing on both means both backends answer alike.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Backend, assert_quiet, next_batch};
use store::*;

/// Generates one test per case and backend: `embedded::<case>`, `etcd::<case>`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::embedded().await;
                    super::$case(&*backend.store).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::etcd().await;
                    super::$case(&*backend.store).await;
                }
            )*
        }
    };
}

conformance!(
    revisions_and_versions,
    range_options,
    previous_values,
    txn_compare_and_swap,
    txn_compares_every_field,
    txn_reads_its_own_writes,
    txn_refusals_write_nothing,
    request_errors_write_nothing,
    compaction,
    watch_history_with_prev_kv,
    watch_live_only,
    watch_slow_reader_misses_nothing,
    watch_below_compaction,
    leases,
    lease_expiry,
);

async fn put(s: &dyn Store, k: &str, v: &str) -> PutResponse {
    s.put(PutRequest::new(k.to_owned(), v.to_owned()))
        .await
        .expect("put")
}

async fn get(s: &dyn Store, k: &str) -> Option<KeyValue> {
    s.range(RangeRequest::key(k.to_owned()))
        .await
        .expect("get")
        .kvs
        .pop()
}

fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter()
        .map(|kv| std::str::from_utf8(&kv.key).unwrap())
        .collect()
}

async fn revisions_and_versions(s: &dyn Store) {
    assert_eq!(s.current_revision().await.unwrap(), 1);
    assert_eq!(put(s, "a", "1").await.revision, 2);
    assert_eq!(put(s, "a", "2").await.revision, 3);
    assert_eq!(put(s, "b", "1").await.revision, 4);
    let a = get(s, "a").await.unwrap();
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version, a.lease),
        (2, 3, 2, 0)
    );
    assert_eq!(a.value, "2");

    // A past revision shows the past; the answer's revision is the current one.
    let past = s
        .range(RangeRequest::key("a").at_revision(2))
        .await
        .unwrap();
    assert_eq!(past.revision, 4);
    assert_eq!(past.kvs[0].value, "1");
    assert_eq!(past.kvs[0].version, 1);
    let before = s
        .range(RangeRequest::key("b").at_revision(3))
        .await
        .unwrap();
    assert_eq!(before.count, 0);
    let err = s
        .range(RangeRequest::key("a").at_revision(5))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "future-revision", "{err}");

    // Deleting nothing makes no revision.
    let none = s.delete(DeleteRequest::key("zzz")).await.unwrap();
    assert_eq!((none.deleted, none.revision), (0, 4));
    let del = s.delete(DeleteRequest::key("a")).await.unwrap();
    assert_eq!((del.deleted, del.revision), (1, 5));
    assert_eq!(get(s, "a").await, None);
    // Re-creating starts over at version 1 with a new create revision.
    put(s, "a", "3").await;
    let a = get(s, "a").await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (6, 6, 1));
    assert_eq!(s.current_revision().await.unwrap(), 6);
}

async fn range_options(s: &dyn Store) {
    for k in ["/r/a", "/r/b", "/r/c", "/r/d", "/s/a", "/r"] {
        put(s, k, "v").await;
    }
    let all = s.range(RangeRequest::prefix("/r/")).await.unwrap();
    assert_eq!(keys(&all.kvs), ["/r/a", "/r/b", "/r/c", "/r/d"]);
    assert_eq!((all.count, all.more), (4, false));

    let page = s
        .range(RangeRequest::prefix("/r/").with_limit(3))
        .await
        .unwrap();
    assert_eq!(keys(&page.kvs), ["/r/a", "/r/b", "/r/c"]);
    assert_eq!((page.count, page.more), (4, true));
    let exact = s
        .range(RangeRequest::prefix("/r/").with_limit(4))
        .await
        .unwrap();
    assert_eq!((exact.kvs.len(), exact.more), (4, false));

    // The next page starts just after the last key of the previous one.
    let rest = s
        .range(RangeRequest::new(KeyRange::span("/r/c\0", "/r0")))
        .await
        .unwrap();
    assert_eq!(keys(&rest.kvs), ["/r/d"]);

    let counted = s
        .range(RangeRequest::prefix("/r/").count_only())
        .await
        .unwrap();
    assert_eq!(
        (counted.kvs.len(), counted.count, counted.more),
        (0, 4, false)
    );
    let counted_limited = s
        .range(RangeRequest::prefix("/r/").count_only().with_limit(1))
        .await
        .unwrap();
    assert_eq!(counted_limited.count, 4);

    let bare = s
        .range(RangeRequest::prefix("/r/").keys_only())
        .await
        .unwrap();
    assert!(
        bare.kvs
            .iter()
            .all(|kv| kv.value.is_empty() && kv.version == 1)
    );

    let from = s
        .range(RangeRequest::new(KeyRange::from_key("/r/d")))
        .await
        .unwrap();
    assert_eq!(keys(&from.kvs), ["/r/d", "/s/a"]);
    let everything = s.range(RangeRequest::prefix("")).await.unwrap();
    assert_eq!(everything.count, 6);
    let backwards = s
        .range(RangeRequest::new(KeyRange::span("/s", "/r")))
        .await
        .unwrap();
    assert_eq!(backwards.count, 0);
}

async fn previous_values(s: &dyn Store) {
    let first = s
        .put(PutRequest::new("k", "1").with_prev_kv())
        .await
        .unwrap();
    assert_eq!(first.prev_kv, None);
    let second = s
        .put(PutRequest::new("k", "2").with_prev_kv())
        .await
        .unwrap();
    let prev = second.prev_kv.unwrap();
    assert_eq!(
        (prev.value.as_ref(), prev.mod_revision, prev.version),
        (&b"1"[..], 2, 1)
    );
    // Without asking, no previous value.
    assert_eq!(put(s, "k", "3").await.prev_kv, None);

    put(s, "p/1", "a").await;
    put(s, "p/2", "b").await;
    let del = s
        .delete(DeleteRequest::prefix("p/").with_prev_kv())
        .await
        .unwrap();
    assert_eq!(del.deleted, 2);
    assert_eq!(keys(&del.prev_kvs), ["p/1", "p/2"]);
    assert_eq!(del.revision, 7);
    let plain = s.delete(DeleteRequest::key("k")).await.unwrap();
    assert!(plain.prev_kvs.is_empty());
}

async fn txn_compare_and_swap(s: &dyn Store) {
    // Create if absent.
    let create = |v: &'static str| {
        TxnRequest::when(vec![Compare::mod_revision("k", CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::Put(PutRequest::new("k", v))])
            .or_else(vec![TxnOp::Range(RangeRequest::key("k"))])
    };
    let made = s.txn(create("1")).await.unwrap();
    assert!(made.succeeded);
    assert_eq!(made.revision, 2);
    assert!(matches!(&made.responses[..], [TxnOpResponse::Put(p)] if p.revision == 2));
    let again = s.txn(create("2")).await.unwrap();
    assert!(!again.succeeded);
    assert_eq!(again.revision, 2);
    let TxnOpResponse::Range(current) = &again.responses[0] else {
        panic!("expected a range answer: {again:?}");
    };
    assert_eq!(current.kvs[0].value, "1");

    // Update if unchanged.
    let update = |rev: i64, v: &'static str| {
        TxnRequest::when(vec![Compare::mod_revision("k", CompareOp::Equal, rev)])
            .and_then(vec![TxnOp::Put(PutRequest::new("k", v))])
    };
    assert!(s.txn(update(2, "2")).await.unwrap().succeeded);
    let stale = s.txn(update(2, "3")).await.unwrap();
    assert!(!stale.succeeded);
    assert!(stale.responses.is_empty());
    assert_eq!(get(s, "k").await.unwrap().value, "2");

    // Delete if unchanged.
    let delete = |rev: i64| {
        TxnRequest::when(vec![Compare::mod_revision("k", CompareOp::Equal, rev)])
            .and_then(vec![TxnOp::Delete(DeleteRequest::key("k"))])
    };
    assert!(!s.txn(delete(2)).await.unwrap().succeeded);
    let gone = s.txn(delete(3)).await.unwrap();
    assert!(gone.succeeded);
    assert_eq!(gone.revision, 4);
    assert!(matches!(&gone.responses[..], [TxnOpResponse::Delete(d)] if d.deleted == 1));
    assert_eq!(get(s, "k").await, None);
}

async fn txn_compares_every_field(s: &dyn Store) {
    let lease = s.lease_grant(60, 0).await.unwrap();
    s.put(PutRequest::new("k", "m").with_lease(lease.id))
        .await
        .unwrap();
    put(s, "k", "m").await; // version 2, mod 3, create 2, no lease
    let holds =
        |c: Compare| async move { s.txn(TxnRequest::when(vec![c])).await.unwrap().succeeded };
    assert!(holds(Compare::version("k", CompareOp::Equal, 2)).await);
    assert!(holds(Compare::version("k", CompareOp::Greater, 1)).await);
    assert!(holds(Compare::version("k", CompareOp::Less, 3)).await);
    assert!(holds(Compare::version("k", CompareOp::NotEqual, 1)).await);
    assert!(holds(Compare::create_revision("k", CompareOp::Equal, 2)).await);
    assert!(holds(Compare::mod_revision("k", CompareOp::Greater, 2)).await);
    assert!(holds(Compare::value("k", CompareOp::Equal, "m")).await);
    assert!(holds(Compare::value("k", CompareOp::Greater, "a")).await);
    assert!(!holds(Compare::value("k", CompareOp::Less, "a")).await);
    assert!(holds(Compare::lease("k", CompareOp::Equal, 0)).await);
    // An absent key has zero fields, and no value to compare.
    assert!(holds(Compare::version("nope", CompareOp::Equal, 0)).await);
    assert!(holds(Compare::create_revision("nope", CompareOp::Equal, 0)).await);
    assert!(!holds(Compare::value("nope", CompareOp::Equal, "")).await);
    assert!(!holds(Compare::value("nope", CompareOp::NotEqual, "x")).await);
    // Every compare must hold.
    let mixed = TxnRequest::when(vec![
        Compare::version("k", CompareOp::Equal, 2),
        Compare::version("k", CompareOp::Equal, 3),
    ]);
    assert!(!s.txn(mixed).await.unwrap().succeeded);
}

async fn txn_reads_its_own_writes(s: &dyn Store) {
    put(s, "a", "0").await;
    let txn = TxnRequest::default().and_then(vec![
        TxnOp::Put(PutRequest::new("a", "1")),
        TxnOp::Put(PutRequest::new("b", "1").with_prev_kv()),
        TxnOp::Delete(DeleteRequest::key("c")),
        TxnOp::Range(RangeRequest::prefix("")),
    ]);
    let done = s.txn(txn).await.unwrap();
    assert!(done.succeeded);
    assert_eq!(done.revision, 3);
    let TxnOpResponse::Range(seen) = &done.responses[3] else {
        panic!("expected a range answer: {done:?}");
    };
    assert_eq!(keys(&seen.kvs), ["a", "b"]);
    // Every write of a transaction shares one revision.
    assert!(seen.kvs.iter().all(|kv| kv.mod_revision == 3));
    assert_eq!(s.current_revision().await.unwrap(), 3);
    // A read-only transaction makes no revision.
    let read = s
        .txn(TxnRequest::default().and_then(vec![TxnOp::Range(RangeRequest::key("a"))]))
        .await
        .unwrap();
    assert_eq!(read.revision, 3);
}

async fn txn_refusals_write_nothing(s: &dyn Store) {
    put(s, "x", "0").await;
    let refuse = |ops: Vec<TxnOp>| TxnRequest::default().and_then(ops);
    let cases = [
        (
            refuse(vec![
                TxnOp::Put(PutRequest::new("a", "1")),
                TxnOp::Put(PutRequest::new("a", "2")),
            ]),
            "duplicate-key",
        ),
        (
            refuse(vec![
                TxnOp::Put(PutRequest::new("d/1", "1")),
                TxnOp::Delete(DeleteRequest::prefix("d/")),
            ]),
            "duplicate-key",
        ),
        (
            refuse(
                (0..129)
                    .map(|i| TxnOp::Put(PutRequest::new(format!("k{i}"), "v")))
                    .collect(),
            ),
            "too-many-ops",
        ),
        (
            refuse(vec![
                TxnOp::Put(PutRequest::new("a", "1")),
                TxnOp::Put(PutRequest::new("b", "1").with_lease(0x7777)),
            ]),
            "lease-not-found",
        ),
        (
            refuse(vec![
                TxnOp::Put(PutRequest::new("a", "1")),
                TxnOp::Range(RangeRequest::key("a").at_revision(100)),
            ]),
            "future-revision",
        ),
        (
            TxnRequest::when(vec![Compare::version("", CompareOp::Equal, 0)]),
            "empty-key",
        ),
    ];
    for (txn, kind) in cases {
        let err = s.txn(txn).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
    }
    assert_eq!(s.current_revision().await.unwrap(), 2);
    assert_eq!(s.range(RangeRequest::prefix("")).await.unwrap().count, 1);
}

async fn request_errors_write_nothing(s: &dyn Store) {
    let err = s.put(PutRequest::new("", "v")).await.unwrap_err();
    assert_eq!(err.kind(), "empty-key", "{err}");
    let huge = Bytes::from(vec![b'x'; 2 << 20]);
    let err = s
        .put(PutRequest::new("big", huge.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "request-too-large", "{err}");
    let err = s
        .put(PutRequest::new("big", huge.slice(..1_600_000)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "request-too-large", "{err}");
    // Just under the limit is fine.
    put(s, "ok", &"y".repeat(1_000_000)).await;
    let err = s
        .put(PutRequest::new("k", "v").with_lease(12345))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "lease-not-found", "{err}");
    let err = s.range(RangeRequest::key("")).await.unwrap_err();
    assert_eq!(err.kind(), "empty-key", "{err}");
    assert_eq!(s.current_revision().await.unwrap(), 2);
    assert_eq!(get(s, "big").await, None);
}

async fn compaction(s: &dyn Store) {
    put(s, "a", "1").await; // 2
    put(s, "a", "2").await; // 3
    put(s, "b", "1").await; // 4
    s.delete(DeleteRequest::key("b")).await.unwrap(); // 5
    put(s, "a", "3").await; // 6
    let done = s.compact(5).await.unwrap();
    assert_eq!(done.revision, 6);

    let err = s
        .range(RangeRequest::key("a").at_revision(4))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "compacted", "{err}");
    // The compaction revision itself stays readable.
    let at5 = s
        .range(RangeRequest::prefix("").at_revision(5))
        .await
        .unwrap();
    assert_eq!(keys(&at5.kvs), ["a"]);
    assert_eq!(at5.kvs[0].value, "2");
    assert_eq!(get(s, "a").await.unwrap().value, "3");

    let err = s.compact(5).await.unwrap_err();
    assert_eq!(err.kind(), "compacted", "{err}");
    let err = s.compact(4).await.unwrap_err();
    assert_eq!(err.kind(), "compacted", "{err}");
    let err = s.compact(7).await.unwrap_err();
    assert_eq!(err.kind(), "future-revision", "{err}");
    // Writes go on after a compaction.
    assert_eq!(put(s, "c", "1").await.revision, 7);
}

async fn watch_history_with_prev_kv(s: &dyn Store) {
    put(s, "w/a", "1").await; // 2
    put(s, "other", "1").await; // 3
    put(s, "w/a", "2").await; // 4
    s.delete(DeleteRequest::key("w/a")).await.unwrap(); // 5
    let mut w = s
        .watch(
            WatchRequest::new(KeyRange::prefix("w/"))
                .from_revision(2)
                .with_prev_kv(),
        )
        .await
        .unwrap();
    let mut events = Vec::new();
    while events.len() < 3 {
        events.extend(next_batch(&mut w).await.unwrap().events);
    }
    put(s, "w/b", "1").await; // 6
    while events.len() < 4 {
        events.extend(next_batch(&mut w).await.unwrap().events);
    }
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.kind,
                std::str::from_utf8(&e.kv.key).unwrap().to_owned(),
                e.kv.mod_revision,
                e.kv.version,
                e.prev_kv.as_ref().map(|p| p.mod_revision),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (EventKind::Put, "w/a".into(), 2, 1, None),
            (EventKind::Put, "w/a".into(), 4, 2, Some(2)),
            (EventKind::Delete, "w/a".into(), 5, 0, Some(4)),
            (EventKind::Put, "w/b".into(), 6, 1, None),
        ]
    );
    // A delete event carries only the key and its revision.
    assert_eq!(events[2].kv.value, "");
    assert_eq!(events[2].kv.create_revision, 0);
    assert_eq!(events[1].prev_kv.as_ref().unwrap().value, "1");
    assert_quiet(&mut w, Duration::from_millis(300)).await;

    // Without prev_kv, no previous values; a single-key watch sees only it.
    let mut one = s
        .watch(WatchRequest::new(KeyRange::key("w/b")).from_revision(1))
        .await
        .unwrap();
    let got = next_batch(&mut one).await.unwrap();
    assert_eq!(got.events.len(), 1);
    assert_eq!(got.events[0].prev_kv, None);
    assert_eq!(got.events[0].kv.mod_revision, 6);
}

async fn watch_live_only(s: &dyn Store) {
    put(s, "k", "old").await;
    let mut w = s
        .watch(WatchRequest::new(KeyRange::prefix("")))
        .await
        .unwrap();
    assert_quiet(&mut w, Duration::from_millis(200)).await;
    // A transaction's writes arrive together, in sub-revision order.
    s.txn(TxnRequest::default().and_then(vec![
        TxnOp::Put(PutRequest::new("y", "1")),
        TxnOp::Put(PutRequest::new("x", "1")),
    ]))
    .await
    .unwrap();
    let got = next_batch(&mut w).await.unwrap();
    assert_eq!(
        keys(&got.events.iter().map(|e| e.kv.clone()).collect::<Vec<_>>()),
        ["y", "x"]
    );
    assert!(got.events.iter().all(|e| e.kv.mod_revision == 3));
}

async fn watch_slow_reader_misses_nothing(s: &dyn Store) {
    let mut w = s
        .watch(WatchRequest::new(KeyRange::prefix("n/")).from_revision(2))
        .await
        .unwrap();
    const N: i64 = 3000;
    let writer = async {
        let writes = (0..N).map(|i| s.put(PutRequest::new(format!("n/{}", i % 50), i.to_string())));
        // Keep 16 writes in flight so the embedded writer batches them.
        let mut in_flight = futures::stream::iter(writes).buffer_unordered(16);
        while let Some(done) = in_flight.next().await {
            done.expect("put");
        }
    };
    let reader = async {
        let mut expected = 2;
        while expected < 2 + N {
            let batch = next_batch(&mut w).await.expect("watch");
            for e in batch.events {
                assert_eq!(
                    e.kv.mod_revision, expected,
                    "events skipped or out of order"
                );
                expected += 1;
            }
            // Read slowly at first, so the watcher falls behind.
            if expected < 500 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    tokio::join!(writer, reader);
    assert_quiet(&mut w, Duration::from_millis(200)).await;
}

use futures::StreamExt;

async fn watch_below_compaction(s: &dyn Store) {
    for i in 0..5 {
        put(s, "c", &i.to_string()).await; // 2..=6
    }
    s.compact(4).await.unwrap();
    let mut w = s
        .watch(WatchRequest::new(KeyRange::key("c")).from_revision(3))
        .await
        .unwrap();
    let err = next_batch(&mut w).await.unwrap_err();
    assert_eq!(err.kind(), "compacted", "{err}");
    assert!(w.next().await.is_none(), "a compacted watch ends");
    // From the compaction point on is still fine.
    let mut ok = s
        .watch(WatchRequest::new(KeyRange::key("c")).from_revision(4))
        .await
        .unwrap();
    let revs: Vec<i64> = next_batch(&mut ok)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.kv.mod_revision)
        .collect();
    assert_eq!(revs.first(), Some(&4));
}

async fn leases(s: &dyn Store) {
    let short = s.lease_grant(1, 0).await.unwrap();
    assert_eq!(
        short.ttl, MIN_LEASE_TTL,
        "short TTLs are raised to the minimum"
    );
    assert!(short.id > 0);
    let chosen = s.lease_grant(60, 4242).await.unwrap();
    assert_eq!((chosen.id, chosen.ttl), (4242, 60));
    let err = s.lease_grant(60, 4242).await.unwrap_err();
    assert_eq!(err.kind(), "lease-exists", "{err}");

    s.put(PutRequest::new("l/a", "1").with_lease(4242))
        .await
        .unwrap(); // 2
    s.put(PutRequest::new("l/b", "1").with_lease(4242))
        .await
        .unwrap(); // 3
    put(s, "l/c", "1").await; // 4
    assert_eq!(get(s, "l/a").await.unwrap().lease, 4242);
    let info = s.lease_time_to_live(4242).await.unwrap();
    assert_eq!(info.granted_ttl, 60);
    assert!((58..=60).contains(&info.remaining_ttl), "{info:?}");
    assert_eq!(info.keys, [Bytes::from("l/a"), Bytes::from("l/b")]);
    assert_eq!(s.lease_keep_alive(4242).await.unwrap(), 60);

    // Re-putting a key without the lease detaches it.
    put(s, "l/b", "2").await; // 5
    assert_eq!(
        s.lease_time_to_live(4242).await.unwrap().keys,
        [Bytes::from("l/a")]
    );

    let mut w = s
        .watch(WatchRequest::new(KeyRange::prefix("l/")))
        .await
        .unwrap();
    let rev = s.lease_revoke(4242).await.unwrap();
    assert_eq!(rev, 6);
    let got = next_batch(&mut w).await.unwrap();
    assert_eq!(got.events.len(), 1);
    assert_eq!(got.events[0].kind, EventKind::Delete);
    assert_eq!(got.events[0].kv.key, "l/a");
    assert_eq!(get(s, "l/a").await, None);
    assert!(get(s, "l/b").await.is_some());

    // A revoked lease with no keys left makes no revision.
    let empty = s.lease_grant(60, 0).await.unwrap();
    assert_eq!(s.lease_revoke(empty.id).await.unwrap(), 6);

    for err in [
        s.lease_revoke(4242).await.unwrap_err(),
        s.lease_keep_alive(4242).await.unwrap_err(),
        s.lease_time_to_live(4242).await.unwrap_err(),
        s.put(PutRequest::new("l/d", "1").with_lease(4242))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), "lease-not-found", "{err}");
    }
}

async fn lease_expiry(s: &dyn Store) {
    let lease = s.lease_grant(2, 0).await.unwrap();
    s.put(PutRequest::new("e/a", "1").with_lease(lease.id))
        .await
        .unwrap();
    let mut w = s
        .watch(WatchRequest::new(KeyRange::prefix("e/")))
        .await
        .unwrap();
    // Kept alive past its TTL, it survives.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.lease_keep_alive(lease.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(get(s, "e/a").await.is_some(), "kept-alive lease expired");
    // Left alone, it expires and its key goes, with a delete event.
    let got = tokio::time::timeout(Duration::from_secs(6), w.next())
        .await
        .expect("no expiry within 6s")
        .unwrap()
        .unwrap();
    assert_eq!(got.events[0].kind, EventKind::Delete);
    assert_eq!(got.events[0].kv.key, "e/a");
    assert_eq!(get(s, "e/a").await, None);
    let err = s.lease_time_to_live(lease.id).await.unwrap_err();
    assert_eq!(err.kind(), "lease-not-found", "{err}");
}
