//! Leader election through a Lease against a real API server in-process:
//! one holder at a time, a crashed holder replaced after the lease runs
//! out, a holder that stops cleanly replaced at once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::server;
use controllers::leader::{Elector, LEASE, RETRY, run_elected};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_and_a_crashed_one_is_replaced_after_the_lease() {
    let (_dir, _server, client) = server().await;
    let mut a = Elector::new(client.clone(), "kube-system", "test-lease", "a");
    let mut b = Elector::new(client.clone(), "kube-system", "test-lease", "b");
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert!(a.try_acquire_or_renew().await.unwrap(), "renewal");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let spec = leases.get("test-lease").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_duration_seconds, Some(LEASE.as_secs() as i32));

    // `a` stops renewing without a word: `b` takes over once the lease has
    // run out by its own clock, not before.
    let since = Instant::now();
    while !b.try_acquire_or_renew().await.unwrap() {
        assert!(
            since.elapsed() < LEASE + Duration::from_secs(2),
            "no handover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waited = since.elapsed();
    assert!(waited >= LEASE - Duration::from_millis(500), "{waited:?}");
    let spec = leases.get("test-lease").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(!a.try_acquire_or_renew().await.unwrap(), "a lost it");

    // `b` gives it up: `a` may take it at once.
    b.release().await.unwrap();
    assert!(a.try_acquire_or_renew().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_runs_on_one_candidate_and_moves_when_the_leader_stops() {
    let (_dir, _server, client) = server().await;
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for id in ["x", "y"] {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        let elector = Elector::new(client.clone(), "kube-system", "work", id);
        let (active, most, ran) = (active.clone(), most.clone(), ran.clone());
        tasks.push(tokio::spawn(run_elected(
            elector,
            async move {
                let _ = rx.await;
            },
            move || {
                let (active, most, ran) = (active.clone(), most.clone(), ran.clone());
                async move {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    ran.fetch_add(1, Ordering::SeqCst);
                    // Decrement when dropped (the work is dropped on stop).
                    struct Leave(Arc<AtomicUsize>);
                    impl Drop for Leave {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    let _leave = Leave(active);
                    std::future::pending::<anyhow::Result<()>>().await
                }
            },
        )));
    }
    let wait_ran = |n: usize, within: Duration| {
        let ran = ran.clone();
        async move {
            let since = Instant::now();
            while ran.load(Ordering::SeqCst) < n {
                assert!(
                    since.elapsed() < within,
                    "work started {} times",
                    ran.load(Ordering::SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            since.elapsed()
        }
    };
    wait_ran(1, Duration::from_secs(5)).await;
    tokio::time::sleep(RETRY * 2).await;
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the other candidate waits");
    // Stop the leader: it gives the lease up, the other leads within a retry.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let leader = leases
        .get("work")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let i = usize::from(leader == "y");
    stops.remove(i).send(()).unwrap();
    tasks.remove(i).await.unwrap().unwrap();
    let took = wait_ran(2, RETRY + Duration::from_secs(2)).await;
    assert!(took <= RETRY + Duration::from_secs(2), "{took:?}");
    assert_eq!(most.load(Ordering::SeqCst), 1, "two leaders at once");
    let now = leases
        .get("work")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert_ne!(now, leader);
    for t in tasks {
        t.abort();
    }
}
