//! Forwarding of names outside the cluster to upstream resolvers, as
//! CoreDNS's `forward` plugin does: the client's query goes upstream as it
//! came (its flags and EDNS options kept, under a fresh id), and the
//! upstream's answer comes back whole, whatever its code. Over UDP first,
//! over TCP when the answer was truncated; the next upstream on a timeout
//! or a failure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::serialize::binary::BinDecodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::DnsError;

/// How long one upstream has to answer before the next is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The nameservers of a resolv.conf text, in order.
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => words.next(),
                _ => None,
            }
        })
        // A scoped IPv6 address (fe80::1%eth0) keeps its address part.
        .filter_map(|w| w.split('%').next()?.parse().ok())
        .collect()
}

/// Upstream resolvers, asked in order.
#[derive(Clone, Debug)]
pub(crate) struct Forwarder {
    upstreams: Vec<SocketAddr>,
}

impl Forwarder {
    pub(crate) fn new(upstreams: Vec<SocketAddr>) -> Self {
        Self { upstreams }
    }

    /// Sends the wire-format `query` upstream and returns the first answer.
    pub(crate) async fn forward(&self, query: &[u8]) -> Result<Message, DnsError> {
        if query.len() < 12 {
            return Err(DnsError::Upstream("query shorter than a header".into()));
        }
        let mut last = DnsError::Upstream("no upstream resolver configured".into());
        for upstream in &self.upstreams {
            let id: u16 = rand::random();
            let mut bytes = query.to_vec();
            bytes[..2].copy_from_slice(&id.to_be_bytes());
            let attempt = async {
                let answer = exchange_udp(*upstream, &bytes, id).await?;
                if answer.metadata.truncation {
                    exchange_tcp(*upstream, &bytes, id).await
                } else {
                    Ok(answer)
                }
            };
            match tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => {
                    tracing::debug!(%upstream, error = %e, "upstream failed");
                    last = e;
                }
                Err(_) => {
                    tracing::debug!(%upstream, "upstream timed out");
                    last = DnsError::Upstream(format!("{upstream} did not answer in time"));
                }
            }
        }
        Err(last)
    }
}

async fn exchange_udp(upstream: SocketAddr, query: &[u8], id: u16) -> Result<Message, DnsError> {
    let local: SocketAddr = match upstream.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let io = |e: std::io::Error| DnsError::Upstream(format!("{upstream}: {e}"));
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(upstream).await.map_err(io)?;
    socket.send(query).await.map_err(io)?;
    let mut buf = vec![0u8; 65535];
    // A connected socket only hears from the upstream; a stray datagram
    // with another id (a late answer) is skipped.
    loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        match Message::from_bytes(&buf[..n]) {
            Ok(m) if m.metadata.id == id => return Ok(m),
            _ => continue,
        }
    }
}

async fn exchange_tcp(upstream: SocketAddr, query: &[u8], id: u16) -> Result<Message, DnsError> {
    let io = |e: std::io::Error| DnsError::Upstream(format!("{upstream} over tcp: {e}"));
    let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
    let len = u16::try_from(query.len())
        .map_err(|_| DnsError::Upstream("query longer than 65535 bytes".into()))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.map_err(io)?;
    let len = stream.read_u16().await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.map_err(io)?;
    let m = Message::from_bytes(&buf)
        .map_err(|e| DnsError::Upstream(format!("{upstream} over tcp: bad answer: {e}")))?;
    if m.metadata.id != id {
        return Err(DnsError::Upstream(format!(
            "{upstream} over tcp: answer to another query"
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameservers() {
        let text = "# comment\nsearch example.test\nnameserver 10.0.0.2\nnameserver  fe80::1%eth0\noptions ndots:2\nnameserver bogus\n";
        assert_eq!(
            nameservers(text),
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "fe80::1".parse::<IpAddr>().unwrap()
            ]
        );
    }
}
