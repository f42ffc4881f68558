//! Idle sessions: the gateway's resident memory per idle authenticated CAP session.
//!
//! `idle` starts one or more calgate processes (or measures a running one, `--cap`/`--pid`),
//! and opens CAP sessions to each in steps (`--steps 1000,5000,10000`, cumulative): each
//! session connects, reads the greeting, logs in with `AUTHENTICATE PLAIN <initial response>`
//! (checked upstream by the gateway) and then stays idle. After each step it waits
//! `--settle-secs`, checks that the gateway's `calgate_connections_open` and the clients' own
//! count of live sockets agree with the number of sessions, and reads the gateway's VmRSS.
//! Per session = (RSS now − RSS before any connection) / sessions; the slope between steps is
//! printed too.
//!
//! The client sockets are held by `idle-worker` child processes (at most `--per-worker` each),
//! because one process may hold only `ulimit -Hn` files. Workers and gateways are started
//! through `sh -c 'ulimit -n "$(ulimit -Hn)"; exec …'` (std cannot call setrlimit, and libc is
//! not a dependency), which raises the soft open-file limit to the hard one. Worker k binds its
//! sockets to 127.0.0.(first_source + k) before connecting, so no source address runs out of
//! ephemeral ports (about 28,000 per source address on Linux). Logins that fail are counted and
//! reported, never retried.

use crate::client::{self, Line};
use crate::gateway::{self, BoxError, Gateway, StartOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: crate::Target,
    /// Sessions per gateway at which RSS is read, ascending; sessions of one step stay open
    /// into the next.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    pub steps: Vec<usize>,
    /// Gateway processes started, each taking `--steps` sessions, all held at the same time.
    #[arg(long, default_value_t = 1)]
    pub gateways: usize,
    /// Logins in flight at once, over all workers. Each login is a PROPFIND upstream; the
    /// test Cyrus serves at most 20 HTTP connections at once (CALGATE_CYRUS_HTTP_MAXCHILD), and
    /// far more logins in flight than that only time out in its listen queue.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Most client connections one worker process holds.
    #[arg(long, default_value_t = 15_000)]
    pub per_worker: usize,
    /// Accounts (`user:password`) used in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "alice:alicepw,bob:bobpw,carol:carolpw"
    )]
    pub users: Vec<String>,
    /// Seconds to wait before each RSS reading.
    #[arg(long, default_value_t = 2)]
    pub settle_secs: u64,
    /// Seconds to keep every session open after the last reading (to profile by hand).
    #[arg(long, default_value_t = 0)]
    pub hold_secs: u64,
    /// Last octet of the first client source address (127.0.0.N); worker k binds N + k.
    #[arg(long, default_value_t = 2)]
    pub first_source: u8,
    /// Extra TOML appended to the generated gateway config.
    #[arg(long, default_value = "")]
    pub extra_config: String,
    /// Measure a gateway that is already running (one only): its CAP address.
    #[arg(long)]
    pub cap: Option<SocketAddr>,
    /// With `--cap`: the gateway's pid, for VmRSS.
    #[arg(long, requires = "cap")]
    pub pid: Option<u32>,
    /// With `--cap`: the gateway's admin address, for `calgate_connections_open`.
    #[arg(long, requires = "cap")]
    pub admin: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The gateway's CAP address.
    #[arg(long)]
    pub cap: SocketAddr,
    /// The local address every socket binds before connecting.
    #[arg(long)]
    pub source: Ipv4Addr,
    /// Accounts (`user:password`) used in turn.
    #[arg(long, value_delimiter = ',')]
    pub users: Vec<String>,
    /// Index of this worker, so that accounts rotate over all workers.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
}

/// One gateway under measurement.
struct Measured {
    name: String,
    cap: SocketAddr,
    pid: Option<u32>,
    admin: Option<SocketAddr>,
    baseline_kib: Option<u64>,
    /// The sessions and RSS of the previous reading, for the slope.
    last: Option<(usize, u64)>,
    workers: Vec<Worker>,
    process: Option<Gateway>,
}

impl Measured {
    fn rss(&self) -> Option<u64> {
        match &self.process {
            Some(gw) => gw.rss_kib().ok(),
            None => self.pid.and_then(|p| gateway::rss_kib(p).ok()),
        }
    }

    fn open_sessions(&self) -> Option<f64> {
        const OPEN: &str = "calgate_connections_open";
        match &self.process {
            Some(gw) => gw.metric_sum(OPEN).ok(),
            None => {
                let text = gateway::metrics_at(self.admin?).ok()?;
                Some(gateway::metric_sum(&text, OPEN))
            }
        }
    }
}

/// A worker process and how many sessions it holds.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    held: usize,
}

impl Worker {
    fn spawn(
        cap: SocketAddr,
        source: Ipv4Addr,
        users: &[String],
        index: usize,
    ) -> Result<Worker, BoxError> {
        let exe = std::env::current_exe()?;
        let mut child = gateway::with_raised_nofile(&exe)
            .arg("idle-worker")
            .arg("--cap")
            .arg(cap.to_string())
            .arg("--source")
            .arg(source.to_string())
            .arg("--users")
            .arg(users.join(","))
            .arg("--index")
            .arg(index.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("worker stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("worker stdout")?);
        Ok(Worker {
            child,
            stdin,
            stdout,
            held: 0,
        })
    }

    fn send(&mut self, line: &str) -> Result<(), BoxError> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }

    fn answer(&mut self) -> Result<String, BoxError> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("a worker exited; see its messages above".into());
        }
        Ok(line.trim_end().to_owned())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // End of stdin makes the worker drop its sockets and exit.
        let _ = self.stdin.write_all(b"quit\n");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

fn check_args(args: &Args) -> Result<(), BoxError> {
    if args.steps.is_empty() || args.steps.contains(&0) {
        return Err("--steps needs positive session counts".into());
    }
    if args.steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err("--steps must be ascending".into());
    }
    if args.gateways == 0 || (args.cap.is_some() && args.gateways != 1) {
        return Err("--gateways must be 1 with --cap, and at least 1".into());
    }
    if args.per_worker == 0 || args.concurrency == 0 || args.users.is_empty() {
        return Err("--per-worker, --concurrency and --users must be non-empty".into());
    }
    for u in &args.users {
        if !u.contains(':') {
            return Err(format!("--users: {u:?} is not user:password").into());
        }
    }
    Ok(())
}

pub fn run(args: Args) -> Result<(), BoxError> {
    check_args(&args)?;
    let max = *args.steps.last().expect("checked non-empty");
    let workers_per_gateway = max.div_ceil(args.per_worker);
    let total_workers = workers_per_gateway * args.gateways;
    if usize::from(args.first_source) + total_workers > 255 {
        return Err("too many workers for the 127.0.0.x source addresses".into());
    }
    let mut next_source = args.first_source;
    let mut gateways = Vec::new();
    for g in 0..args.gateways {
        let (name, cap, pid, admin, process) = match args.cap {
            Some(cap) => (format!("{cap}"), cap, args.pid, args.admin, None),
            None => {
                // Room for every session plus the benchmark's own probes.
                let room = max + 100;
                let limits = format!(
                    "max_connections = {room}\nmax_connections_per_ip = {room}\n\
                     idle_timeout_secs = 3600\n"
                );
                let options = StartOptions { raise_nofile: true };
                let gw = Gateway::start_with(&args.target, &limits, &args.extra_config, &options)?;
                (
                    format!("gateway {} (pid {})", g + 1, gw.pid()),
                    gw.cap,
                    Some(gw.pid()),
                    Some(gw.admin),
                    Some(gw),
                )
            }
        };
        let mut workers = Vec::new();
        for _ in 0..workers_per_gateway {
            let source = Ipv4Addr::new(127, 0, 0, next_source);
            let index = usize::from(next_source - args.first_source);
            workers.push(Worker::spawn(cap, source, &args.users, index)?);
            next_source += 1;
        }
        gateways.push(Measured {
            name,
            cap,
            pid,
            admin,
            baseline_kib: None,
            last: None,
            workers,
            process,
        });
    }
    if let Some(pid) = gateways[0].pid {
        eprintln!(
            "gateway open-file limit: {}",
            std::fs::read_to_string(format!("/proc/{pid}/limits"))
                .ok()
                .and_then(|l| l
                    .lines()
                    .find(|l| l.starts_with("Max open files"))
                    .map(str::to_owned))
                .unwrap_or_else(|| "unknown".into())
        );
    }
    std::thread::sleep(Duration::from_secs(args.settle_secs));
    for g in &mut gateways {
        g.baseline_kib = g.rss();
        g.last = g.baseline_kib.map(|kib| (0, kib));
        println!(
            "{}: CAP {}, RSS before any session {} KiB",
            g.name,
            g.cap,
            g.baseline_kib.map_or_else(|| "?".into(), |k| k.to_string())
        );
    }
    println!(
        "\n{:>8} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12}  gateway",
        "sessions",
        "failed",
        "open",
        "alive",
        "login/s",
        "RSS0 KiB",
        "RSS KiB",
        "KiB/session",
        "slope KiB"
    );
    let per_worker_concurrency = args.concurrency.div_ceil(total_workers).max(1);
    let mut failed_total = 0usize;
    for &step in &args.steps {
        let started = Instant::now();
        // One login alone first, so that the gateway's upstream discovery and the upstream's
        // first server processes are not raced by a burst of logins.
        // Failures here are printed and counted like any other (up to 5 tries).
        let mut warmup_failed = vec![0usize; gateways.len()];
        if step == args.steps[0] {
            for (gi, g) in gateways.iter_mut().enumerate() {
                let w = &mut g.workers[0];
                for _ in 0..5 {
                    w.send("open 1 1")?;
                    let answer = w.answer()?;
                    if answer.starts_with("opened 1 0") {
                        w.held += 1;
                        break;
                    }
                    warmup_failed[gi] += 1;
                    eprintln!("{}: the first login failed: {answer}", g.name);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        // Every worker of every gateway logs in its share at once.
        for g in &mut gateways {
            let n = g.workers.len();
            for (i, w) in g.workers.iter_mut().enumerate() {
                let target = step * (i + 1) / n - step * i / n;
                let more = target.saturating_sub(w.held);
                w.send(&format!("open {more} {per_worker_concurrency}"))?;
            }
        }
        let mut failed = warmup_failed;
        for (gi, g) in gateways.iter_mut().enumerate() {
            for w in &mut g.workers {
                let answer = w.answer()?;
                // "opened <ok> <failed> <first error…>"
                let mut parts = answer.splitn(4, ' ');
                let (Some("opened"), Some(ok), Some(bad)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(format!("unexpected worker answer {answer:?}").into());
                };
                let (ok, bad): (usize, usize) = (ok.parse()?, bad.parse()?);
                w.held += ok;
                failed[gi] += bad;
                if bad > 0 {
                    eprintln!(
                        "{}: {bad} logins failed; first: {}",
                        g.name,
                        parts.next().unwrap_or("?")
                    );
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(args.settle_secs));
        // Over all gateways: sessions, open, alive, RSS before, RSS now (where known).
        let mut sum = [0u64; 5];
        for (gi, g) in gateways.iter_mut().enumerate() {
            let mut alive = 0usize;
            for w in &mut g.workers {
                w.send("check")?;
            }
            for w in &mut g.workers {
                let answer = w.answer()?;
                let n = answer
                    .strip_prefix("alive ")
                    .and_then(|r| r.split(' ').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| format!("unexpected worker answer {answer:?}"))?;
                alive += n;
            }
            let held: usize = g.workers.iter().map(|w| w.held).sum();
            let open = g.open_sessions();
            let rss = g.rss();
            if let Some(open) = open
                && open as usize != held
            {
                eprintln!(
                    "{}: calgate_connections_open is {open}, the workers hold {held}",
                    g.name
                );
            }
            let per = match (g.baseline_kib, rss) {
                (Some(b), Some(r)) if held > 0 => {
                    sum[0] += held as u64;
                    sum[1] += open.unwrap_or(0.0) as u64;
                    sum[2] += alive as u64;
                    sum[3] += b;
                    sum[4] += r;
                    format!("{:.2}", (r as f64 - b as f64) / held as f64)
                }
                _ => "?".into(),
            };
            let added = held.saturating_sub(g.last.map_or(0, |l| l.0));
            let slope = match (g.last, rss) {
                (Some((n0, r0)), Some(r)) if held > n0 => {
                    format!("{:.2}", (r as f64 - r0 as f64) / (held - n0) as f64)
                }
                _ => "?".into(),
            };
            if let Some(r) = rss {
                g.last = Some((held, r));
            }
            failed_total += failed[gi];
            println!(
                "{:>8} {:>8} {:>7} {:>10} {:>10.0} {:>10} {:>10} {:>12} {:>12}  {}{}",
                held,
                failed[gi],
                open.map_or_else(|| "?".into(), |o| o.to_string()),
                alive,
                added as f64 / secs,
                g.baseline_kib.map_or_else(|| "?".into(), |k| k.to_string()),
                rss.map_or_else(|| "?".into(), |k| k.to_string()),
                per,
                slope,
                g.name,
                g.pid
                    .and_then(|p| gateway::status_kib(p, "RssAnon").ok())
                    .map_or_else(String::new, |a| format!(" (RssAnon {a} KiB)")),
            );
        }
        if gateways.len() > 1 && sum[0] > 0 {
            let [sessions, open, alive, before, now] = sum;
            println!(
                "{:>8} {:>8} {:>7} {:>10} {:>10} {:>10} {:>10} {:>12.2} {:>12}  all {} gateways",
                sessions,
                failed.iter().sum::<usize>(),
                open,
                alive,
                "",
                before,
                now,
                (now as f64 - before as f64) / sessions as f64,
                "",
                gateways.len()
            );
        }
    }
    if failed_total > 0 {
        println!("\n{failed_total} logins failed in all (not retried)");
    }
    if args.hold_secs > 0 {
        eprintln!("holding every session for {} s", args.hold_secs);
        std::thread::sleep(Duration::from_secs(args.hold_secs));
    }
    // Stop the gateways before the clients close, so that the client side leaves no TIME_WAIT
    // sockets on its source addresses.
    for g in &mut gateways {
        g.process.take();
    }
    drop(gateways);
    Ok(())
}

pub fn worker(args: WorkerArgs) -> Result<(), BoxError> {
    let users: Vec<(String, String)> = args
        .users
        .iter()
        .filter_map(|u| u.split_once(':'))
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .collect();
    if users.is_empty() {
        return Err("--users: no user:password".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut held: Vec<TcpStream> = Vec::new();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut opened = args.index * 7919;
    for line in stdin.lock().lines() {
        let line = line?;
        let mut parts = line.split(' ');
        match parts.next() {
            Some("open") => {
                let n: usize = parts.next().ok_or("open: count")?.parse()?;
                let concurrency: usize = parts.next().ok_or("open: concurrency")?.parse()?;
                let (streams, failed, first) = runtime.block_on(open_many(
                    args.cap,
                    args.source,
                    &users,
                    opened,
                    n,
                    concurrency,
                ));
                opened += n;
                let ok = streams.len();
                held.extend(streams);
                writeln!(
                    stdout,
                    "opened {ok} {failed} {}",
                    first.unwrap_or_else(|| "-".into())
                )?;
            }
            Some("check") => {
                let _guard = runtime.enter();
                let (mut alive, mut data) = (0usize, 0usize);
                let mut buf = [0u8; 256];
                for s in &held {
                    match s.try_read(&mut buf) {
                        Ok(0) => {}
                        Ok(_) => {
                            alive += 1;
                            data += 1;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => alive += 1,
                        Err(_) => {}
                    }
                }
                writeln!(stdout, "alive {alive} {data}")?;
            }
            _ => break,
        }
        stdout.flush()?;
    }
    let _guard = runtime.enter();
    drop(held);
    Ok(())
}

/// Opens `n` sessions with at most `concurrency` logins in flight. Returns the open streams,
/// the number of failures and the first failure's reason.
async fn open_many(
    cap: SocketAddr,
    source: Ipv4Addr,
    users: &[(String, String)],
    first_index: usize,
    n: usize,
    concurrency: usize,
) -> (Vec<TcpStream>, usize, Option<String>) {
    let next = Arc::new(AtomicUsize::new(0));
    let users: Arc<Vec<(String, String)>> = Arc::new(users.to_vec());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(n) {
        let next = next.clone();
        let users = users.clone();
        tasks.spawn(async move {
            let mut streams = Vec::new();
            let mut failed = 0usize;
            let mut first = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (user, password) = &users[(first_index + i) % users.len()];
                match tokio::time::timeout(
                    Duration::from_secs(120),
                    login(cap, source, user, password),
                )
                .await
                {
                    Ok(Ok(s)) => streams.push(s),
                    Ok(Err(e)) => {
                        failed += 1;
                        first.get_or_insert(e);
                    }
                    Err(_) => {
                        failed += 1;
                        first.get_or_insert_with(|| "login took over 120 s".into());
                    }
                }
            }
            (streams, failed, first)
        });
    }
    let mut all = Vec::with_capacity(n);
    let (mut failed, mut first) = (0, None);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((s, f, e)) => {
                all.extend(s);
                failed += f;
                if first.is_none() {
                    first = e;
                }
            }
            Err(e) => {
                failed += 1;
                first.get_or_insert_with(|| format!("task failed: {e}"));
            }
        }
    }
    (all, failed, first)
}

/// One session: connect from `source`, log in with `AUTHENTICATE PLAIN`, and keep the socket.
async fn login(
    cap: SocketAddr,
    source: Ipv4Addr,
    user: &str,
    password: &str,
) -> Result<TcpStream, String> {
    let session = async {
        let line =
            client::cap_login(Line::connect(cap, Some(source)).await?, user, password).await?;
        line.into_stream()
    };
    session.await.map_err(|e: BoxError| e.to_string())
}
