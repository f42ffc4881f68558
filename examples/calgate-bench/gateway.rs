//! Starting and observing the calgate process under test.

use crate::Target;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running `calgate run` child process with its own config in a temporary directory.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    dir: PathBuf,
    pub cap: SocketAddr,
    pub cip: SocketAddr,
    pub admin: SocketAddr,
}

/// A free loopback port (bound, then released: good enough on a quiet machine).
fn free_port() -> Result<SocketAddr, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The calgate binary: `--gateway-bin`, else `../calgate` from this tool's own directory.
pub fn gateway_bin(target: &Target) -> Result<PathBuf, BoxError> {
    if let Some(p) = &target.gateway_bin {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .ok_or("cannot locate the calgate binary; pass --gateway-bin")?;
    let bin = dir.join("calgate");
    if !bin.exists() {
        return Err(format!(
            "{} not found; build it (cargo build --release --bin calgate) or pass --gateway-bin",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

/// How [`Gateway::start_with`] launches the process.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Raise the child's soft open-file limit to its hard limit first (`ulimit -n` in `sh`,
    /// then `exec`, so the pid is still calgate's): needed for thousands of connections.
    pub raise_nofile: bool,
}

/// A command that runs `program` with the soft open-file limit raised to the hard limit: `sh
/// -c 'ulimit -n <hard>; exec program args…'`. (std cannot call setrlimit and libc is not a
/// dependency; `exec` keeps the pid.) Add the program's arguments to the returned command.
pub fn with_raised_nofile(program: &std::path::Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)" && exec "$0" "$@""#)
        .arg(program);
    cmd
}

impl Gateway {
    /// Starts calgate with a config for benchmarking: the upstream of `target`, loopback
    /// listeners on free ports, the admin listener on, and `limits` (a TOML `[limits]` body)
    /// plus `extra` TOML appended. Waits until all three listeners accept.
    pub fn start(target: &Target, limits: &str, extra: &str) -> Result<Gateway, BoxError> {
        Gateway::start_with(target, limits, extra, &StartOptions::default())
    }

    /// [`Gateway::start`] with launch options.
    pub fn start_with(
        target: &Target,
        limits: &str,
        extra: &str,
        options: &StartOptions,
    ) -> Result<Gateway, BoxError> {
        let bin = gateway_bin(target)?;
        let (cap, cip, admin) = (free_port()?, free_port()?, free_port()?);
        let dir = std::env::temp_dir().join(format!(
            "calgate-bench-{}-{}",
            std::process::id(),
            cap.port()
        ));
        std::fs::create_dir_all(&dir)?;
        let config = format!(
            r#"[gateway]
server_id = "example.com"
[cap]
listen = "{cap}"
[cip]
listen = "{cip}"
[upstream]
url = "{url}"
domain = "example.com"
principal_template = "{principal}"
calendar_template = "{calendar}"
{upstream_extra}
[upstream.service_account]
user = "calgate"
password = "calgatepw"
[auth]
plaintext_passwords = "loopback"
[limits]
{limits}
[admin]
enabled = true
listen = "{admin}"
{extra}
"#,
            url = target.upstream_url,
            principal = target.principal_template,
            calendar = target.calendar_template,
            upstream_extra = target.upstream_option.join("\n"),
        );
        let config_path = dir.join("gateway.toml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.join("gateway.log"))?;
        let mut command = if options.raise_nofile {
            with_raised_nofile(&bin)
        } else {
            Command::new(&bin)
        };
        let child = command
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env(
                "CALGATE_LOG",
                std::env::var("CALGATE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut gw = Gateway {
            child,
            dir,
            cap,
            cip,
            admin,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for addr in [cap, cip, admin] {
            loop {
                if TcpStream::connect(addr).is_ok() {
                    break;
                }
                if let Some(status) = gw.child.try_wait()? {
                    return Err(format!(
                        "calgate exited ({status}) before listening; see {}",
                        gw.dir.join("gateway.log").display()
                    )
                    .into());
                }
                if Instant::now() > deadline {
                    return Err(format!("calgate did not listen on {addr} within 20 s").into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(gw)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size of the gateway process in KiB (VmRSS of /proc/<pid>/status).
    pub fn rss_kib(&self) -> Result<u64, BoxError> {
        rss_kib(self.pid())
    }

    /// The admin listener's /metrics text.
    pub fn metrics(&self) -> Result<String, BoxError> {
        metrics_at(self.admin)
    }

    /// The sum of every sample of `name` (all label sets) in the /metrics text.
    pub fn metric_sum(&self, name: &str) -> Result<f64, BoxError> {
        Ok(metric_sum(&self.metrics()?, name))
    }
}

/// The /metrics text of the admin listener at `admin`.
pub fn metrics_at(admin: SocketAddr) -> Result<String, BoxError> {
    let mut s = TcpStream::connect(admin)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The log stays when it has anything in it (warnings and errors, at the default level).
        let log = self.dir.join("gateway.log");
        if std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
            let _ = std::fs::remove_file(self.dir.join("gateway.toml"));
            eprintln!("gateway log kept: {}", log.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, BoxError> {
    status_kib(pid, "VmRSS")
}

/// A memory field of /proc/<pid>/status in KiB ("VmRSS", "RssAnon", "VmHWM", …).
pub fn status_kib(pid: u32, field: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

/// The sum of every sample of metric `name` in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
