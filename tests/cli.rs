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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
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
        );
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// `calgate run` (what scripts/demo starts) with the shipped gateway.toml: it serves CIP against
/// the real upstream, and on SIGTERM tells the idle sessions (CIP and CAP) and exits 0.
#[test]
fn run_serves_cip_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Write};
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let port = free_port();
    let cap_port = free_port();
    let cfg = shipped_config_with_cap("run", port, Some(cap_port));
    let mut child = calgate()
        .args(["run", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stream = None;
    for _ in 0..200 {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stream = stream.expect("calgate run listens on the configured port");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = || {
        let mut l = String::new();
        reader.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    };
    assert_eq!(line(), "OK CIP 1.0 example.com");
    writer
        .write_all(b"AUTHENTICATE LOGIN alice alicepw\r\n")
        .unwrap();
    assert_eq!(line(), "OK 000 Logged in as alice@example.com");
    // The CAP listener of the same process, as configured by the shipped file.
    let cap = std::net::TcpStream::connect(("127.0.0.1", cap_port)).expect("CAP listens");
    cap.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut cap_reader = BufReader::new(cap.try_clone().unwrap());
    let mut cap_writer = cap;
    let mut cap_line = || {
        let mut l = String::new();
        cap_reader.read_line(&mut l).unwrap();
        l.trim_end().to_owned()
    };
    assert_eq!(cap_line(), "2.0", "CAP greeting");
    while cap_line() != "AUTOLOGOUTTIME=900" {}
    assert_eq!(cap_line(), ".");
    cap_writer
        .write_all(b"AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=\r\n")
        .unwrap();
    assert_eq!(cap_line(), "2.0");
    assert_eq!(cap_line(), ".");
    assert_eq!(cap_line(), "IDENTITY=alice@example.com");
    while cap_line() != "." {}
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(line(), "NO 000 Server shutting down");
    assert_eq!(
        cap_line(),
        "10.2 ; The gateway is shutting down; reconnect later"
    );
    assert_eq!(line(), "", "closed after the notice");
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "calgate run exits 0 on SIGTERM: {status:?}"
    );
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    assert!(run(&[]).status.success());
    let first_cert = std::fs::read(&cert).unwrap();
    let first_key = std::fs::read(&key).unwrap();

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert!(err.contains("cert.pem"), "{err}");
    assert_eq!(std::fs::read(&cert).unwrap(), first_cert);
    assert_eq!(std::fs::read(&key).unwrap(), first_key);

    let out = run(&["--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = hash(&[], "s3cret-local\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap().trim().to_owned();
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
    assert!(out.status.success());
    let keys = StoredKeys::parse(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
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
    let out = calgate().arg("check-config").arg(&config).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
