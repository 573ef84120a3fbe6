use std::path::Path;

use moscow_time::config::{allowed, file_property, file_schema, markdown_table, setting_args};
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
    ("config", "the chart's pod template carries the config file"),
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

/// What is wrong with one `config.*` schema entry, compared to the config
/// file's schema derived from the settings.
fn schema_mismatches(key: &str, schema: &Json) -> Vec<String> {
    let Some(expected) = file_property(&file_schema(), key) else {
        return vec![format!("config.{key} is not a setting of the binary")];
    };
    ["type", "minimum", "maximum", "enum"]
        .into_iter()
        .filter_map(|field| {
            let actual = schema.get(field).cloned().unwrap_or(Json::Null);
            let wanted = expected.get(field).cloned().unwrap_or(Json::Null);
            (actual != wanted).then(|| {
                format!("config.{key}: schema {field} is {actual}, the binary takes {wanted}")
            })
        })
        .collect()
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
    let file = file_schema();
    for arg in setting_args() {
        let key = arg.get_id().as_str();
        let Some(property) = file_property(&file, key) else {
            continue;
        };
        let excused = NOT_IN_CHART_CONFIG.iter().any(|(k, _)| *k == key);
        if !config.contains_key(key) && !excused {
            wrong.push(format!(
                "setting {key} is missing from the chart: add config.{key} to values.yaml and \
                 values.schema.json (type {}, {}), or list it in NOT_IN_CHART_CONFIG with a reason",
                property["type"],
                allowed(&arg, Some(&property))
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
