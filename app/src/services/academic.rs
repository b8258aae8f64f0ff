//! Academic use cases: members, disciplines, classes, enrollments, grade notes, and the
//! notifications a student reads.

use super::AppError;
use campus_core::academic::{Class, Discipline, Enrollment};
use campus_core::ids::*;
use campus_core::values::{Exam, Name, Note, Period, Role};
use campus_core::DomainError;
use campus_ports::{
    AcademicRepository, ClassSummary, EventContext, IdGenerator, NotificationRepository,
    NotificationView, PageRequest, UserRepository, UserSummary,
};
use std::sync::Arc;

/// Command: set the note of one exam of one student of a class.
#[derive(Debug, Clone, Copy)]
pub struct SetNote<'a> {
    pub class: ClassId,
    pub student: UserId,
    pub exam: &'a str,
    pub note: f64,
}

/// Academic use cases, all scoped to one institution.
#[derive(Clone)]
pub struct AcademicService {
    pub users: Arc<dyn UserRepository>,
    pub academic: Arc<dyn AcademicRepository>,
    pub notifications: Arc<dyn NotificationRepository>,
    pub ids: Arc<dyn IdGenerator>,
}

impl AcademicService {
    pub async fn create_discipline(
        &self,
        institution: InstitutionId,
        name: &str,
        ctx: &EventContext,
    ) -> Result<DisciplineId, AppError> {
        let mut d = Discipline::create(
            DisciplineId(self.ids.new_id()),
            institution,
            Name::parse("name", name)?,
        );
        self.academic.create_discipline(&mut d, ctx).await?;
        Ok(d.id)
    }

    /// Opens a class of one of the institution's disciplines, taught by one of its teachers.
    pub async fn create_class(
        &self,
        institution: InstitutionId,
        discipline: DisciplineId,
        teacher: UserId,
        period: &str,
        ctx: &EventContext,
    ) -> Result<ClassId, AppError> {
        let period = Period::parse(period)?;
        let discipline = self
            .academic
            .find_discipline(institution, discipline)
            .await?
            .ok_or(AppError::NotFound("discipline"))?;
        let teacher = self
            .users
            .find_user(teacher)
            .await?
            .filter(|u| u.institution_id == Some(institution) && u.role == Role::Teacher)
            .ok_or(AppError::NotFound("teacher"))?;
        let mut class = Class::create(ClassId(self.ids.new_id()), &discipline, &teacher, period)?;
        self.academic.create_class(&mut class, ctx).await?;
        Ok(class.id)
    }

    /// Enrolls one of the institution's students in one of its classes.
    pub async fn enroll(
        &self,
        institution: InstitutionId,
        class: ClassId,
        student: UserId,
        ctx: &EventContext,
    ) -> Result<(), AppError> {
        let class = self
            .academic
            .find_class(institution, class)
            .await?
            .ok_or(AppError::NotFound("class"))?;
        let student = self
            .users
            .find_user(student)
            .await?
            .filter(|u| u.institution_id == Some(institution) && u.role == Role::Student)
            .ok_or(AppError::NotFound("student"))?;
        let mut enrollment = Enrollment::enroll(class.id, class.institution_id, &student)?;
        match self.academic.enroll(&mut enrollment, ctx).await {
            Err(campus_ports::PortError::Domain(DomainError::AlreadyEnrolled)) => Err(
                AppError::Conflict("the student is already enrolled in this class".into()),
            ),
            other => Ok(other?),
        }
    }

    /// A teacher sets an exam note of a student of one of their classes. Records
    /// `ExamGradeNoteAdded` only when the value changes. Returns whether it changed.
    pub async fn set_note(
        &self,
        teacher: UserId,
        institution: InstitutionId,
        command: SetNote<'_>,
        ctx: &EventContext,
    ) -> Result<bool, AppError> {
        let SetNote {
            class,
            student,
            exam,
            note,
        } = command;
        let exam = Exam::parse(exam)?;
        let note = Note::parse(note)?;
        let class = self
            .academic
            .find_class(institution, class)
            .await?
            .filter(|c| c.teacher_id == teacher)
            .ok_or(AppError::NotFound("class"))?;
        self.academic
            .set_note(class.id, student, exam, note, ctx)
            .await?
            .ok_or(AppError::NotFound("enrollment"))
    }

    pub async fn list_members(
        &self,
        institution: InstitutionId,
        role: Role,
        page: PageRequest,
    ) -> Result<Vec<UserSummary>, AppError> {
        Ok(self.users.list_users(institution, role, page).await?)
    }

    pub async fn list_disciplines(
        &self,
        institution: InstitutionId,
        page: PageRequest,
    ) -> Result<Vec<Discipline>, AppError> {
        Ok(self.academic.list_disciplines(institution, page).await?)
    }

    pub async fn list_classes(
        &self,
        institution: InstitutionId,
        page: PageRequest,
    ) -> Result<Vec<ClassSummary>, AppError> {
        Ok(self.academic.list_classes(institution, page).await?)
    }

    pub async fn notifications_of(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Vec<NotificationView>, AppError> {
        Ok(self.notifications.list_for_user(user, page).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_ports::{
        MockAcademicRepository, MockIdGenerator, MockNotificationRepository, MockUserRepository,
    };

    fn class(teacher: u128) -> ClassSummary {
        ClassSummary {
            id: ClassId(5),
            institution_id: InstitutionId(1),
            discipline_id: DisciplineId(2),
            discipline_name: "Algebra".into(),
            teacher_id: UserId(teacher),
            teacher_name: "T".into(),
            period: "2026.1".into(),
        }
    }

    fn service(academic: MockAcademicRepository) -> AcademicService {
        AcademicService {
            users: Arc::new(MockUserRepository::new()),
            academic: Arc::new(academic),
            notifications: Arc::new(MockNotificationRepository::new()),
            ids: Arc::new(MockIdGenerator::new()),
        }
    }

    #[tokio::test]
    async fn same_note_twice_saves_nothing() {
        let mut academic = MockAcademicRepository::new();
        academic
            .expect_find_class()
            .returning(|_, _| Ok(Some(class(3))));
        academic
            .expect_set_note()
            .withf(|_, _, exam, note, _| *exam == Exam::N1 && note.value() == 7.5)
            .times(1)
            .returning(|_, _, _, _, _| Ok(Some(false)));
        let s = service(academic);
        let changed = s
            .set_note(
                UserId(3),
                InstitutionId(1),
                SetNote {
                    class: ClassId(5),
                    student: UserId(8),
                    exam: "N1",
                    note: 7.5,
                },
                &EventContext::default(),
            )
            .await
            .unwrap();
        assert!(!changed);
    }

    #[tokio::test]
    async fn a_new_note_is_saved_with_its_event() {
        let mut academic = MockAcademicRepository::new();
        academic
            .expect_find_class()
            .returning(|_, _| Ok(Some(class(3))));
        academic
            .expect_set_note()
            .withf(|class, student, exam, note, _| {
                *class == ClassId(5)
                    && *student == UserId(8)
                    && *exam == Exam::N2
                    && note.value() == 9.0
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(Some(true)));
        let s = service(academic);
        assert!(s
            .set_note(
                UserId(3),
                InstitutionId(1),
                SetNote {
                    class: ClassId(5),
                    student: UserId(8),
                    exam: "N2",
                    note: 9.0
                },
                &EventContext::default()
            )
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn another_teachers_class_is_not_found() {
        let mut academic = MockAcademicRepository::new();
        academic
            .expect_find_class()
            .returning(|_, _| Ok(Some(class(99))));
        academic.expect_set_note().never();
        let s = service(academic);
        let err = s
            .set_note(
                UserId(3),
                InstitutionId(1),
                SetNote {
                    class: ClassId(5),
                    student: UserId(8),
                    exam: "N1",
                    note: 5.0,
                },
                &EventContext::default(),
            )
            .await;
        assert!(matches!(err, Err(AppError::NotFound("class"))));
    }

    #[tokio::test]
    async fn notes_out_of_range_are_rejected_before_any_lookup() {
        let mut academic = MockAcademicRepository::new();
        academic.expect_find_class().never();
        let s = service(academic);
        let err = s
            .set_note(
                UserId(3),
                InstitutionId(1),
                SetNote {
                    class: ClassId(5),
                    student: UserId(8),
                    exam: "N1",
                    note: 10.5,
                },
                &EventContext::default(),
            )
            .await;
        assert!(matches!(err, Err(AppError::Invalid(_))));
    }
}
