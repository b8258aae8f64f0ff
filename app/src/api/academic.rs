//! Endpoints of Academic, Teacher and Student users, scoped to the caller's institution.

use super::at;
use super::auth::BearerAuth;
use super::page;
use super::public::{ApiTags, NoContent};
use crate::services::academic::SetNote;
use crate::web::error::ApiError;
use crate::web::State;
use campus_core::ids::*;
use campus_core::values::Role;
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

#[derive(Object)]
pub struct CreateMemberRequest {
    pub name: String,
    pub email: String,
}

#[derive(Object)]
pub struct CreateDisciplineRequest {
    pub name: String,
}

#[derive(Object)]
pub struct CreateClassRequest {
    pub discipline_id: uuid::Uuid,
    pub teacher_id: uuid::Uuid,
    /// Year, dot, term: `2026.1` or `2026.2`.
    pub period: String,
}

#[derive(Object)]
pub struct EnrollRequest {
    pub student_id: uuid::Uuid,
}

#[derive(Object)]
pub struct IdResponse {
    pub id: uuid::Uuid,
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

#[derive(Object)]
pub struct MemberItem {
    pub id: uuid::Uuid,
    pub name: String,
    pub email: String,
}

#[derive(Object)]
pub struct DisciplineItem {
    pub id: uuid::Uuid,
    pub name: String,
}

#[derive(Object)]
pub struct ClassItem {
    pub id: uuid::Uuid,
    pub discipline_id: uuid::Uuid,
    pub discipline_name: String,
    pub teacher_id: uuid::Uuid,
    pub teacher_name: String,
    pub period: String,
}

#[derive(Enum, Clone, Copy)]
pub enum ExamName {
    N1,
    N2,
    N3,
}

#[derive(Object)]
pub struct SetNoteRequest {
    pub exam: ExamName,
    /// From 0.0 to 10.0.
    pub note: f64,
}

#[derive(Object)]
pub struct NotificationItem {
    pub id: uuid::Uuid,
    pub kind: String,
    pub message: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
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
        .create_member(inst, role, &body.name, &body.email, &auth.context(req))
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
            .create_discipline(inst, &body.name, &auth.context(req))
            .await?;
        Ok(Created::id(id.0))
    }

    /// Open a class of a discipline, taught by a teacher in a period
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
        limit: Query<Option<u32>>,
        /// Items after this id (the last id of the previous page).
        after: Query<Option<uuid::Uuid>>,
    ) -> Result<Json<Vec<MemberItem>>, ApiError> {
        list_members(&state, &auth, Role::Teacher, limit.0, after.0).await
    }

    /// List students
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
        limit: Query<Option<u32>>,
        /// Items after this id (the last id of the previous page).
        after: Query<Option<uuid::Uuid>>,
    ) -> Result<Json<Vec<MemberItem>>, ApiError> {
        list_members(&state, &auth, Role::Student, limit.0, after.0).await
    }

    /// List disciplines
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
    /// Records `ExamGradeNoteAdded` only when the value changes; the student is notified
    /// asynchronously. 404 when the class is not the caller's or the student is not enrolled.
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
        class_id: Path<uuid::Uuid>,
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
        limit: Query<Option<u32>>,
        /// Items older than this id (the last id of the previous page).
        before: Query<Option<uuid::Uuid>>,
    ) -> Result<Json<Vec<NotificationItem>>, ApiError> {
        auth.0.institution_as(Role::Student)?;
        let items = state
            .academic
            .notifications_of(auth.0.user_id(), page(limit.0, before.0))
            .await?;
        Ok(Json(
            items
                .into_iter()
                .map(|n| NotificationItem {
                    id: u(n.id.0),
                    kind: n.kind,
                    message: n.message,
                    created_at: at(n.created_at),
                    read_at: n.read_at.map(at),
                    correlation_id: n.correlation_id,
                })
                .collect(),
        ))
    }
}
