//! Load balancer addresses a node announces: held as /32 addresses of loopback, so the
//! node answers ARP for them on its links (Linux answers for any of its addresses, the
//! MetalLB layer 2 way without a speaker of its own) and the Service proxy's rules, which
//! run before routing, send their traffic to the endpoints. Each address carries the
//! label `lo:<tag>`, so an [`Announcer`] (a restarted agent too) finds exactly its own
//! again and leaves every other address of the machine alone.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};

use crate::NetError;
use crate::link::{Netlink, errno};

/// The loopback device, and its index in every namespace.
const LOOPBACK: &str = "lo";
const LOOPBACK_INDEX: u32 = 1;

/// The addresses one node announces, in the network namespace it was made in.
pub struct Announcer {
    netlink: Netlink,
    label: String,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("label", &self.label)
            .finish()
    }
}

impl Announcer {
    /// An announcer whose addresses carry the label `lo:<tag>` (`tag` at most 11 bytes of
    /// letters, digits, `-` and `.`). Needs a tokio runtime.
    pub fn new(tag: &str) -> Result<Self, NetError> {
        Ok(Self {
            netlink: Netlink::open()?,
            label: label(tag)?,
        })
    }

    /// The label its addresses carry.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Makes `wanted` exactly the addresses this announcer holds.
    pub async fn sync(&self, wanted: &BTreeSet<Ipv4Addr>) -> Result<(), NetError> {
        let held = self.held().await?;
        for (ip, message) in &held {
            if !wanted.contains(ip) {
                self.delete(*ip, message.clone()).await?;
            }
        }
        for ip in wanted {
            if held.iter().any(|(h, _)| h == ip) {
                continue;
            }
            let mut request =
                self.netlink
                    .handle()
                    .address()
                    .add(LOOPBACK_INDEX, IpAddr::V4(*ip), 32);
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Label(self.label.clone()));
            match request.execute().await {
                Ok(()) => {
                    tracing::info!(%ip, label = %self.label, "announcing a load balancer address")
                }
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => {
                    return Err(NetError::netlink(
                        format!("adding {ip}/32 to {LOOPBACK}"),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The addresses held now, with their messages (to delete them by).
    pub async fn addresses(&self) -> Result<BTreeSet<Ipv4Addr>, NetError> {
        Ok(self.held().await?.into_iter().map(|(ip, _)| ip).collect())
    }

    async fn held(&self) -> Result<Vec<(Ipv4Addr, AddressMessage)>, NetError> {
        let messages: Vec<AddressMessage> = self
            .netlink
            .handle()
            .address()
            .get()
            .set_link_index_filter(LOOPBACK_INDEX)
            .execute()
            .try_filter(|m| {
                std::future::ready(
                    m.header.family == AddressFamily::Inet && m.header.index == LOOPBACK_INDEX,
                )
            })
            .try_collect()
            .await
            .map_err(|e| NetError::netlink(format!("listing addresses of {LOOPBACK}"), e))?;
        Ok(messages
            .into_iter()
            .filter(|m| {
                m.attributes
                    .iter()
                    .any(|a| matches!(a, AddressAttribute::Label(l) if *l == self.label))
            })
            .filter_map(|m| {
                let ip = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })?;
                Some((ip, m))
            })
            .collect())
    }

    async fn delete(&self, ip: Ipv4Addr, message: AddressMessage) -> Result<(), NetError> {
        match self.netlink.handle().address().del(message).execute().await {
            Ok(()) => {
                tracing::info!(%ip, label = %self.label, "no longer announcing a load balancer address");
                Ok(())
            }
            Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            Err(e) => Err(NetError::netlink(
                format!("removing {ip}/32 from {LOOPBACK}"),
                e,
            )),
        }
    }
}

/// `lo:<tag>`, which the kernel takes as a label of `lo` (at most 15 bytes).
fn label(tag: &str) -> Result<String, NetError> {
    let ok = !tag.is_empty()
        && tag.len() <= 11
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !ok {
        return Err(NetError::InvalidConfig(format!(
            "the announcer's tag {tag:?} must be 1 to 11 letters, digits, '-' or '.'"
        )));
    }
    Ok(format!("{LOOPBACK}:{tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_fit_the_kernel() {
        assert_eq!(label("gja1b2c3").unwrap(), "lo:gja1b2c3");
        assert_eq!(label("abcdefghijk").unwrap().len(), 14);
        assert!(label("abcdefghijkl").is_err());
        assert!(label("").is_err());
        assert!(label("a:b").is_err());
    }
}
