//! Every setting, defined once: a field of [`Options`] with its flag (the
//! field in kebab case), environment variable, file key (the field), default,
//! allowed values (the field's type) and help (its doc comment; a default
//! worked out at startup is written there as `[default: ...]`).
//!
//! clap derives the command line and `--help` from it, serde the config
//! file's parser, schemars the file's JSON schema (which the chart's
//! `values.schema.json` is checked against), and [`markdown_table`] renders
//! the README's table from clap's and schemars' view of it.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Arg, Args, CommandFactory, ValueHint};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;

/// Every setting of the service, in the order `--help` and the README list
/// them. No environment variable is named after the service
/// (`MOSCOW_TIME_PORT`): Kubernetes injects `<SERVICE>_PORT=tcp://...` for
/// every Service in the namespace, which would collide.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Address to listen on (an IP address or a resolvable host name)
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (the `listening` log line has it)
    #[arg(long, env = "PORT", default_value = "8000")]
    pub port: Ranged<0, 65535>,
    /// Folder holding the `visits` file; created if missing
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// IANA time zone shown on the page (the database is compiled in)
    #[arg(long, env = "TIMEZONE", default_value = "Europe/Moscow")]
    pub timezone: String,
    /// JSON file with these settings by their keys; unknown keys are an error [default: none]
    #[arg(long, env = "CONFIG_FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Log format; `RUST_LOG` filters [default: text on a terminal, json otherwise]
    #[arg(long, env = "LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Name of this instance, shown on the page and to peers [default: the host name]
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Seconds to keep serving after SIGTERM, unready and with `Connection: close`, so load
    /// balancers stop routing here before the listener closes
    #[arg(long, env = "SHUTDOWN_DELAY_SECS", default_value = "0")]
    pub shutdown_delay_secs: Ranged<0, 300>,
    /// Seconds to finish in-flight requests once the listener is closed
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value = "20")]
    pub shutdown_timeout_secs: Ranged<1, 3600>,
    /// Longest wait for a visit's durable write (queue, file lock, fsync) before it fails with 503,
    /// in ms; a write in flight for longer makes the instance unready
    #[arg(long, env = "WRITE_TIMEOUT_MS", default_value = "5000")]
    pub write_timeout_ms: Ranged<1, 600_000>,
    /// Most visits persisted by one durable write; 1 turns group commit off
    #[arg(long, env = "MAX_BATCH", default_value = "4096")]
    pub max_batch: Ranged<1, 1_000_000>,
    /// Enable the /faults routes that break this instance on purpose (full disk, unready, hung
    /// volume, slow pages), for demonstrations; never in production
    #[arg(long, env = "FAULT_INJECTION", default_value = "false", action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = switch)]
    pub fault_injection: bool,
    /// Base URLs (http://) of every instance, this one included [default: none]
    #[arg(long, env = "PEERS", value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// DNS name resolving to every ready instance (a headless Service) [default: none]
    #[arg(long, env = "PEERS_DNS")]
    pub peers_dns: Option<String>,
    /// Longest wait for one peer's count, in ms
    #[arg(long, env = "PEER_TIMEOUT_MS", default_value = "300")]
    pub peer_timeout_ms: Ranged<1, 60_000>,
}

/// How log lines are written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A whole number from `MIN` to `MAX`, from a flag, a variable or the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Ranged<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> Ranged<MIN, MAX> {
    fn new(n: Option<u64>, shown: impl std::fmt::Display) -> Result<Self, String> {
        match n {
            Some(n) if (MIN..=MAX).contains(&n) => Ok(Ranged(n)),
            Some(_) => Err(format!("must be {MIN} to {MAX}, not {shown}")),
            None => Err(format!(
                "must be a whole number from {MIN} to {MAX}, not {shown}"
            )),
        }
    }
}

impl<const MIN: u64, const MAX: u64> FromStr for Ranged<MIN, MAX> {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Self::new(raw.trim().parse().ok(), format!("{raw:?}"))
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Ranged<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Json::deserialize(deserializer)?;
        Self::new(json.as_u64(), &json).map_err(serde::de::Error::custom)
    }
}

impl<const MIN: u64, const MAX: u64> schemars::JsonSchema for Ranged<MIN, MAX> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Ranged_{MIN}_{MAX}").into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "minimum": MIN, "maximum": MAX})
    }
}

/// `true` or `false`, also as `1` or `0`; the bare flag means `true`.
fn switch(raw: &str) -> Result<bool, String> {
    match raw.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// The settings as clap defines them (flag, variable, default, help).
pub fn setting_args() -> Vec<Arg> {
    Options::augment_args(clap::Command::new("settings"))
        .get_arguments()
        .cloned()
        .collect()
}

/// The config file's JSON schema, derived from [`Options`].
pub fn file_schema() -> Json {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<Options>();
    schema.to_value()
}

/// The file schema's entry for `key`, with `null` (an unset `Option`) left
/// out and an enum's variants as `enum`, or `None` when the file cannot set it.
pub fn file_property(schema: &Json, key: &str) -> Option<Json> {
    let mut property = schema["properties"].get(key)?.clone();
    if let Some(Json::Array(types)) = property.get("type") {
        let kept: Vec<_> = types.iter().filter(|t| *t != "null").cloned().collect();
        property["type"] = kept.into_iter().next().unwrap_or(Json::Null);
    }
    if let Some(Json::Array(choices)) = property.get("anyOf") {
        let kept = choices.iter().find(|c| c["type"] != "null").cloned();
        property = kept.unwrap_or(property);
    }
    if let Some(Json::Array(variants)) = property.get("oneOf") {
        let words: Vec<_> = variants.iter().map(|v| v["const"].clone()).collect();
        property = serde_json::json!({"type": "string", "enum": words});
    }
    Some(property)
}

/// The allowed values, in words, for `--help` and the README.
pub fn allowed(arg: &Arg, property: Option<&Json>) -> String {
    let get = |field: &str| property.and_then(|p| p.get(field));
    if let (Some(min), Some(max)) = (get("minimum"), get("maximum")) {
        return format!("{min} to {max}");
    }
    if let Some(Json::Array(words)) = get("enum") {
        let words: Vec<_> = words.iter().filter_map(Json::as_str).collect();
        return words.join(", ");
    }
    match get("type").and_then(Json::as_str) {
        Some("boolean") => "true, false".into(),
        Some("array") => "comma-separated list".into(),
        _ if arg.get_value_hint() == ValueHint::AnyPath => "a path".into(),
        _ => "text".into(),
    }
}

/// A setting's help without its default, and its default in words.
pub fn help_and_default(arg: &Arg) -> (String, String) {
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    match help.split_once(" [default: ") {
        Some((help, default)) => (help.to_owned(), default.trim_end_matches(']').to_owned()),
        None => {
            let defaults: Vec<_> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy())
                .collect();
            (help, format!("`{}`", defaults.join(",")))
        }
    }
}

/// The README's configuration table.
pub fn markdown_table() -> String {
    let schema = file_schema();
    let mut table = String::from(
        "| flag | env | JSON key | default | values | what it does |\n|---|---|---|---|---|---|\n",
    );
    for arg in setting_args() {
        let key = arg.get_id().as_str();
        let property = file_property(&schema, key);
        let (help, default) = help_and_default(&arg);
        table.push_str(&format!(
            "| `--{}` | `{}` | {} | {default} | {} | {help} |\n",
            arg.get_long().unwrap_or(key),
            arg.get_env().unwrap_or_default().to_string_lossy(),
            property
                .as_ref()
                .map_or(String::new(), |_| format!("`{key}`")),
            allowed(&arg, property.as_ref()),
        ));
    }
    table
}

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Serve HTTP (what runs when no command is given)
    Serve,
    /// Validate the visits file as startup does and print the count; never writes, needs no
    /// lock, works on a read-only volume and beside a running server
    Count,
    /// Durably set the count (safe beside a running server); lowering it or replacing a corrupt
    /// file needs --force, and a corrupt file is kept as visits.corrupt-<UTC time>
    SetCount {
        /// The new count: a whole number from 0 to 18446744073709551615
        #[arg(value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
        count: u64,
        /// Allow lowering the count and replacing a corrupt visits file
        #[arg(long)]
        force: bool,
    },
    /// Do nothing until SIGTERM or SIGINT, then exit 0 (diagnostic mode: lets an operator exec
    /// into a pod whose data the server refuses)
    Idle,
}

fn parse_count(raw: &str) -> Result<u64, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not a whole number from 0 to {}", u64::MAX))
}

/// The command line: the commands, and the settings as global flags.
#[derive(Debug, clap::Parser)]
#[command(
    name = "moscow-time",
    version,
    about = "Shows the Moscow time and durably counts every visit.",
    after_help = "Every setting is also read from its environment variable and from the JSON \
                  config file; a flag beats the environment, which beats the file, which beats \
                  the default."
)]
pub struct Cli {
    /// What to do (serve when none is given).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The settings given as flags.
    #[command(flatten)]
    pub options: Options,
}

/// The full command-line interface. Its flags read no environment (the
/// layering does, so that errors name the variable): the variable is in
/// the help, with the default and the allowed values.
pub fn command() -> clap::Command {
    let schema = file_schema();
    Cli::command().mut_args(|arg| {
        let Some(env) = arg.get_env().map(|e| e.to_string_lossy().into_owned()) else {
            return arg;
        };
        let property = file_property(&schema, arg.get_id().as_str());
        let values = match allowed(&arg, property.as_ref()).as_str() {
            "text" | "a path" => String::new(),
            values => format!(" ({values})"),
        };
        let (help, default) = help_and_default(&arg);
        let default = default.trim_matches('`').to_owned();
        arg.help(format!("{help}{values} [default: {default}] [env: {env}]"))
            .value_name(env)
            .env(None)
            .global(true)
            .hide_default_value(true)
            .hide_possible_values(true)
            .allow_negative_numbers(true)
    })
}
