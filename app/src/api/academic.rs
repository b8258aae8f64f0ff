//! Endpoints of Academic, Teacher and Student users, scoped to the caller's institution.

use super::at;
use super::auth::BearerAuth;
use super::page;
use super::public::{example_id, ApiTags, EmailText, NameText, NoContent};
use super::text::Text;
use crate::services::academic::SetNote;
use crate::web::error::ApiError;
use crate::web::State;
use campus_core::ids::*;
use campus_core::notification::Notification;
use campus_core::values::Role;
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

/// A new Teacher or Student of the caller's institution.
#[derive(Object)]
#[oai(example)]
pub struct CreateMemberRequest {
    /// Their name.
    pub name: NameText,
    /// Their e-mail address; no other user may have it (any institution, compared
    /// case-insensitively). Trimmed and lower-cased; one `@`, a non-empty local part, a
    /// dotted domain, at most 254 bytes. They set their password through the reset flow
    /// (`POST /auth/reset-password-token` with this address).
    pub email: EmailText,
}

impl Example for CreateMemberRequest {
    fn example() -> Self {
        CreateMemberRequest {
            name: "Bia Lima".into(),
            email: "bia.lima@example.edu".into(),
        }
    }
}

/// A new discipline of the caller's institution.
#[derive(Object)]
#[oai(example)]
pub struct CreateDisciplineRequest {
    /// Its name, unique in the institution (409 otherwise).
    pub name: NameText,
}

impl Example for CreateDisciplineRequest {
    fn example() -> Self {
        CreateDisciplineRequest {
            name: "Linear Algebra".into(),
        }
    }
}

/// A new class: one of the institution's disciplines, taught by one of its teachers in a
/// period.
#[derive(Object)]
#[oai(example)]
pub struct CreateClassRequest {
    /// A discipline of the caller's institution (404 otherwise).
    pub discipline_id: uuid::Uuid,
    /// A Teacher of the caller's institution (404 otherwise).
    pub teacher_id: uuid::Uuid,
    /// Year, dot, term: `2026.1` or `2026.2` (four ASCII digits, a dot, `1` or `2`; leading
    /// and trailing whitespace is ignored).
    #[oai(validator(
        pattern = r"^[\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[0-9]{4}\.[12][\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    ))]
    pub period: Text,
}

impl Example for CreateClassRequest {
    fn example() -> Self {
        CreateClassRequest {
            discipline_id: example_id("0192f5a3-7d20-7c44-8b52-4e3f9d2c8f10"),
            teacher_id: example_id("0192f5a3-7d20-7c44-8b52-4e3f9d2c8f11"),
            period: "2026.1".into(),
        }
    }
}

/// The student to enroll.
#[derive(Object)]
#[oai(example)]
pub struct EnrollRequest {
    /// A Student of the caller's institution (404 otherwise).
    pub student_id: uuid::Uuid,
}

impl Example for EnrollRequest {
    fn example() -> Self {
        EnrollRequest {
            student_id: example_id("0192f5a3-7d20-7c44-8b52-4e3f9d2c8f12"),
        }
    }
}

/// The id of what was created.
#[derive(Object)]
#[oai(example)]
pub struct IdResponse {
    /// Its id.
    pub id: uuid::Uuid,
}

impl Example for IdResponse {
    fn example() -> Self {
        IdResponse {
            id: example_id("0192f5a3-7d20-7c44-8b52-4e3f9d2c8f13"),
        }
    }
}

#[derive(ApiResponse)]
pub enum Created {
    /// Created.
    #[oai(status = 201)]
    Created(Json<IdResponse>),
}

impl Created {
    fn id(v: u128) -> Self {
        Created::Created(Json(IdResponse {
            id: uuid::Uuid::from_u128(v),
        }))
    }
}

/// A Teacher or Student of the institution.
#[derive(Object)]
pub struct MemberItem {
    /// The user's id.
    pub id: uuid::Uuid,
    /// Their name.
    pub name: String,
    /// Their e-mail address (lower-cased).
    pub email: String,
}

/// A discipline of the institution.
#[derive(Object)]
pub struct DisciplineItem {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its name.
    pub name: String,
}

/// A class of the institution.
#[derive(Object)]
pub struct ClassItem {
    /// Its id.
    pub id: uuid::Uuid,
    /// The discipline taught.
    pub discipline_id: uuid::Uuid,
    /// The discipline's name.
    pub discipline_name: String,
    /// The Teacher who teaches it.
    pub teacher_id: uuid::Uuid,
    /// The Teacher's name.
    pub teacher_name: String,
    /// Year, dot, term, e.g. `2026.1`.
    pub period: String,
}

/// One of the three exams of a class.
#[derive(Enum, Clone, Copy)]
pub enum ExamName {
    /// The first exam.
    N1,
    /// The second exam.
    N2,
    /// The third exam.
    N3,
}

/// A grade note of one exam.
#[derive(Object)]
#[oai(example)]
pub struct SetNoteRequest {
    /// Which exam.
    pub exam: ExamName,
    /// From 0.0 to 10.0 inclusive; kept with two decimals (rounded).
    #[oai(validator(minimum(value = "0"), maximum(value = "10")))]
    pub note: f64,
}

impl Example for SetNoteRequest {
    fn example() -> Self {
        SetNoteRequest {
            exam: ExamName::N1,
            note: 8.5,
        }
    }
}

/// What a notification is about.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A teacher set a grade note of one of the student's exams.
    GradeNoteAdded,
}

impl NotificationKind {
    /// The kind stored as `raw`. Notifications are only made with a kind listed here; an
    /// unknown one is a broken invariant, answered as an error rather than sent unlisted.
    fn parse(raw: &str) -> Result<Self, ApiError> {
        match raw {
            Notification::GRADE_NOTE_ADDED => Ok(NotificationKind::GradeNoteAdded),
            other => {
                tracing::error!(kind = other, "a stored notification has an unknown kind");
                Err(ApiError::unavailable(
                    "a notification has a kind this release does not know",
                ))
            }
        }
    }
}

/// A notification of the student.
#[derive(Object)]
pub struct NotificationItem {
    /// Its id.
    pub id: uuid::Uuid,
    /// What it is about.
    pub kind: NotificationKind,
    /// The text shown to the student, e.g. `New N1 grade in Linear Algebra (2026.1): 8.50`.
    pub message: String,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the student read it; absent while unread.
    pub read_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The correlation id of the request that led to it (e.g. the teacher's grade), to quote
    /// to support: operators find its event and task with it.
    pub correlation_id: Option<String>,
}

fn u(v: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(v)
}

pub struct AcademicApi;

async fn create_member(
    state: &State,
    auth: &BearerAuth,
    req: &Request,
    body: &CreateMemberRequest,
    role: Role,
) -> Result<Created, ApiError> {
    let inst = auth.0.institution_as(Role::Academic)?;
    let id = state
        .accounts
        .create_member(
            inst,
            role,
            body.name.as_str(),
            &body.email,
            &auth.context(req),
        )
        .await?;
    Ok(Created::id(id.0))
}

async fn list_members(
    state: &State,
    auth: &BearerAuth,
    role: Role,
    limit: Option<u32>,
    after: Option<uuid::Uuid>,
) -> Result<Json<Vec<MemberItem>>, ApiError> {
    let inst = auth.0.institution_as(Role::Academic)?;
    let items = state
        .academic
        .list_members(inst, role, page(limit, after))
        .await?;
    Ok(Json(
        items
            .into_iter()
            .map(|m| MemberItem {
                id: u(m.id.0),
                name: m.name,
                email: m.email,
            })
            .collect(),
    ))
}

#[OpenApi(tag = "ApiTags::Academic")]
impl AcademicApi {
    /// Create a teacher (who sets a password through the reset flow)
    ///
    /// For Academic users, in their institution. Records `TeacherCreated`. The teacher has
    /// no usable password until they follow a reset link (`POST /auth/reset-password-token`
    /// with their address). 409 when the e-mail already belongs to a user (of any
    /// institution).
    #[oai(
        path = "/academic/teachers",
        method = "post",
        operation_id = "createTeacher"
    )]
    async fn create_teacher(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        body: Json<CreateMemberRequest>,
    ) -> Result<Created, ApiError> {
        create_member(&state, &auth, req, &body, Role::Teacher).await
    }

    /// Create a student (who sets a password through the reset flow)
    ///
    /// For Academic users, in their institution. Records `StudentCreated`. The student has
    /// no usable password until they follow a reset link (`POST /auth/reset-password-token`
    /// with their address). 409 when the e-mail already belongs to a user (of any
    /// institution).
    #[oai(
        path = "/academic/students",
        method = "post",
        operation_id = "createStudent"
    )]
    async fn create_student(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        body: Json<CreateMemberRequest>,
    ) -> Result<Created, ApiError> {
        create_member(&state, &auth, req, &body, Role::Student).await
    }

    /// Create a discipline
    ///
    /// For Academic users, in their institution. Records `DisciplineCreated`. 409 when the
    /// institution already has a discipline with this name.
    #[oai(
        path = "/academic/disciplines",
        method = "post",
        operation_id = "createDiscipline"
    )]
    async fn create_discipline(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        body: Json<CreateDisciplineRequest>,
    ) -> Result<Created, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let id = state
            .academic
            .create_discipline(inst, body.name.as_str(), &auth.context(req))
            .await?;
        Ok(Created::id(id.0))
    }

    /// Open a class of a discipline, taught by a teacher in a period
    ///
    /// For Academic users, in their institution. Records `ClassCreated`. 404 when the
    /// discipline or the teacher is not the institution's (or the teacher is not a Teacher).
    #[oai(
        path = "/academic/classes",
        method = "post",
        operation_id = "createClass"
    )]
    async fn create_class(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        body: Json<CreateClassRequest>,
    ) -> Result<Created, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let id = state
            .academic
            .create_class(
                inst,
                DisciplineId(body.discipline_id.as_u128()),
                UserId(body.teacher_id.as_u128()),
                &body.period,
                &auth.context(req),
            )
            .await?;
        Ok(Created::id(id.0))
    }

    /// Enroll a student in a class
    ///
    /// For Academic users, in their institution. Records `StudentEnrolled`. 404 when the
    /// class or the student is not the institution's (or the user is not a Student); 409
    /// when the student is already enrolled in the class.
    #[oai(
        path = "/academic/classes/:class_id/students",
        method = "post",
        operation_id = "enrollStudent"
    )]
    async fn enroll(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        /// A class of the caller's institution.
        class_id: Path<uuid::Uuid>,
        body: Json<EnrollRequest>,
    ) -> Result<NoContent, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        state
            .academic
            .enroll(
                inst,
                ClassId(class_id.0.as_u128()),
                UserId(body.student_id.as_u128()),
                &auth.context(req),
            )
            .await?;
        Ok(NoContent::NoContent)
    }

    /// List teachers
    ///
    /// For Academic users: the Teachers of their institution, by id (oldest first), in pages
    /// of `limit` after `after`.
    #[oai(
        path = "/academic/teachers",
        method = "get",
        operation_id = "listTeachers"
    )]
    async fn list_teachers(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// At most this many items (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// Items after this id (the last id of the previous page).
        after: Query<Option<uuid::Uuid>>,
    ) -> Result<Json<Vec<MemberItem>>, ApiError> {
        list_members(&state, &auth, Role::Teacher, limit.0, after.0).await
    }

    /// List students
    ///
    /// For Academic users: the Students of their institution, by id (oldest first), in pages
    /// of `limit` after `after`.
    #[oai(
        path = "/academic/students",
        method = "get",
        operation_id = "listStudents"
    )]
    async fn list_students(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// At most this many items (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// Items after this id (the last id of the previous page).
        after: Query<Option<uuid::Uuid>>,
    ) -> Result<Json<Vec<MemberItem>>, ApiError> {
        list_members(&state, &auth, Role::Student, limit.0, after.0).await
    }

    /// List disciplines
    ///
    /// For Academic users: the disciplines of their institution, by id (oldest first), in
    /// pages of `limit` after `after`.
    #[oai(
        path = "/academic/disciplines",
        method = "get",
        operation_id = "listDisciplines"
    )]
    async fn list_disciplines(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// At most this many items (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// Items after this id (the last id of the previous page).
        after: Query<Option<uuid::Uuid>>,
    ) -> Result<Json<Vec<DisciplineItem>>, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let items = state
            .academic
            .list_disciplines(inst, page(limit.0, after.0))
            .await?;
        Ok(Json(
            items
                .into_iter()
                .map(|d| DisciplineItem {
                    id: u(d.id.0),
                    name: d.name.as_str().to_string(),
                })
                .collect(),
        ))
    }

    /// List classes
    ///
    /// For Academic users: the classes of their institution with their discipline and
    /// teacher, by id (oldest first), in pages of `limit` after `after`.
    #[oai(
        path = "/academic/classes",
        method = "get",
        operation_id = "listClasses"
    )]
    async fn list_classes(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// At most this many items (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// Items after this id (the last id of the previous page).
        after: Query<Option<uuid::Uuid>>,
    ) -> Result<Json<Vec<ClassItem>>, ApiError> {
        let inst = auth.0.institution_as(Role::Academic)?;
        let items = state
            .academic
            .list_classes(inst, page(limit.0, after.0))
            .await?;
        Ok(Json(
            items
                .into_iter()
                .map(|c| ClassItem {
                    id: u(c.id.0),
                    discipline_id: u(c.discipline_id.0),
                    discipline_name: c.discipline_name,
                    teacher_id: u(c.teacher_id.0),
                    teacher_name: c.teacher_name,
                    period: c.period,
                })
                .collect(),
        ))
    }
}

pub struct TeacherApi;

#[OpenApi(tag = "ApiTags::Teacher")]
impl TeacherApi {
    /// Set an exam grade note of a student in one of the teacher's classes
    ///
    /// For Teacher users, in the classes they teach. Records `ExamGradeNoteAdded` only when
    /// the value changes (setting the same note again changes nothing); the student is
    /// notified asynchronously. 404 when the class is not the caller's or the student is not
    /// enrolled in it.
    #[oai(
        path = "/teacher/classes/:class_id/students/:student_id/notes",
        method = "put",
        operation_id = "setGradeNote"
    )]
    async fn set_note(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        /// A class the caller teaches.
        class_id: Path<uuid::Uuid>,
        /// A Student enrolled in the class.
        student_id: Path<uuid::Uuid>,
        body: Json<SetNoteRequest>,
    ) -> Result<NoContent, ApiError> {
        let inst = auth.0.institution_as(Role::Teacher)?;
        let exam = match body.exam {
            ExamName::N1 => "N1",
            ExamName::N2 => "N2",
            ExamName::N3 => "N3",
        };
        state
            .academic
            .set_note(
                auth.0.user_id(),
                inst,
                SetNote {
                    class: ClassId(class_id.0.as_u128()),
                    student: UserId(student_id.0.as_u128()),
                    exam,
                    note: body.note,
                },
                &auth.context(req),
            )
            .await?;
        Ok(NoContent::NoContent)
    }
}

pub struct StudentApi;

#[OpenApi(tag = "ApiTags::Student")]
impl StudentApi {
    /// The student's notifications, newest first
    ///
    /// For Student users: their own notifications (e.g. a new grade note), newest first, in
    /// pages of `limit` older than `before`.
    #[oai(
        path = "/student/notifications",
        method = "get",
        operation_id = "listNotifications"
    )]
    async fn notifications(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// At most this many items (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// Items older than this id (the last id of the previous page).
        before: Query<Option<uuid::Uuid>>,
    ) -> Result<Json<Vec<NotificationItem>>, ApiError> {
        auth.0.institution_as(Role::Student)?;
        let items = state
            .academic
            .notifications_of(auth.0.user_id(), page(limit.0, before.0))
            .await?;
        let items = items
            .into_iter()
            .map(|n| {
                Ok(NotificationItem {
                    id: u(n.id.0),
                    kind: NotificationKind::parse(&n.kind)?,
                    message: n.message,
                    created_at: at(n.created_at),
                    read_at: n.read_at.map(at),
                    correlation_id: n.correlation_id,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(Json(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire;
    use campus_core::values::Exam;
    use poem_openapi::types::{ParseFromJSON, ToJSON};

    #[test]
    fn enums_carry_the_domain_names() {
        let exams = [ExamName::N1, ExamName::N2, ExamName::N3];
        for (ours, theirs) in exams.into_iter().zip(Exam::ALL) {
            assert_eq!(wire(ours), theirs.as_str());
        }
        assert_eq!(
            wire(NotificationKind::GradeNoteAdded),
            Notification::GRADE_NOTE_ADDED
        );
        assert_eq!(
            NotificationKind::parse(Notification::GRADE_NOTE_ADDED).ok(),
            Some(NotificationKind::GradeNoteAdded)
        );
    }

    #[test]
    fn request_examples_are_valid_requests() {
        assert!(
            CreateMemberRequest::parse_from_json(CreateMemberRequest::example().to_json()).is_ok()
        );
        assert!(
            CreateClassRequest::parse_from_json(CreateClassRequest::example().to_json()).is_ok()
        );
        assert!(SetNoteRequest::parse_from_json(SetNoteRequest::example().to_json()).is_ok());
    }
}
