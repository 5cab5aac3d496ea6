//! What the watches of one event share.
//!
//! Every write reaches each watch of its kind: in a one-machine cluster a pod's write
//! reaches the scheduler's, the controllers', the node agent's and the network policy
//! watch, and any a user opened. Each of them decoded the stored JSON and encoded the
//! served object again: a pod's status write took ~2 ms there, against ~1 ms with no watch
//! open. [`EventObjects`] decodes a stored version once and encodes it once per served
//! group-version, for every watch that sends it. The watches of one event read it
//! within moments of each other, so only the last 64 versions are kept, 4 MiB of JSON at
//! most; a watch further behind decodes its own copy, with the same result.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use kinds::ResourceDef;
use parking_lot::Mutex;
use serde_json::Value;
use store::{KeyValue, Revision};

/// How many stored versions are kept.
const KEPT: usize = 64;
/// How many bytes of them (stored and served JSON) are kept at most: a burst of large
/// objects keeps fewer. Their decoded forms take a few times as much.
const KEPT_BYTES: usize = 4 << 20;
/// A version larger than this is not kept at all.
const LARGEST_KEPT: usize = 256 << 10;

/// One stored version as a watch event shows it: which key, which version of it, and
/// the revision written into its `resourceVersion` (a deleted object carries its
/// deletion's).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Id {
    key: Bytes,
    mod_revision: Revision,
    stamped: Revision,
}

impl Id {
    fn of(kv: &KeyValue, stamped: Revision) -> Id {
        Id {
            key: kv.key.clone(),
            mod_revision: kv.mod_revision,
            stamped,
        }
    }
}

struct Entry {
    object: Arc<Value>,
    /// The object as served, by the group, version and kind served.
    served: Vec<(ServedAs, Bytes)>,
    /// Its stored and served JSON's length.
    bytes: usize,
}

/// The group, version and kind an object was served as.
struct ServedAs {
    group: String,
    version: String,
    kind: String,
}

impl ServedAs {
    fn of(def: &ResourceDef) -> ServedAs {
        ServedAs {
            group: def.group.clone(),
            version: def.version.clone(),
            kind: def.kind.clone(),
        }
    }

    /// Compared field by field: the watches of every event ask, so nothing is
    /// formatted for it.
    fn is(&self, def: &ResourceDef) -> bool {
        self.kind == def.kind && self.version == def.version && self.group == def.group
    }
}

/// Recently decoded stored versions, shared by the watches (see the module's doc).
#[derive(Default)]
pub(crate) struct EventObjects {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Id, Entry>,
    /// Oldest first.
    order: VecDeque<Id>,
    /// The entries' `bytes`, summed.
    bytes: usize,
}

impl Inner {
    /// Lets the oldest versions go until `more` bytes fit.
    fn make_room(&mut self, more: usize) {
        while self.order.len() >= KEPT || (self.bytes + more > KEPT_BYTES && !self.order.is_empty())
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.bytes -= entry.bytes;
            }
        }
    }
}

impl EventObjects {
    /// The stored version `kv` decoded, with `stamped` as its resource version; `None`
    /// when it does not parse.
    pub(crate) fn decoded(&self, kv: &KeyValue, stamped: Revision) -> Option<Arc<Value>> {
        let id = Id::of(kv, stamped);
        if let Some(entry) = self.inner.lock().entries.get(&id) {
            return Some(Arc::clone(&entry.object));
        }
        // Decoded outside the lock: two watches may both decode one version, and the
        // first to finish is kept.
        let object = Arc::new(crate::storage::decode(&kv.value, stamped).ok()?);
        let bytes = kv.value.len();
        if bytes > LARGEST_KEPT {
            return Some(object);
        }
        let mut inner = self.inner.lock();
        if let Some(entry) = inner.entries.get(&id) {
            return Some(Arc::clone(&entry.object));
        }
        inner.make_room(bytes);
        inner.order.push_back(id.clone());
        inner.bytes += bytes;
        inner.entries.insert(
            id,
            Entry {
                object: Arc::clone(&object),
                served: Vec::new(),
                bytes,
            },
        );
        Some(object)
    }

    /// `object`, the stored version `kv` as [`EventObjects::decoded`] gave it, served as
    /// `def` in JSON.
    pub(crate) fn served_json(
        &self,
        kv: &KeyValue,
        stamped: Revision,
        def: &ResourceDef,
        object: &Value,
    ) -> Bytes {
        let id = Id::of(kv, stamped);
        let cached = |inner: &Inner| {
            inner.entries.get(&id).and_then(|entry| {
                entry
                    .served
                    .iter()
                    .find(|(as_, _)| as_.is(def))
                    .map(|(_, bytes)| bytes.clone())
            })
        };
        if let Some(bytes) = cached(&self.inner.lock()) {
            return bytes;
        }
        let served = super::to_served(def, object.clone());
        let bytes = Bytes::from(serde_json::to_vec(&served).expect("a JSON value serializes"));
        let mut inner = self.inner.lock();
        if let Some(existing) = cached(&inner) {
            return existing;
        }
        let inner = &mut *inner;
        if let Some(entry) = inner.entries.get_mut(&id)
            && inner.bytes + bytes.len() <= KEPT_BYTES
        {
            entry.served.push((ServedAs::of(def), bytes.clone()));
            entry.bytes += bytes.len();
            inner.bytes += bytes.len();
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pods() -> ResourceDef {
        kinds::builtin()
            .into_iter()
            .find(|d| d.group.is_empty() && d.plural == "pods")
            .expect("pods are built in")
    }

    fn stored(name: &str, mod_revision: Revision) -> KeyValue {
        let object = json!({"metadata": {"name": name, "namespace": "default"}, "spec": {}});
        KeyValue {
            key: Bytes::from(format!("/registry/pods/default/{name}")),
            value: Bytes::from(serde_json::to_vec(&object).unwrap()),
            mod_revision,
            ..Default::default()
        }
    }

    #[test]
    fn one_version_is_decoded_and_served_once_for_every_watch() {
        let shared = EventObjects::default();
        let kv = stored("a", 7);
        let first = shared.decoded(&kv, 7).unwrap();
        let second = shared.decoded(&kv, 7).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first["metadata"]["resourceVersion"], "7");
        // The same version stamped with a later revision (a deletion's) is another.
        let deleted = shared.decoded(&kv, 9).unwrap();
        assert!(!Arc::ptr_eq(&first, &deleted));
        assert_eq!(deleted["metadata"]["resourceVersion"], "9");

        let def = pods();
        let bytes = shared.served_json(&kv, 7, &def, &first);
        let again = shared.served_json(&kv, 7, &def, &second);
        assert_eq!(bytes.as_ptr(), again.as_ptr(), "encoded once");
        let served: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(served, crate::rest::to_served(&def, (*first).clone()));
        assert_eq!(served["kind"], "Pod");
        assert_eq!(served["apiVersion"], "v1");
    }

    #[test]
    fn only_the_latest_versions_are_kept_and_bad_json_is_not() {
        let shared = EventObjects::default();
        let first = shared.decoded(&stored("a", 1), 1).unwrap();
        for rev in 2..=(KEPT as Revision + 1) {
            shared.decoded(&stored("a", rev), rev).unwrap();
        }
        assert_eq!(shared.inner.lock().entries.len(), KEPT);
        let again = shared.decoded(&stored("a", 1), 1).unwrap();
        assert!(!Arc::ptr_eq(&first, &again), "the oldest was let go");
        assert_eq!(first, again);

        // Large versions: fewer are kept, and none over the largest kept.
        let large = |rev: Revision, size: usize| KeyValue {
            value: Bytes::from(serde_json::to_vec(&json!({"data": "x".repeat(size)})).unwrap()),
            ..stored("c", rev)
        };
        for rev in 200..225 {
            shared.decoded(&large(rev, 200 << 10), rev).unwrap();
        }
        {
            let inner = shared.inner.lock();
            assert!(inner.bytes <= KEPT_BYTES, "{} bytes kept", inner.bytes);
            assert!(inner.entries.len() < 25);
            let summed: usize = inner.entries.values().map(|e| e.bytes).sum();
            assert_eq!(summed, inner.bytes);
        }
        let huge = large(300, LARGEST_KEPT);
        let a = shared.decoded(&huge, 300).unwrap();
        let b = shared.decoded(&huge, 300).unwrap();
        assert!(!Arc::ptr_eq(&a, &b), "not kept");

        let broken = KeyValue {
            value: Bytes::from_static(b"{not json"),
            ..stored("b", 100)
        };
        assert!(shared.decoded(&broken, 100).is_none());
        assert!(shared.inner.lock().entries.len() <= KEPT);
    }
}
