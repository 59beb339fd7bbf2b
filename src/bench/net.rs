//! Loopback plumbing: the target check, client sockets spread over source addresses, the v2
//! WebSocket handshake, HTTP clients, and what /proc says about a process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::wire::v2::SUBPROTOCOL as V2;

pub type Ws = WebSocketStream<TcpStream>;

/// Client sockets bind to 127.0.0.2 … 127.0.0.250 in turn: each source address has its own
/// ephemeral port range, so tens of thousands of sockets do not run out of ports.
pub const SOURCE_ADDRESSES: usize = 249;

pub fn source_addr(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (index % SOURCE_ADDRESSES) as u8)
}

/// A server on this machine.
#[derive(Clone, Debug)]
pub struct Target {
    /// The address connected to (always in 127.0.0.0/8).
    pub addr: SocketAddr,
    /// `http://127.0.0.x:port` (resolved, so no client resolves the name again).
    pub base: String,
}

impl Target {
    /// Parses the URL, resolves it, and refuses anything that is not loopback: every address
    /// the name resolves to must be loopback, and the one used must be in 127.0.0.0/8.
    pub async fn resolve(url: &str) -> anyhow::Result<Target> {
        let parsed = url::Url::parse(url).with_context(|| format!("--url {url} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "ws") {
            anyhow::bail!(
                "--url must be http:// or ws:// (a server on this machine), not {}",
                parsed.scheme()
            );
        }
        let host = parsed
            .host_str()
            .context("--url has no host")?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .collect();
        if let Some(outside) = resolved.iter().find(|a| !a.ip().is_loopback()) {
            anyhow::bail!(
                "refusing to load {url}: {host} resolves to {}, which is not a loopback address; \
                 the bench only targets servers on this machine (127.0.0.0/8)",
                outside.ip()
            );
        }
        let addr = resolved
            .into_iter()
            .find(|a| matches!(a.ip(), IpAddr::V4(v4) if v4.octets()[0] == 127))
            .with_context(|| format!("refusing to load {url}: {host} has no address in 127.0.0.0/8"))?;
        Ok(Target {
            addr,
            base: format!("http://{addr}"),
        })
    }
}

/// Why a socket could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// This process hit its open-files limit (EMFILE/ENFILE).
    OpenFiles,
    /// No local port left for that source address.
    Ports,
    /// The server answered the handshake with this HTTP status.
    Refused(u16, String),
    /// Nothing listens, or the listen queue was full (ECONNREFUSED).
    TcpRefused,
    /// The server reset the connection or closed it before answering.
    Reset,
    /// Nothing within the timeout (a server out of files stops accepting).
    Timeout,
    Other(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::OpenFiles => write!(f, "open-files limit of the bench process"),
            ConnectError::Ports => write!(f, "no local port left"),
            ConnectError::Refused(status, body) => write!(f, "handshake refused: HTTP {status} {body}"),
            ConnectError::TcpRefused => write!(f, "connection refused"),
            ConnectError::Reset => write!(f, "connection reset"),
            ConnectError::Timeout => write!(f, "timed out"),
            ConnectError::Other(e) => write!(f, "{e}"),
        }
    }
}

impl ConnectError {
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectError::OpenFiles => "open_files",
            ConnectError::Ports => "ports",
            ConnectError::Refused(..) => "refused",
            ConnectError::TcpRefused => "tcp_refused",
            ConnectError::Reset => "reset",
            ConnectError::Timeout => "timeout",
            ConnectError::Other(_) => "other",
        }
    }
}

fn io_error(err: std::io::Error) -> ConnectError {
    match err.raw_os_error() {
        Some(24) | Some(23) => ConnectError::OpenFiles,
        Some(99) => ConnectError::Ports,
        Some(111) => ConnectError::TcpRefused,
        Some(104) | Some(32) => ConnectError::Reset,
        _ if err.kind() == std::io::ErrorKind::UnexpectedEof => ConnectError::Reset,
        _ => ConnectError::Other(err.to_string()),
    }
}

/// A TCP connection to the target from source address number `index`.
pub async fn tcp(target: &Target, index: usize) -> Result<TcpStream, ConnectError> {
    let socket = TcpSocket::new_v4().map_err(io_error)?;
    socket
        .bind(SocketAddr::new(IpAddr::V4(source_addr(index)), 0))
        .map_err(io_error)?;
    let stream = socket.connect(target.addr).await.map_err(io_error)?;
    stream.set_nodelay(true).map_err(io_error)?;
    Ok(stream)
}

/// Opens `/ws/?token=…` with the `causerie.v2` subprotocol from source address `index`.
pub async fn connect_v2(
    target: &Target,
    token: &str,
    index: usize,
    read_buffer: usize,
    timeout: Duration,
) -> Result<Ws, ConnectError> {
    connect_ws(
        target,
        &format!("/ws/?token={token}"),
        Some(V2),
        index,
        read_buffer,
        timeout,
    )
    .await
}

/// Opens the WebSocket at `path` (with its query) from source address `index`, asking for
/// `subprotocol` if given (and then requiring the server to select it).
pub async fn connect_ws(
    target: &Target,
    path: &str,
    subprotocol: Option<&'static str>,
    index: usize,
    read_buffer: usize,
    timeout: Duration,
) -> Result<Ws, ConnectError> {
    let attempt = async {
        let stream = tcp(target, index).await?;
        let mut request = format!("ws://{}{path}", target.addr)
            .into_client_request()
            .map_err(|e| ConnectError::Other(e.to_string()))?;
        if let Some(protocol) = subprotocol {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(read_buffer)
            .write_buffer_size(0)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
            Ok((ws, response)) => {
                let selected = response.headers().get("sec-websocket-protocol");
                if let Some(protocol) = subprotocol {
                    if selected.and_then(|p| p.to_str().ok()) != Some(protocol) {
                        return Err(ConnectError::Other(format!("the server did not select {protocol}")));
                    }
                }
                Ok(ws)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err(ConnectError::Refused(response.status().as_u16(), body))
            }
            Err(tokio_tungstenite::tungstenite::Error::Io(err)) => Err(io_error(err)),
            Err(
                tokio_tungstenite::tungstenite::Error::ConnectionClosed
                | tokio_tungstenite::tungstenite::Error::AlreadyClosed
                | tokio_tungstenite::tungstenite::Error::Protocol(
                    tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                    | tokio_tungstenite::tungstenite::error::ProtocolError::HandshakeIncomplete,
                ),
            ) => Err(ConnectError::Reset),
            Err(err) => Err(ConnectError::Other(err.to_string())),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(ConnectError::Timeout))
}

/// An HTTP client whose connections leave from source address `index`.
pub fn http_client(index: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source_addr(index)))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()
        .context("building an HTTP client")
}

/// Resident memory of a process in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system, all threads) of a process in seconds.
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the command name: utime, stime (USER_HZ = 100).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Open files of a process.
pub fn open_files(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|d| d.count())
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The process listening on the target's port, found through /proc (no --pid needed).
pub fn find_listener(addr: SocketAddr) -> Option<u32> {
    let IpAddr::V4(ip) = addr.ip() else { return None };
    let want_local = format!("{:08X}:{:04X}", u32::from_le_bytes(ip.octets()), addr.port());
    let want_any = format!("{:08X}:{:04X}", 0, addr.port());
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let listening = cols.get(3) == Some(&"0A");
        let local = cols.get(1)?;
        (listening && (*local == want_local || *local == want_any)).then(|| cols.get(9).map(|s| s.to_string()))?
    })?;
    let needle = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == needle) {
                return Some(pid);
            }
        }
    }
    None
}

/// `--pid`, or the listener of the target, with a note on stderr.
pub fn server_pid(given: Option<u32>, target: &Target) -> Option<u32> {
    let pid = given.or_else(|| find_listener(target.addr));
    match pid {
        Some(pid) => eprintln!("bench: server process {pid}"),
        None => eprintln!("bench: server process not found (pass --pid for its memory and CPU)"),
    }
    pid
}

/// CPU used by the server and by this process over a span of wall time.
pub struct CpuMeter {
    pid: Option<u32>,
    wall: std::time::Instant,
    server: Option<f64>,
    own: Option<f64>,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            pid,
            wall: std::time::Instant::now(),
            server: pid.and_then(|p| cpu_secs(Some(p))),
            own: cpu_secs(None),
        }
    }

    /// `{server_cpu_percent, bench_cpu_percent, loadavg}` since `start` (100 % = one core).
    pub fn finish(&self) -> serde_json::Value {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-6);
        let pct = |before: Option<f64>, now: Option<f64>| match (before, now) {
            (Some(b), Some(n)) => serde_json::json!(((n - b) / wall * 1000.0).round() / 10.0),
            _ => serde_json::Value::Null,
        };
        serde_json::json!({
            "server_cpu_percent": pct(self.server, self.pid.and_then(|p| cpu_secs(Some(p)))),
            "bench_cpu_percent": pct(self.own, cpu_secs(None)),
            "loadavg": loadavg(),
        })
    }
}
