//! The DNS server: UDP and TCP through `hickory-server`, answering the
//! cluster's names from the current `Records` and forwarding the rest.
//!
//! The records are an `Arc` in an `ArcSwap`: a query loads the current one
//! (an atomic increment, no lock) and a change stores a whole new one, so
//! queries never wait for a rebuild.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};

use crate::DnsError;
use crate::forward::{Forwarder, nameservers};
use crate::records::{Answer, Records};

/// The largest UDP answer offered to EDNS clients (the DNS flag day 2020
/// size, which avoids IP fragmentation).
const MAX_UDP_PAYLOAD: u16 = 1232;

/// How long an idle TCP connection is kept.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// What the server serves and where.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    /// Addresses to serve on, each over UDP and TCP on the same port; port 0
    /// picks a free port.
    pub listen: Vec<SocketAddr>,
    /// Where to forward other names; `None` reads the nameservers of the
    /// host's `/etc/resolv.conf` (port 53).
    pub upstreams: Option<Vec<SocketAddr>>,
    /// The TTL of every record (CoreDNS's kubernetes plugin: 5 s).
    pub ttl: u32,
}

impl ServerConfig {
    /// `cluster.local` on `listen`, forwarding to the host's resolvers, TTL 5.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            domain: "cluster.local".into(),
            listen: vec![listen],
            upstreams: None,
            ttl: 5,
        }
    }
}

/// A handle that replaces the records the server answers from.
#[derive(Clone, Debug)]
pub struct RecordsHandle {
    current: Arc<ArcSwap<Records>>,
    zone: Name,
    ttl: u32,
}

impl RecordsHandle {
    /// Makes `records` the ones answered from, for every query after this.
    pub fn replace(&self, records: Records) {
        self.current.store(Arc::new(records));
    }

    /// The records answered from now.
    pub fn current(&self) -> Arc<Records> {
        self.current.load_full()
    }

    /// The cluster's zone (`cluster.local.`).
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// The TTL records are built with.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }
}

/// A running DNS server; dropping it stops it.
///
/// It runs on a thread of its own with a single-threaded runtime: a query
/// is received, answered and sent on one core without hopping between
/// worker threads, and the API server's work on the process's runtime
/// never delays it.
pub struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    local: Vec<SocketAddr>,
    records: RecordsHandle,
    upstreams: Vec<SocketAddr>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local", &self.local)
            .field("upstreams", &self.upstreams)
            .finish()
    }
}

impl Server {
    /// Binds every listen address (UDP, then TCP on the port UDP got) and
    /// starts serving. Until the first `RecordsHandle::replace`, names of
    /// the zone fail with SERVFAIL and other names are forwarded.
    pub async fn start(config: ServerConfig) -> Result<Self, DnsError> {
        let first = *config.listen.first().ok_or(DnsError::NoListen)?;
        let mut zone = Name::from_ascii(&config.domain)
            .map_err(|e| DnsError::Domain(config.domain.clone(), e.to_string()))?
            .to_lowercase();
        zone.set_fqdn(true);
        let mut sockets = Vec::new();
        let mut local = Vec::new();
        for addr in &config.listen {
            let (udp, tcp) = bind_pair(*addr)?;
            local.push(udp.local_addr().map_err(|e| DnsError::Bind(*addr, e))?);
            sockets.push((udp, tcp));
        }
        let upstreams = match config.upstreams {
            Some(u) => u,
            None => {
                let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                nameservers(&text)
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 53))
                    .collect()
            }
        };
        // Never forward to ourselves: a loop would answer nothing, slowly.
        let upstreams: Vec<SocketAddr> = upstreams
            .into_iter()
            .filter(|u| {
                !local.iter().any(|l| {
                    l == u
                        || (l.ip().is_unspecified() && l.port() == u.port() && u.ip().is_loopback())
                })
            })
            .collect();
        let current = Arc::new(ArcSwap::from_pointee(Records::unsynced(&zone, config.ttl)));
        let handler = Handler {
            records: Arc::clone(&current),
            forwarder: Forwarder::new(upstreams.clone()),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (started, ready) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
        let thread = std::thread::Builder::new()
            .name("cluster-dns".into())
            .spawn(move || serve(handler, sockets, stopped, started))
            .map_err(|e| DnsError::Bind(first, e))?;
        match ready.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(DnsError::Bind(first, e)),
            Err(_) => {
                return Err(DnsError::Bind(
                    first,
                    std::io::Error::other("the dns thread ended at start"),
                ));
            }
        }
        tracing::info!(?local, ?upstreams, zone = %zone, "cluster dns serving");
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
            local,
            records: RecordsHandle {
                current,
                zone,
                ttl: config.ttl,
            },
            upstreams,
        })
    }

    /// The addresses served on (UDP and TCP alike), ports resolved.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Where other names are forwarded.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The handle that replaces the records answered from.
    pub fn records(&self) -> RecordsHandle {
        self.records.clone()
    }

    /// Stops accepting queries and waits for those in flight.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The thread sees its stop channel close and winds down by itself.
        self.stop.take();
    }
}

/// The server thread: registers the sockets with `hickory-server` on a
/// runtime of its own and serves until told to stop.
fn serve(
    handler: Handler,
    sockets: Vec<(std::net::UdpSocket, std::net::TcpListener)>,
    stopped: tokio::sync::oneshot::Receiver<()>,
    started: tokio::sync::oneshot::Sender<std::io::Result<()>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let mut inner = hickory_server::Server::new(handler);
        for (udp, tcp) in sockets {
            let pair = UdpSocket::from_std(udp).and_then(|u| Ok((u, TcpListener::from_std(tcp)?)));
            match pair {
                Ok((udp, tcp)) => {
                    inner.register_socket(udp);
                    inner.register_listener(tcp, TCP_IDLE, 64);
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                    return;
                }
            }
        }
        let _ = started.send(Ok(()));
        // A stop, or the `Server` dropped.
        let _ = stopped.await;
        if let Err(e) = inner.shutdown_gracefully().await {
            tracing::debug!(error = %e, "dns server stopped");
        }
    });
}

/// UDP and TCP on one port: for port 0 the port UDP got, retried a few
/// times in case TCP's is taken. The server binds with it before serving on
/// its own thread; tests use it for stand-in resolvers.
pub fn bind_pair(
    addr: SocketAddr,
) -> Result<(std::net::UdpSocket, std::net::TcpListener), DnsError> {
    let bind = |e| DnsError::Bind(addr, e);
    let mut last = None;
    for _ in 0..8 {
        let udp = std::net::UdpSocket::bind(addr).map_err(bind)?;
        udp.set_nonblocking(true).map_err(bind)?;
        let got = udp.local_addr().map_err(bind)?;
        match std::net::TcpListener::bind(got) {
            Ok(tcp) => {
                tcp.set_nonblocking(true).map_err(bind)?;
                return Ok((udp, tcp));
            }
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(DnsError::Bind(got, e)),
        }
    }
    Err(DnsError::Bind(
        addr,
        last.unwrap_or_else(|| std::io::Error::other("no port free for udp and tcp")),
    ))
}

struct Handler {
    records: Arc<ArcSwap<Records>>,
    forwarder: Forwarder,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        match self.answer(request, response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "could not send a dns answer");
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

impl Handler {
    async fn answer<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> Result<ResponseInfo, hickory_server::net::NetError> {
        let edns = request.edns.as_ref().map(|theirs| {
            let mut e = Edns::new();
            e.set_max_payload(theirs.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            e
        });
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(e) = &edns {
            builder.edns(e);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            metadata.response_code = ResponseCode::NotImp;
            return response
                .send_response(builder.build_no_records(metadata))
                .await;
        }
        let Ok(info) = request.request_info() else {
            metadata.response_code = ResponseCode::FormErr;
            return response
                .send_response(builder.build_no_records(metadata))
                .await;
        };
        let name = info.query.name();
        let qtype = info.query.query_type();
        let records = self.records.load_full();
        let soa = std::iter::once(records.soa());
        let none = std::iter::empty::<&Record>;
        match records.lookup(name, qtype) {
            Answer::Elsewhere => {
                drop(records);
                self.forwarded(request, metadata, builder, response).await
            }
            Answer::Unsynced => {
                metadata.response_code = ResponseCode::ServFail;
                response
                    .send_response(builder.build_no_records(metadata))
                    .await
            }
            Answer::Found {
                mut answers,
                additionals,
            } => {
                metadata.authoritative = true;
                // Rotate address sets so clients that take the first spread
                // over a headless Service's endpoints.
                if answers.len() > 1 && matches!(qtype, RecordType::A | RecordType::AAAA) {
                    let n = answers.len();
                    answers.rotate_left(usize::from(request.metadata.id) % n);
                }
                let msg = builder.build(metadata, answers, none(), none(), additionals);
                response.send_response(msg).await
            }
            Answer::Made(record) => {
                metadata.authoritative = true;
                let msg = builder.build(metadata, [&*record], none(), none(), none());
                response.send_response(msg).await
            }
            Answer::NoData => {
                metadata.authoritative = true;
                let msg = builder.build(metadata, none(), none(), soa, none());
                response.send_response(msg).await
            }
            Answer::NxDomain => {
                metadata.authoritative = true;
                metadata.response_code = ResponseCode::NXDomain;
                let msg = builder.build(metadata, none(), none(), soa, none());
                response.send_response(msg).await
            }
            Answer::Alias { cname, target } => {
                metadata.authoritative = true;
                let mut answers = vec![cname];
                let target_lower = LowerName::new(target);
                let upstream;
                if records.zone().zone_of(&target_lower) {
                    // One step inside the zone (an alias of an alias is
                    // left to the client).
                    if let Answer::Found { answers: more, .. } =
                        records.lookup(&target_lower, qtype)
                    {
                        answers.extend(more);
                    }
                } else {
                    upstream = self.chase(target, qtype).await;
                    if let Some(m) = &upstream {
                        metadata.response_code = m.metadata.response_code;
                        answers.extend(m.answers.iter());
                    }
                }
                let msg = builder.build(metadata, answers, none(), none(), none());
                response.send_response(msg).await
            }
        }
    }

    /// Asks upstream for the records of an ExternalName's target.
    async fn chase(&self, target: &Name, qtype: RecordType) -> Option<Message> {
        let mut query = Message::query();
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(target.clone(), qtype));
        let bytes = query.to_vec().ok()?;
        match self.forwarder.forward(&bytes).await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::debug!(%target, error = %e, "could not resolve an alias's target");
                None
            }
        }
    }

    async fn forwarded<R: ResponseHandler>(
        &self,
        request: &Request,
        mut metadata: Metadata,
        builder: MessageResponseBuilder<'_>,
        mut response: R,
    ) -> Result<ResponseInfo, hickory_server::net::NetError> {
        match self.forwarder.forward(request.as_slice()).await {
            Ok(m) => {
                let mut meta = m.metadata;
                meta.id = request.metadata.id;
                meta.truncation = false;
                let msg = builder.build(
                    meta,
                    m.answers.iter(),
                    m.authorities.iter(),
                    std::iter::empty(),
                    m.additionals.iter(),
                );
                response.send_response(msg).await
            }
            Err(e) => {
                tracing::debug!(error = %e, "forwarding failed");
                metadata.response_code = ResponseCode::ServFail;
                response
                    .send_response(builder.build_no_records(metadata))
                    .await
            }
        }
    }
}
