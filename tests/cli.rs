//! The `calgate` binary: check-config and probe, run as an operator would.

mod common;

use common::*;
use std::process::Command;

fn calgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_calgate"))
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let out = calgate()
        .args(["check-config", "gateway.toml"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(succeeded(&out).contains("ok"));
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = std::env::temp_dir().join(format!("calgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "unknown.toml",
            "[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\ncolour = 1\n",
            "colour",
        ),
        (
            "badurl.toml",
            "[upstream]\nurl = \"ftp://h/\"\ndomain = \"example.com\"\n",
            "upstream.url",
        ),
        (
            "limit.toml",
            "[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\n[limits]\nmax_connections = 0\n",
            "limits.max_connections",
        ),
    ];
    for (name, text, key) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = calgate().arg("check-config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{name}: {err}");
    }
    let out = calgate()
        .args(["check-config", "/nonexistent/calgate.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// The shipped gateway.toml pointed at the test upstream (unchanged for Cyrus), with the CIP
/// listener on `cip_port` and CAP off, written to a temporary file.
fn shipped_config(name: &str, cip_port: u16) -> std::path::PathBuf {
    shipped_config_with_cap(name, cip_port, None)
}

/// Like [`shipped_config`], with CAP on `cap_port` when given.
fn shipped_config_with_cap(name: &str, cip_port: u16, cap_port: Option<u16>) -> std::path::PathBuf {
    let up = upstream();
    let dir = std::env::temp_dir().join(format!("calgate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("gateway.toml");
    let shipped = std::fs::read_to_string(repo().join("gateway.toml")).unwrap();
    let text = shipped
        .replace(
            "url = \"http://127.0.0.1:8008/\"",
            &format!("url = \"{}\"", up.url),
        )
        .replace(
            "principal_template = \"/dav/principals/user/{user}/\"",
            &format!("principal_template = \"{}\"", up.principal_template),
        )
        .replace(
            "listen = \"127.0.0.1:5229\"",
            &format!("listen = \"127.0.0.1:{}\"", cap_port.unwrap_or(5229)),
        )
        .replacen(
            "enabled = true",
            if cap_port.is_some() {
                "enabled = true"
            } else {
                "enabled = false"
            },
            1,
        )
        .replace(
            "listen = \"127.0.0.1:5230\"",
            &format!("listen = \"127.0.0.1:{cip_port}\""),
        )
        // Port 0 for the admin listener: tests run in parallel.
        .replace("listen = \"127.0.0.1:9230\"", "listen = \"127.0.0.1:0\"");
    assert!(
        text.contains(&format!("127.0.0.1:{cip_port}")),
        "CIP listen rewritten"
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// The probe against the real upstream, with the shipped gateway.toml.
#[test]
fn probe_reports_what_the_upstream_supports() {
    let cfg = shipped_config("probe", 5230);
    let out = calgate()
        .args([
            "probe",
            "--user",
            "alice",
            "--other",
            "bob@example.com",
            "--config",
        ])
        .arg(&cfg)
        .env("CALGATE_PASSWORD", "alicepw")
        .output()
        .unwrap();
    let stdout = succeeded(&out);
    for want in [
        "calendar-access:       yes",
        "calendar-auto-schedule: yes",
        "free-busy for others:  works: bob@example.com answered 2.0",
        "mailto:alice@example.com",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let expected_tag = match server() {
        Server::Cyrus => "Schedule-Tag:          sent",
        Server::Davical => "Schedule-Tag:          not sent",
    };
    assert!(stdout.contains(expected_tag), "{stdout}");
    assert!(!stdout.contains("alicepw"));

    // A wrong password is a clear failure, not a report.
    let out = calgate()
        .args(["probe", "--user", "alice", "--config"])
        .arg(&cfg)
        .env("CALGATE_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
}

/// `calgate run` as a child process, with its standard error (the log) read line by line on a
/// thread. Dropping it kills the process, so a failing test leaves none behind.
struct RunningCalgate {
    child: std::process::Child,
    log: std::sync::mpsc::Receiver<String>,
    /// Every log line received so far.
    seen: Vec<String>,
}

impl RunningCalgate {
    /// Starts `calgate run --config <config>` with extra environment variables (colours off, so
    /// the log reads as plain text).
    fn start(config: &std::path::Path, env: &[(&str, &str)]) -> RunningCalgate {
        use std::io::BufRead;
        let mut child = calgate()
            .args(["run", "--config"])
            .arg(config)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        RunningCalgate {
            child,
            log,
            seen: Vec::new(),
        }
    }

    /// The first log line containing `text`, waiting up to 30 s for it.
    fn wait_for(&mut self, text: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                Err(e) => panic!(
                    "calgate run never logged {text:?} ({e}); its log:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The address a listener was bound to, as its "<PROTOCOL> listener ready listen=…" line
    /// says: the configuration asks for port 0, so no port is guessed in advance and raced for.
    fn listener(&mut self, protocol: &str) -> std::net::SocketAddr {
        let line = strip_ansi(&self.wait_for(&format!("{protocol} listener ready")));
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("listen="))
            .unwrap_or_else(|| panic!("no listen= in {line:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"))
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// Waits for the process to exit; returns its status and the whole log.
    fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        // The process is gone, so its standard error is closed: the reader thread reaches the
        // end and the channel drains.
        while let Ok(l) = self.log.recv_timeout(std::time::Duration::from_secs(10)) {
            self.seen.push(l);
        }
        (status, self.seen.join("\n"))
    }
}

impl Drop for RunningCalgate {
    fn drop(&mut self) {
        // Harmless when the process has already exited and been waited for.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes ANSI colour sequences (should the log be coloured after all).
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A blocking line-oriented connection to a `calgate run` listener.
struct Conn {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

impl Conn {
    fn connect(addr: std::net::SocketAddr) -> Conn {
        let stream = std::net::TcpStream::connect(addr).expect("calgate run listens");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        Conn {
            reader: std::io::BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// One line without its end; "" once the server closed the connection.
    fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    }

    fn send(&mut self, line: &str) {
        use std::io::Write;
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }
}

/// Reads the CAP greeting and logs in as alice with SASL PLAIN.
fn cap_login_alice(cap: &mut Conn) {
    assert_eq!(cap.line(), "2.0", "CAP greeting");
    while cap.line() != "AUTOLOGOUTTIME=900" {}
    assert_eq!(cap.line(), ".");
    cap.send("AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=");
    assert_eq!(cap.line(), "2.0");
    assert_eq!(cap.line(), ".");
    assert_eq!(cap.line(), "IDENTITY=alice@example.com");
    while cap.line() != "." {}
}

/// `calgate run` (what scripts/demo starts) with the shipped gateway.toml: it serves CIP against
/// the real upstream, and on SIGTERM tells the idle sessions (CIP and CAP) and exits 0.
#[test]
fn run_serves_cip_and_stops_on_sigterm() {
    // Port 0 for both listeners: the log says where they are.
    let cfg = shipped_config_with_cap("run", 0, Some(0));
    let mut gw = RunningCalgate::start(&cfg, &[]);
    let mut cip = Conn::connect(gw.listener("CIP"));
    assert_eq!(cip.line(), "OK CIP 1.0 example.com");
    cip.send("AUTHENTICATE LOGIN alice alicepw");
    assert_eq!(cip.line(), "OK 000 Logged in as alice@example.com");
    // The CAP listener of the same process, as configured by the shipped file.
    let mut cap = Conn::connect(gw.listener("CAP"));
    cap_login_alice(&mut cap);
    gw.terminate();
    assert_eq!(cip.line(), "NO 000 Server shutting down");
    assert_eq!(
        cap.line(),
        "10.2 ; The gateway is shutting down; reconnect later"
    );
    assert_eq!(cip.line(), "", "closed after the notice");
    let (status, _) = gw.wait();
    assert!(
        status.success(),
        "calgate run exits 0 on SIGTERM: {status:?}"
    );
}

/// With logging at trace level for every target (the HTTP, TLS and async libraries included),
/// logins over CIP (right and wrong password) and CAP and a SENDEVENT leave no secret in the
/// log, in any form the gateway handles it: the password as typed, as the CAP SASL PLAIN
/// string, as the upstream's HTTP Basic credentials (no Authorization header at all), the
/// service account's password from the file; nor the event's body.
#[test]
fn secrets_never_reach_the_log_even_at_trace_level() {
    let cfg = shipped_config_with_cap("log", 0, Some(0));
    let mut gw = RunningCalgate::start(&cfg, &[("CALGATE_LOG", "trace")]);
    let mut cip = Conn::connect(gw.listener("CIP"));
    assert_eq!(cip.line(), "OK CIP 1.0 example.com");
    cip.send("AUTHENTICATE LOGIN alice not-alicepw-9431");
    assert_eq!(cip.line(), "NO 000 Authentication failed");
    cip.send("AUTHENTICATE LOGIN alice alicepw");
    assert_eq!(cip.line(), "OK 000 Logged in as alice@example.com");
    let uid = format!("log-secret-{}", std::process::id());
    for line in [
        "SENDEVENT +",
        &format!("UID:{uid}"),
        "SEQUENCE:1",
        "DTSTART:20351210T100000Z",
        "DTEND:20351210T110000Z",
        "SUMMARY:body-summary-5517",
        "DESCRIPTION:body-description-5517",
        "ATTENDEE;ROLE=OWNER:alice@example.com",
        ".",
    ] {
        cip.send(line);
    }
    let mut answer = cip.line();
    while answer.starts_with('*') {
        answer = cip.line();
    }
    assert!(answer.starts_with("OK "), "{answer}");
    let mut cap = Conn::connect(gw.listener("CAP"));
    cap_login_alice(&mut cap);
    // The CAP login is logged once it is done; wait for it before stopping.
    gw.wait_for("CAP login");
    gw.terminate();
    let (status, log) = gw.wait();
    assert!(status.success(), "{status:?}\n{log}");
    // Logging was on, at trace level: the test could see a secret if one were written.
    assert!(log.contains("CIP listener ready"), "{log}");
    assert!(log.contains("CAP login"), "{log}");
    assert!(log.contains("connection accepted"), "debug lines: {log}");
    assert!(log.contains("TRACE"), "trace lines: {log}");
    let lower = log.to_ascii_lowercase();
    for secret in [
        "alicepw",
        "not-alicepw-9431",
        "agfsawnlagfsawnlchc=", // SASL PLAIN "\0alice\0alicepw"
        "ywxpy2u6ywxpy2vwdw==", // HTTP Basic "alice:alicepw"
        "calgatepw",
        "y2fsz2f0ztpjywxnyxrlchc=", // HTTP Basic "calgate:calgatepw"
        "authorization",
        "basic ",
        "body-summary-5517",
        "body-description-5517",
    ] {
        assert!(!lower.contains(secret), "{secret:?} is in the log:\n{log}");
    }
}

/// A fresh, empty directory for one gen-cert test.
fn gen_cert_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("calgate-gen-cert-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `calgate gen-cert` writes a loadable pair with the right modes and prints the `[cap]` lines.
#[test]
fn gen_cert_writes_a_loadable_pair() {
    let dir = gen_cert_dir("writes");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = calgate()
        .args([
            "gen-cert",
            "--name",
            "localhost",
            "--name",
            "127.0.0.1,gateway.example.com",
            "--days",
            "30",
            "--cert",
        ])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    let stdout = succeeded(&out);
    let cert_abs = std::fs::canonicalize(&cert).unwrap();
    let key_abs = std::fs::canonicalize(&key).unwrap();
    assert!(
        stdout.contains(&format!("tls_cert = \"{}\"", cert_abs.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("tls_key = \"{}\"", key_abs.display())),
        "{stdout}"
    );
    assert!(stdout.contains("[cap]"), "{stdout}");
    assert!(
        stdout.contains("localhost, 127.0.0.1, gateway.example.com"),
        "{stdout}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&cert), 0o644);
    }
    calgate::tls::server_config(&cert, &key).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without a name it covers localhost and 127.0.0.1, written relative to the working directory.
#[test]
fn gen_cert_defaults() {
    let dir = gen_cert_dir("defaults");
    let out = calgate()
        .arg("gen-cert")
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = succeeded(&out);
    assert!(stdout.contains("localhost, 127.0.0.1"), "{stdout}");
    assert!(stdout.contains("valid for 365 days"), "{stdout}");
    calgate::tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Existing files are kept unless --force; errors go to stderr with exit code 2.
#[test]
fn gen_cert_refuses_to_overwrite_without_force() {
    let dir = gen_cert_dir("force");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let run = |extra: &[&str]| {
        calgate()
            .args(["gen-cert", "--name", "localhost", "--cert"])
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(extra)
            .output()
            .unwrap()
    };
    succeeded(&run(&[]));
    let first_cert = std::fs::read(&cert).unwrap();
    let first_key = std::fs::read(&key).unwrap();

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert!(err.contains("cert.pem"), "{err}");
    assert_eq!(std::fs::read(&cert).unwrap(), first_cert);
    assert_eq!(std::fs::read(&key).unwrap(), first_key);

    succeeded(&run(&["--force"]));
    assert_ne!(std::fs::read(&key).unwrap(), first_key);
    calgate::tls::server_config(&cert, &key).unwrap();

    let out = run(&["--force", "--name", "not a name"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot generate certificate"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scram_hash_prints_a_verifier_check_config_accepts() {
    use calgate::cap::scram::StoredKeys;
    use std::io::Write;
    let hash = |args: &[&str], stdin: &str| {
        let mut child = calgate()
            .arg("scram-hash")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let line = succeeded(&hash(&[], "s3cret-local\n")).trim().to_owned();
    let keys = StoredKeys::parse(&line).unwrap();
    assert_eq!(keys.iterations, 4096);
    assert_eq!(keys.salt.len(), 16);
    assert_eq!(StoredKeys::derive(b"s3cret-local", &keys.salt, 4096), keys);
    // A fresh salt every time.
    let again = String::from_utf8(hash(&[], "s3cret-local\n").stdout).unwrap();
    assert_ne!(again.trim(), line);

    let dir = std::env::temp_dir().join(format!("calgate-cli-scram-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, "from-a-file\nignored\n").unwrap();
    let out = hash(
        &[
            "--iterations",
            "5000",
            "--password-file",
            pw.to_str().unwrap(),
        ],
        "",
    );
    let keys = StoredKeys::parse(succeeded(&out).trim()).unwrap();
    assert_eq!(StoredKeys::derive(b"from-a-file", &keys.salt, 5000), keys);

    let out = hash(&["--iterations", "1000"], "pw\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("4096"));
    let out = hash(&[], "\n");
    assert_eq!(out.status.code(), Some(2));

    let config = dir.join("scram.toml");
    std::fs::write(
        &config,
        format!(
            "[upstream]\nurl = \"http://h/\"\ndomain = \"example.com\"\n\
             [[auth.local_accounts]]\nuser = \"alice\"\nscram_sha256 = \"{line}\"\n\
             upstream_password = \"alicepw\"\n"
        ),
    )
    .unwrap();
    succeeded(&calgate().arg("check-config").arg(&config).output().unwrap());
}

/// A plaintext listener bound beyond loopback is warned about at startup (CIP always, CAP
/// without STARTTLS); loopback listeners are not.
#[test]
fn plaintext_listeners_beyond_loopback_are_warned_about() {
    let cfg = shipped_config_with_cap("wide", 0, Some(0));
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
    std::fs::write(&cfg, text).unwrap();
    let mut gw = RunningCalgate::start(&cfg, &[]);
    let cap = strip_ansi(&gw.wait_for("CAP listens beyond loopback"));
    assert!(cap.contains("WARN"), "{cap}");
    let cip = strip_ansi(&gw.wait_for("CIP is plaintext and listens beyond loopback"));
    assert!(cip.contains("WARN"), "{cip}");
    let admin = strip_ansi(&gw.wait_for("admin listener is reachable beyond loopback"));
    assert!(admin.contains("WARN"), "{admin}");
    gw.terminate();
    assert!(gw.wait().0.success());

    let cfg = shipped_config_with_cap("narrow", 0, Some(0));
    let mut gw = RunningCalgate::start(&cfg, &[]);
    gw.wait_for("CIP listener ready");
    gw.terminate();
    let (status, log) = gw.wait();
    assert!(status.success());
    assert!(!log.contains("beyond loopback"), "{log}");
}

/// deploy/calgate.service passes `systemd-analyze verify` (pointed at the binary this test
/// built) and its sandbox rates at most 2.0 on `systemd-analyze security` (0 is fully locked
/// down, 10 is unprotected; the shipped unit rates 1.2). It never runs as root.
#[test]
fn systemd_unit_verifies_and_is_sandboxed() {
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze is missing: apt-get install systemd (.ci/run does)"
    );
    let unit = std::fs::read_to_string(repo().join("deploy/calgate.service")).unwrap();
    assert!(unit.contains("\nDynamicUser=yes\n") && !unit.contains("User=root"));
    let dir = std::env::temp_dir().join(format!("calgate-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("calgate.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/calgate", env!("CARGO_BIN_EXE_calgate")),
    )
    .unwrap();
    let verify = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr).into_owned()
        + &String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");
    let security = Command::new(analyze)
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(security.status.success(), "{report}");
    assert!(report.contains("Overall exposure level"), "{report}");
}
