use std::path::Path;

use moscow_time::config::definition::{Kind, SETTINGS, Setting, markdown_table};
use moscow_time::config::json_type;
use serde_json::Value as Json;

const README_START: &str = "<!-- settings:start -->";
const README_END: &str = "<!-- settings:end -->";

/// Settings the chart does not offer under `config.*`, and why. A new
/// setting must be added to the chart's schema or here, with a reason.
const NOT_IN_CHART_CONFIG: &[(&str, &str)] = &[
    ("host", "a pod listens on every address"),
    ("port", "set through the pod env from containerPorts.http"),
    (
        "data_dir",
        "set through the pod env from persistence.mountPath",
    ),
    ("config", "the chart's ConfigMap is the config file"),
    ("log_format", "set through the pod env from logFormat"),
    ("instance", "set through the pod env from the pod's name"),
    (
        "peers",
        "the chart discovers peers through the headless Service",
    ),
    (
        "peers_dns",
        "set through the pod env to the headless Service",
    ),
    (
        "fault_injection",
        "set through the pod env from faultInjection.enabled",
    ),
];

fn repo(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

#[test]
fn the_readme_table_is_the_one_rendered_from_the_definition() {
    let readme = repo("README.md");
    let start = readme
        .find(README_START)
        .expect("README has the settings start marker");
    let end = readme
        .find(README_END)
        .expect("README has the settings end marker");
    let table = readme[start + README_START.len()..end].trim();
    let expected = markdown_table();
    if std::env::var_os("BLESS").is_some() && table != expected.trim() {
        let updated = format!(
            "{}{README_START}\n{expected}{}",
            &readme[..start],
            &readme[end..]
        );
        std::fs::write(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"),
            updated,
        )
        .unwrap();
        return;
    }
    assert_eq!(
        table,
        expected.trim(),
        "README.md's configuration table is out of date (BLESS=1 cargo test --test consistency \
         rewrites it); it should be:\n\n{expected}"
    );
}

/// What is wrong with one `config.*` schema entry, compared to its setting.
fn schema_mismatches(key: &str, schema: &Json) -> Vec<String> {
    let Some(s) = setting(key).filter(|s| s.in_file) else {
        return vec![format!("config.{key} is not a setting of the binary")];
    };
    let mut wrong = Vec::new();
    let want = |field: &str, expected: Json| {
        let actual = schema.get(field).cloned().unwrap_or(Json::Null);
        (actual != expected).then(|| {
            format!("config.{key}: schema {field} is {actual}, the binary takes {expected}")
        })
    };
    let (kind_type, min, max, choices) = match s.kind {
        Kind::Integer { min, max } => ("integer", Json::from(min), Json::from(max), Json::Null),
        Kind::Choice(words) => ("string", Json::Null, Json::Null, Json::from(words.to_vec())),
        Kind::Text | Kind::Path => ("string", Json::Null, Json::Null, Json::Null),
        Kind::List => ("array", Json::Null, Json::Null, Json::Null),
        Kind::Switch => ("boolean", Json::Null, Json::Null, Json::Null),
    };
    wrong.extend(want("type", Json::from(kind_type)));
    wrong.extend(want("minimum", min));
    wrong.extend(want("maximum", max));
    wrong.extend(want("enum", choices));
    wrong
        .iter_mut()
        .for_each(|w| w.push_str(&format!(" ({})", json_type(s.kind))));
    wrong
}

#[test]
fn the_chart_schema_allows_exactly_what_the_binary_accepts() {
    let schema: Json = serde_json::from_str(&repo("helm/moscow-time/values.schema.json")).unwrap();
    let config = schema["properties"]["config"]["properties"]
        .as_object()
        .expect("the schema describes config.*");
    let mut wrong: Vec<String> = config
        .iter()
        .flat_map(|(key, entry)| schema_mismatches(key, entry))
        .collect();
    for s in SETTINGS {
        let excused = NOT_IN_CHART_CONFIG.iter().any(|(key, _)| *key == s.key);
        if !config.contains_key(s.key) && !excused {
            wrong.push(format!(
                "setting {} is missing from the chart: add config.{} to values.yaml and \
                 values.schema.json (type {}, {}), or list it in NOT_IN_CHART_CONFIG with a reason",
                s.key,
                s.key,
                json_type(s.kind),
                s.kind.allowed()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_schema_check_catches_a_wrong_range_a_wrong_type_and_an_unknown_key() {
    let entry = |text: &str| serde_json::from_str::<Json>(text).unwrap();
    let good = entry(r#"{"type": "integer", "minimum": 1, "maximum": 3600}"#);
    assert!(schema_mismatches("shutdown_timeout_secs", &good).is_empty());
    let unbounded = entry(r#"{"type": "integer", "minimum": 1}"#);
    let wrong = schema_mismatches("shutdown_timeout_secs", &unbounded);
    assert!(
        wrong.iter().any(|w| w.contains("maximum is null")),
        "{wrong:?}"
    );
    let text = entry(r#"{"type": "string"}"#);
    assert!(!schema_mismatches("max_batch", &text).is_empty());
    assert!(!schema_mismatches("no_such_setting", &good).is_empty());
    let choice = entry(r#"{"type": "string", "enum": ["text"]}"#);
    assert!(!schema_mismatches("log_format", &choice).is_empty());
}

#[test]
fn the_k8s_config_map_holds_only_valid_settings() {
    let config: serde_json::Map<String, Json> =
        serde_json::from_str(&repo("k8s/config.json")).unwrap();
    assert!(!config.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, repo("k8s/config.json")).unwrap();
    // The binary's own file parser: unknown keys and bad values are errors.
    let settings = moscow_time::config::Settings::from_args([
        "moscow-time",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert!(
        settings.is_ok(),
        "k8s/config.json: {}",
        settings.unwrap_err()
    );
    for key in config.keys() {
        assert!(
            NOT_IN_CHART_CONFIG.iter().all(|(k, _)| k != key),
            "k8s/config.json sets {key}, which the manifests set elsewhere"
        );
    }
}
