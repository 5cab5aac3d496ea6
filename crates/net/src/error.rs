//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use ipnet::Ipv4Net;

/// What can go wrong while building or changing the pod network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The [`crate::NetworkConfig`] cannot describe a working network.
    #[error("invalid network config: {0}")]
    InvalidConfig(String),

    /// Every address of the pod range is recorded as taken.
    #[error("no free address left in pod range {cidr} ({used} of {usable} allocated)")]
    AddressesExhausted {
        /// The pod range.
        cidr: Ipv4Net,
        /// Addresses recorded as allocated.
        used: usize,
        /// Addresses the range can hand out (network, gateway and broadcast excluded).
        usable: usize,
    },

    /// A file or directory of the state directory, or a network namespace file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// Entering a network namespace or running work inside one failed.
    #[error("network namespace {}: {source}", path.display())]
    Netns {
        /// The namespace file (`/proc/thread-self/ns/net` for the node's own).
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// A netlink request (links, addresses, routes) failed.
    #[error("netlink: {op}: {source}")]
    Netlink {
        /// What was being done, naming the link or address.
        op: String,
        /// The error netlink returned.
        source: rtnetlink::Error,
    },

    /// Netlink requests got no answer in time (a reply the kernel dropped).
    #[error("netlink: {op}: no answer within {waited:?}")]
    NetlinkTimeout {
        /// What was being done, naming the pod.
        op: String,
        /// How long it waited.
        waited: std::time::Duration,
    },

    /// A pod uid was empty: it names the pod's address file and veth.
    #[error("pod uid must not be empty")]
    EmptyPodUid,

    /// The bridge is gone since [`crate::PodNetwork::setup`]; setup must run again.
    #[error("bridge {0} does not exist (was the pod network torn down?)")]
    BridgeMissing(String),

    /// A link that was just made cannot be found.
    #[error("link {name} is missing in network namespace {}", netns.display())]
    LinkMissing {
        /// The link's name.
        name: String,
        /// The namespace it should be in.
        netns: PathBuf,
    },

    /// A link of the expected name exists but is of another kind.
    #[error("link {name} exists but is not a {expected}")]
    WrongLinkKind {
        /// The link's name.
        name: String,
        /// The kind it should have been (`bridge`, `veth`).
        expected: &'static str,
    },

    /// `nft` refused or failed to apply the table.
    #[error("nftables table {table}: {detail}")]
    Nftables {
        /// The table being changed.
        table: String,
        /// What went wrong, with `nft`'s own message when it ran.
        detail: String,
    },
}

impl NetError {
    /// Builds an [`NetError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        NetError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an [`NetError::Netlink`] describing `op`.
    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        NetError::Netlink {
            op: op.into(),
            source,
        }
    }
}
