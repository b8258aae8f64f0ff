//! The access matrix, driven by the OpenAPI spec: every operation the spec lists is called
//! by every role it is not for (anonymous → 401, a wrong role → 403, nothing written), by
//! each role it is for (not refused), and — when it names rows by id — by institution A's
//! users with institution B's ids (403 or 404, nothing of B changed or shown).
//!
//! The routes come from the spec, not from this file: a new operation fails
//! `the_table_covers_exactly_the_operations_of_the_spec` until [`ACCESS`] says who may call
//! it, and a new id parameter fails [`path_param`] / [`query_param`] until they say which of
//! B's ids to put there.

use campus_ports::{NewTask, TaskQueue};
use campus_tests::receiver::WebhookReceiver;
use campus_tests::TestApp;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Role {
    Anonymous,
    Adm,
    Academic,
    Teacher,
    Student,
}

use Role::*;

const ROLES: [Role; 5] = [Anonymous, Adm, Academic, Teacher, Student];
/// Public operations: with or without a token, whoever holds it.
const ANYONE: &[Role] = &ROLES;
/// Operators: an Adm user everywhere, an Academic user in their institution.
const OPERATORS: &[Role] = &[Adm, Academic];

/// Who may call each operation of the spec (by `operationId`), from the bearer checks of
/// `app/src/api/*.rs`. It must name every operation of the spec, and nothing else.
const ACCESS: &[(&str, &[Role])] = &[
    // public.rs and ops.rs: no bearer at all.
    ("createInstitution", ANYONE),
    ("login", ANYONE),
    ("requestPasswordReset", ANYONE),
    ("resetPassword", ANYONE),
    ("checkLiveness", ANYONE),
    ("checkReadiness", ANYONE),
    // academic.rs: `institution_as(Role::Academic)`.
    ("createTeacher", &[Academic]),
    ("listTeachers", &[Academic]),
    ("createStudent", &[Academic]),
    ("listStudents", &[Academic]),
    ("createDiscipline", &[Academic]),
    ("listDisciplines", &[Academic]),
    ("createClass", &[Academic]),
    ("listClasses", &[Academic]),
    ("enrollStudent", &[Academic]),
    // academic.rs: `institution_as(Role::Teacher)` / `institution_as(Role::Student)`.
    ("setGradeNote", &[Teacher]),
    ("listNotifications", &[Student]),
    // adm.rs, adm_read.rs, audit.rs, controls.rs: `operator_scope()`.
    ("listEvents", OPERATORS),
    ("getEvent", OPERATORS),
    ("reprocessEvent", OPERATORS),
    ("listTasks", OPERATORS),
    ("getTask", OPERATORS),
    ("reprocessTask", OPERATORS),
    ("reprocessTasks", OPERATORS),
    ("cancelTask", OPERATORS),
    ("getSummary", OPERATORS),
    ("getAuditTrail", OPERATORS),
    // controls.rs: `adm_only` (a task type is shared by every institution).
    ("listTaskTypes", &[Adm]),
    ("pauseTaskType", &[Adm]),
    ("resumeTaskType", &[Adm]),
    // webhooks.rs: `institution_as(Role::Academic)`.
    ("createWebhook", &[Academic]),
    ("listWebhooks", &[Academic]),
    ("getWebhook", &[Academic]),
    ("replaceWebhook", &[Academic]),
    ("deleteWebhook", &[Academic]),
    ("rotateWebhookSecret", &[Academic]),
    ("listWebhookDeliveries", &[Academic]),
    ("getWebhookDelivery", &[Academic]),
    ("redeliverWebhook", &[Academic]),
    ("testWebhook", &[Academic]),
];

/// The task type of the test's own tasks (the built-in `noop`): `{task_type}` of the
/// pause/resume routes, and the finished and pending task of each institution.
const TASK_TYPE: &str = campus::handlers::noop::TASK_TYPE;

/// A row of an institution that a request can name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Slot {
    Institution,
    Teacher,
    Student,
    Discipline,
    Class,
    Webhook,
    Delivery,
    Event,
    /// A succeeded task (what reprocessing copies).
    FinishedTask,
    /// A task due tomorrow (what cancelling stops).
    PendingTask,
}

/// What fills a path parameter.
enum Param {
    Id(Slot),
    Fixed(&'static str),
}

/// What fills the path parameter `{name}` of `path`: one of an institution's ids, or a fixed
/// value for the parameters that are not tenant ids. An unknown name fails, so a new id
/// parameter cannot be skipped silently.
fn path_param(path: &str, name: &str) -> Param {
    match name {
        "class_id" => Param::Id(Slot::Class),
        "student_id" => Param::Id(Slot::Student),
        "delivery_id" => Param::Id(Slot::Delivery),
        // The audit trail of a user: the student (their enrolments and grades are in it).
        "aggregate_type" => Param::Fixed("User"),
        "aggregate_id" => Param::Id(Slot::Student),
        // Task types are shared by every institution; a real one of this app.
        "task_type" => Param::Fixed(TASK_TYPE),
        // `{id}` is the id of the resource named just before it.
        "id" => {
            let resource = path
                .split("/{id}")
                .next()
                .and_then(|before| before.rsplit('/').next())
                .unwrap_or_default();
            match resource {
                "events" => Param::Id(Slot::Event),
                "tasks" if path.ends_with("/cancel") => Param::Id(Slot::PendingTask),
                "tasks" => Param::Id(Slot::FinishedTask),
                "webhooks" => Param::Id(Slot::Webhook),
                other => panic!(
                    "{path}: {{id}} of an unknown resource {other:?}; say in path_param which id fills it"
                ),
            }
        }
        _ => {
            panic!("{path}: unknown path parameter {{{name}}}; say in path_param which id fills it")
        }
    }
}

/// Which of an institution's ids a uuid query parameter names (`None`: a page cursor, not a
/// row to reach). An unknown uuid parameter fails.
fn query_param(path: &str, name: &str) -> Option<Slot> {
    match name {
        "institution_id" => Some(Slot::Institution),
        "event_id" => Some(Slot::Event),
        "after" | "before" => None,
        _ => panic!(
            "{path}: unknown uuid query parameter {name:?}; say in query_param which id it names"
        ),
    }
}

/// One operation of the spec.
#[derive(Debug)]
struct Operation {
    id: String,
    method: String,
    path: String,
    /// The `{…}` of the path, in order.
    path_params: Vec<String>,
    /// Query parameters of uuid format.
    uuid_queries: Vec<String>,
    /// The required properties of the JSON request body, if it has one.
    body_required: Option<Vec<String>>,
    /// The statuses the spec declares for it.
    declared: BTreeSet<u16>,
    /// Query parameters with a value their schema refuses (below the minimum, outside the
    /// enum, not a uuid or a date-time).
    bad_queries: Vec<(String, String)>,
}

fn operations() -> Vec<Operation> {
    let spec: Value = serde_json::from_str(&campus::api::openapi_json()).unwrap();
    let schema_of = |s: &Value| -> Value {
        match s["$ref"].as_str() {
            Some(r) => {
                spec["components"]["schemas"][r.trim_start_matches("#/components/schemas/")].clone()
            }
            None => s.clone(),
        }
    };
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut uuid_queries = Vec::new();
            let mut bad_queries = Vec::new();
            for p in &params {
                let name = p["name"].as_str().unwrap().to_string();
                if p["in"] == "query" {
                    assert!(
                        p["required"] != true,
                        "{id}: required query parameter {name}; teach this test what to send"
                    );
                    let schema = schema_of(&p["schema"]);
                    if let Some(bad) = refused_value(&schema) {
                        bad_queries.push((name.clone(), bad));
                    }
                    if schema["format"] == "uuid" {
                        uuid_queries.push(name);
                    }
                }
            }
            let declared = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|s| s.parse().unwrap())
                .collect();
            let path_params: Vec<String> = path
                .split('{')
                .skip(1)
                .map(|s| s.split('}').next().unwrap().to_string())
                .collect();
            let body_required = op["requestBody"]["content"].as_object().map(|content| {
                let (_, media) = content.iter().next().expect("a request body media type");
                schema_of(&media["schema"])["required"]
                    .as_array()
                    .map(|r| r.iter().map(|n| n.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default()
            });
            ops.push(Operation {
                id: id.to_string(),
                method: method.to_uppercase(),
                path: path.clone(),
                path_params,
                uuid_queries,
                body_required,
                declared,
                bad_queries,
            });
        }
    }
    ops
}

/// A query value `schema` refuses, if the test knows one.
fn refused_value(schema: &Value) -> Option<String> {
    if let Some(min) = schema["minimum"].as_f64() {
        return Some(format!("{}", min - 1.0));
    }
    if schema["enum"].is_array() {
        return Some("no-such-value".into());
    }
    match schema["format"].as_str() {
        Some("uuid") => Some("not-a-uuid".into()),
        Some("date-time") => Some("yesterday".into()),
        _ if schema["type"] == "integer" || schema["type"] == "boolean" => Some("many".into()),
        _ => None,
    }
}

fn allowed(op: &str) -> &'static [Role] {
    ACCESS
        .iter()
        .find(|(id, _)| *id == op)
        .map(|(_, roles)| *roles)
        .unwrap_or_else(|| panic!("{op} is not in ACCESS: say who may call it"))
}

/// An institution's ids, users and passwords.
struct Tenant {
    ids: BTreeMap<Slot, String>,
    academic: (String, String),
    teacher: (String, String),
    student: (String, String),
}

impl Tenant {
    fn id(&self, slot: Slot) -> &str {
        &self.ids[&slot]
    }
}

/// The ids a request is built with: A's, except the slots in `from_b`, which are B's. Records
/// which slots the request used.
struct Ids<'a> {
    a: &'a Tenant,
    b: &'a Tenant,
    from_b: BTreeSet<Slot>,
    used: RefCell<BTreeSet<Slot>>,
}

impl<'a> Ids<'a> {
    fn new(a: &'a Tenant, b: &'a Tenant, from_b: BTreeSet<Slot>) -> Self {
        Ids {
            a,
            b,
            from_b,
            used: RefCell::default(),
        }
    }

    fn get(&self, slot: Slot) -> String {
        self.used.borrow_mut().insert(slot);
        let tenant = if self.from_b.contains(&slot) {
            self.b
        } else {
            self.a
        };
        tenant.id(slot).to_string()
    }
}

/// A valid body for `op` (one that would succeed, where it can), or `None` for operations
/// without one.
fn sample_body(op: &str, ids: &Ids, receiver: &WebhookReceiver) -> Option<Value> {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let (academic_email, academic_password) = &ids.a.academic;
    Some(match op {
        // A's Academic's address: 409, so the checks of allowed callers create no institution.
        "createInstitution" => json!({"name": "Matrix College",
            "academic": {"name": "Someone", "email": academic_email, "password": "password-1"}}),
        "login" => json!({"email": academic_email, "password": academic_password}),
        "requestPasswordReset" => json!({"email": "nobody@matrix.test"}),
        "resetPassword" => json!({"token": "no-such-token", "password": "new-password-1"}),
        "createTeacher" | "createStudent" => {
            json!({"name": "New Member", "email": format!("member-{unique}@matrix.test")})
        }
        "createDiscipline" => json!({"name": format!("Discipline {unique}")}),
        "createClass" => json!({"discipline_id": ids.get(Slot::Discipline),
            "teacher_id": ids.get(Slot::Teacher), "period": "2026.2"}),
        "enrollStudent" => json!({"student_id": ids.get(Slot::Student)}),
        "setGradeNote" => json!({"exam": "N2", "note": 7.5}),
        "reprocessTasks" => json!({"institution_id": ids.get(Slot::Institution),
            "task_type": TASK_TYPE, "status": "succeeded"}),
        "createWebhook" | "replaceWebhook" => json!({
            "url": receiver.url(&format!("/matrix/{unique}")),
            "event_types": ["DisciplineCreated"],
            "description": "access matrix"}),
        _ => return None,
    })
}

/// A concrete request of `op`.
struct Call {
    method: String,
    path: String,
    body: Option<Value>,
    /// Instead of `body`: bytes sent as they are, with this content type (if any).
    raw: Option<(Option<&'static str>, &'static str)>,
}

fn build(op: &Operation, ids: &Ids, receiver: &WebhookReceiver) -> Call {
    let mut path = op.path.clone();
    for name in &op.path_params {
        let value = match path_param(&op.path, name) {
            Param::Id(slot) => ids.get(slot),
            Param::Fixed(v) => v.to_string(),
        };
        path = path.replace(&format!("{{{name}}}"), &value);
    }
    let body = sample_body(&op.id, ids, receiver);
    match (&op.body_required, &body) {
        (Some(required), Some(body)) => {
            for field in required {
                assert!(
                    body.get(field).is_some(),
                    "{}: the sample body lacks the required {field:?}: {body}",
                    op.id
                );
            }
        }
        (Some(_), None) => panic!("{}: takes a body; add a sample to sample_body", op.id),
        (None, Some(_)) => panic!("{}: takes no body, but sample_body has one", op.id),
        (None, None) => {}
    }
    Call {
        method: op.method.clone(),
        path,
        body,
        raw: None,
    }
}

/// Status and body text of `call` with `token`.
async fn send(app: &TestApp, call: &Call, token: Option<&str>) -> (u16, String) {
    let method = reqwest::Method::from_bytes(call.method.as_bytes()).unwrap();
    let mut req = app
        .http
        .request(method, format!("{}{}", app.base, call.path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some((content_type, bytes)) = call.raw {
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req = req.body(bytes);
    } else if let Some(b) = &call.body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// The start of a response body, for failure messages.
fn excerpt(text: &str) -> &str {
    let end = text.char_indices().nth(300).map_or(text.len(), |(i, _)| i);
    &text[..end]
}

/// Whether `text` is a JSON error `{code, message}`.
fn is_error_body(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .is_ok_and(|v| v["code"].is_string() && v["message"].is_string())
}

/// Tables a request of these tests could write to.
const WATCHED: &[&str] = &[
    "institutions",
    "users",
    "reset_password_tokens",
    "disciplines",
    "classes",
    "enrollments",
    "notifications",
    "domain_events",
    "tasks",
    "task_type_controls",
    "webhook_subscriptions",
    "webhook_attempts",
    "sent_emails",
];

/// A digest of every watched table's rows.
async fn fingerprint(app: &TestApp) -> BTreeMap<&'static str, String> {
    let mut digest = BTreeMap::new();
    for table in WATCHED {
        let sql = format!(
            "SELECT coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '') FROM {table} r"
        );
        digest.insert(*table, app.scalar::<String>(&sql).await);
    }
    digest
}

fn changed(before: &BTreeMap<&str, String>, after: &BTreeMap<&str, String>) -> Vec<String> {
    before
        .iter()
        .filter(|(t, d)| after.get(*t) != Some(*d))
        .map(|(t, _)| t.to_string())
        .collect()
}

/// An institution with an Academic, a teacher and a student (who log in), a discipline, a
/// class of the teacher with the student enrolled and graded, a webhook subscription with a
/// delivery, a finished task and its events.
async fn institution(app: &TestApp, receiver: &WebhookReceiver, name: &'static str) -> Tenant {
    let academic = (format!("academic@{name}.test"), "academic-pass".to_string());
    let (inst, _) = app
        .create_institution(&format!("{name} College"), &academic.0, &academic.1)
        .await;
    // The demo seed records events and users of its own: let it finish first.
    app.wait_for_idle().await;
    let token = app.login(&academic.0, &academic.1).await;
    let created = |r: campus_tests::Reply, what: &str| -> String {
        assert_eq!(r.status, 201, "{name}: create {what}: {r:?}");
        r.body["id"].as_str().unwrap().to_string()
    };
    let hook_path = format!("/{name}/hook");
    let webhook = created(
        app.post(
            "/academic/webhooks",
            Some(&token),
            json!({"url": receiver.url(&hook_path), "event_types": ["DisciplineCreated"]}),
        )
        .await,
        "webhook",
    );
    let teacher = (format!("teacher@{name}.test"), "teacher-pass".to_string());
    let student = (format!("student@{name}.test"), "student-pass".to_string());
    let teacher_id = created(
        app.post(
            "/academic/teachers",
            Some(&token),
            json!({"name": "Teacher", "email": teacher.0}),
        )
        .await,
        "teacher",
    );
    let student_id = created(
        app.post(
            "/academic/students",
            Some(&token),
            json!({"name": "Student", "email": student.0}),
        )
        .await,
        "student",
    );
    let discipline = created(
        app.post(
            "/academic/disciplines",
            Some(&token),
            json!({"name": "Matrix Algebra"}),
        )
        .await,
        "discipline",
    );
    let class = created(
        app.post(
            "/academic/classes",
            Some(&token),
            json!({"discipline_id": discipline, "teacher_id": teacher_id, "period": "2026.1"}),
        )
        .await,
        "class",
    );
    let enrolled = app
        .post(
            &format!("/academic/classes/{class}/students"),
            Some(&token),
            json!({"student_id": student_id}),
        )
        .await;
    assert_eq!(enrolled.status, 204, "{name}: enrol: {enrolled:?}");
    app.set_password_by_email(&teacher.0, &teacher.1).await;
    app.set_password_by_email(&student.0, &student.1).await;
    let teacher_token = app.login(&teacher.0, &teacher.1).await;
    let note = app
        .put(
            &format!("/teacher/classes/{class}/students/{student_id}/notes"),
            &teacher_token,
            json!({"exam": "N1", "note": 8.0}),
        )
        .await;
    assert_eq!(note.status, 204, "{name}: grade note: {note:?}");
    app.store()
        .enqueue(&[task(&inst, None)])
        .await
        .expect("enqueue a task");
    receiver.wait_for(&hook_path, 1).await;
    app.wait_for_idle().await;

    let deliveries = app
        .get(
            &format!("/academic/webhooks/{webhook}/deliveries"),
            Some(&token),
        )
        .await;
    let delivery = deliveries.body["items"][0]["delivery_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: a delivery: {deliveries:?}"))
        .to_string();
    let event: String = app
        .scalar(&format!(
            "SELECT id::text FROM domain_events WHERE event_type = 'DisciplineCreated'
             AND aggregate_id = '{discipline}' AND status = 'dispatched'"
        ))
        .await;
    let finished: String = app
        .scalar(&format!(
            "SELECT id::text FROM tasks WHERE task_type = '{TASK_TYPE}'
             AND institution_id = '{inst}' AND status = 'succeeded'"
        ))
        .await;
    let ids = BTreeMap::from([
        (Slot::Institution, inst),
        (Slot::Teacher, teacher_id),
        (Slot::Student, student_id),
        (Slot::Discipline, discipline),
        (Slot::Class, class),
        (Slot::Webhook, webhook),
        (Slot::Delivery, delivery),
        (Slot::Event, event),
        (Slot::FinishedTask, finished),
    ]);
    Tenant {
        ids,
        academic,
        teacher,
        student,
    }
}

/// A `TASK_TYPE` task of `institution`, due at `run_at` (`None`: now).
fn task(institution: &str, run_at: Option<campus_core::Timestamp>) -> NewTask {
    NewTask {
        task_type: TASK_TYPE.into(),
        payload: "{}".into(),
        institution_id: Some(campus_core::ids::InstitutionId(
            uuid::Uuid::parse_str(institution).unwrap().as_u128(),
        )),
        correlation_id: Some("access-matrix".into()),
        max_attempts: 1,
        idempotency_key: None,
        run_at,
        priority: Default::default(),
    }
}

/// Gives `tenant` a task due tomorrow (after the last wait for idleness: it stays pending).
async fn add_pending_task(app: &TestApp, tenant: &mut Tenant) {
    let tomorrow = campus_core::Timestamp(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
            + 86_400_000,
    );
    let inst = tenant.id(Slot::Institution).to_string();
    app.store()
        .enqueue(&[task(&inst, Some(tomorrow))])
        .await
        .expect("enqueue a pending task");
    let pending: String = app
        .scalar(&format!(
            "SELECT id::text FROM tasks WHERE task_type = '{TASK_TYPE}'
             AND institution_id = '{inst}' AND status = 'pending'"
        ))
        .await;
    tenant.ids.insert(Slot::PendingTask, pending);
}

#[test]
fn the_table_covers_exactly_the_operations_of_the_spec() {
    let ops = operations();
    let in_spec: BTreeSet<&str> = ops.iter().map(|o| o.id.as_str()).collect();
    let in_table: BTreeSet<&str> = ACCESS.iter().map(|(id, _)| *id).collect();
    let missing: Vec<_> = in_spec.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&in_spec).collect();
    assert!(
        missing.is_empty(),
        "operations of the spec missing from ACCESS (say who may call them): {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "ACCESS names operations the spec no longer has: {stale:?}"
    );
    assert_eq!(
        in_table.len(),
        ACCESS.len(),
        "ACCESS names an operation twice"
    );
    for (id, roles) in ACCESS {
        assert!(!roles.is_empty(), "{id}: nobody may call it?");
    }
    // Every parameter of every operation is known (these panic otherwise).
    for op in &ops {
        for name in &op.path_params {
            path_param(&op.path, name);
        }
        for name in &op.uuid_queries {
            query_param(&op.path, name);
        }
    }
}

/// A running app with institutions A and B, A's users' tokens, and what went wrong so far.
struct Matrix {
    app: TestApp,
    receiver: WebhookReceiver,
    a: Tenant,
    b: Tenant,
    tokens: BTreeMap<Role, Option<String>>,
    failures: Vec<String>,
}

impl Matrix {
    async fn start() -> Matrix {
        let receiver = WebhookReceiver::start().await;
        let app = TestApp::spawn_custom(
            |s| {
                s.admin_email = Some("root@matrix.test".into());
                s.admin_password = Some("root-password".into());
                s.webhook_allowed_hosts = "127.0.0.0/8".into();
            },
            |c| c.default_registry(),
        )
        .await;
        let mut a = institution(&app, &receiver, "alpha").await;
        let mut b = institution(&app, &receiver, "beta").await;
        add_pending_task(&app, &mut a).await;
        add_pending_task(&app, &mut b).await;
        let tokens = BTreeMap::from([
            (Anonymous, None),
            (
                Adm,
                Some(app.login("root@matrix.test", "root-password").await),
            ),
            (
                Academic,
                Some(app.login(&a.academic.0, &a.academic.1).await),
            ),
            (Teacher, Some(app.login(&a.teacher.0, &a.teacher.1).await)),
            (Student, Some(app.login(&a.student.0, &a.student.1).await)),
        ]);
        Matrix {
            app,
            receiver,
            a,
            b,
            tokens,
            failures: Vec::new(),
        }
    }

    /// `op` with A's ids, except the `from_b` ones.
    fn call(&self, op: &Operation, from_b: BTreeSet<Slot>) -> Call {
        build(op, &Ids::new(&self.a, &self.b, from_b), &self.receiver)
    }

    /// Sends `call` as A's `role`; returns the status, the body and the tables it wrote to.
    async fn send(&self, call: &Call, role: Role) -> (u16, String, Vec<String>) {
        let before = fingerprint(&self.app).await;
        let (status, body) = send(&self.app, call, self.tokens[&role].as_deref()).await;
        let written = changed(&before, &fingerprint(&self.app).await);
        (status, body, written)
    }

    fn fail(&mut self, op: &Operation, call: &Call, who: String, problem: String) {
        self.failures.push(format!(
            "{} ({} {}) as {who}: {problem}",
            op.id, call.method, call.path
        ));
    }

    /// Every role `op` is not for, with A's ids and a valid body: 401 without a token, 403
    /// with the wrong one, a JSON error, and nothing written. Returns the number of cases.
    async fn refused(&mut self, op: &Operation) -> usize {
        let mut cases = 0;
        for role in ROLES.into_iter().filter(|r| !allowed(&op.id).contains(r)) {
            cases += 1;
            let call = self.call(op, BTreeSet::new());
            let (status, body, written) = self.send(&call, role).await;
            let expected = if role == Anonymous { 401 } else { 403 };
            if status != expected || !is_error_body(&body) || !written.is_empty() {
                let problem = format!(
                    "expected {expected} with {{code, message}}, got {status} {}; wrote to {written:?}",
                    excerpt(&body)
                );
                self.fail(op, &call, format!("{role:?}"), problem);
            }
        }
        cases
    }

    /// `op` as each of A's users it is for, with B's ids in place of A's — each id alone,
    /// then all at once: 403 or 404, a JSON error, none of B's other ids shown, nothing
    /// written. A uuid query filter naming B's row: 200 showing nothing of B. Returns the
    /// number of cases.
    async fn cross_institution(&mut self, op: &Operation) -> usize {
        let roles = allowed(&op.id)
            .iter()
            .copied()
            .filter(|r| matches!(r, Academic | Teacher | Student));
        // Which ids the request carries (path and body).
        let probe = Ids::new(&self.a, &self.b, BTreeSet::new());
        build(op, &probe, &self.receiver);
        let slots = probe.used.into_inner();
        let mut swaps: Vec<BTreeSet<Slot>> = slots.iter().map(|s| BTreeSet::from([*s])).collect();
        if slots.len() > 1 {
            swaps.push(slots);
        }
        let b_ids: Vec<String> = self.b.ids.values().cloned().collect();
        let mut cases = 0;
        for role in roles {
            for swap in &swaps {
                cases += 1;
                let call = self.call(op, swap.clone());
                let sent = format!("{} {:?}", call.path, call.body);
                let (status, body, written) = self.send(&call, role).await;
                let shown: Vec<&String> = b_ids
                    .iter()
                    .filter(|id| body.contains(id.as_str()) && !sent.contains(id.as_str()))
                    .collect();
                if !matches!(status, 403 | 404)
                    || !is_error_body(&body)
                    || !written.is_empty()
                    || !shown.is_empty()
                {
                    let problem = format!(
                        "expected 403/404, got {status} {}; wrote to {written:?}; showed B's {shown:?}",
                        excerpt(&body)
                    );
                    self.fail(
                        op,
                        &call,
                        format!("{role:?} of A with B's {swap:?}"),
                        problem,
                    );
                }
            }
            for name in &op.uuid_queries {
                let Some(slot) = query_param(&op.path, name) else {
                    continue;
                };
                cases += 1;
                let mut call = self.call(op, BTreeSet::new());
                call.path = format!("{}?{name}={}", call.path, self.b.id(slot));
                let (status, body, _) = self.send(&call, role).await;
                let shown: Vec<&String> = b_ids
                    .iter()
                    .filter(|id| body.contains(id.as_str()))
                    .collect();
                if status != 200 || !shown.is_empty() {
                    let problem = format!(
                        "expected 200 showing nothing of B, got {status} {}; showed B's {shown:?}",
                        excerpt(&body)
                    );
                    self.fail(op, &call, format!("{role:?} of A"), problem);
                }
            }
        }
        cases
    }

    /// `op` as a role it is for, with input it must refuse — a malformed path id, a query
    /// value outside its schema, a body that is not JSON, a body without its content type,
    /// every body field of the wrong type: a 4xx the spec declares for `op`, a JSON error,
    /// nothing written. Returns the number of cases.
    async fn bad_input(&mut self, op: &Operation) -> usize {
        let role = allowed(&op.id)[0];
        let good = || self.call(op, BTreeSet::new());
        let mut cases: Vec<(String, Call)> = Vec::new();
        for name in &op.path_params {
            if let Param::Id(_) = path_param(&op.path, name) {
                let mut call = good();
                let at = op
                    .path
                    .split('/')
                    .position(|seg| seg == format!("{{{name}}}"));
                let mut segments: Vec<&str> = call.path.split('/').collect();
                segments[at.unwrap()] = "not-a-uuid";
                call.path = segments.join("/");
                cases.push((format!("{{{name}}} not a uuid"), call));
            }
        }
        for (name, value) in &op.bad_queries {
            let mut call = good();
            call.path = format!("{}?{name}={value}", call.path);
            cases.push((format!("?{name}={value}"), call));
        }
        if op.body_required.is_some() {
            let mut call = good();
            call.raw = Some((Some("application/json"), "{\"unfinished\": "));
            cases.push(("a body that is not JSON".into(), call));
            let mut call = good();
            call.raw = Some((None, "{}"));
            cases.push(("a body without Content-Type".into(), call));
            let mut call = good();
            call.body = call.body.map(|b| wrong_types(&b));
            cases.push(("every body field of the wrong type".into(), call));
        }
        let count = cases.len();
        for (what, call) in cases {
            let (status, body, written) = self.send(&call, role).await;
            if !(400..500).contains(&status)
                || !op.declared.contains(&status)
                || !is_error_body(&body)
                || !written.is_empty()
            {
                let problem = format!(
                    "{what}: expected a declared 4xx ({:?}) with {{code, message}}, got {status} {}; wrote to {written:?}",
                    op.declared,
                    excerpt(&body)
                );
                self.fail(op, &call, format!("{role:?}"), problem);
            }
        }
        count
    }

    /// Every role `op` is for, with A's ids: not refused (401, 403) and no server error.
    /// Returns the number of calls.
    async fn let_through(&mut self, op: &Operation) -> usize {
        for role in allowed(&op.id) {
            let call = self.call(op, BTreeSet::new());
            let (status, body) = send(&self.app, &call, self.tokens[role].as_deref()).await;
            if matches!(status, 401 | 403) || status >= 500 {
                let problem = format!("got {status} {}", excerpt(&body));
                self.fail(op, &call, format!("{role:?}, who may call it"), problem);
            }
        }
        allowed(&op.id).len()
    }
}

#[tokio::test]
async fn every_role_and_institution_is_refused_what_is_not_theirs() {
    let started = Instant::now();
    let ops = operations();
    let mut m = Matrix::start().await;
    let fixtures = started.elapsed();

    // Refusals first, while nothing but the fixtures has written.
    let mut refused = 0;
    for op in &ops {
        refused += m.refused(op).await;
    }
    let mut cross = 0;
    for op in &ops {
        cross += m.cross_institution(op).await;
    }
    let mut bad = 0;
    for op in &ops {
        bad += m.bad_input(op).await;
    }
    // Then the allowed calls, which may change A's rows: deletions last, so the other calls
    // still find theirs.
    let mut let_through = 0;
    let mut ordered: Vec<&Operation> = ops.iter().collect();
    ordered.sort_by_key(|op| op.method == "DELETE");
    for op in ordered {
        let_through += m.let_through(op).await;
    }

    println!(
        "{} operations: {refused} refused (operation, role) cases, {cross} cross-institution \
         cases, {bad} bad-input cases, {let_through} allowed calls; fixtures {fixtures:?}, \
         total {:?}",
        ops.len(),
        started.elapsed()
    );
    assert!(
        m.failures.is_empty(),
        "{} access-matrix failures:\n{}",
        m.failures.len(),
        m.failures.join("\n")
    );
    m.app.stop().await;
}

/// `body` with every field of another JSON type than its own.
fn wrong_types(body: &Value) -> Value {
    let Some(fields) = body.as_object() else {
        return json!(42);
    };
    fields
        .iter()
        .map(|(k, v)| {
            let wrong = match v {
                Value::String(_) => json!(12345),
                Value::Number(_) | Value::Bool(_) => json!("not of this type"),
                Value::Array(_) => json!({"not": "a list"}),
                Value::Object(_) => json!(["not", "an", "object"]),
                Value::Null => json!(false),
            };
            (k.clone(), wrong)
        })
        .collect()
}
