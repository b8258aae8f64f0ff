//! Disciplines, classes and enrollments (with the exam grade notes a teacher gives).

use crate::error::DomainError;
use crate::events::{DomainEvent, RecordsEvents};
use crate::ids::*;
use crate::user::User;
use crate::values::{Exam, Name, Note, Period, Role};

/// A subject taught at an institution.
#[derive(Debug, Clone)]
pub struct Discipline {
    pub id: DisciplineId,
    pub institution_id: InstitutionId,
    pub name: Name,
    events: Vec<DomainEvent>,
}

impl Discipline {
    pub fn create(id: DisciplineId, institution_id: InstitutionId, name: Name) -> Self {
        let event = DomainEvent::DisciplineCreated {
            discipline_id: id,
            institution_id,
            name: name.as_str().to_string(),
        };
        Discipline {
            id,
            institution_id,
            name,
            events: vec![event],
        }
    }

    pub fn restore(id: DisciplineId, institution_id: InstitutionId, name: Name) -> Self {
        Discipline {
            id,
            institution_id,
            name,
            events: Vec::new(),
        }
    }
}

/// A discipline taught by one teacher during one period.
#[derive(Debug, Clone)]
pub struct Class {
    pub id: ClassId,
    pub institution_id: InstitutionId,
    pub discipline_id: DisciplineId,
    pub teacher_id: crate::ids::UserId,
    pub period: Period,
    events: Vec<DomainEvent>,
}

impl Class {
    /// Opens a class; the teacher must be a Teacher of the discipline's institution.
    pub fn create(
        id: ClassId,
        discipline: &Discipline,
        teacher: &User,
        period: Period,
    ) -> Result<Self, DomainError> {
        teacher.ensure_role(Role::Teacher)?;
        if teacher.institution_id != Some(discipline.institution_id) {
            return Err(DomainError::OtherInstitution);
        }
        let event = DomainEvent::ClassCreated {
            class_id: id,
            institution_id: discipline.institution_id,
            discipline_id: discipline.id,
            teacher_id: teacher.id,
            period: period.as_str().to_string(),
        };
        Ok(Class {
            id,
            institution_id: discipline.institution_id,
            discipline_id: discipline.id,
            teacher_id: teacher.id,
            period,
            events: vec![event],
        })
    }
}

/// A student's place in a class, holding up to three exam notes.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub class_id: ClassId,
    pub student_id: UserId,
    pub institution_id: InstitutionId,
    notes: [Option<Note>; 3],
    events: Vec<DomainEvent>,
}

impl Enrollment {
    /// Enrolls a Student in class `class_id` of institution `institution_id`; the student
    /// must belong to that institution.
    pub fn enroll(
        class_id: ClassId,
        institution_id: InstitutionId,
        student: &User,
    ) -> Result<Self, DomainError> {
        student.ensure_role(Role::Student)?;
        if student.institution_id != Some(institution_id) {
            return Err(DomainError::OtherInstitution);
        }
        let event = DomainEvent::StudentEnrolled {
            class_id,
            student_id: student.id,
            institution_id,
        };
        Ok(Enrollment {
            class_id,
            student_id: student.id,
            institution_id,
            notes: [None; 3],
            events: vec![event],
        })
    }

    /// Rebuilds a stored enrollment.
    pub fn restore(
        class_id: ClassId,
        student_id: UserId,
        institution_id: InstitutionId,
        notes: [Option<Note>; 3],
    ) -> Self {
        Enrollment {
            class_id,
            student_id,
            institution_id,
            notes,
            events: Vec::new(),
        }
    }

    pub fn note(&self, exam: Exam) -> Option<Note> {
        self.notes[exam.index()]
    }

    pub fn notes(&self) -> [Option<Note>; 3] {
        self.notes
    }

    /// Sets the note of `exam`. Records `ExamGradeNoteAdded` only when the value changes;
    /// returns whether it did.
    pub fn set_note(&mut self, exam: Exam, note: Note) -> bool {
        let previous = self.notes[exam.index()];
        if previous == Some(note) {
            return false;
        }
        self.notes[exam.index()] = Some(note);
        self.events.push(DomainEvent::ExamGradeNoteAdded {
            class_id: self.class_id,
            student_id: self.student_id,
            institution_id: self.institution_id,
            exam,
            note: note.value(),
            previous: previous.map(Note::value),
        });
        true
    }
}

macro_rules! records_events {
    ($($t:ty),*) => {$(
        impl RecordsEvents for $t {
            fn take_events(&mut self) -> Vec<DomainEvent> {
                std::mem::take(&mut self.events)
            }
        }
    )*};
}
records_events!(Discipline, Class, Enrollment);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::PasswordHash;
    use crate::values::Email;
    use proptest::prelude::*;

    fn person(id: u128, role: Role, inst: u128) -> User {
        User::register(
            UserId(id),
            Some(InstitutionId(inst)),
            role,
            Name::parse("name", "P").unwrap(),
            Email::parse(&format!("p{id}@x.org")).unwrap(),
            PasswordHash("h".into()),
        )
        .unwrap()
    }

    fn enrollment() -> Enrollment {
        let d = Discipline::create(
            DisciplineId(1),
            InstitutionId(1),
            Name::parse("name", "Algebra").unwrap(),
        );
        let c = Class::create(
            ClassId(1),
            &d,
            &person(2, Role::Teacher, 1),
            Period::parse("2026.1").unwrap(),
        )
        .unwrap();
        let mut e =
            Enrollment::enroll(c.id, c.institution_id, &person(3, Role::Student, 1)).unwrap();
        assert_eq!(e.take_events().len(), 1);
        e
    }

    #[test]
    fn class_needs_a_teacher_of_the_same_institution() {
        let d = Discipline::create(
            DisciplineId(1),
            InstitutionId(1),
            Name::parse("name", "Algebra").unwrap(),
        );
        let p = Period::parse("2026.1").unwrap();
        assert!(Class::create(ClassId(1), &d, &person(2, Role::Student, 1), p.clone()).is_err());
        assert_eq!(
            Class::create(ClassId(1), &d, &person(2, Role::Teacher, 9), p).unwrap_err(),
            DomainError::OtherInstitution
        );
    }

    #[test]
    fn only_students_of_the_institution_enroll() {
        let d = Discipline::create(
            DisciplineId(1),
            InstitutionId(1),
            Name::parse("name", "Algebra").unwrap(),
        );
        let c = Class::create(
            ClassId(1),
            &d,
            &person(2, Role::Teacher, 1),
            Period::parse("2026.1").unwrap(),
        )
        .unwrap();
        assert!(Enrollment::enroll(c.id, c.institution_id, &person(3, Role::Teacher, 1)).is_err());
        assert!(Enrollment::enroll(c.id, c.institution_id, &person(3, Role::Student, 2)).is_err());
    }

    #[test]
    fn changing_a_note_records_previous_value() {
        let mut e = enrollment();
        assert!(e.set_note(Exam::N1, Note::parse(7.0).unwrap()));
        assert!(e.set_note(Exam::N1, Note::parse(8.0).unwrap()));
        let events = e.take_events();
        assert!(
            matches!(events[1], DomainEvent::ExamGradeNoteAdded { previous: Some(p), note, .. } if p == 7.0 && note == 8.0)
        );
    }

    proptest! {
        /// An event is recorded exactly when a note really changes.
        #[test]
        fn events_only_on_real_changes(ops in proptest::collection::vec((0usize..3, 0u8..=20), 0..40)) {
            let mut e = enrollment();
            let mut model: [Option<f64>; 3] = [None; 3];
            let mut expected = 0;
            for (exam, half_points) in ops {
                let value = f64::from(half_points) / 2.0;
                let changed = e.set_note(Exam::ALL[exam], Note::parse(value).unwrap());
                prop_assert_eq!(changed, model[exam] != Some(value));
                if changed { expected += 1; }
                model[exam] = Some(value);
            }
            let events = e.take_events();
            prop_assert_eq!(events.len(), expected);
            prop_assert!(events.iter().all(|ev| ev.event_type() == "ExamGradeNoteAdded"));
        }
    }
}
