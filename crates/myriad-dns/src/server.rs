//! The shell: hickory-server reads queries from UDP and TCP; each is answered from the latest
//! registry snapshot by [`answer`] and sent back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_server::proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use myriad_proto::cluster::NodeInfo;

use crate::rrl::{Rrl, RrlConfig, Verdict};
use crate::zone::{answer, Question, Reply, Zone};
use myriad_geo::Geo;

/// The registry's living nodes as the answers see them; the node replaces the snapshot as the
/// registry changes.
pub type NodeSnapshot = Arc<ArcSwap<Vec<NodeInfo>>>;

/// A TCP client has this long to send its query.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest UDP answer offered to EDNS clients (the DNS Flag Day 2020 size: no
/// fragmentation).
const MAX_UDP_PAYLOAD: u16 = 1232;

/// The authoritative server.
pub struct Dns {
    zone: Zone,
    geo: Arc<Geo>,
    nodes: NodeSnapshot,
    /// Answers over UDP, limited per client network.
    rrl: Mutex<Rrl>,
}

impl Dns {
    pub fn new(zone: Zone, geo: Arc<Geo>, nodes: NodeSnapshot, rrl: RrlConfig) -> Self {
        Self {
            zone,
            geo,
            nodes,
            rrl: Mutex::new(Rrl::new(rrl)),
        }
    }

    /// Whether an answer with `code` may go to the request's source (UDP only: a TCP
    /// client's address is its own).
    fn limit(&self, request: &Request, code: ResponseCode) -> Verdict {
        if request.protocol() != hickory_server::net::xfer::Protocol::Udp {
            return Verdict::Send;
        }
        let Ok(info) = request.request_info() else {
            return Verdict::Send;
        };
        let kind =
            (u32::from(u16::from(code)) << 16) | u32::from(u16::from(info.query.query_type()));
        let name = info.query.name().to_string();
        let mut rrl = self.rrl.lock().unwrap_or_else(|p| p.into_inner());
        rrl.check(request.src().ip(), &name, kind, Instant::now())
    }

    /// Serves on UDP and TCP at `addr` until the process ends.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<RunningDns> {
        let udp = tokio::net::UdpSocket::bind(addr).await?;
        let addr = udp.local_addr()?;
        let tcp = tokio::net::TcpListener::bind(addr).await?;
        let mut server = Server::new(self);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, 64 * 1024);
        Ok(RunningDns { addr, server })
    }

    fn reply(&self, request: &Request) -> Result<(Reply, Option<ClientSubnet>), ResponseCode> {
        if request.metadata.message_type != MessageType::Query {
            return Err(ResponseCode::FormErr);
        }
        if request.metadata.op_code != OpCode::Query {
            return Err(ResponseCode::NotImp);
        }
        let info = request.request_info().map_err(|_| ResponseCode::FormErr)?;
        let subnet = request
            .edns
            .as_ref()
            .and_then(|e| match e.option(EdnsCode::Subnet) {
                Some(EdnsOption::Subnet(s)) => Some(*s),
                _ => None,
            });
        // RFC 7871: a source prefix of 0 asks for an answer not tied to any address.
        let client = match subnet {
            Some(s) if s.source_prefix() == 0 => None,
            Some(s) => Some(s.addr()),
            None => Some(request.src().ip()),
        };
        let located = client.map_or(
            myriad_geo::Located {
                place: myriad_plan::Place::Unknown,
                scope: 0,
            },
            |ip| self.geo.locate(ip),
        );
        let question = Question {
            name: info.query.name().clone(),
            qtype: info.query.query_type(),
            class: info.query.query_class(),
        };
        let nodes = self.nodes.load();
        Ok((answer(&self.zone, &question, located, &nodes), subnet))
    }
}

/// A DNS server running in the background.
pub struct RunningDns {
    pub addr: SocketAddr,
    server: Server<Dns>,
}

impl RunningDns {
    /// Until its sockets fail.
    pub async fn wait(mut self) -> Result<(), DnsStopped> {
        self.server
            .block_until_done()
            .await
            .map_err(|e| DnsStopped(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the DNS server stopped: {0}")]
pub struct DnsStopped(String);

#[async_trait::async_trait]
impl RequestHandler for Dns {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut edns = request.edns.as_ref().map(|asked| {
            let mut e = Edns::new();
            e.set_max_payload(asked.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            e
        });
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let empty: [Record; 0] = [];
        let result = match request.edns.as_ref().map(Edns::version) {
            Some(v) if v > 0 => Err(ResponseCode::BADVERS),
            _ => self.reply(request),
        };
        let code = match &result {
            Ok((reply, _)) => reply.code,
            Err(code) => *code,
        };
        let result = match self.limit(request, code) {
            Verdict::Send => result,
            Verdict::Slip => {
                metadata.truncation = true;
                Err(code)
            }
            Verdict::Drop => {
                tracing::debug!(client = %request.src(), "DNS answer dropped: rate limited");
                metadata.response_code = code;
                return hickory_server::proto::op::Header {
                    metadata,
                    counts: Default::default(),
                }
                .into();
            }
        };
        let sent = match result {
            Ok((reply, subnet)) => {
                metadata.response_code = reply.code;
                metadata.authoritative = reply.authoritative;
                if let (Some(edns), Some(s)) = (edns.as_mut(), subnet) {
                    edns.options_mut()
                        .insert(EdnsOption::Subnet(ClientSubnet::new(
                            s.addr(),
                            s.source_prefix(),
                            reply.scope,
                        )));
                }
                let mut builder = MessageResponseBuilder::from_message_request(request);
                if let Some(edns) = &edns {
                    builder.edns(edns);
                }
                let response = builder.build(
                    metadata,
                    reply.answers.iter(),
                    reply.authority.iter(),
                    empty.iter(),
                    reply.additionals.iter(),
                );
                response_handle.send_response(response).await
            }
            Err(code) => {
                metadata.response_code = code;
                let mut builder = MessageResponseBuilder::from_message_request(request);
                if let Some(edns) = &edns {
                    builder.edns(edns);
                }
                response_handle
                    .send_response(builder.build_no_records(metadata))
                    .await
            }
        };
        sent.unwrap_or_else(|e| {
            tracing::debug!("DNS answer not sent: {e}");
            let mut failed = Metadata::response_from_request(&request.metadata);
            failed.response_code = ResponseCode::ServFail;
            hickory_server::proto::op::Header {
                metadata: failed,
                counts: Default::default(),
            }
            .into()
        })
    }
}
