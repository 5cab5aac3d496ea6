//! Durability of the embedded store: a clean restart keeps everything, and a
//! writer process killed with SIGKILL in the middle of heavy writing comes
//! back with every acknowledged write and nothing torn.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fast_options, next_batch};
use rand::Rng;
use store::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_state_leases_and_history() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (revision, lease) = {
        let s = EmbeddedStore::open(dir.path(), fast_options())
            .await
            .unwrap();
        let lease = s.lease_grant(600, 0).await.unwrap();
        for i in 0..300 {
            s.put(PutRequest::new(format!("k/{}", i % 40), format!("v{i}")))
                .await
                .unwrap();
        }
        s.put(PutRequest::new("leased", "x").with_lease(lease.id))
            .await
            .unwrap();
        s.delete(DeleteRequest::key("k/0")).await.unwrap();
        s.compact(150).await.unwrap();
        s.put(PutRequest::new("last", "y")).await.unwrap();
        (s.current_revision().await.unwrap(), lease.id)
    };
    // The first reopen replays the WAL; the second reads the checkpoint it wrote.
    for reopen in 0..2 {
        let s = EmbeddedStore::open(dir.path(), fast_options())
            .await
            .unwrap();
        assert_eq!(
            s.current_revision().await.unwrap(),
            revision,
            "reopen {reopen}"
        );
        let all = s.range(RangeRequest::prefix("k/")).await.unwrap();
        assert_eq!(all.count, 39);
        let past = s
            .range(RangeRequest::key("k/5").at_revision(200))
            .await
            .unwrap();
        assert_eq!(past.kvs[0].mod_revision, 167);
        let err = s
            .range(RangeRequest::key("k/5").at_revision(149))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "compacted");
        let info = s.lease_time_to_live(lease).await.unwrap();
        assert_eq!(info.keys, [bytes::Bytes::from("leased")]);
        let mut w = s
            .watch(WatchRequest::new(KeyRange::prefix("")).from_revision(300))
            .await
            .unwrap();
        let got = next_batch(&mut w).await.unwrap();
        assert_eq!(got.events[0].kv.mod_revision, 300);
        // Give the checkpointer time to copy the replayed frames.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // New writes continue the revision sequence across a restart.
    let s = EmbeddedStore::open(dir.path(), fast_options())
        .await
        .unwrap();
    assert_eq!(
        s.put(PutRequest::new("after", "z")).await.unwrap().revision,
        revision + 1
    );
    drop(s);
    let s = EmbeddedStore::open(dir.path(), fast_options())
        .await
        .unwrap();
    assert_eq!(s.current_revision().await.unwrap(), revision + 1);
}

/// Environment variable that turns `crash_child` into the writer process.
const CHILD_DIR: &str = "GANTRY_CRASH_CHILD_DIR";
const WRITERS: usize = 64;
const KEYS_PER_WRITER: usize = 8;

/// The writer process of the crash test. Not a test on its own: it runs only
/// when the crash test starts it with `CHILD_DIR` set.
#[test]
#[ignore = "child process of crash_keeps_every_acknowledged_write"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let s = Arc::new(
            EmbeddedStore::open(&dir, fast_options())
                .await
                .expect("child: open store"),
        );
        // One printer thread, so acknowledgement lines never interleave.
        let (acks, printed) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut out = std::io::stdout().lock();
            for line in printed {
                if out
                    .write_all(line.as_bytes())
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    return;
                }
            }
        });
        acks.send("READY\n".into()).unwrap();
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let s = Arc::clone(&s);
            let acks = acks.clone();
            tasks.push(tokio::spawn(async move {
                let mut seq: u64 = 0;
                loop {
                    seq += 1;
                    let key = format!("w{w:02}/k{}", seq as usize % KEYS_PER_WRITER);
                    let value = crash_value(w, seq);
                    // Alternate plain puts and transactions that write two keys.
                    let rev = if seq.is_multiple_of(3) {
                        let side = format!("w{w:02}/side");
                        let txn = TxnRequest::default().and_then(vec![
                            TxnOp::Put(PutRequest::new(key.clone(), value.clone())),
                            TxnOp::Put(PutRequest::new(side, value.clone())),
                        ]);
                        s.txn(txn).await.expect("child: txn").revision
                    } else {
                        s.put(PutRequest::new(key.clone(), value))
                            .await
                            .expect("child: put")
                            .revision
                    };
                    if acks.send(format!("ACK {w} {seq} {rev} {key}\n")).is_err() {
                        return;
                    }
                }
            }));
        }
        // Compact now and then, so recovery also meets compactions.
        let compactor = {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    let rev = s.current_revision().await.unwrap();
                    if rev > 2000 {
                        let _ = s.compact(rev - 1000).await;
                    }
                }
            })
        };
        for t in tasks {
            t.await.unwrap();
        }
        compactor.abort();
    });
}

/// A value that says who wrote it and when, padded to a size that varies so
/// frames have many lengths; its tail repeats its length so a torn value is
/// detectable.
fn crash_value(writer: usize, seq: u64) -> String {
    let pad = (seq as usize * 37 + writer * 11) % 1500;
    format!("{writer}:{seq}:{pad}:{}", "x".repeat(pad))
}

fn parse_value(v: &[u8]) -> (usize, u64) {
    let s = std::str::from_utf8(v).expect("value is utf-8");
    let mut parts = s.splitn(4, ':');
    let w: usize = parts.next().unwrap().parse().expect("torn value");
    let seq: u64 = parts.next().unwrap().parse().expect("torn value");
    let pad: usize = parts.next().unwrap().parse().expect("torn value");
    assert_eq!(parts.next().unwrap().len(), pad, "torn value {s:.40}...");
    (w, seq)
}

/// Kills the child when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Ack {
    writer: usize,
    seq: u64,
    rev: i64,
    key: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut rng = rand::rng();
    let rounds = 5;
    let mut total_acks = 0;
    for round in 0..rounds {
        let mut child = KillOnDrop(
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "crash_child",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_DIR, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        // Read acknowledgements on a thread while the child writes.
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            let mut ready = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest's own "test crash_child ... " may share the line.
                if line.ends_with("READY") {
                    ready = true;
                }
                let Some(at) = line.find("ACK ") else {
                    continue;
                };
                let mut f = line[at..].split(' ');
                if f.next() != Some("ACK") {
                    continue;
                }
                let (Some(w), Some(seq), Some(rev), Some(key)) =
                    (f.next(), f.next(), f.next(), f.next())
                else {
                    continue; // a line cut by the kill
                };
                acks.push(Ack {
                    writer: w.parse().unwrap(),
                    seq: seq.parse().unwrap(),
                    rev: rev.parse().unwrap(),
                    key: key.to_owned(),
                });
            }
            (ready, acks)
        });
        let run_for = Duration::from_millis(rng.random_range(400..1500));
        tokio::time::sleep(run_for).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = child.0.wait();
        let (ready, acks) = reader.join().unwrap();
        assert!(ready, "round {round}: child never opened the store");
        assert!(
            !acks.is_empty(),
            "round {round}: child acknowledged nothing in {run_for:?}"
        );
        total_acks += acks.len();

        let started = Instant::now();
        let s = EmbeddedStore::open(dir.path(), fast_options())
            .await
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
        let reopen = started.elapsed();
        verify(&s, &acks, round).await;
        eprintln!(
            "round {round}: killed after {run_for:?}, {} acks checked, reopened in {reopen:?}",
            acks.len()
        );
    }
    assert!(
        total_acks > 1000,
        "too few writes to mean anything: {total_acks}"
    );
}

async fn verify(s: &EmbeddedStore, acks: &[Ack], round: usize) {
    let current = s.current_revision().await.unwrap();
    let max_acked = acks.iter().map(|a| a.rev).max().unwrap();
    assert!(
        current >= max_acked,
        "round {round}: revision {current} is below acknowledged {max_acked}"
    );
    // Every key's newest value is at least as new as its newest ack.
    let mut newest: HashMap<&str, u64> = HashMap::new();
    for a in acks {
        let e = newest.entry(&a.key).or_default();
        *e = (*e).max(a.seq);
    }
    let all = s.range(RangeRequest::prefix("w")).await.unwrap();
    let stored: HashMap<String, (usize, u64)> = all
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key.to_vec()).unwrap(),
                parse_value(&kv.value),
            )
        })
        .collect();
    for (key, seq) in &newest {
        let (_, got) = stored
            .get(*key)
            .unwrap_or_else(|| panic!("round {round}: acknowledged key {key} is gone"));
        assert!(
            got >= seq,
            "round {round}: {key} holds seq {got}, but seq {seq} was acknowledged"
        );
    }
    // Every acknowledged write not yet compacted away reads back exactly.
    let compacted = probe_compacted(s, current).await;
    let mut exact = 0;
    for a in acks.iter().filter(|a| a.rev >= compacted) {
        let at = s
            .range(RangeRequest::key(a.key.clone()).at_revision(a.rev))
            .await
            .unwrap();
        let kv = &at.kvs[0];
        assert_eq!(
            kv.mod_revision, a.rev,
            "round {round}: {} at {}",
            a.key, a.rev
        );
        assert_eq!(parse_value(&kv.value), (a.writer, a.seq));
        exact += 1;
    }
    assert!(exact > 0 || compacted > max_acked);
    // The revision history after the compaction point has no holes.
    let mut w = s
        .watch(WatchRequest::new(KeyRange::prefix("")).from_revision(compacted + 1))
        .await
        .unwrap();
    let mut expect = compacted + 1;
    while expect <= current {
        let batch = next_batch(&mut w).await.unwrap();
        for e in batch.events {
            assert!(
                e.kv.mod_revision == expect || e.kv.mod_revision == expect - 1,
                "round {round}: history jumps from {} to {}",
                expect - 1,
                e.kv.mod_revision
            );
            parse_value(&e.kv.value);
            expect = e.kv.mod_revision + 1;
        }
    }
}

/// The compaction point, found by probing reads (the trait does not expose it).
async fn probe_compacted(s: &EmbeddedStore, current: Revision) -> Revision {
    let (mut lo, mut hi) = (1, current);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match s.range(RangeRequest::key("w").at_revision(mid)).await {
            Ok(_) => hi = mid,
            Err(StoreError::Compacted { .. }) => lo = mid + 1,
            Err(e) => panic!("{e}"),
        }
    }
    lo
}
