//! `InstitutionCreated` → demo data for the new institution: teachers, students,
//! disciplines, classes, enrollments and grades. Idempotent: a second run creates nothing.

use super::{context, HandlerDeps};
use crate::engine::{Handler, TaskError, TaskOptions};
use async_trait::async_trait;
use campus_core::academic::{Class, Discipline, Enrollment};
use campus_core::events::EventType;
use campus_core::ids::*;
use campus_core::user::{PasswordHash, User};
use campus_core::values::{Email, Exam, Name, Note, Password, Period, Role};
use campus_core::DomainError;
use campus_ports::payloads::EventPayload;
use campus_ports::{ClaimedTask, DemoData, DemoDataRepository, IdGenerator, PasswordHasher};
use std::sync::Arc;

const TEACHERS: [&str; 3] = ["Ada Lovelace", "Alan Turing", "Grace Hopper"];
const STUDENTS: [&str; 8] = [
    "Ana Souza",
    "Bruno Lima",
    "Carla Dias",
    "Diego Alves",
    "Elisa Rocha",
    "Felipe Costa",
    "Gabi Martins",
    "Heitor Nunes",
];
const DISCIPLINES: [&str; 4] = [
    "Algorithms",
    "Calculus I",
    "Databases",
    "Software Engineering",
];

/// The payload of `InstitutionCreated`, as this handler reads it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct InstitutionCreatedPayload {
    pub institution_id: uuid::Uuid,
    pub name: String,
    pub academic_id: uuid::Uuid,
}

impl EventPayload for InstitutionCreatedPayload {
    const EVENT: EventType = EventType::InstitutionCreated;
}

pub struct SeedDemoData {
    demo: Arc<dyn DemoDataRepository>,
    hasher: Arc<dyn PasswordHasher>,
    ids: Arc<dyn IdGenerator>,
    password: Option<String>,
}

impl SeedDemoData {
    pub fn new(d: &HandlerDeps) -> Self {
        SeedDemoData {
            demo: d.demo.clone(),
            hasher: d.hasher.clone(),
            ids: d.ids.clone(),
            password: d.demo_password.clone(),
        }
    }
}

/// Builds the demo data of an institution (pure: ids and the password hash come in).
pub fn build_demo_data(
    institution: InstitutionId,
    tag: &str,
    password_hash: &PasswordHash,
    mut next_id: impl FnMut() -> u128,
) -> Result<DemoData, DomainError> {
    let mut data = DemoData::default();
    let person = |role: Role, i: usize, name: &str, id: u128| {
        let slug = if role == Role::Teacher {
            "teacher"
        } else {
            "student"
        };
        User::register(
            UserId(id),
            Some(institution),
            role,
            Name::parse("name", name)?,
            Email::parse(&format!("{slug}{}.{tag}@demo.campus.test", i + 1))?,
            password_hash.clone(),
        )
    };
    let teachers = TEACHERS
        .iter()
        .enumerate()
        .map(|(i, n)| person(Role::Teacher, i, n, next_id()))
        .collect::<Result<Vec<_>, _>>()?;
    let students = STUDENTS
        .iter()
        .enumerate()
        .map(|(i, n)| person(Role::Student, i, n, next_id()))
        .collect::<Result<Vec<_>, _>>()?;
    let period = Period::parse("2026.2")?;
    for (d, name) in DISCIPLINES.iter().enumerate() {
        let discipline = Discipline::create(
            DisciplineId(next_id()),
            institution,
            Name::parse("name", name)?,
        );
        let class = Class::create(
            ClassId(next_id()),
            &discipline,
            &teachers[d % teachers.len()],
            period.clone(),
        )?;
        for s in 0..5 {
            let student = &students[(d * 3 + s) % students.len()];
            let mut enrollment = Enrollment::enroll(class.id, institution, student)?;
            // Deterministic grades between 5.0 and 10.0; N2 only for half of them.
            let n1 = 5.0 + ((d * 7 + s * 3) % 11) as f64 / 2.0;
            enrollment.set_note(Exam::N1, Note::parse(n1)?);
            if s % 2 == 0 {
                enrollment.set_note(Exam::N2, Note::parse(10.0 - n1 / 2.0)?);
            }
            data.enrollments.push(enrollment);
        }
        data.disciplines.push(discipline);
        data.classes.push(class);
    }
    data.users.extend(teachers);
    data.users.extend(students);
    Ok(data)
}

#[async_trait]
impl Handler for SeedDemoData {
    const TASK_TYPE: &'static str = "seed_demo_data";
    type Input = InstitutionCreatedPayload;

    fn options(&self) -> TaskOptions {
        // Hundreds of rows nobody waits for; it yields to e-mails and notifications.
        TaskOptions {
            priority: campus_core::engine::Priority::Bulk,
            ..TaskOptions::default()
        }
    }

    async fn handle(&self, p: Self::Input, task: &ClaimedTask) -> Result<(), TaskError> {
        let institution = InstitutionId(p.institution_id.as_u128());
        // Demo users log in only where the operator chose their password; anywhere else a
        // published password would let any student of the institution act as a teacher.
        let hash = match &self.password {
            Some(password) => {
                let password = Password::parse(password).map_err(TaskError::permanent)?;
                self.hasher.hash(&password).await?
            }
            None => PasswordHash::unusable(self.ids.new_id()),
        };
        // The institution id's random tail keeps demo e-mails unique across institutions.
        let tag = &p.institution_id.simple().to_string()[20..];
        let data = build_demo_data(institution, tag, &hash, || self.ids.new_id())
            .map_err(TaskError::permanent)?;
        let created = self
            .demo
            .save_demo_data(institution, task.id, data, &context(task))
            .await?;
        if !created {
            tracing::info!(institution = %p.institution_id, "demo data already present; nothing to do");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_is_consistent() {
        let mut n = 100u128;
        let data = build_demo_data(InstitutionId(1), "abc", &PasswordHash("h".into()), || {
            n += 1;
            n
        })
        .unwrap();
        assert_eq!(data.users.len(), TEACHERS.len() + STUDENTS.len());
        assert_eq!(data.classes.len(), DISCIPLINES.len());
        assert_eq!(data.enrollments.len(), DISCIPLINES.len() * 5);
        assert!(data.enrollments.iter().all(|e| e.note(Exam::N1).is_some()));
        let mut pairs: Vec<_> = data
            .enrollments
            .iter()
            .map(|e| (e.class_id, e.student_id))
            .collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(
            pairs.len(),
            data.enrollments.len(),
            "no student enrolled twice in a class"
        );
    }
}
