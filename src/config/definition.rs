//! Every setting, defined once.
//!
//! [`SETTINGS`] is the single source of truth for each setting's name,
//! flag, environment variable, JSON key, default, allowed values and help.
//! The command line, the config-file parser, validation and `--help` are
//! all derived from it, and a test compares the README's configuration
//! table, the chart's schema and the `k8s/` ConfigMap with it. Adding a
//! setting means adding one entry here and reading it in
//! [`Settings::resolve`](super::Settings).

/// What values a setting takes. Every source (flag, environment, file,
/// default) goes through the same [`Kind::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any text.
    Text,
    /// A file-system path.
    Path,
    /// A whole number in `min..=max`.
    Integer {
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
    },
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A comma-separated list on the command line, an array in the file.
    List,
    /// `true` or `false`; the bare flag means `true`.
    Switch,
}

/// A parsed value of a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// For [`Kind::Text`], [`Kind::Path`] and [`Kind::Choice`].
    Text(String),
    /// For [`Kind::Integer`].
    Integer(u64),
    /// For [`Kind::List`].
    List(Vec<String>),
    /// For [`Kind::Switch`].
    Switch(bool),
}

impl Kind {
    /// Parses one raw value, or says what is wrong with it.
    pub fn parse(self, raw: &str) -> Result<Value, String> {
        match self {
            Kind::Text | Kind::Path => Ok(Value::Text(raw.to_owned())),
            Kind::Integer { min, max } => {
                let n: u64 = raw
                    .trim()
                    .parse()
                    .map_err(|_| format!("must be a whole number from {min} to {max}"))?;
                if (min..=max).contains(&n) {
                    Ok(Value::Integer(n))
                } else {
                    Err(format!("must be {min} to {max}"))
                }
            }
            Kind::Choice(words) => {
                if words.contains(&raw) {
                    Ok(Value::Text(raw.to_owned()))
                } else {
                    Err(format!("must be one of: {}", words.join(", ")))
                }
            }
            Kind::List => Ok(Value::List(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Kind::Switch => match raw.trim() {
                "true" | "1" => Ok(Value::Switch(true)),
                "false" | "0" => Ok(Value::Switch(false)),
                _ => Err("must be true or false".into()),
            },
        }
    }

    /// The allowed values, in words, for help and documentation.
    pub fn allowed(self) -> String {
        match self {
            Kind::Text => "text".into(),
            Kind::Path => "a path".into(),
            Kind::Integer { min, max } => format!("{min} to {max}"),
            Kind::Choice(words) => words.join(", "),
            Kind::List => "comma-separated list".into(),
            Kind::Switch => "true, false".into(),
        }
    }
}

/// Where a setting's value comes from when nobody sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// A fixed value, parsed like any other.
    Value(&'static str),
    /// Worked out at startup; the text says how.
    Computed(&'static str),
    /// Unset means "off".
    Unset(&'static str),
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The JSON key in the config file, and the setting's name everywhere.
    pub key: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// Whether the config file may set it (the file cannot name itself).
    pub in_file: bool,
    /// Allowed values.
    pub kind: Kind,
    /// The default.
    pub default: Default,
    /// One line of help.
    pub help: &'static str,
}

impl Setting {
    /// The command-line flag, without the leading dashes: the key in kebab case.
    pub fn flag(&self) -> String {
        self.key.replace('_', "-")
    }
}

/// Every setting of the service, in the order `--help` and the README list them.
///
/// No environment variable is named after the service (`MOSCOW_TIME_PORT`):
/// Kubernetes injects `<SERVICE>_PORT=tcp://...` for every Service in the
/// namespace, which would collide.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "host",
        env: "HOST",
        in_file: true,
        kind: Kind::Text,
        default: Default::Value("0.0.0.0"),
        help: "Address to listen on (an IP address or a resolvable host name)",
    },
    Setting {
        key: "port",
        env: "PORT",
        in_file: true,
        kind: Kind::Integer { min: 0, max: 65535 },
        default: Default::Value("8000"),
        help: "Port to listen on; 0 picks a free one (the `listening` log line has it)",
    },
    Setting {
        key: "data_dir",
        env: "DATA_DIR",
        in_file: true,
        kind: Kind::Path,
        default: Default::Value("./data"),
        help: "Folder holding the `visits` file; created if missing",
    },
    Setting {
        key: "timezone",
        env: "TIMEZONE",
        in_file: true,
        kind: Kind::Text,
        default: Default::Value("Europe/Moscow"),
        help: "IANA time zone shown on the page (the database is compiled in)",
    },
    Setting {
        key: "config",
        env: "CONFIG_FILE",
        in_file: false,
        kind: Kind::Path,
        default: Default::Unset("none"),
        help: "JSON file with these settings by their keys; unknown keys are an error",
    },
    Setting {
        key: "log_format",
        env: "LOG_FORMAT",
        in_file: true,
        kind: Kind::Choice(&["text", "json"]),
        default: Default::Computed("text on a terminal, json otherwise"),
        help: "Log format; `RUST_LOG` filters",
    },
    Setting {
        key: "instance",
        env: "POD_NAME",
        in_file: true,
        kind: Kind::Text,
        default: Default::Computed("the host name"),
        help: "Name of this instance, shown on the page and to peers",
    },
    Setting {
        key: "shutdown_delay_secs",
        env: "SHUTDOWN_DELAY_SECS",
        in_file: true,
        kind: Kind::Integer { min: 0, max: 300 },
        default: Default::Value("0"),
        help: "Seconds to keep serving after SIGTERM, unready and with `Connection: close`, \
               so load balancers stop routing here before the listener closes",
    },
    Setting {
        key: "shutdown_timeout_secs",
        env: "SHUTDOWN_TIMEOUT_SECS",
        in_file: true,
        kind: Kind::Integer { min: 1, max: 3600 },
        default: Default::Value("20"),
        help: "Seconds to finish in-flight requests once the listener is closed",
    },
    Setting {
        key: "write_timeout_ms",
        env: "WRITE_TIMEOUT_MS",
        in_file: true,
        kind: Kind::Integer {
            min: 1,
            max: 600_000,
        },
        default: Default::Value("5000"),
        help: "Longest wait for the file lock before a visit fails with 503, in ms",
    },
    Setting {
        key: "max_batch",
        env: "MAX_BATCH",
        in_file: true,
        kind: Kind::Integer {
            min: 1,
            max: 1_000_000,
        },
        default: Default::Value("4096"),
        help: "Most visits persisted by one durable write; 1 turns group commit off",
    },
    Setting {
        key: "fault_injection",
        env: "FAULT_INJECTION",
        in_file: true,
        kind: Kind::Switch,
        default: Default::Value("false"),
        help: "Enable the /faults routes that break this instance on purpose (full disk, \
               unready, slow pages), for demonstrations; never in production",
    },
    Setting {
        key: "peers",
        env: "PEERS",
        in_file: true,
        kind: Kind::List,
        default: Default::Unset("none"),
        help: "Base URLs (http://) of every instance, this one included",
    },
    Setting {
        key: "peers_dns",
        env: "PEERS_DNS",
        in_file: true,
        kind: Kind::Text,
        default: Default::Unset("none"),
        help: "DNS name resolving to every ready instance (a headless Service)",
    },
    Setting {
        key: "peer_timeout_ms",
        env: "PEER_TIMEOUT_MS",
        in_file: true,
        kind: Kind::Integer {
            min: 1,
            max: 60_000,
        },
        default: Default::Value("300"),
        help: "Longest wait for one peer's count, in ms",
    },
];

/// The setting with this key.
///
/// # Panics
/// When no setting has that key: a programming error, caught by the tests.
pub fn setting(key: &str) -> &'static Setting {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no setting named {key}"))
}

/// The README's configuration table, rendered from [`SETTINGS`].
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| flag | env | JSON key | default | values | what it does |\n|---|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let key = if s.in_file {
            format!("`{}`", s.key)
        } else {
            String::new()
        };
        let default = match s.default {
            Default::Value(v) => format!("`{v}`"),
            Default::Computed(how) | Default::Unset(how) => how.to_owned(),
        };
        table.push_str(&format!(
            "| `--{}` | `{}` | {key} | {default} | {} | {} |\n",
            s.flag(),
            s.env,
            s.kind.allowed(),
            s.help.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_a_valid_value() {
        for s in SETTINGS {
            if let Default::Value(v) = s.default {
                assert!(s.kind.parse(v).is_ok(), "{}: default {v:?}", s.key);
            }
        }
    }

    #[test]
    fn keys_and_env_names_are_unique() {
        for (i, a) in SETTINGS.iter().enumerate() {
            for b in &SETTINGS[i + 1..] {
                assert_ne!(a.key, b.key);
                assert_ne!(a.env, b.env);
            }
        }
    }

    #[test]
    fn integers_are_checked_against_both_ends_of_their_range() {
        let kind = Kind::Integer { min: 1, max: 10 };
        assert_eq!(kind.parse("1"), Ok(Value::Integer(1)));
        assert_eq!(kind.parse("10"), Ok(Value::Integer(10)));
        assert_eq!(kind.parse("0").unwrap_err(), "must be 1 to 10");
        assert_eq!(kind.parse("11").unwrap_err(), "must be 1 to 10");
        assert!(kind.parse("-1").unwrap_err().contains("whole number"));
        assert!(kind.parse("ten").unwrap_err().contains("whole number"));
    }

    #[test]
    fn lists_drop_blanks_and_switches_take_words_and_digits() {
        assert_eq!(
            Kind::List.parse(" a, ,b "),
            Ok(Value::List(vec!["a".into(), "b".into()]))
        );
        assert_eq!(Kind::Switch.parse("1"), Ok(Value::Switch(true)));
        assert_eq!(Kind::Switch.parse("false"), Ok(Value::Switch(false)));
        assert!(Kind::Switch.parse("yes").is_err());
    }
}
