//! The `calgate` command: run the gateway, check a configuration, probe the upstream, make a
//! self-signed certificate for STARTTLS, hash a password for a SCRAM local account.

use calgate::caldav::{CaldavClient, Credentials, Discovery};
use calgate::config::Config;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "calgate",
    version,
    about = "Gateway from legacy CAP and CIP calendar clients to CalDAV"
)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway in the foreground until SIGINT or SIGTERM.
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Check a configuration file: exit 0 when valid, else print the key and the reason.
    CheckConfig {
        /// The file to check.
        #[arg(default_value = "gateway.toml")]
        file: PathBuf,
    },
    /// Show what the upstream CalDAV server supports, checked live with a user's credentials.
    Probe {
        /// Configuration file.
        #[arg(long, short, default_value = "gateway.toml")]
        config: PathBuf,
        /// Upstream login name to probe with.
        #[arg(long)]
        user: String,
        /// Read the password from this file (first line). Otherwise $CALGATE_PASSWORD, else
        /// a line from standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Address to ask free-busy about (default: another user found upstream).
        #[arg(long)]
        other: Option<String>,
    },
    /// Write a self-signed certificate and key for CAP STARTTLS, for testing and small sites.
    ///
    /// The key is ECDSA P-256 (PKCS#8 PEM, mode 0600); the certificate has mode 0644. Prints the
    /// absolute paths as the `tls_cert` / `tls_key` lines for the `[cap]` section of
    /// gateway.toml, and the certificate's SHA-256 fingerprint for clients that pin it.
    GenCert {
        /// DNS name or IP address clients connect to (repeat, or separate with commas).
        /// Default: localhost and 127.0.0.1.
        #[arg(long = "name", value_name = "NAME", value_delimiter = ',')]
        names: Vec<String>,
        /// Days the certificate is valid, from now (1 to 36500).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Where to write the PEM certificate.
        #[arg(long, default_value = "cert.pem")]
        cert: PathBuf,
        /// Where to write the PEM private key.
        #[arg(long, default_value = "key.pem")]
        key: PathBuf,
        /// Replace existing files (otherwise they are never overwritten).
        #[arg(long)]
        force: bool,
    },
    /// Print the SCRAM-SHA-256 verifier (RFC 5803 form) of a password, for the `scram_sha256`
    /// key of `[[auth.local_accounts]]`. The password is read from standard input (one line)
    /// or from --password-file (first line); a fresh random salt is used each time.
    ScramHash {
        /// PBKDF2 iterations (at least 4096).
        #[arg(long, default_value_t = calgate::cap::scram::MIN_ITERATIONS)]
        iterations: u32,
        /// Read the password from this file (first line) instead of standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CALGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A password: the first line of `file`, else `$env_var` (when given), else a line on
/// standard input (with `prompt` on a terminal).
fn read_password(
    prompt: &str,
    file: Option<&PathBuf>,
    env_var: Option<&str>,
) -> Result<String, String> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        return Ok(text.lines().next().unwrap_or("").to_owned());
    }
    if let Some(p) = env_var.and_then(|v| std::env::var(v).ok()) {
        return Ok(p);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt} (input is shown): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `calgate scram-hash`: prints the RFC 5803 verifier of the password read.
fn scram_hash(iterations: u32, password_file: Option<&PathBuf>) -> ExitCode {
    let password = read_password("Password", password_file, None);
    let keys = password.and_then(|p| {
        if p.is_empty() {
            return Err("the password is empty".to_owned());
        }
        calgate::cap::scram::StoredKeys::generate(p.as_bytes(), iterations)
    });
    match keys {
        Ok(k) => {
            println!("{}", k.encode());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("calgate: {e}");
            ExitCode::from(2)
        }
    }
}

/// Loads a configuration or says why not (exit code 2).
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("calgate: invalid configuration: {e}");
        ExitCode::from(2)
    })
}

/// A multi-threaded tokio runtime, or the reason there is none.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("calgate: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

/// The names `gen-cert` uses when none is given.
const DEFAULT_CERT_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// `path` made absolute (symlinks resolved when possible), for the printed configuration lines.
fn absolute(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_owned())
}

/// `calgate gen-cert`: writes the pair and prints what to put into `[cap]`.
fn gen_cert(
    names: Vec<String>,
    days: u32,
    cert: &std::path::Path,
    key: &std::path::Path,
    force: bool,
) -> ExitCode {
    let names = if names.is_empty() {
        DEFAULT_CERT_NAMES.map(str::to_owned).to_vec()
    } else {
        names
    };
    if let Err(e) = calgate::tls::write_self_signed(&names, days, cert, key, force) {
        eprintln!("calgate: {e}");
        return ExitCode::from(2);
    }
    let (cert, key) = (absolute(cert), absolute(key));
    let toml_string = |p: &PathBuf| toml::Value::String(p.to_string_lossy().into_owned());
    println!("wrote certificate {} (mode 0644)", cert.display());
    println!("wrote private key {} (mode 0600)", key.display());
    println!("names: {}; valid for {days} days", names.join(", "));
    if let Some(fp) = std::fs::read_to_string(&cert)
        .ok()
        .and_then(|pem| calgate::tls::fingerprint(&pem))
    {
        println!("SHA-256 fingerprint: {fp}");
    }
    println!();
    println!("Add to the [cap] section of gateway.toml:");
    println!("tls_cert = {}", toml_string(&cert));
    println!("tls_key = {}", toml_string(&key));
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run { config } => {
            let (config, runtime) = match (load(&config), runtime()) {
                (Ok(c), Ok(r)) => (c, r),
                (Err(code), _) | (_, Err(code)) => return code,
            };
            match runtime.block_on(calgate::server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("calgate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::GenCert {
            names,
            days,
            cert,
            key,
            force,
        } => gen_cert(names, days, &cert, &key, force),
        Command::ScramHash {
            iterations,
            password_file,
        } => scram_hash(iterations, password_file.as_ref()),
        Command::CheckConfig { file } => match load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Probe {
            config,
            user,
            password_file,
            other,
        } => {
            let (config, runtime) = match (load(&config), runtime()) {
                (Ok(c), Ok(r)) => (c, r),
                (Err(code), _) | (_, Err(code)) => return code,
            };
            let password = match read_password(
                &format!("Password for {user}"),
                password_file.as_ref(),
                Some("CALGATE_PASSWORD"),
            ) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("calgate: {e}");
                    return ExitCode::from(2);
                }
            };
            runtime.block_on(async move {
                let client = match CaldavClient::from_config(&config) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("calgate: {e}");
                        return ExitCode::from(2);
                    }
                };
                let discovery = Discovery::new(client, &config);
                let creds = Credentials::new(user, password);
                let service = config
                    .upstream
                    .service_account
                    .as_ref()
                    .map(|sa| Credentials::new(sa.user.clone(), sa.password.expose().clone()));
                match calgate::probe::probe(&discovery, &creds, other.as_deref(), service.as_ref())
                    .await
                {
                    Ok(report) => {
                        print!("{report}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("calgate: probe failed: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}
