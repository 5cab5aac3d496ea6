//! Differential test: the same random sequence of operations, run against a
//! fresh embedded store and a fresh real etcd, must produce the same answers
//! (revisions, values, counts, branch taken, errors) and the same watch events.
//!
//! A failure prints the seed and the operation; `GANTRY_DIFF_SEEDS=a,b,c` and
//! `GANTRY_DIFF_OPS=n` rerun or widen it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Backend;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use store::*;

const KEYS: [&str; 8] = ["a/0", "a/1", "a/2", "a/3", "b/0", "b/1", "b/2", "c"];
const LEASES: [i64; 3] = [1001, 1002, 1003];

#[derive(Debug, PartialEq)]
enum Outcome {
    Range(RangeResponse),
    Put(PutResponse),
    Delete(DeleteResponse),
    Txn(TxnResponse),
    Compact(CompactResponse),
    Lease(i64, i64),
    Revoked(Revision),
    KeepAlive(i64),
    /// Remaining TTL is left out: the two clocks tick separately.
    TimeToLive(i64, Vec<bytes::Bytes>),
    Err(&'static str),
}

#[derive(Debug, Clone)]
enum Op {
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRequest),
    Txn(TxnRequest),
    Compact(Revision),
    Grant(i64, i64),
    Revoke(i64),
    KeepAlive(i64),
    TimeToLive(i64),
}

async fn run_op(s: &dyn Store, op: &Op) -> Outcome {
    let out = match op.clone() {
        Op::Range(r) => s.range(r).await.map(Outcome::Range),
        Op::Put(p) => s.put(p).await.map(Outcome::Put),
        Op::Delete(d) => s.delete(d).await.map(Outcome::Delete),
        Op::Txn(t) => s.txn(t).await.map(Outcome::Txn),
        Op::Compact(r) => s.compact(r).await.map(Outcome::Compact),
        Op::Grant(ttl, id) => s
            .lease_grant(ttl, id)
            .await
            .map(|g| Outcome::Lease(g.id, g.ttl)),
        Op::Revoke(id) => s.lease_revoke(id).await.map(Outcome::Revoked),
        Op::KeepAlive(id) => s.lease_keep_alive(id).await.map(Outcome::KeepAlive),
        Op::TimeToLive(id) => s
            .lease_time_to_live(id)
            .await
            .map(|i| Outcome::TimeToLive(i.granted_ttl, i.keys)),
    };
    out.unwrap_or_else(|e| Outcome::Err(e.kind()))
}

fn key(rng: &mut StdRng) -> String {
    KEYS[rng.random_range(0..KEYS.len())].to_owned()
}

fn range(rng: &mut StdRng) -> KeyRange {
    match rng.random_range(0..5) {
        0 | 1 => KeyRange::key(key(rng)),
        2 => KeyRange::prefix(["a/", "b/", ""][rng.random_range(0..3)]),
        3 => {
            let (x, y) = (key(rng), key(rng));
            KeyRange::span(x, y)
        }
        _ => KeyRange::from_key(key(rng)),
    }
}

fn value(rng: &mut StdRng) -> String {
    ["x", "y", "z", ""][rng.random_range(0..4)].to_owned()
}

fn lease(rng: &mut StdRng) -> i64 {
    match rng.random_range(0..10) {
        0..=6 => 0,
        7 => 999, // never granted
        _ => LEASES[rng.random_range(0..LEASES.len())],
    }
}

fn range_request(rng: &mut StdRng, current: Revision) -> RangeRequest {
    let mut r = RangeRequest::new(range(rng));
    if rng.random_bool(0.3) {
        r.revision = rng.random_range(1..=current + 1);
    }
    if rng.random_bool(0.3) {
        r.limit = rng.random_range(1..4);
    }
    r.count_only = rng.random_bool(0.1);
    r.keys_only = rng.random_bool(0.1);
    r
}

fn put_request(rng: &mut StdRng) -> PutRequest {
    let mut p = PutRequest::new(key(rng), value(rng));
    p.lease = lease(rng);
    p.prev_kv = rng.random_bool(0.5);
    p
}

fn delete_request(rng: &mut StdRng) -> DeleteRequest {
    let mut d = DeleteRequest::new(range(rng));
    d.prev_kv = rng.random_bool(0.5);
    d
}

fn compare(rng: &mut StdRng, current: Revision) -> Compare {
    let op = [
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Less,
        CompareOp::Greater,
    ][rng.random_range(0..4)];
    let k = key(rng);
    match rng.random_range(0..5) {
        0 => Compare::mod_revision(k, op, rng.random_range(0..=current)),
        1 => Compare::create_revision(k, op, rng.random_range(0..=current)),
        2 => Compare::version(k, op, rng.random_range(0..4)),
        3 => Compare::value(k, op, value(rng)),
        _ => Compare::lease(k, op, lease(rng)),
    }
}

fn branch(rng: &mut StdRng, current: Revision) -> Vec<TxnOp> {
    (0..rng.random_range(0..4))
        .map(|_| match rng.random_range(0..3) {
            0 => TxnOp::Range(range_request(rng, current)),
            1 => TxnOp::Put(put_request(rng)),
            _ => TxnOp::Delete(delete_request(rng)),
        })
        .collect()
}

fn random_op(rng: &mut StdRng, current: Revision) -> Op {
    match rng.random_range(0..100) {
        0..=24 => Op::Range(range_request(rng, current)),
        25..=49 => Op::Put(put_request(rng)),
        50..=59 => Op::Delete(delete_request(rng)),
        60..=84 => Op::Txn(TxnRequest {
            compare: (0..rng.random_range(0..3))
                .map(|_| compare(rng, current))
                .collect(),
            success: branch(rng, current),
            failure: branch(rng, current),
        }),
        85..=87 => Op::Compact(rng.random_range(1..=current + 1)),
        88..=91 => Op::Grant(
            rng.random_range(30..120),
            LEASES[rng.random_range(0..LEASES.len())],
        ),
        92..=94 => Op::Revoke(LEASES[rng.random_range(0..LEASES.len())]),
        95..=97 => Op::TimeToLive(LEASES[rng.random_range(0..LEASES.len())]),
        _ => Op::KeepAlive(LEASES[rng.random_range(0..LEASES.len())]),
    }
}

/// Collects every event of a watch on all keys, started on the fresh store.
/// (Watching "from now" rather than from revision 1 matters for etcd: a
/// watcher at or below the current revision waits for etcd's 100 ms sync
/// loop, and a compaction in that window would cancel it.)
async fn record_events(s: &Arc<dyn Store>) -> Arc<Mutex<Vec<Event>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut w = s
        .watch(WatchRequest::new(KeyRange::prefix("")).with_prev_kv())
        .await
        .unwrap();
    let sink = Arc::clone(&events);
    tokio::spawn(async move {
        while let Some(item) = w.next().await {
            match item {
                Ok(batch) => sink.lock().extend(batch.events),
                // The store closing at the end of the test ends the watch.
                Err(StoreError::Closed(_)) => return,
                Err(e) => panic!("recording watch failed: {e}"),
            }
        }
    });
    events
}

async fn wait_for_events(events: &Mutex<Vec<Event>>, revision: Revision) {
    for _ in 0..200 {
        if events
            .lock()
            .last()
            .is_some_and(|e| e.kv.mod_revision >= revision)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_and_etcd_answer_alike() {
    let seeds: Vec<u64> = std::env::var("GANTRY_DIFF_SEEDS")
        .map(|s| s.split(',').map(|x| x.trim().parse().unwrap()).collect())
        .unwrap_or_else(|_| vec![1, 2, 3]);
    let ops: usize = std::env::var("GANTRY_DIFF_OPS")
        .map(|s| s.parse().unwrap())
        .unwrap_or(400);
    for seed in seeds {
        compare_backends(seed, ops).await;
    }
}

async fn compare_backends(seed: u64, ops: usize) {
    let embedded = Backend::embedded().await;
    let etcd = Backend::etcd().await;
    let seen_embedded = record_events(&embedded.store).await;
    let seen_etcd = record_events(&etcd.store).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut current = 1;
    let mut errors = 0;
    for i in 0..ops {
        let op = random_op(&mut rng, current);
        let a = run_op(&*embedded.store, &op).await;
        let b = run_op(&*etcd.store, &op).await;
        assert_eq!(
            a, b,
            "seed {seed}, operation {i}: {op:#?}\nembedded: {a:#?}\netcd: {b:#?}"
        );
        errors += usize::from(matches!(a, Outcome::Err(_)));
        current = etcd.store.current_revision().await.unwrap();
    }
    assert_eq!(embedded.store.current_revision().await.unwrap(), current);
    // The final state, at every revision still readable.
    for rev in 0..=current {
        let req = RangeRequest::prefix("").at_revision(rev);
        let a = run_op(&*embedded.store, &Op::Range(req.clone())).await;
        let b = run_op(&*etcd.store, &Op::Range(req)).await;
        assert_eq!(a, b, "seed {seed}: full read at revision {rev}");
    }
    wait_for_events(&seen_embedded, current).await;
    wait_for_events(&seen_etcd, current).await;
    let (a, b) = (seen_embedded.lock().clone(), seen_etcd.lock().clone());
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len(), "seed {seed}: watch event counts differ");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let around = i.saturating_sub(4)..(i + 2).min(a.len());
        assert_eq!(
            x,
            y,
            "seed {seed}: watch event {i} differs; around it, embedded saw {:#?}\netcd saw {:#?}",
            &a[around.clone()],
            &b[around]
        );
    }
    eprintln!(
        "seed {seed}: {ops} operations, {errors} refused alike, final revision {current}, {} events alike",
        a.len()
    );
}
