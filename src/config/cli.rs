//! The command line, derived from [`SETTINGS`], and the layering of flags
//! over the environment over the config file over the defaults.
//!
//! clap parses only the command line (each flag through its setting's
//! [`Kind::parse`]); the environment, the file and the defaults are layered
//! here, through the same parser, so that every source is validated alike
//! and every error names the source it came from (`--port`, `PORT`, or
//! `port in /etc/moscow-time/config.json`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches};

use super::ConfigError;
use super::definition::{Default, Kind, SETTINGS, Setting, Value};

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve HTTP until SIGTERM or SIGINT (also when no command is given).
    Serve,
    /// Print the count in the data folder's `visits` file.
    Count,
    /// Durably set the count.
    SetCount {
        /// The new count.
        count: u64,
        /// Allow lowering the count or replacing a corrupt file.
        force: bool,
    },
    /// Do nothing until SIGTERM or SIGINT.
    Idle,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Env,
    /// The config file at this path.
    File(PathBuf),
    /// The built-in default.
    Default,
}

/// The resolved value of every setting that has one, with its source.
#[derive(Debug, Clone, Default)]
pub struct Values {
    values: HashMap<&'static str, (Value, Source)>,
}

impl Values {
    /// The value of `key`, if any source set it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key).map(|(value, _)| value)
    }

    /// How to name `key` in an error about its value: the flag, the
    /// variable, or the key in the file, whichever set it.
    pub fn source_name(&self, key: &str) -> String {
        let setting = super::definition::setting(key);
        match self.values.get(key).map(|(_, source)| source) {
            Some(Source::Env) => setting.env.to_owned(),
            Some(Source::File(path)) => format!("{key} in {}", path.display()),
            _ => format!("--{}", setting.flag()),
        }
    }

    /// A text value (text, path or choice settings).
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Text(text) => Some(text),
            other => unreachable!("{key} is not text: {other:?}"),
        }
    }

    /// An integer value.
    pub fn integer(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Integer(n) => Some(*n),
            other => unreachable!("{key} is not an integer: {other:?}"),
        }
    }

    /// A list value.
    pub fn list(&self, key: &str) -> Option<&[String]> {
        match self.get(key)? {
            Value::List(items) => Some(items),
            other => unreachable!("{key} is not a list: {other:?}"),
        }
    }

    /// A switch value.
    pub fn switch(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Switch(on) => Some(*on),
            other => unreachable!("{key} is not a switch: {other:?}"),
        }
    }
}

/// The full command-line interface: the settings as global flags, and the
/// commands.
pub fn command() -> clap::Command {
    let cmd = clap::Command::new("moscow-time")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Shows the Moscow time and durably counts every visit.")
        .after_help(
            "Every setting is also read from its environment variable and from the JSON \
             config file; a flag beats the environment, which beats the file, which beats \
             the default.",
        )
        .subcommand(
            clap::Command::new("serve").about("Serve HTTP (what runs when no command is given)"),
        )
        .subcommand(clap::Command::new("count").about(
            "Validate the visits file as startup does and print the count; never writes, \
             needs no lock, works on a read-only volume and beside a running server",
        ))
        .subcommand(
            clap::Command::new("set-count")
                .about(
                    "Durably set the count (safe beside a running server); lowering it or \
                     replacing a corrupt file needs --force, and a corrupt file is kept \
                     as visits.corrupt-<UTC time>",
                )
                .arg(
                    Arg::new("count")
                        .required(true)
                        .value_name("N")
                        .help("The new count: a whole number from 0 to 18446744073709551615")
                        .allow_negative_numbers(true)
                        .value_parser(parse_count),
                )
                .arg(
                    Arg::new("force")
                        .long("force")
                        .action(ArgAction::SetTrue)
                        .help("Allow lowering the count and replacing a corrupt visits file"),
                ),
        )
        .subcommand(clap::Command::new("idle").about(
            "Do nothing until SIGTERM or SIGINT, then exit 0 (diagnostic mode: lets an \
             operator exec into a pod whose data the server refuses)",
        ));
    SETTINGS.iter().fold(cmd, |cmd, s| cmd.arg(flag(s)))
}

fn parse_count(raw: &str) -> Result<u64, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not a whole number from 0 to {}", u64::MAX))
}

fn flag(setting: &'static Setting) -> Arg {
    let kind = setting.kind;
    let default = match setting.default {
        Default::Value(v) => v,
        Default::Computed(how) | Default::Unset(how) => how,
    };
    let allowed = match kind {
        Kind::Text | Kind::Path => String::new(),
        _ => format!(" ({})", kind.allowed()),
    };
    let help = format!(
        "{}{allowed} [default: {default}] [env: {}]",
        setting
            .help
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        setting.env,
    );
    let arg = Arg::new(setting.key)
        .long(setting.flag())
        .global(true)
        .help(help)
        .value_name(setting.env)
        .value_parser(move |raw: &str| kind.parse(raw));
    match kind {
        Kind::Switch => arg.num_args(0..=1).default_missing_value("true"),
        Kind::Integer { .. } => arg.allow_negative_numbers(true),
        _ => arg,
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
) -> Result<(Command, Values), ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(argv)?;
    let command = match matches.subcommand() {
        None | Some(("serve", _)) => Command::Serve,
        Some(("count", _)) => Command::Count,
        Some(("set-count", sub)) => Command::SetCount {
            count: *sub.get_one::<u64>("count").expect("required"),
            force: sub.get_flag("force"),
        },
        Some(("idle", _)) => Command::Idle,
        Some((other, _)) => unreachable!("unknown command {other}"),
    };
    Ok((command, layer(&matches, env)?))
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

fn layer(
    matches: &ArgMatches,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Values, ConfigError> {
    // Global flags given after a command are stored on that command's matches.
    let matches = match matches.subcommand() {
        Some((_, sub)) => sub,
        None => matches,
    };
    let mut values = Values::default();
    for s in SETTINGS {
        if let Some(value) = matches.get_one::<Value>(s.key) {
            values.values.insert(s.key, (value.clone(), Source::Flag));
        } else if let Some(raw) = env(s.env) {
            let value = s.kind.parse(&raw).map_err(|reason| ConfigError::Invalid {
                setting: s.env.to_owned(),
                value: raw.clone(),
                reason,
            })?;
            values.values.insert(s.key, (value, Source::Env));
        }
    }
    if let Some(path) = values.text("config").map(PathBuf::from) {
        for (s, value) in read_file(&path)? {
            values
                .values
                .entry(s.key)
                .or_insert((value, Source::File(path.clone())));
        }
    }
    for s in SETTINGS {
        if let Default::Value(raw) = s.default {
            let value = s.kind.parse(raw).expect("defaults are valid (tested)");
            values
                .values
                .entry(s.key)
                .or_insert((value, Source::Default));
        }
    }
    Ok(values)
}

/// Reads the JSON config file: an object whose keys are settings.
fn read_file(path: &Path) -> Result<Vec<(&'static Setting, Value)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason: String| ConfigError::ParseFile {
        path: path.to_path_buf(),
        reason,
    };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    object
        .into_iter()
        .map(|(key, json)| {
            let setting = SETTINGS
                .iter()
                .find(|s| s.in_file && s.key == key)
                .ok_or_else(|| {
                    let known: Vec<_> = SETTINGS
                        .iter()
                        .filter(|s| s.in_file)
                        .map(|s| s.key)
                        .collect();
                    invalid(format!(
                        "unknown key {key:?}; known keys: {}",
                        known.join(", ")
                    ))
                })?;
            let raw = raw_json(setting.kind, &json).ok_or_else(|| {
                invalid(format!(
                    "{key} must be {}, not {json}",
                    json_type(setting.kind)
                ))
            })?;
            let value = setting
                .kind
                .parse(&raw)
                .map_err(|reason| invalid(format!("{key} {json}: {reason}")))?;
            Ok((setting, value))
        })
        .collect()
}

/// The JSON type a setting of `kind` takes in the file.
pub fn json_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Text | Kind::Path | Kind::Choice(_) => "a string",
        Kind::Integer { .. } => "an integer",
        Kind::List => "an array of strings",
        Kind::Switch => "a boolean",
    }
}

fn raw_json(kind: Kind, json: &serde_json::Value) -> Option<String> {
    use serde_json::Value as J;
    match (kind, json) {
        (Kind::Text | Kind::Path | Kind::Choice(_), J::String(s)) => Some(s.clone()),
        (Kind::Integer { .. }, J::Number(n)) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        (Kind::Switch, J::Bool(b)) => Some(b.to_string()),
        (Kind::List, J::Array(items)) => items
            .iter()
            .map(|item| item.as_str().filter(|s| !s.contains(',')))
            .collect::<Option<Vec<_>>>()
            .map(|items| items.join(",")),
        _ => None,
    }
}
