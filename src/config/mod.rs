//! Settings: every setting defined once ([`definition::SETTINGS`]), read
//! from command-line flags, environment variables, an optional JSON file and
//! defaults that run out of the box, and validated once at startup.
//!
//! Precedence is flag, then environment variable, then the JSON file, then
//! the default. The environment names are deliberately generic (`PORT`,
//! `DATA_DIR`) and never prefixed with the service's name: Kubernetes
//! injects `<SERVICE>_PORT=tcp://10.0.0.1:8000` for every Service in the
//! namespace, and a Service called `moscow-time` would otherwise set our
//! port to garbage.

mod cli;
pub mod definition;

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;

pub use cli::{Command, ParseError, Source, Values, command, json_type};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// How long to keep serving, unready, after SIGTERM.
    pub shutdown_delay: Duration,
    /// How long SIGTERM waits for in-flight requests once the listener closed.
    pub shutdown_timeout: Duration,
    /// How long a write waits for the file lock.
    pub write_timeout: Duration,
    /// Visits per durable write at most.
    pub max_batch: usize,
    /// Whether the `/faults` routes exist.
    pub fault_injection: bool,
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
    #[error("config file {} is invalid: {reason}", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// Where and why.
        reason: String,
    },
    /// One setting has a value we cannot use.
    #[error("invalid {setting} {value:?}: {reason}")]
    Invalid {
        /// The setting, as its source names it (`--port`, `PORT`, `port in <file>`).
        setting: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Settings {
    /// Parses a command line (ignoring the environment) into settings, for
    /// tests and tools: `["moscow-time", "--port", "0"]`.
    pub fn from_args<I, T>(argv: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let (_, values) = cli::parse(argv, |_| None)?;
        Ok(Self::resolve(&values)?)
    }

    /// Parses the process's command line and environment, reading the
    /// config file if one is named.
    pub fn from_process() -> Result<(Command, Self), ParseError> {
        let (command, values) = cli::parse(std::env::args_os(), |name| std::env::var(name).ok())?;
        Ok((command, Self::resolve(&values)?))
    }

    /// Checks what a value's kind cannot (a zone name, a resolvable host,
    /// peers) and builds the typed settings.
    pub fn resolve(values: &Values) -> Result<Self, ConfigError> {
        let invalid = |key: &str, value: &str, reason: &str| ConfigError::Invalid {
            setting: values.source_name(key),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let text = |key: &str| values.text(key).expect("has a default");
        let integer = |key: &str| values.integer(key).expect("has a default");

        let host = text("host");
        let port = u16::try_from(integer("port")).expect("the range is that of a port");
        let listen = resolve_listen(host, port)
            .ok_or_else(|| invalid("host", host, "not an IP address or a resolvable host name"))?;

        let data_dir = PathBuf::from(text("data_dir"));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "", "must not be empty"));
        }

        let zone = text("timezone");
        let timezone: Tz = zone.parse().map_err(|_| {
            invalid(
                "timezone",
                zone,
                "not an IANA time zone name such as Europe/Moscow",
            )
        })?;

        let log_format = match values.text("log_format") {
            Some("json") => LogFormat::Json,
            Some(_) => LogFormat::Text,
            None => {
                use std::io::IsTerminal;
                if std::io::stdout().is_terminal() {
                    LogFormat::Text
                } else {
                    LogFormat::Json
                }
            }
        };

        let instance = match values.text("instance") {
            Some(name) => name.to_owned(),
            None => gethostname::gethostname().to_string_lossy().into_owned(),
        };
        if instance.trim().is_empty()
            || instance.len() > 253
            || instance.chars().any(char::is_control)
        {
            return Err(invalid(
                "instance",
                &instance,
                "must be 1 to 253 printable characters",
            ));
        }

        let peers = match (values.list("peers"), values.text("peers_dns")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "peers",
                    "",
                    "set either --peers or --peers-dns, not both",
                ));
            }
            (Some(list), None) => PeerSource::List(parse_peer_urls(list, &invalid)?),
            (None, Some(name)) if name.trim().is_empty() => PeerSource::None,
            (None, Some(name)) => {
                if name.contains(['/', ':', ' ']) {
                    return Err(invalid(
                        "peers_dns",
                        name,
                        "must be a DNS name, without scheme or port",
                    ));
                }
                PeerSource::Dns(name.to_owned())
            }
            (None, None) => PeerSource::None,
        };

        Ok(Settings {
            listen,
            data_dir,
            timezone,
            log_format,
            instance,
            shutdown_delay: Duration::from_secs(integer("shutdown_delay_secs")),
            shutdown_timeout: Duration::from_secs(integer("shutdown_timeout_secs")),
            write_timeout: Duration::from_millis(integer("write_timeout_ms")),
            max_batch: usize::try_from(integer("max_batch")).expect("the range fits usize"),
            fault_injection: values.switch("fault_injection").expect("has a default"),
            peers,
            peer_timeout: Duration::from_millis(integer("peer_timeout_ms")),
        })
    }
}

fn resolve_listen(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
}

fn parse_peer_urls(
    list: &[String],
    invalid: &impl Fn(&str, &str, &str) -> ConfigError,
) -> Result<Vec<reqwest::Url>, ConfigError> {
    list.iter()
        .map(|s| {
            let url = reqwest::Url::parse(s).map_err(|e| invalid("peers", s, &e.to_string()))?;
            if url.scheme() != "http" || url.host_str().is_none() {
                return Err(invalid("peers", s, "must be an http:// base URL"));
            }
            Ok(url)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Settings, ParseError> {
        let mut full = vec!["moscow-time"];
        full.extend_from_slice(argv);
        Settings::from_args(full)
    }

    fn parse_with_env(argv: &[&str], env: &[(&str, &str)]) -> Result<Settings, ParseError> {
        let mut full = vec!["moscow-time"];
        full.extend_from_slice(argv);
        let (_, values) = cli::parse(full, |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })?;
        Ok(Settings::resolve(&values)?)
    }

    #[test]
    fn defaults_run_out_of_the_box() {
        let s = parse(&["--instance", "pod-0"]).unwrap();
        assert_eq!(s.listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.timezone, chrono_tz::Europe::Moscow);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(s.shutdown_delay, Duration::ZERO);
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
        let msg = parse_with_env(&[], &[("TIMEZONE", "Mars/Olympus")])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("invalid TIMEZONE \"Mars/Olympus\""), "{msg}");
    }

    #[test]
    fn a_port_out_of_range_is_refused_by_the_parser() {
        let err = parse(&["--port", "70000"]).unwrap_err().to_string();
        assert!(err.contains("70000") && err.contains("--port"), "{err}");
    }

    #[test]
    fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"port": 9000, "timezone": "Asia/Tokyo", "max_batch": 7, "peer_timeout_ms": 9}"#,
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let s = parse_with_env(
            &["--config", config, "--port", "9100"],
            &[("PORT", "9200"), ("MAX_BATCH", "8")],
        )
        .unwrap();
        assert_eq!(
            s.listen.port(),
            9100,
            "the flag beats the environment and the file"
        );
        assert_eq!(s.max_batch, 8, "the environment beats the file");
        assert_eq!(
            s.timezone,
            chrono_tz::Asia::Tokyo,
            "the file beats the default"
        );
        assert_eq!(s.peer_timeout, Duration::from_millis(9));
        assert_eq!(s.write_timeout, Duration::from_millis(5000), "the default");
    }

    #[test]
    fn the_config_file_may_come_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"shutdown_delay_secs": 5}"#).unwrap();
        let s = parse_with_env(&[], &[("CONFIG_FILE", path.to_str().unwrap())]).unwrap();
        assert_eq!(s.shutdown_delay, Duration::from_secs(5));
    }

    #[test]
    fn bad_file_values_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for (content, expected) in [
            (r#"{"prot": 8000}"#, "unknown key \"prot\""),
            (r#"{"config": "x"}"#, "unknown key \"config\""),
            (r#"{"max_batch": 0}"#, "max_batch 0: must be 1 to 1000000"),
            (r#"{"max_batch": "7"}"#, "max_batch must be an integer"),
            (r#"{"shutdown_timeout_secs": 3601}"#, "must be 1 to 3600"),
            (r#"{"log_format": "xml"}"#, "must be one of: text, json"),
            (
                r#"{"peers": "http://a"}"#,
                "peers must be an array of strings",
            ),
            (r#"{"timezone": "Mars/Olympus"}"#, "invalid timezone in"),
            ("[1, 2]", "is invalid"),
        ] {
            let path = dir.path().join("config.json");
            std::fs::write(&path, content).unwrap();
            let msg = parse(&["--config", path.to_str().unwrap()])
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains(expected) && msg.contains(&path.display().to_string()),
                "{content}: {msg}"
            );
        }
    }

    #[test]
    fn peers_are_http_base_urls() {
        let s = parse(&["--peers", "http://127.0.0.1:8001,http://127.0.0.1:8002"]).unwrap();
        assert!(matches!(s.peers, PeerSource::List(ref l) if l.len() == 2));
        assert!(parse(&["--peers", "ftp://x"]).is_err());
        assert!(parse(&["--peers-dns", "http://svc"]).is_err());
        assert!(parse(&["--peers", "http://a", "--peers-dns", "svc"]).is_err());
    }

    #[test]
    fn an_instance_name_must_be_1_to_253_printable_characters() {
        let long = "p".repeat(254);
        for bad in ["", "   ", long.as_str(), "pod\u{7}0", "pod\n0"] {
            let msg = parse(&["--instance", bad]).unwrap_err().to_string();
            assert!(msg.contains("--instance"), "{bad:?}: {msg}");
        }
        let longest = "p".repeat(253);
        assert_eq!(parse(&["--instance", &longest]).unwrap().instance, longest);
    }

    #[test]
    fn a_negative_number_is_refused_as_a_bad_value_of_its_flag() {
        let msg = parse(&["--max-batch", "-1"]).unwrap_err().to_string();
        assert!(
            msg.contains("--max-batch") && msg.contains("whole number"),
            "{msg}"
        );
    }

    #[test]
    fn help_names_the_allowed_values_where_they_are_not_plain_text() {
        let help = command().render_long_help().to_string();
        assert!(help.contains("(0 to 65535)"), "{help}");
        assert!(help.contains("(text, json)"), "{help}");
        assert!(
            !help.contains("(text)") && !help.contains("(a path)"),
            "{help}"
        );
    }

    #[test]
    fn the_file_takes_booleans_arrays_and_whole_numbers_in_their_json_types() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let file = |content: &str| {
            std::fs::write(&path, content).unwrap();
            parse(&["--config", path.to_str().unwrap()]).map_err(|e| e.to_string())
        };
        let s =
            file(r#"{"fault_injection": true, "peers": ["http://a:1", "http://b:2"]}"#).unwrap();
        assert!(s.fault_injection);
        assert!(matches!(s.peers, PeerSource::List(ref l) if l.len() == 2));
        for (content, expected) in [
            (r#"{"max_batch": 1.5}"#, "max_batch must be an integer"),
            (
                r#"{"max_batch": 18446744073709551615}"#,
                "must be 1 to 1000000",
            ),
            (r#"{"max_batch": -1}"#, "whole number"),
            (
                r#"{"peers": ["http://a:1,http://b:2"]}"#,
                "peers must be an array of strings",
            ),
            (
                r#"{"fault_injection": "true"}"#,
                "fault_injection must be a boolean",
            ),
        ] {
            let msg = file(content).unwrap_err();
            assert!(msg.contains(expected), "{content}: {msg}");
        }
    }

    #[test]
    fn a_blank_peers_dns_means_no_peers() {
        // A chart value left as spaces must not become a DNS name to resolve.
        let s = parse_with_env(&[], &[("PEERS_DNS", "  ")]).unwrap();
        assert_eq!(s.peers, PeerSource::None);
        let s = parse(&["--peers-dns", "svc.ns.svc.cluster.local"]).unwrap();
        assert_eq!(s.peers, PeerSource::Dns("svc.ns.svc.cluster.local".into()));
    }

    #[test]
    fn zero_batch_and_zero_timeouts_are_refused() {
        let msg = parse(&["--max-batch", "0"]).unwrap_err().to_string();
        assert!(msg.contains("--max-batch"), "{msg}");
        assert!(parse(&["--shutdown-timeout-secs", "0"]).is_err());
        assert!(parse(&["--write-timeout-ms", "0"]).is_err());
        assert!(parse(&["--shutdown-delay-secs", "301"]).is_err());
    }

    #[test]
    fn settings_are_accepted_before_and_after_a_command() {
        for argv in [
            &["moscow-time", "--data-dir", "/x", "count"][..],
            &["moscow-time", "count", "--data-dir", "/x"][..],
        ] {
            let (command, values) = cli::parse(argv.iter().copied(), |_| None).unwrap();
            assert_eq!(command, Command::Count);
            assert_eq!(values.text("data_dir"), Some("/x"), "{argv:?}");
        }
        let (command, _) = cli::parse(["moscow-time"], |_| None).unwrap();
        assert_eq!(command, Command::Serve, "no command means serve");
    }

    #[test]
    fn set_count_takes_one_whole_number() {
        let parse_cmd = |argv: &[&str]| cli::parse(argv.iter().copied(), |_| None).map(|(c, _)| c);
        assert_eq!(
            parse_cmd(&["moscow-time", "set-count", "--force", "41"]).unwrap(),
            Command::SetCount {
                count: 41,
                force: true
            }
        );
        for bad in ["-1", "x", "18446744073709551616", "1.5"] {
            let err = parse_cmd(&["moscow-time", "set-count", bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
