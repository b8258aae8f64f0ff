//! `ExamGradeNoteAdded` → a notification for the student naming the discipline and class.

use super::{context, HandlerDeps};
use crate::engine::{Handler, TaskError};
use async_trait::async_trait;
use campus_core::events::EventType;
use campus_core::ids::*;
use campus_core::notification::{GradedExam, Notification};
use campus_core::values::Exam;
use campus_ports::payloads::EventPayload;
use campus_ports::{AcademicRepository, ClaimedTask, Clock, IdGenerator, NotificationRepository};
use std::sync::Arc;

/// The payload of `ExamGradeNoteAdded`, as this handler reads it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ExamGradeNoteAddedPayload {
    pub class_id: uuid::Uuid,
    pub student_id: uuid::Uuid,
    pub exam: String,
    pub note: f64,
    pub previous: Option<f64>,
}

impl EventPayload for ExamGradeNoteAddedPayload {
    const EVENT: EventType = EventType::ExamGradeNoteAdded;
}

/// Creates one notification per task lineage.
pub struct NotifyStudentOfGradeNote {
    academic: Arc<dyn AcademicRepository>,
    notifications: Arc<dyn NotificationRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl NotifyStudentOfGradeNote {
    pub fn new(d: &HandlerDeps) -> Self {
        NotifyStudentOfGradeNote {
            academic: d.academic.clone(),
            notifications: d.notifications.clone(),
            clock: d.clock.clone(),
            ids: d.ids.clone(),
        }
    }
}

#[async_trait]
impl Handler for NotifyStudentOfGradeNote {
    const TASK_TYPE: &'static str = "notify_student_of_grade_note";
    type Input = ExamGradeNoteAddedPayload;

    async fn handle(&self, p: Self::Input, task: &ClaimedTask) -> Result<(), TaskError> {
        let institution = task
            .institution_id
            .ok_or_else(|| TaskError::permanent("the task has no institution"))?;
        let exam = Exam::parse(&p.exam).map_err(TaskError::permanent)?;
        let class = self
            .academic
            .find_class(institution, ClassId(p.class_id.as_u128()))
            .await?
            .ok_or_else(|| TaskError::permanent("the class no longer exists"))?;
        let mut notification = Notification::grade_note_added(
            NotificationId(self.ids.new_id()),
            UserId(p.student_id.as_u128()),
            institution,
            GradedExam {
                discipline: &class.discipline_name,
                period: &class.period,
                exam,
                note: p.note,
            },
            self.clock.now(),
        );
        let dedup = format!("task:{:032x}", task.lineage_id.0);
        self.notifications
            .create_once(&mut notification, &dedup, &context(task))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::events::DomainEvent;
    use campus_core::ids::{ClassId, InstitutionId, UserId};
    use campus_core::values::Exam;

    #[test]
    fn the_stored_payload_reads_back_typed() {
        let e = DomainEvent::ExamGradeNoteAdded {
            class_id: ClassId(1),
            student_id: UserId(2),
            institution_id: InstitutionId(3),
            exam: Exam::N3,
            note: 9.5,
            previous: Some(7.0),
        };
        assert_eq!(e.kind(), ExamGradeNoteAddedPayload::EVENT);
        let stored = campus_ports::payloads::event_payload(&e);
        let p: ExamGradeNoteAddedPayload = serde_json::from_value(stored).unwrap();
        assert_eq!(
            p,
            ExamGradeNoteAddedPayload {
                class_id: uuid::Uuid::from_u128(1),
                student_id: uuid::Uuid::from_u128(2),
                exam: "N3".into(),
                note: 9.5,
                previous: Some(7.0),
            }
        );
    }
}
