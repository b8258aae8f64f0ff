//! Notifications shown to a user (e.g. a student learning of a new grade).

use crate::events::{DomainEvent, RecordsEvents};
use crate::ids::*;
use crate::time::Timestamp;
use crate::values::Exam;

/// The exam a grade notification is about.
#[derive(Debug, Clone, Copy)]
pub struct GradedExam<'a> {
    pub discipline: &'a str,
    pub period: &'a str,
    pub exam: Exam,
    pub note: f64,
}

/// A message for one user. `kind` is a stable machine-readable category.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: NotificationId,
    pub user_id: UserId,
    pub institution_id: InstitutionId,
    pub kind: String,
    pub message: String,
    pub created_at: Timestamp,
    events: Vec<DomainEvent>,
}

impl Notification {
    /// Kind of the notification sent when a grade note is added.
    pub const GRADE_NOTE_ADDED: &'static str = "grade_note_added";

    /// Tells a student that a note of an exam in a discipline (class period) was added.
    pub fn grade_note_added(
        id: NotificationId,
        student_id: UserId,
        institution_id: InstitutionId,
        graded: GradedExam<'_>,
        now: Timestamp,
    ) -> Self {
        let GradedExam {
            discipline,
            period,
            exam,
            note,
        } = graded;
        let message = format!(
            "New {} grade in {discipline} ({period}): {note:.2}",
            exam.as_str()
        );
        let kind = Self::GRADE_NOTE_ADDED.to_string();
        let event = DomainEvent::NotificationCreated {
            notification_id: id,
            user_id: student_id,
            institution_id,
            kind: kind.clone(),
        };
        Notification {
            id,
            user_id: student_id,
            institution_id,
            kind,
            message,
            created_at: now,
            events: vec![event],
        }
    }
}

impl Notification {
    /// Kind of the notification sent when Campus disables a webhook subscription.
    pub const WEBHOOK_DISABLED: &'static str = "webhook_disabled";

    /// Tells an Academic user that a subscription of their institution was disabled.
    pub fn webhook_disabled(
        id: NotificationId,
        user_id: UserId,
        institution_id: InstitutionId,
        url: &str,
        why: &str,
        now: Timestamp,
    ) -> Self {
        let kind = Self::WEBHOOK_DISABLED.to_string();
        let event = DomainEvent::NotificationCreated {
            notification_id: id,
            user_id,
            institution_id,
            kind: kind.clone(),
        };
        Notification {
            id,
            user_id,
            institution_id,
            kind,
            message: format!("The webhook subscription to {url} was disabled: {why}. Enable it again once its receiver works."),
            created_at: now,
            events: vec![event],
        }
    }
}

impl RecordsEvents for Notification {
    fn take_events(&mut self) -> Vec<DomainEvent> {
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grade_notification_names_discipline_and_exam() {
        let mut n = Notification::grade_note_added(
            NotificationId(1),
            UserId(2),
            InstitutionId(3),
            GradedExam {
                discipline: "Algebra",
                period: "2026.1",
                exam: Exam::N2,
                note: 8.5,
            },
            Timestamp(0),
        );
        assert_eq!(n.message, "New N2 grade in Algebra (2026.1): 8.50");
        assert_eq!(n.take_events()[0].event_type(), "NotificationCreated");
    }
}
