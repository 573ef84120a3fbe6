//! Settings: every setting defined once (a field of [`Options`]), read from
//! command-line flags, environment variables, an optional JSON file and
//! defaults that run out of the box, and validated once at startup.
//!
//! Precedence is flag, then environment variable, then the JSON file, then
//! the default. clap parses the flags; each variable is parsed alone, by
//! the same parser, so that an error names it; the file is merged under
//! both and read by serde. The environment names are deliberately generic
//! (`PORT`, `DATA_DIR`) and never prefixed with the service's name:
//! Kubernetes injects `<SERVICE>_PORT=tcp://10.0.0.1:8000` for every
//! Service in the namespace, and a Service called `moscow-time` would
//! otherwise set our port to garbage.

mod options;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use clap::FromArgMatches;
use clap::parser::ValueSource;
use serde_json::{Map, Value as Json};

pub use options::{
    Cli, Command, LogFormat, Options, Ranged, allowed, command, file_property, file_schema,
    markdown_table, setting_args,
};

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

/// A failure to parse the command line or the settings.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The command line itself (including `--help` and `--version`).
    #[error(transparent)]
    CommandLine(#[from] clap::Error),
    /// A setting from the environment or the file.
    #[error(transparent)]
    Setting(#[from] ConfigError),
}

/// Where each setting that is not at its default came from, by key, to
/// name it in an error: `--port`, `PORT` or `port in <file>`.
#[derive(Debug, Default)]
struct Sources(HashMap<String, String>);

impl Sources {
    fn name(&self, key: &str) -> String {
        self.0
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("--{}", key.replace('_', "-")))
    }
}

impl Settings {
    /// Parses a command line (ignoring the environment) into settings, for
    /// tests and tools: `["moscow-time", "--port", "0"]`.
    pub fn from_args<I, T>(argv: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        parse(argv, |_| None).map(|(_, settings)| settings)
    }

    /// Parses the process's command line and environment, reading the
    /// config file if one is named.
    pub fn from_process() -> Result<(Command, Self), ParseError> {
        parse(std::env::args_os(), |name| std::env::var(name).ok())
    }

    /// Checks what a value's type cannot (a zone name, a resolvable host,
    /// peers) and builds the typed settings.
    fn resolve(options: Options, sources: &Sources) -> Result<Self, ConfigError> {
        let invalid = |key: &str, value: &str, reason: &str| ConfigError::Invalid {
            setting: sources.name(key),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let host = &options.host;
        let listen = resolve_listen(host, options.port.0)
            .ok_or_else(|| invalid("host", host, "not an IP address or a resolvable host name"))?;
        if options.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "", "must not be empty"));
        }
        let zone = &options.timezone;
        let timezone: Tz = zone.parse().map_err(|_| {
            invalid(
                "timezone",
                zone,
                "not an IANA time zone name such as Europe/Moscow",
            )
        })?;
        let log_format = options.log_format.unwrap_or_else(|| {
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                LogFormat::Text
            } else {
                LogFormat::Json
            }
        });
        let instance = options
            .instance
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
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
        let peers = match (options.peers, options.peers_dns) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "peers",
                    "",
                    "set either --peers or --peers-dns, not both",
                ));
            }
            (Some(list), None) => PeerSource::List(parse_peer_urls(&list, &invalid)?),
            (None, Some(name)) if name.trim().is_empty() => PeerSource::None,
            (None, Some(name)) => {
                if name.contains(['/', ':', ' ']) {
                    return Err(invalid(
                        "peers_dns",
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
            data_dir: options.data_dir,
            timezone,
            log_format,
            instance,
            shutdown_delay: Duration::from_secs(options.shutdown_delay_secs.0),
            shutdown_timeout: Duration::from_secs(options.shutdown_timeout_secs.0),
            write_timeout: Duration::from_millis(options.write_timeout_ms.0),
            max_batch: usize::try_from(options.max_batch.0).unwrap_or(usize::MAX),
            fault_injection: options.fault_injection,
            peers,
            peer_timeout: Duration::from_millis(options.peer_timeout_ms.0),
        })
    }
}

/// Parses a command line (the first item is the program name) and layers
/// the environment (read through `env`), the config file and the defaults.
///
/// Errors of the command line itself (an unknown flag, `--help`) are
/// clap's, so the caller can print them as clap does.
pub fn parse<I, T>(
    argv: I,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Command, Settings), ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let program = argv.first().cloned().unwrap_or_default();
    let cli = command();
    let flags = cli.clone().try_get_matches_from(&argv)?;
    let mut sources = Sources::default();
    let mut from_env = vec![program.clone()];
    for arg in setting_args() {
        let key = arg.get_id().as_str();
        let flag = arg.get_long().unwrap_or(key);
        if flags.value_source(key) == Some(ValueSource::CommandLine) {
            sources.0.insert(key.to_owned(), format!("--{flag}"));
            continue;
        }
        let name = arg.get_env().unwrap_or_default().to_string_lossy();
        let Some(raw) = env(&name) else { continue };
        let given: OsString = format!("--{flag}={raw}").into();
        cli.clone()
            .try_get_matches_from([program.clone(), given.clone()])
            .map_err(|error| ConfigError::Invalid {
                setting: name.clone().into_owned(),
                value: raw.clone(),
                reason: reason(&error),
            })?;
        sources.0.insert(key.to_owned(), name.into_owned());
        from_env.push(given);
    }
    let matches = cli.try_get_matches_from(from_env.into_iter().chain(argv.into_iter().skip(1)))?;
    let Cli { command, options } = Cli::from_arg_matches(&matches)?;
    let options = match options.config.clone() {
        Some(path) => with_file(options, &path, &mut sources)?,
        None => options,
    };
    let settings = Settings::resolve(options, &sources)?;
    Ok((command.unwrap_or(Command::Serve), settings))
}

/// What is wrong with one value, from clap's error, without its usage text.
fn reason(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    if let Some(source) = std::error::Error::source(error) {
        return source.to_string();
    }
    match error.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => format!("must be one of: {}", valid.join(", ")),
        _ => error.kind().to_string(),
    }
}

/// `options` under the JSON config file at `path`: every value of the file
/// is checked, and those that no flag or variable set win over the defaults.
fn with_file(options: Options, path: &Path, sources: &mut Sources) -> Result<Options, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason: String| ConfigError::ParseFile {
        path: path.to_path_buf(),
        reason,
    };
    let file: Map<String, Json> =
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let mut merged = match serde_json::to_value(&options) {
        Ok(Json::Object(merged)) => merged,
        other => return Err(invalid(format!("cannot merge the settings: {other:?}"))),
    };
    let mut checked = merged.clone();
    checked.extend(file.clone());
    from_json(checked).map_err(invalid)?;
    for (key, value) in file {
        if !sources.0.contains_key(&key) {
            sources
                .0
                .insert(key.clone(), format!("{key} in {}", path.display()));
            merged.insert(key, value);
        }
    }
    let mut merged = from_json(merged).map_err(invalid)?;
    merged.config = options.config;
    Ok(merged)
}

fn from_json(object: Map<String, Json>) -> Result<Options, String> {
    serde_path_to_error::deserialize(Json::Object(object))
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

fn resolve_listen(host: &str, port: u64) -> Option<SocketAddr> {
    let port = u16::try_from(port).ok()?;
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
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
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
        let (_, settings) = super::parse(full, |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })?;
        Ok(settings)
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
            (r#"{"prot": 8000}"#, "prot: unknown field `prot`"),
            (r#"{"config": "x"}"#, "config: unknown field `config`"),
            (
                r#"{"max_batch": 0}"#,
                "max_batch: must be 1 to 1000000, not 0",
            ),
            (
                r#"{"max_batch": "7"}"#,
                "max_batch: must be a whole number from 1 to 1000000, not \"7\"",
            ),
            (r#"{"shutdown_timeout_secs": 3601}"#, "must be 1 to 3600"),
            (
                r#"{"log_format": "xml"}"#,
                "log_format: unknown variant `xml`, expected `text` or `json`",
            ),
            (
                r#"{"peers": "http://a"}"#,
                "peers: invalid type: string \"http://a\", expected a sequence",
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
            (r#"{"max_batch": 1.5}"#, "max_batch: must be a whole number"),
            (
                r#"{"max_batch": 18446744073709551615}"#,
                "must be 1 to 1000000",
            ),
            (r#"{"max_batch": -1}"#, "whole number"),
            (
                r#"{"peers": ["http://a:1,http://b:2"]}"#,
                "invalid peers in",
            ),
            (
                r#"{"fault_injection": "true"}"#,
                "fault_injection: invalid type: string \"true\", expected a boolean",
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
            let (command, settings) = super::parse(argv.iter().copied(), |_| None).unwrap();
            assert_eq!(command, Command::Count);
            assert_eq!(settings.data_dir, PathBuf::from("/x"), "{argv:?}");
        }
        let env = |name: &str| (name == "DATA_DIR").then(|| "/from-env".to_owned());
        let (_, settings) =
            super::parse(["moscow-time", "count", "--data-dir", "/x"], env).unwrap();
        assert_eq!(
            settings.data_dir,
            PathBuf::from("/x"),
            "a flag after the command beats the environment"
        );
        let (command, _) = super::parse(["moscow-time"], |_| None).unwrap();
        assert_eq!(command, Command::Serve, "no command means serve");
    }

    #[test]
    fn set_count_takes_one_whole_number() {
        let parse_cmd =
            |argv: &[&str]| super::parse(argv.iter().copied(), |_| None).map(|(c, _)| c);
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

    #[test]
    fn ranges_are_checked_at_both_ends_from_text_and_from_json() {
        type R = Ranged<1, 10>;
        assert_eq!("1".parse::<R>(), Ok(Ranged(1)));
        assert_eq!(" 10 ".parse::<R>(), Ok(Ranged(10)));
        assert_eq!("0".parse::<R>().unwrap_err(), "must be 1 to 10, not \"0\"");
        assert_eq!(
            "11".parse::<R>().unwrap_err(),
            "must be 1 to 10, not \"11\""
        );
        assert!("-1".parse::<R>().unwrap_err().contains("whole number"));
        assert!("ten".parse::<R>().unwrap_err().contains("whole number"));
        assert_eq!(serde_json::from_str::<R>("10").unwrap(), Ranged(10));
        assert!(serde_json::from_str::<R>("11").is_err());
        assert!(serde_json::from_str::<R>("0").is_err());
    }

    #[test]
    fn lists_drop_blanks_and_switches_take_words_and_digits() {
        let s = parse(&["--peers", " http://a:1, ,http://b:2 "]).unwrap();
        assert!(matches!(s.peers, PeerSource::List(ref l) if l.len() == 2));
        assert!(parse(&["--fault-injection", "1"]).unwrap().fault_injection);
        assert!(parse(&["--fault-injection"]).unwrap().fault_injection);
        assert!(
            !parse(&["--fault-injection", "false"])
                .unwrap()
                .fault_injection
        );
        let msg = parse(&["--fault-injection", "yes"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("must be true or false"), "{msg}");
        let msg = parse_with_env(&[], &[("FAULT_INJECTION", "yes")])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("invalid FAULT_INJECTION \"yes\""), "{msg}");
    }

    #[test]
    fn a_bad_variable_is_named_with_its_value_and_what_is_allowed() {
        for (name, value, expected) in [
            ("LOG_FORMAT", "xml", "must be one of: text, json"),
            ("MAX_BATCH", "0", "must be 1 to 1000000, not \"0\""),
            ("FAULT_INJECTION", "yes", "must be true or false"),
        ] {
            let msg = parse_with_env(&[], &[(name, value)])
                .unwrap_err()
                .to_string();
            assert_eq!(msg, format!("invalid {name} {value:?}: {expected}"));
        }
    }

    #[test]
    fn flags_keys_and_variables_are_unique_and_no_variable_is_named_after_the_service() {
        let args = setting_args();
        let envs: Vec<_> = args.iter().filter_map(|a| a.get_env()).collect();
        assert_eq!(envs.len(), args.len(), "every setting has a variable");
        for (i, a) in args.iter().enumerate() {
            for b in &args[i + 1..] {
                assert_ne!(a.get_id(), b.get_id());
                assert_ne!(a.get_env(), b.get_env());
            }
        }
        for env in envs {
            assert!(!env.to_string_lossy().starts_with("MOSCOW_TIME"), "{env:?}");
        }
    }
}
