//! Academic use cases: members, disciplines, classes, enrollments, grade notes, and the
//! notifications a student reads.

use super::AppError;
use campus_core::academic::{Class, Discipline, Enrollment};
use campus_core::ids::*;
use campus_core::values::{Exam, Name, Note, Period, Role};
use campus_core::DomainError;
use campus_ports::{
    AcademicRepository, ClassSummary, EventContext, IdGenerator, NotificationRepository,
    NotificationView, PageRequest, PortError, UserRepository, UserSummary,
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
        // The write is conditional on the note read (see `save_notes`); a concurrent change
        // of the same exam makes it read again and decide anew.
        let mut attempts = 0;
        loop {
            let mut enrollment = self
                .academic
                .find_enrollment(class.id, student)
                .await?
                .ok_or(AppError::NotFound("enrollment"))?;
            if !enrollment.set_note(exam, note) {
                return Ok(false);
            }
            match self.academic.save_notes(&mut enrollment, ctx).await {
                Err(PortError::Conflict(_)) if attempts < 3 => attempts += 1,
                other => return other.map(|()| true).map_err(AppError::from),
            }
        }
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
        academic.expect_find_enrollment().returning(|c, s| {
            let n = Note::parse(7.5).unwrap();
            Ok(Some(Enrollment::restore(
                c,
                s,
                InstitutionId(1),
                [Some(n), None, None],
            )))
        });
        academic.expect_save_notes().never();
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
            .expect_find_enrollment()
            .returning(|c, s| Ok(Some(Enrollment::restore(c, s, InstitutionId(1), [None; 3]))));
        academic.expect_save_notes().times(1).returning(|e, _| {
            use campus_core::events::RecordsEvents;
            assert_eq!(e.take_events()[0].event_type(), "ExamGradeNoteAdded");
            Ok(())
        });
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
        academic.expect_find_enrollment().never();
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
