//! One cluster, one CA: the keys every API server of a cluster must share
//! (the CA certificate and key, and the service account signing key) live
//! in the store under `/gantry/pki/cluster`.
//!
//! The first server to start puts its keys there (create-if-absent, so two
//! servers starting at once agree on one set); every later server, on any
//! machine, takes them from there into its `pki/` directory before it
//! issues its serving certificate. A server whose local CA differs then
//! reissues its certificates and kubeconfig from the cluster's CA, so a
//! client of any server trusts every server.

use std::path::Path;

use serde::{Deserialize, Serialize};
use store::{Compare, CompareOp, PutRequest, RangeRequest, Store, TxnOp, TxnRequest};

use crate::StartError;

const KEY: &str = "/gantry/pki/cluster";

#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Keys {
    ca_crt: String,
    ca_key: String,
    sa_key: String,
}

fn read(path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path).map_err(|source| StartError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), StartError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StartError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Makes `dir` hold the cluster's keys: those in the store, or, for the
/// first server, its own (created if needed), which then become the
/// cluster's.
pub(crate) async fn sync(store: &dyn Store, dir: &Path) -> Result<(), StartError> {
    let bootstrap = |e: store::StoreError| StartError::Bootstrap(format!("cluster keys: {e}"));
    loop {
        let found = store
            .range(RangeRequest::key(KEY))
            .await
            .map_err(bootstrap)?;
        if let Some(kv) = found.kvs.first() {
            let keys: Keys = serde_json::from_slice(&kv.value).map_err(|e| {
                StartError::Bootstrap(format!("cluster keys in the store at {KEY}: {e}"))
            })?;
            std::fs::create_dir_all(dir).map_err(|source| StartError::Io {
                path: dir.to_owned(),
                source,
            })?;
            for (file, text, mode) in [
                ("ca.crt", &keys.ca_crt, 0o644),
                ("ca.key", &keys.ca_key, 0o600),
                ("sa.key", &keys.sa_key, 0o600),
            ] {
                let path = dir.join(file);
                if std::fs::read_to_string(&path).ok().as_ref() != Some(text) {
                    write(&path, text, mode)?;
                }
            }
            return Ok(());
        }
        pki::Ca::load_or_create(dir)?;
        pki::SigningKey::load_or_create(dir)?;
        let keys = Keys {
            ca_crt: read(&dir.join("ca.crt"))?,
            ca_key: read(&dir.join("ca.key"))?,
            sa_key: read(&dir.join("sa.key"))?,
        };
        let value = serde_json::to_vec(&keys).expect("strings always serialize");
        let put = TxnRequest::when(vec![Compare::create_revision(KEY, CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::Put(PutRequest::new(KEY, value))]);
        if store.txn(put).await.map_err(bootstrap)?.succeeded {
            return Ok(());
        }
        // Another server was first: take its keys.
    }
}
