//! The API's compatibility promise: within one version (`info.version`, the crate version),
//! no operation, parameter, schema, field or enum value that the released document
//! (`openapi/released.json`) has may disappear or be renamed. A change that needs to must
//! bump the version and say so in CHANGELOG.md; the release then becomes the new baseline
//! (`cp openapi/openapi.json openapi/released.json`).

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../openapi")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Everything a generated client may depend on, as readable lines.
fn promises(spec: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or("?");
            found.insert(format!("operation {id}: {} {path}", method.to_uppercase()));
            for p in op["parameters"].as_array().into_iter().flatten() {
                found.insert(format!(
                    "operation {id}: parameter {} in {}",
                    p["name"], p["in"]
                ));
                for value in p["schema"]["enum"].as_array().into_iter().flatten() {
                    found.insert(format!(
                        "operation {id}: parameter {} value {value}",
                        p["name"]
                    ));
                }
            }
            for status in op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(s, _)| s)
            {
                if status.starts_with('2') {
                    found.insert(format!("operation {id}: answers {status}"));
                }
            }
        }
    }
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        found.insert(format!("schema {name}"));
        for value in schema["enum"].as_array().into_iter().flatten() {
            found.insert(format!("schema {name}: value {value}"));
        }
        for field in schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(f, _)| f)
        {
            found.insert(format!("schema {name}: field {field}"));
        }
    }
    found
}

fn version(spec: &Value) -> (u64, u64, u64) {
    let v = spec["info"]["version"].as_str().unwrap();
    let parts: Vec<u64> = v.split('.').map(|p| p.parse().unwrap()).collect();
    (parts[0], parts[1], parts[2])
}

#[test]
fn nothing_released_disappears_without_a_version_bump() {
    let released = load("released.json");
    let current: Value = serde_json::from_str(&campus::api::openapi_json()).unwrap();
    assert_eq!(
        current["info"]["version"],
        env!("CARGO_PKG_VERSION"),
        "info.version follows the crate version"
    );
    assert!(
        version(&current) >= version(&released),
        "the version went backwards"
    );
    if version(&current) > version(&released) {
        return;
    }
    let gone: Vec<String> = promises(&released)
        .difference(&promises(&current))
        .cloned()
        .collect();
    assert!(
        gone.is_empty(),
        "removed or renamed without a version bump (bump the workspace version and write it \
         in CHANGELOG.md):\n  {}",
        gone.join("\n  ")
    );
}

#[test]
fn the_changelog_describes_the_current_version() {
    let changelog =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../CHANGELOG.md"))
            .unwrap();
    let heading = format!("## {}", env!("CARGO_PKG_VERSION"));
    assert!(
        changelog.lines().any(|l| l.starts_with(&heading)),
        "CHANGELOG.md has no section {heading:?}"
    );
}

#[test]
fn a_removed_field_or_enum_value_is_noticed() {
    let released = load("released.json");
    let mut changed = released.clone();
    let schemas = changed["components"]["schemas"].as_object_mut().unwrap();
    let (name, with_fields) = schemas
        .iter_mut()
        .find(|(_, s)| s["properties"].as_object().is_some_and(|p| !p.is_empty()))
        .unwrap();
    let name = name.clone();
    let field = with_fields["properties"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    with_fields["properties"]
        .as_object_mut()
        .unwrap()
        .remove(&field);
    let gone: Vec<String> = promises(&released)
        .difference(&promises(&changed))
        .cloned()
        .collect();
    assert_eq!(gone, [format!("schema {name}: field {field}")]);
}
