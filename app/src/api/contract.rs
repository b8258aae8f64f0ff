//! What the OpenAPI document says that poem-openapi cannot derive from the code: the exact
//! error responses of each operation ([`ERRORS`]), `nullable` wherever `null` is sent or
//! accepted (poem-openapi writes an `Option` field as merely optional), enum references that
//! client generators resolve, and the methods each path allows (the `Allow` header of a
//! `405`). [`complete`] applies it to the generated document; the served document, the
//! Swagger UI and the committed `openapi/openapi.json` all go through it.

use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// Every operation's error statuses: exactly what it can answer besides its success status.
/// 400: a parameter or body the server refuses; 401/403: no valid token / the wrong role;
/// 404: an id that does not exist or is not the caller's; 409: a conflict with existing data;
/// 413/415: a body too large / not JSON; 429: a rate limit or the admin read slots; 503: the
/// database unavailable or the server saturated.
pub const ERRORS: &[(&str, &[u16])] = &[
    ("createInstitution", &[400, 409, 413, 415, 429, 503]),
    ("login", &[400, 401, 413, 415, 429, 503]),
    ("requestPasswordReset", &[400, 413, 415, 429, 503]),
    ("resetPassword", &[400, 413, 415, 503]),
    ("createTeacher", &[400, 401, 403, 409, 413, 415, 503]),
    ("listTeachers", &[400, 401, 403, 503]),
    ("createStudent", &[400, 401, 403, 409, 413, 415, 503]),
    ("listStudents", &[400, 401, 403, 503]),
    ("createDiscipline", &[400, 401, 403, 409, 413, 415, 503]),
    ("listDisciplines", &[400, 401, 403, 503]),
    ("createClass", &[400, 401, 403, 404, 413, 415, 503]),
    ("listClasses", &[400, 401, 403, 503]),
    ("enrollStudent", &[400, 401, 403, 404, 409, 413, 415, 503]),
    ("setGradeNote", &[400, 401, 403, 404, 413, 415, 503]),
    ("listNotifications", &[400, 401, 403, 503]),
    ("reprocessEvent", &[400, 401, 403, 404, 409, 503]),
    ("reprocessTask", &[400, 401, 403, 404, 409, 503]),
    ("reprocessTasks", &[400, 401, 403, 413, 415, 503]),
    ("listEvents", &[400, 401, 403, 429, 503]),
    ("getEvent", &[400, 401, 403, 404, 503]),
    ("listTasks", &[400, 401, 403, 429, 503]),
    ("getTask", &[400, 401, 403, 404, 503]),
    ("getSummary", &[400, 401, 403, 429, 503]),
    ("getAuditTrail", &[400, 401, 403, 404, 429, 503]),
    ("checkLiveness", &[]),
    ("checkReadiness", &[503]),
    ("cancelTask", &[400, 401, 403, 404, 409, 503]),
    ("pauseTaskType", &[401, 403, 404, 503]),
    ("resumeTaskType", &[401, 403, 404, 503]),
    ("listTaskTypes", &[401, 403, 429, 503]),
    ("createWebhook", &[400, 401, 403, 413, 415, 503]),
    ("listWebhooks", &[401, 403, 503]),
    ("getWebhook", &[400, 401, 403, 404, 503]),
    ("replaceWebhook", &[400, 401, 403, 404, 413, 415, 503]),
    ("deleteWebhook", &[400, 401, 403, 404, 503]),
    ("rotateWebhookSecret", &[400, 401, 403, 404, 503]),
    ("listWebhookDeliveries", &[400, 401, 403, 404, 503]),
    ("getWebhookDelivery", &[400, 401, 403, 404, 503]),
    ("redeliverWebhook", &[400, 401, 403, 404, 409, 503]),
    ("testWebhook", &[400, 401, 403, 404, 503]),
];

/// The error statuses of `operation_id`, if [`ERRORS`] lists it.
pub fn errors_of(operation_id: &str) -> Option<&'static [u16]> {
    ERRORS
        .iter()
        .find(|(id, _)| *id == operation_id)
        .map(|(_, statuses)| *statuses)
}

/// Answers the server gives before an operation's own code runs, in the same JSON shape.
fn framework_response(status: u16) -> Option<Value> {
    let description = match status {
        413 => "The request body is larger than 64 KiB.",
        415 => "The body is not `application/json` (send `Content-Type: application/json`).",
        _ => return None,
    };
    Some(json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    }))
}

/// The generated document, completed (see the module's documentation).
pub fn complete(generated: &str) -> String {
    let mut spec: Value = serde_json::from_str(generated).expect("poem-openapi writes JSON");
    exact_responses(&mut spec);
    let (requests, responses) = schema_uses(&spec);
    let schemas = spec["components"]["schemas"].clone();
    if let Some(all) = spec["components"]["schemas"].as_object_mut() {
        for (name, schema) in all.iter_mut() {
            let always_sent = responses.contains(name) && !requests.contains(name);
            nullable_options(schema, always_sent, &schemas);
        }
    }
    for op in operations_mut(&mut spec) {
        if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            for param in params {
                if let Some(schema) = param.get_mut("schema") {
                    resolvable(schema, &schemas);
                }
            }
        }
    }
    serde_json::to_string_pretty(&spec).expect("a JSON value serializes")
}

fn operations_mut(spec: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    spec["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(Value::as_object_mut)
}

/// Keeps each operation's success responses and exactly the error statuses [`ERRORS`] lists.
fn exact_responses(spec: &mut Value) {
    for op in operations_mut(spec) {
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        let Some(errors) = errors_of(&id) else {
            continue;
        };
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        responses.retain(|status, _| {
            let code: u16 = status.parse().unwrap_or(0);
            code < 400 || errors.contains(&code)
        });
        for &status in errors {
            if let Some(response) = framework_response(status) {
                responses.insert(status.to_string(), response);
            }
        }
    }
}

/// The names of the schemas reachable from request bodies and parameters, and from responses.
fn schema_uses(spec: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let schemas = &spec["components"]["schemas"];
    let (mut requests, mut responses) = (BTreeSet::new(), BTreeSet::new());
    for item in spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for op in item.as_object().into_iter().flat_map(|i| i.values()) {
            refs_in(&op["requestBody"], schemas, &mut requests);
            refs_in(&op["parameters"], schemas, &mut requests);
            refs_in(&op["responses"], schemas, &mut responses);
        }
    }
    (requests, responses)
}

/// Collects every schema `value` refers to, transitively.
fn refs_in(value: &Value, schemas: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(schema_name)
            {
                if found.insert(name.to_string()) {
                    refs_in(&schemas[name], schemas, found);
                }
            }
            map.values().for_each(|v| refs_in(v, schemas, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, schemas, found)),
        _ => {}
    }
}

fn schema_name(reference: &str) -> Option<&str> {
    reference.strip_prefix("#/components/schemas/")
}

/// poem-openapi writes an `Option` field as a property left out of `required`; the server
/// sends it as `null` and accepts `null` for it. Such a property becomes `nullable`, and in a
/// schema only ever sent (never received) `required` too, since it is always present.
fn nullable_options(schema: &mut Value, always_sent: bool, schemas: &Value) {
    let required: BTreeSet<String> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let mut now_required = required.clone();
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, property) in properties.iter_mut() {
            if !required.contains(name) {
                make_nullable(property, schemas);
                if always_sent {
                    now_required.insert(name.clone());
                }
            } else {
                resolvable(property, schemas);
            }
        }
    }
    if now_required != required {
        schema["required"] = json!(now_required.into_iter().collect::<Vec<_>>());
    }
}

/// The reference and the schema of a scalar (an enum, a checked string) `property` refers
/// to through `allOf` (poem-openapi's way of describing a referenced schema: the `$ref`, then
/// a schema of only a description), if it is one.
fn referenced_scalar<'a>(property: &Value, schemas: &'a Value) -> Option<(Value, &'a Value)> {
    let [reference, rest @ ..] = property["allOf"].as_array()?.as_slice() else {
        return None;
    };
    let only_words = |s: &Value| {
        s.as_object()
            .is_some_and(|o| o.keys().all(|k| k == "description"))
    };
    if !rest.iter().all(only_words) {
        return None;
    }
    let target = &schemas[schema_name(reference["$ref"].as_str()?)?];
    (target["type"] != "object").then(|| (reference.clone(), target))
}

/// A scalar referenced through `allOf` is written as the reference alone: generators resolve
/// `allOf` only to objects (openapi-python-client: "Cannot take allOf a non-object"). The
/// referenced schema carries the description.
fn resolvable(property: &mut Value, schemas: &Value) {
    if let Some((reference, _)) = referenced_scalar(property, schemas) {
        *property = reference;
    }
}

/// Marks `property` as accepting `null`. A scalar is copied inline (a `$ref` cannot carry
/// `nullable` in OpenAPI 3.0), an enum with `null` among its values; an object keeps its
/// `allOf`.
fn make_nullable(property: &mut Value, schemas: &Value) {
    if let Some((_, target)) = referenced_scalar(property, schemas) {
        let mut inline = target.clone();
        if let Some(values) = inline.get_mut("enum").and_then(Value::as_array_mut) {
            values.push(Value::Null);
        }
        if let Some(description) = property.get("description") {
            inline["description"] = description.clone();
        }
        *property = inline;
    } else if property.get("$ref").is_some() {
        *property = json!({"allOf": [property.clone()]});
    }
    property["nullable"] = json!(true);
}

/// The methods each path of the API allows, from its document: what a `405` lists in its
/// `Allow` header.
pub struct AllowedMethods(Vec<(Vec<String>, String)>);

impl AllowedMethods {
    pub fn of(spec: &str) -> AllowedMethods {
        let spec: Value = serde_json::from_str(spec).expect("the document is JSON");
        let paths = spec["paths"].as_object().into_iter().flatten();
        AllowedMethods(
            paths
                .map(|(path, item)| {
                    let mut methods: Vec<String> = item
                        .as_object()
                        .into_iter()
                        .flat_map(|i| i.keys())
                        .map(|m| m.to_uppercase())
                        .collect();
                    if methods.iter().any(|m| m == "GET") {
                        methods.push("HEAD".into());
                    }
                    (segments(path), methods.join(", "))
                })
                .collect(),
        )
    }

    /// The `Allow` value for a request path, if a path of the document matches it.
    pub fn for_path(&self, path: &str) -> Option<&str> {
        let wanted = segments(path);
        self.0
            .iter()
            .find(|(template, _)| {
                template.len() == wanted.len()
                    && template
                        .iter()
                        .zip(&wanted)
                        .all(|(t, w)| t == w || (t.starts_with('{') && !w.is_empty()))
            })
            .map(|(_, allow)| allow.as_str())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/')
        .split('/')
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated() -> Value {
        serde_json::from_str(&super::super::openapi("/").spec()).unwrap()
    }

    #[test]
    fn every_operation_lists_its_errors_and_the_list_names_no_other() {
        let spec = generated();
        let mut in_spec = BTreeSet::new();
        for item in spec["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                in_spec.insert(op["operationId"].as_str().unwrap().to_string());
            }
        }
        let listed: BTreeSet<String> = ERRORS.iter().map(|(id, _)| id.to_string()).collect();
        assert_eq!(in_spec, listed, "ERRORS must list every operation, once");
        assert_eq!(listed.len(), ERRORS.len(), "an operation listed twice");
    }

    #[test]
    fn the_shape_of_an_operation_implies_some_of_its_errors() {
        let spec = generated();
        for item in spec["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap();
                let errors = errors_of(id).unwrap();
                let has = |s: u16| errors.contains(&s);
                if op.get("requestBody").is_some() {
                    assert!(
                        has(400) && has(413) && has(415),
                        "{id}: a body may be refused"
                    );
                }
                if op.get("security").is_some() {
                    assert!(
                        has(401) && has(403),
                        "{id}: a token may be missing or wrong"
                    );
                }
                let path_ids = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["in"] == "path" && p["schema"]["format"] == "uuid");
                if path_ids {
                    assert!(
                        has(400) && has(404),
                        "{id}: an id may be malformed or unknown"
                    );
                }
            }
        }
    }

    #[test]
    fn completed_responses_are_exactly_the_listed_ones() {
        let spec: Value = serde_json::from_str(&complete(&generated().to_string())).unwrap();
        let reprocess = &spec["paths"]["/adm/tasks/{id}/reprocess"]["post"]["responses"];
        let statuses: Vec<&str> = reprocess
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(statuses, ["201", "400", "401", "403", "404", "409", "503"]);
        let login = &spec["paths"]["/auth/login"]["post"]["responses"];
        assert!(login.get("403").is_none() && login.get("404").is_none());
        assert_eq!(
            login["415"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }

    #[test]
    fn options_become_nullable_and_sent_ones_required() {
        let spec: Value = serde_json::from_str(&complete(&generated().to_string())).unwrap();
        let page = &spec["components"]["schemas"]["EventPage"];
        assert_eq!(page["properties"]["next_before"]["nullable"], true);
        assert!(page["required"]
            .as_array()
            .unwrap()
            .contains(&json!("next_before")));
        let bulk = &spec["components"]["schemas"]["BulkReprocessRequest"];
        assert_eq!(bulk["properties"]["status"]["nullable"], true);
        assert!(bulk["properties"]["status"]["enum"]
            .as_array()
            .unwrap()
            .contains(&Value::Null));
        assert!(bulk["properties"]["status"].get("allOf").is_none());
        assert!(
            bulk.get("required")
                .is_none_or(|r| !r.as_array().unwrap().contains(&json!("status"))),
            "a request's optional field stays optional"
        );
    }

    #[test]
    fn completing_adds_no_null_but_to_enums() {
        fn nulls(value: &Value, at: &str, found: &mut Vec<String>) {
            match value {
                Value::Null => found.push(at.to_string()),
                Value::Object(map) => map
                    .iter()
                    .for_each(|(k, v)| nulls(v, &format!("{at}/{k}"), found)),
                Value::Array(items) if !at.ends_with("/enum") => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| nulls(v, &format!("{at}/{i}"), found)),
                _ => {}
            }
        }
        let spec: Value = serde_json::from_str(&super::super::openapi_json()).unwrap();
        let mut found = Vec::new();
        nulls(&spec, "", &mut found);
        assert!(found.is_empty(), "null at {found:?}");
    }

    #[test]
    fn allowed_methods_come_from_the_paths() {
        let allowed = AllowedMethods::of(&super::super::openapi_json());
        assert_eq!(
            allowed.for_path("/academic/teachers"),
            Some("POST, GET, HEAD")
        );
        let id = "0190c1a2-0000-7000-8000-000000000000";
        assert_eq!(
            allowed.for_path(&format!("/academic/webhooks/{id}")),
            Some("GET, PUT, DELETE, HEAD")
        );
        assert_eq!(allowed.for_path("/no/such/path"), None);
        assert_eq!(allowed.for_path("/academic/webhooks//deliveries"), None);
    }
}
