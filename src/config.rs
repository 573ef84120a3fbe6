//! Settings: command-line flags with environment fallbacks, an optional JSON
//! file, and defaults that run out of the box, validated once at startup.
//!
//! Precedence is flag, then environment variable, then the JSON file, then
//! the default. The environment names are deliberately generic (`PORT`,
//! `DATA_DIR`) and never prefixed with the service's name: Kubernetes
//! injects `<SERVICE>_PORT=tcp://10.0.0.1:8000` for every Service in the
//! namespace, and a Service called `moscow-time` would otherwise set our
//! port to garbage.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use clap::{Parser, ValueEnum};
use serde::Deserialize;

/// The raw command line and environment, before validation.
#[derive(Debug, Parser, Default)]
#[command(
    name = "moscow-time",
    version,
    about = "Shows the Moscow time and durably counts every visit."
)]
pub struct CliArgs {
    /// Address to listen on [default: 0.0.0.0]
    #[arg(long, env = "HOST")]
    pub host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 8000]
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// Folder holding the `visits` file; created if missing [default: ./data]
    #[arg(long, env = "DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// IANA time zone shown on the page [default: Europe/Moscow]
    #[arg(long, env = "TIMEZONE")]
    pub timezone: Option<String>,
    /// JSON file with the same settings in snake_case; flags and env win
    #[arg(long, env = "CONFIG_FILE")]
    pub config: Option<PathBuf>,
    /// Log format [default: text on a terminal, json otherwise]
    #[arg(long, env = "LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Name of this instance, shown on the page [default: the host name]
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Seconds to finish in-flight requests after SIGTERM [default: 20]
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS")]
    pub shutdown_timeout_secs: Option<u64>,
    /// Longest wait for the file lock before a visit fails with 503, in ms [default: 5000]
    #[arg(long, env = "WRITE_TIMEOUT_MS")]
    pub write_timeout_ms: Option<u64>,
    /// Most visits persisted by one durable write; 1 turns group commit off [default: 4096]
    #[arg(long, env = "MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Comma-separated base URLs of every instance, this one included
    #[arg(long, env = "PEERS", value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// DNS name whose addresses are every instance (a headless Service)
    #[arg(long, env = "PEERS_DNS")]
    pub peers_dns: Option<String>,
    /// Longest wait for one peer's count, in ms [default: 300]
    #[arg(long, env = "PEER_TIMEOUT_MS")]
    pub peer_timeout_ms: Option<u64>,
}

/// The JSON config file: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    host: Option<String>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    timezone: Option<String>,
    log_format: Option<LogFormat>,
    instance: Option<String>,
    shutdown_timeout_secs: Option<u64>,
    write_timeout_ms: Option<u64>,
    max_batch: Option<usize>,
    peers: Option<Vec<String>>,
    peers_dns: Option<String>,
    peer_timeout_ms: Option<u64>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where to find the other instances of the StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSource {
    /// No peers: the page shows this instance alone.
    None,
    /// A fixed list of base URLs, e.g. `http://127.0.0.1:8001`.
    List(Vec<reqwest::Url>),
    /// A DNS name resolved to every instance's address; peers are `http://<ip>:<port>`.
    Dns(String),
}

/// Validated settings. Every field is ready to use.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The address to bind.
    pub listen: SocketAddr,
    /// The folder holding `visits`.
    pub data_dir: PathBuf,
    /// The time zone shown on the page and in `/api/time`.
    pub timezone: Tz,
    /// Log output format.
    pub log_format: LogFormat,
    /// This instance's name.
    pub instance: String,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// How long a write waits for the file lock.
    pub write_timeout: Duration,
    /// Visits per durable write at most.
    pub max_batch: usize,
    /// Where the other instances are.
    pub peers: PeerSource,
    /// How long to wait for one peer.
    pub peer_timeout: Duration,
}

/// A setting with a bad value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid JSON for our settings.
    #[error("config file {} is invalid: {source}", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: serde_json::Error,
    },
    /// One setting has a value we cannot use.
    #[error("invalid {setting} {value:?}: {reason}")]
    Invalid {
        /// The setting's name, as a flag.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(setting: &'static str, value: impl ToString, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        setting,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

impl Settings {
    /// Parses the process's command line and environment, reads the config
    /// file if one is named, and validates the result.
    pub fn from_args_and_env() -> Result<Self, ConfigError> {
        Self::from_args(CliArgs::parse())
    }

    /// Validates already-parsed arguments (reading the file they name).
    pub fn from_args(args: CliArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::merge(args, file)
    }

    /// Merges flags/env over the file over defaults, then validates.
    pub fn merge(args: CliArgs, file: FileConfig) -> Result<Self, ConfigError> {
        let host = args.host.or(file.host).unwrap_or_else(|| "0.0.0.0".into());
        let port = args.port.or(file.port).unwrap_or(8000);
        let listen = resolve_listen(&host, port)?;

        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("--data-dir", "", "must not be empty"));
        }

        let tz_name = args
            .timezone
            .or(file.timezone)
            .unwrap_or_else(|| "Europe/Moscow".into());
        let timezone: Tz = tz_name.parse().map_err(|_| {
            invalid(
                "--timezone",
                &tz_name,
                "not an IANA time zone name such as Europe/Moscow",
            )
        })?;

        let log_format = args.log_format.or(file.log_format).unwrap_or_else(|| {
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                LogFormat::Text
            } else {
                LogFormat::Json
            }
        });

        let instance = match args.instance.or(file.instance) {
            Some(name) => name,
            None => gethostname::gethostname().to_string_lossy().into_owned(),
        };
        if instance.trim().is_empty()
            || instance.len() > 253
            || instance.chars().any(char::is_control)
        {
            return Err(invalid(
                "--instance",
                &instance,
                "must be 1 to 253 printable characters",
            ));
        }

        let shutdown_secs = args
            .shutdown_timeout_secs
            .or(file.shutdown_timeout_secs)
            .unwrap_or(20);
        if !(1..=3600).contains(&shutdown_secs) {
            return Err(invalid(
                "--shutdown-timeout-secs",
                shutdown_secs,
                "must be 1 to 3600",
            ));
        }
        let write_ms = args
            .write_timeout_ms
            .or(file.write_timeout_ms)
            .unwrap_or(5000);
        if !(1..=600_000).contains(&write_ms) {
            return Err(invalid(
                "--write-timeout-ms",
                write_ms,
                "must be 1 to 600000",
            ));
        }
        let max_batch = args.max_batch.or(file.max_batch).unwrap_or(4096);
        if !(1..=1_000_000).contains(&max_batch) {
            return Err(invalid("--max-batch", max_batch, "must be 1 to 1000000"));
        }
        let peer_ms = args.peer_timeout_ms.or(file.peer_timeout_ms).unwrap_or(300);
        if !(1..=60_000).contains(&peer_ms) {
            return Err(invalid("--peer-timeout-ms", peer_ms, "must be 1 to 60000"));
        }

        let peers = match (args.peers.or(file.peers), args.peers_dns.or(file.peers_dns)) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "--peers",
                    "",
                    "set either --peers or --peers-dns, not both",
                ));
            }
            (Some(list), None) => PeerSource::List(parse_peer_urls(&list)?),
            (None, Some(name)) if name.trim().is_empty() => PeerSource::None,
            (None, Some(name)) => {
                if name.contains(['/', ':', ' ']) {
                    return Err(invalid(
                        "--peers-dns",
                        &name,
                        "must be a DNS name, without scheme or port",
                    ));
                }
                PeerSource::Dns(name)
            }
            (None, None) => PeerSource::None,
        };

        Ok(Settings {
            listen,
            data_dir,
            timezone,
            log_format,
            instance,
            shutdown_timeout: Duration::from_secs(shutdown_secs),
            write_timeout: Duration::from_millis(write_ms),
            max_batch,
            peers,
            peer_timeout: Duration::from_millis(peer_ms),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ConfigError::ParseFile {
        path: path.to_path_buf(),
        source,
    })
}

fn resolve_listen(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            invalid(
                "--host",
                host,
                "not an IP address or a resolvable host name",
            )
        })
}

fn parse_peer_urls(list: &[String]) -> Result<Vec<reqwest::Url>, ConfigError> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let url = reqwest::Url::parse(s).map_err(|e| invalid("--peers", s, e))?;
            if url.scheme() != "http" || url.host_str().is_none() {
                return Err(invalid("--peers", s, "must be an http:// base URL"));
            }
            Ok(url)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Settings, ConfigError> {
        let mut full = vec!["moscow-time"];
        full.extend_from_slice(argv);
        Settings::merge(
            CliArgs::try_parse_from(full).unwrap(),
            FileConfig::default(),
        )
    }

    #[test]
    fn defaults_run_out_of_the_box() {
        let s = parse(&["--instance", "pod-0"]).unwrap();
        assert_eq!(s.listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.timezone, chrono_tz::Europe::Moscow);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(s.peers, PeerSource::None);
    }

    #[test]
    fn an_unknown_time_zone_names_the_setting_and_the_value() {
        let msg = parse(&["--timezone", "Mars/Olympus"])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("--timezone") && msg.contains("Mars/Olympus"),
            "{msg}"
        );
    }

    #[test]
    fn a_port_out_of_range_is_refused_by_the_parser() {
        let err = CliArgs::try_parse_from(["moscow-time", "--port", "70000"]).unwrap_err();
        assert!(err.to_string().contains("70000"), "{err}");
    }

    #[test]
    fn the_file_fills_in_what_flags_do_not_set() {
        let file: FileConfig =
            serde_json::from_str(r#"{"port": 9000, "timezone": "Asia/Tokyo", "max_batch": 7}"#)
                .unwrap();
        let args = CliArgs::try_parse_from(["moscow-time", "--port", "9100"]).unwrap();
        let s = Settings::merge(args, file).unwrap();
        assert_eq!(s.listen.port(), 9100, "the flag beats the file");
        assert_eq!(s.timezone, chrono_tz::Asia::Tokyo);
        assert_eq!(s.max_batch, 7);
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"prot": 8000}"#).unwrap();
        let args = CliArgs {
            config: Some(path.clone()),
            ..CliArgs::default()
        };
        let msg = Settings::from_args(args).unwrap_err().to_string();
        assert!(
            msg.contains("prot") && msg.contains(&path.display().to_string()),
            "{msg}"
        );
    }

    #[test]
    fn peers_are_http_base_urls() {
        let s = parse(&["--peers", "http://127.0.0.1:8001,http://127.0.0.1:8002"]).unwrap();
        assert!(matches!(s.peers, PeerSource::List(ref l) if l.len() == 2));
        assert!(parse(&["--peers", "ftp://x"]).is_err());
        assert!(parse(&["--peers-dns", "http://svc"]).is_err());
    }

    #[test]
    fn zero_batch_and_zero_timeouts_are_refused() {
        assert!(
            parse(&["--max-batch", "0"])
                .unwrap_err()
                .to_string()
                .contains("--max-batch")
        );
        assert!(parse(&["--shutdown-timeout-secs", "0"]).is_err());
        assert!(parse(&["--write-timeout-ms", "0"]).is_err());
    }
}
