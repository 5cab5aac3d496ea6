//! Shared by the store's integration tests: a fresh store of either backend.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use store::{EmbeddedOptions, EmbeddedStore, EtcdStore, Store, WatchResponse, WatchStream};
use testkit::EtcdServer;

/// A fresh, empty store and whatever keeps it alive.
pub struct Backend {
    // Dropped first: the store must close before its directory or server go.
    pub store: Arc<dyn Store>,
    _home: Home,
}

enum Home {
    Dir(tempfile::TempDir),
    Etcd(EtcdServer),
}

impl Backend {
    /// An embedded store in a new temporary directory.
    pub async fn embedded() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gantry-store-test-")
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        let store = EmbeddedStore::open(dir.path(), fast_options())
            .await
            .expect("open embedded store");
        Self {
            store: Arc::new(store),
            _home: Home::Dir(dir),
        }
    }

    /// A client of a new single-member etcd.
    pub async fn etcd() -> Self {
        let server = EtcdServer::start().expect("start etcd");
        let store: Arc<dyn Store> = Arc::new(
            EtcdStore::connect(vec![server.endpoint()])
                .await
                .expect("connect to etcd"),
        );
        Self {
            store,
            _home: Home::Etcd(server),
        }
    }

    /// A fresh store of the named backend ("embedded" or "etcd").
    pub async fn named(name: &str) -> Self {
        match name {
            "embedded" => Self::embedded().await,
            "etcd" => Self::etcd().await,
            other => panic!("unknown backend {other}"),
        }
    }
}

/// Embedded options for tests: small segments, so rollover is exercised.
pub fn fast_options() -> EmbeddedOptions {
    EmbeddedOptions {
        wal_segment_size: 256 << 10,
        checkpoint_interval: Duration::from_millis(50),
        ..EmbeddedOptions::default()
    }
}

/// The next watch batch, failing the test if none comes within 10 s.
pub async fn next_batch(w: &mut WatchStream) -> store::Result<WatchResponse> {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("watch delivered nothing within 10s")
        .expect("watch ended")
}

/// Asserts that nothing arrives on the watch for `wait`.
pub async fn assert_quiet(w: &mut WatchStream, wait: Duration) {
    if let Ok(item) = tokio::time::timeout(wait, w.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}
