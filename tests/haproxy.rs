//! calgate behind a real HAProxy (TCP mode, `send-proxy-v2`): two gateway instances share the
//! load, the client address the balancer announces is the one the per-IP limit counts, the
//! balancer's LOCAL health checks are answered, and a connection without the header gets
//! nothing. See `protocols/proxy-protocol.md`.
//!
//! HAProxy must be installed (`apt-get install -y haproxy`); without it these tests fail. Each
//! test starts its own `haproxy -db` on ephemeral loopback ports and kills it when done.
//!
//! Client addresses: all of 127.0.0.0/8 is loopback on Linux, so a client socket bound to
//! 127.0.0.2 before connecting reaches HAProxy on 127.0.0.1 with that source. HAProxy itself
//! always connects to the gateways from 127.0.0.1: without the PROXY header every client would
//! be one address to them.

mod common;

use common::{cap_client, until_closed};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

const HAPROXY: &str = "/usr/sbin/haproxy";

/// How long anything here may take before the test gives up (not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(30);

/// A loopback address other than 127.0.0.1.
fn lo(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// HAProxy must be there: these tests fail (never skip) without it.
fn require_haproxy() {
    assert!(
        Path::new(HAPROXY).exists(),
        "{HAPROXY} is missing: install HAProxy (`apt-get install -y haproxy`) to run the PROXY \
         protocol tests in tests/haproxy.rs"
    );
}

/// A running `haproxy -db`, killed (and its directory removed) when dropped, also when the
/// test panics.
struct Haproxy {
    child: Child,
    dir: PathBuf,
    /// The frontends' addresses, in the order the config builder got them.
    frontends: Vec<SocketAddr>,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that was free a moment ago (HAProxy cannot bind port 0 and report it).
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address")
}

impl Haproxy {
    /// Starts HAProxy with the configuration `proxies` returns for `n` frontend addresses
    /// (the `global` and `defaults` sections, with a stats socket, are added here), and waits
    /// until it answers on its stats socket. A port taken in the meantime is retried with new
    /// ones.
    async fn start(n: usize, proxies: impl Fn(&[SocketAddr]) -> String) -> Haproxy {
        require_haproxy();
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        for _attempt in 0..5 {
            let dir = std::env::temp_dir().join(format!(
                "calgate-haproxy-{}-{}",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("haproxy test directory");
            let frontends: Vec<SocketAddr> = (0..n).map(|_| free_port()).collect();
            let config = format!(
                "global\n\
                 \x20   stats socket {sock} mode 600 level admin\n\
                 \x20   maxconn 256\n\
                 defaults\n\
                 \x20   mode tcp\n\
                 \x20   timeout connect 5s\n\
                 \x20   timeout client 2m\n\
                 \x20   timeout server 2m\n\
                 \x20   timeout check 5s\n\
                 {proxies}",
                sock = dir.join("admin.sock").display(),
                proxies = proxies(&frontends),
            );
            let cfg = dir.join("haproxy.cfg");
            std::fs::write(&cfg, &config).expect("write haproxy.cfg");
            let log = std::fs::File::create(dir.join("haproxy.log")).expect("haproxy.log");
            let child = Command::new(HAPROXY)
                .arg("-f")
                .arg(&cfg)
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .expect("start haproxy");
            let mut haproxy = Haproxy {
                child,
                dir,
                frontends,
            };
            match haproxy.ready().await {
                Ok(()) => return haproxy,
                Err(log) if log.contains("cannot bind socket") => continue,
                Err(log) => panic!("haproxy did not start:\n{log}\nconfiguration:\n{config}"),
            }
        }
        panic!("haproxy could not bind free ports in five attempts");
    }

    /// Waits until the stats socket answers (the frontends are bound by then); on an early
    /// exit, returns HAProxy's output.
    async fn ready(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("haproxy status") {
                let log = std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default();
                return Err(format!("haproxy exited ({status}):\n{log}"));
            }
            if self.command("show info").await.is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err("haproxy's stats socket did not answer in 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One command on the stats socket; `None` when it cannot be reached.
    async fn command(&self, command: &str) -> Option<String> {
        let mut s = tokio::net::UnixStream::connect(self.dir.join("admin.sock"))
            .await
            .ok()?;
        s.write_all(format!("{command}\n").as_bytes()).await.ok()?;
        let mut out = String::new();
        tokio::time::timeout(PATIENCE, s.read_to_string(&mut out))
            .await
            .ok()?
            .ok()?;
        Some(out)
    }

    /// `show stat` for the servers: (backend, server, status, check_status, chkfail).
    async fn servers(&self) -> Vec<[String; 5]> {
        let csv = self.command("show stat").await.expect("show stat");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .expect("show stat header")
            .split(',')
            .collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("no {name} column in show stat"))
        };
        let cols = [
            col("pxname"),
            col("svname"),
            col("status"),
            col("check_status"),
            col("chkfail"),
        ];
        lines
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f[cols[1]] != "FRONTEND" && f[cols[1]] != "BACKEND")
            // HAProxy prefixes check_status with "* " while a check is running; the status is
            // that of the last finished check either way.
            .map(|f| cols.map(|c| f[c].trim_start_matches("* ").to_owned()))
            .collect()
    }
}

/// A gateway whose CIP and CAP listeners expect the PROXY header, with at most
/// `per_ip` connections per client address.
async fn gateway(per_ip: usize) -> calgate::server::Running {
    let mut c = common::config();
    c.cip.proxy_protocol = true;
    c.cap.proxy_protocol = true;
    c.limits.max_connections_per_ip = per_ip;
    common::start_gateway(c).await
}

/// A TCP connection from `source` (any port) to `to`.
async fn connect_from(source: IpAddr, to: SocketAddr) -> BufReader<TcpStream> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind the client address");
    let stream = tokio::time::timeout(PATIENCE, socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect");
    BufReader::new(stream)
}

/// One line without CRLF; `None` at EOF (or a reset).
async fn line(c: &mut BufReader<TcpStream>) -> Option<String> {
    cap_client::read_line(c).await
}

/// Sends CIP lines and reads up to the completion (`OK nnn` / `NO nnn`).
async fn cip(c: &mut BufReader<TcpStream>, lines: &[&str]) -> Vec<String> {
    for l in lines {
        cap_client::send(c.get_mut(), l).await;
    }
    let mut reply = Vec::new();
    loop {
        let l = line(c).await.expect("a CIP completion before EOF");
        let done = l.starts_with("OK ") || l.starts_with("NO ");
        reply.push(l);
        if done {
            return reply;
        }
    }
}

const GREETING: &str = "OK CIP 1.0 example.com";
const TOO_MANY: &str = "NO 000 Too many connections";

/// A CIP session through `to` from `source`: greeting, alice's login, a FREEBUSY query.
async fn cip_session(source: IpAddr, to: SocketAddr) -> BufReader<TcpStream> {
    let mut c = connect_from(source, to).await;
    assert_eq!(line(&mut c).await.as_deref(), Some(GREETING));
    let login = cip(&mut c, &["AUTHENTICATE LOGIN alice alicepw"]).await;
    assert_eq!(login, ["OK 000 Logged in as alice@example.com"]);
    let fb = cip(
        &mut c,
        &[
            "FREEBUSY +",
            "ATTENDEE:bob@example.com",
            "DTSTART:20351204T000000Z",
            "DTEND:20351205T000000Z",
            ".",
        ],
    )
    .await;
    assert_eq!(fb.first().map(String::as_str), Some("+"), "{fb:?}");
    assert!(
        fb.iter().any(|l| l == "BEGIN:VFREEBUSY"),
        "a VFREEBUSY came back: {fb:?}"
    );
    assert_eq!(
        fb.last().map(String::as_str),
        Some("OK 000 Free/busy returned")
    );
    c
}

/// Ends a CIP session with QUIT.
async fn quit(mut c: BufReader<TcpStream>) {
    assert_eq!(cip(&mut c, &["QUIT"]).await, ["OK 000 Goodbye"]);
    assert!(until_closed(&mut c).await.is_empty());
}

/// A CAP session through `to` from `source`: greeting, alice's PLAIN login.
async fn cap_session(source: IpAddr, to: SocketAddr) -> BufReader<TcpStream> {
    let mut c = connect_from(source, to).await;
    let greeting = cap_client::reply(&mut c).await;
    assert_eq!(greeting[0], "2.0", "{greeting:?}");
    assert!(
        greeting.iter().any(|l| l == "CAPVERSION=1.0"),
        "{greeting:?}"
    );
    cap_client::send(
        c.get_mut(),
        &format!("AUTHENTICATE PLAIN {}", cap_client::ALICE),
    )
    .await;
    let ok = cap_client::reply(&mut c).await;
    assert_eq!(ok[0], "2.0", "{ok:?}");
    c
}

/// A hand-made PROXY v2 header (TCP over IPv4) naming `source` as the client.
fn v2_header(source: SocketAddrV4Parts, destination: SocketAddrV4Parts) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&source.0);
    h.extend_from_slice(&destination.0);
    h.extend_from_slice(&source.1.to_be_bytes());
    h.extend_from_slice(&destination.1.to_be_bytes());
    h
}

/// An IPv4 address's octets and a port.
type SocketAddrV4Parts = ([u8; 4], u16);

/// A direct connection to a gateway listener that presents `header` as a balancer would.
async fn direct_with_header(to: SocketAddr, header: &[u8]) -> BufReader<TcpStream> {
    let mut c = connect_from(lo(1), to).await;
    c.get_mut().write_all(header).await.expect("write header");
    c
}

/// Round robin over two instances: every connection is served, and the connections land on
/// both. With one connection per client address per instance, two simultaneous sessions from
/// one address can only be on different instances; a third from that address finds both
/// instances taken, and so does a direct connection to each instance naming that address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_sessions_over_two_instances() {
    require_haproxy();
    let a = gateway(1).await;
    let b = gateway(1).await;
    let (a_cip, a_cap) = (a.cip_addr.unwrap(), a.cap_addr.unwrap());
    let (b_cip, b_cap) = (b.cip_addr.unwrap(), b.cap_addr.unwrap());
    let haproxy = Haproxy::start(2, |fe| {
        format!(
            "frontend cip\n    bind {}\n    default_backend cip_gateways\n\
             backend cip_gateways\n    balance roundrobin\n\
             \x20   server a {a_cip} send-proxy-v2\n    server b {b_cip} send-proxy-v2\n\
             frontend cap\n    bind {}\n    default_backend cap_gateways\n\
             backend cap_gateways\n    balance roundrobin\n\
             \x20   server a {a_cap} send-proxy-v2\n    server b {b_cap} send-proxy-v2\n",
            fe[0], fe[1]
        )
    })
    .await;
    let (cip_front, cap_front) = (haproxy.frontends[0], haproxy.frontends[1]);

    // CIP: two sessions at once from 127.0.0.4, each logged in and answering a query.
    let client = lo(4);
    let first = cip_session(client, cip_front).await;
    let second = cip_session(client, cip_front).await;
    // A third goes to the first one's instance again, which already has 127.0.0.4.
    let mut third = connect_from(client, cip_front).await;
    assert_eq!(line(&mut third).await.as_deref(), Some(TOO_MANY));
    assert!(until_closed(&mut third).await.is_empty());
    // Each instance, asked directly, has 127.0.0.4 already: both served one of the sessions.
    for (name, addr) in [("a", a_cip), ("b", b_cip)] {
        let header = v2_header(([127, 0, 0, 4], 40000), ([127, 0, 0, 1], 5230));
        let mut direct = direct_with_header(addr, &header).await;
        assert_eq!(
            line(&mut direct).await.as_deref(),
            Some(TOO_MANY),
            "instance {name} holds a session from 127.0.0.4"
        );
    }
    // Another client address is still welcome on both.
    for addr in [a_cip, b_cip] {
        let header = v2_header(([192, 0, 2, 9], 40000), ([127, 0, 0, 1], 5230));
        let mut direct = direct_with_header(addr, &header).await;
        assert_eq!(line(&mut direct).await.as_deref(), Some(GREETING));
    }
    quit(first).await;
    quit(second).await;

    // CAP the same way, from 127.0.0.5: two logged-in sessions, the third is 8.1 busy.
    let cap1 = cap_session(lo(5), cap_front).await;
    let cap2 = cap_session(lo(5), cap_front).await;
    let mut cap3 = connect_from(lo(5), cap_front).await;
    let busy = cap_client::reply(&mut cap3).await;
    assert!(busy[0].starts_with("8.1"), "{busy:?}");
    for mut c in [cap1, cap2] {
        cap_client::send(c.get_mut(), "DISCONNECT").await;
        assert_eq!(cap_client::reply(&mut c).await[0], "2.0");
        assert!(until_closed(&mut c).await.is_empty());
    }
    drop(haproxy);
}

/// The address in the PROXY header is the client address: with one connection per address,
/// a second connection from 127.0.0.2 is refused while one from 127.0.0.3 is served, though
/// HAProxy opened all of them from 127.0.0.1 (without the header, the 127.0.0.3 client would
/// be refused as well). One instance behind the balancer, so that the outcome does not depend
/// on where the balancer sends an address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_address_is_the_client_address() {
    require_haproxy();
    let a = gateway(1).await;
    let a_cip = a.cip_addr.unwrap();
    let haproxy = Haproxy::start(1, |fe| {
        format!(
            "frontend cip\n    bind {}\n    default_backend cip_gateways\n\
             backend cip_gateways\n    balance source\n\
             \x20   server a {a_cip} send-proxy-v2\n",
            fe[0]
        )
    })
    .await;
    let front = haproxy.frontends[0];

    let first = cip_session(lo(2), front).await;
    let mut again = connect_from(lo(2), front).await;
    assert_eq!(line(&mut again).await.as_deref(), Some(TOO_MANY));
    assert!(until_closed(&mut again).await.is_empty());
    let other = cip_session(lo(3), front).await;

    // When the first session ends its address is free again (the slot is given back when
    // the connection's task ends, just after the close the client sees).
    quit(first).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut c = connect_from(lo(2), front).await;
        match line(&mut c).await.as_deref() {
            Some(GREETING) => break,
            Some(TOO_MANY) => {}
            other => panic!("unexpected answer {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "127.0.0.2's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    quit(other).await;
    drop(haproxy);
}

/// The frontends and backends of the sample haproxy.cfg in protocols/proxy-protocol.md, for
/// `frontends` (CIP, CAP) and the instances' CIP and CAP addresses: its `bind` lines and
/// `server` lines replaced, checks every 200 ms. The test runs what the document shows.
fn documented_proxies(frontends: &[SocketAddr], cip: &[SocketAddr], cap: &[SocketAddr]) -> String {
    let doc = std::fs::read_to_string(common::repo().join("protocols/proxy-protocol.md"))
        .expect("read protocols/proxy-protocol.md");
    let sample = doc
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a ```text block with the sample haproxy.cfg");
    let start = sample
        .find("frontend cip")
        .expect("the sample has a `frontend cip`");
    let mut out = String::new();
    let mut servers: &[SocketAddr] = &[];
    for line in sample[start..].lines() {
        let t = line.trim();
        let replaced = match t {
            "bind :5230" => format!("    bind {}", frontends[0]),
            "bind :5229" => format!("    bind {}", frontends[1]),
            "backend calgate_cip" => {
                servers = cip;
                line.to_owned()
            }
            "backend calgate_cap" => {
                servers = cap;
                line.to_owned()
            }
            _ if t.starts_with("server ") => {
                // The sample's gw1, gw2, … become the instances; extra lines are dropped.
                let Some((&addr, rest)) = servers.split_first() else {
                    continue;
                };
                servers = rest;
                let name = t.split_whitespace().nth(1).expect("a server name");
                format!("    server {name} {addr}")
            }
            _ if t.starts_with("default-server ") => line.replace("inter 5s", "inter 200ms"),
            _ => line.to_owned(),
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    assert!(
        out.contains("send-proxy-v2") && out.contains("tcp-check"),
        "the sample still uses send-proxy-v2 and tcp-check:\n{out}"
    );
    out
}

/// HAProxy's health checks send a LOCAL header (and no client). With the sample configuration
/// of protocols/proxy-protocol.md (a `tcp-check` that reads the greeting and says goodbye) all
/// four servers (CIP and CAP of two instances) come up and stay up, and clients get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_with_local_headers_pass() {
    require_haproxy();
    let a = gateway(64).await;
    let b = gateway(64).await;
    let cip = [a.cip_addr.unwrap(), b.cip_addr.unwrap()];
    let cap = [a.cap_addr.unwrap(), b.cap_addr.unwrap()];
    let haproxy = Haproxy::start(2, |fe| documented_proxies(fe, &cip, &cap)).await;
    let (cip_front, cap_front) = (haproxy.frontends[0], haproxy.frontends[1]);

    // Every server passes a layer-7 check (the greeting came after the LOCAL header).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let servers = loop {
        let servers = haproxy.servers().await;
        assert_eq!(servers.len(), 4, "{servers:?}");
        if servers.iter().all(|s| s[2] == "UP" && s[3] == "L7OK") {
            break servers;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checks did not pass: {servers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A few more rounds of checks, none failing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = haproxy.servers().await;
    for s in &later {
        assert_eq!(
            (s[2].as_str(), s[3].as_str(), s[4].as_str()),
            ("UP", "L7OK", "0"),
            "{s:?}"
        );
    }
    assert_eq!(later.len(), servers.len());

    // Clients are served through the checked servers.
    for _ in 0..2 {
        quit(cip_session(lo(6), cip_front).await).await;
    }
    let mut c = cap_session(lo(6), cap_front).await;
    cap_client::send(c.get_mut(), "DISCONNECT").await;
    assert_eq!(cap_client::reply(&mut c).await[0], "2.0");
    drop(haproxy);
}

/// On a proxy_protocol listener every connection must begin with the header (the spec: the
/// receiver must not guess). A client connecting directly gets no greeting and is closed,
/// whether it sends a command or nothing; a header followed at once by the first command
/// loses nothing; v1 and LOCAL headers are accepted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_the_header_gets_no_greeting() {
    let g = gateway(64).await;
    let (cip_addr, cap_addr) = (g.cip_addr.unwrap(), g.cap_addr.unwrap());

    // A legacy client speaking directly: closed without a byte.
    let mut c = connect_from(lo(1), cip_addr).await;
    cap_client::send(c.get_mut(), "AUTHENTICATE LOGIN alice alicepw").await;
    assert_eq!(until_closed(&mut c).await, b"", "no greeting, no answer");
    let mut c = connect_from(lo(1), cap_addr).await;
    cap_client::send(c.get_mut(), "CAPABILITY").await;
    assert_eq!(until_closed(&mut c).await, b"");
    // A v2 header with a bad version: closed too.
    let mut bad = v2_header(([192, 0, 2, 1], 1), ([127, 0, 0, 1], 5230));
    bad[12] = 0x31;
    let mut c = direct_with_header(cip_addr, &bad).await;
    assert_eq!(until_closed(&mut c).await, b"");
    // A client that waits for the greeting: closed when the header does not come in time.
    let mut c = connect_from(lo(1), cip_addr).await;
    assert_eq!(until_closed(&mut c).await, b"");

    // The header and the first command in one write: the command is not lost, and it is
    // judged by the header's address (not loopback: no plaintext passwords, by default).
    let mut first = v2_header(([198, 51, 100, 7], 50000), ([127, 0, 0, 1], 5230));
    first.extend_from_slice(b"AUTHENTICATE LOGIN alice alicepw\r\n");
    let mut c = direct_with_header(cip_addr, &first).await;
    assert_eq!(line(&mut c).await.as_deref(), Some(GREETING));
    let refused = line(&mut c).await.expect("an answer to the login");
    assert!(refused.starts_with("NO 002 "), "{refused}");
    quit(c).await;
    let mut first = v2_header(([127, 0, 0, 9], 50000), ([127, 0, 0, 1], 5230));
    first.extend_from_slice(b"AUTHENTICATE LOGIN alice alicepw\r\n");
    let mut c = direct_with_header(cip_addr, &first).await;
    assert_eq!(line(&mut c).await.as_deref(), Some(GREETING));
    assert_eq!(
        line(&mut c).await.as_deref(),
        Some("OK 000 Logged in as alice@example.com")
    );
    quit(c).await;

    // PROXY v1, and v2 LOCAL (a balancer's own health check).
    let mut c =
        direct_with_header(cip_addr, b"PROXY TCP4 203.0.113.8 127.0.0.1 4000 5230\r\n").await;
    assert_eq!(line(&mut c).await.as_deref(), Some(GREETING));
    quit(c).await;
    let mut c = direct_with_header(cip_addr, b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00").await;
    assert_eq!(line(&mut c).await.as_deref(), Some(GREETING));
    quit(c).await;
    let mut c = direct_with_header(cap_addr, b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00").await;
    assert_eq!(cap_client::reply(&mut c).await[0], "2.0");
}
