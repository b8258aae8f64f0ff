//! Disciplines, classes, enrollments and grade notes.

use super::{db_err, is_unique_violation, PgStore};
use crate::dto::uuid;
use async_trait::async_trait;
use campus_core::academic::{Class, Discipline, Enrollment};
use campus_core::events::RecordsEvents;
use campus_core::ids::*;
use campus_core::values::{Exam, Name, Note};
use campus_core::DomainError;
use campus_ports::{AcademicRepository, ClassSummary, EventContext, PageRequest, PortError};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

const CLASS_SELECT: &str = "SELECT c.id, c.institution_id, c.discipline_id, d.name AS discipline_name,
        c.teacher_id, u.name AS teacher_name, c.period
    FROM classes c JOIN disciplines d ON d.id = c.discipline_id JOIN users u ON u.id = c.teacher_id";

fn id(row: &PgRow, col: &str) -> u128 {
    row.get::<uuid::Uuid, _>(col).as_u128()
}

fn class_from_row(r: &PgRow) -> ClassSummary {
    ClassSummary {
        id: ClassId(id(r, "id")),
        institution_id: InstitutionId(id(r, "institution_id")),
        discipline_id: DisciplineId(id(r, "discipline_id")),
        discipline_name: r.get("discipline_name"),
        teacher_id: UserId(id(r, "teacher_id")),
        teacher_name: r.get("teacher_name"),
        period: r.get("period"),
    }
}

fn discipline_from_row(r: &PgRow) -> Result<Discipline, PortError> {
    let name: String = r.get("name");
    Ok(Discipline::restore(
        DisciplineId(id(r, "id")),
        InstitutionId(id(r, "institution_id")),
        Name::parse("name", &name)
            .map_err(|_| PortError::Unavailable("stored discipline has an invalid name".into()))?,
    ))
}

pub(crate) async fn insert_discipline(
    tx: &mut Transaction<'_, Postgres>,
    d: &Discipline,
) -> Result<(), PortError> {
    sqlx::query("INSERT INTO disciplines (id, institution_id, name) VALUES ($1, $2, $3)")
        .bind(uuid(d.id.0))
        .bind(uuid(d.institution_id.0))
        .bind(d.name.as_str())
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e, "disciplines_institution_id_name_key") {
                PortError::Conflict(
                    "the institution already has a discipline with this name".into(),
                )
            } else {
                db_err(e)
            }
        })?;
    Ok(())
}

pub(crate) async fn insert_class(
    tx: &mut Transaction<'_, Postgres>,
    c: &Class,
) -> Result<(), PortError> {
    sqlx::query("INSERT INTO classes (id, institution_id, discipline_id, teacher_id, period) VALUES ($1, $2, $3, $4, $5)")
        .bind(uuid(c.id.0))
        .bind(uuid(c.institution_id.0))
        .bind(uuid(c.discipline_id.0))
        .bind(uuid(c.teacher_id.0))
        .bind(c.period.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn insert_enrollment(
    tx: &mut Transaction<'_, Postgres>,
    e: &Enrollment,
) -> Result<(), PortError> {
    let [n1, n2, n3] = e.notes().map(|n| n.map(Note::value));
    sqlx::query(
        "INSERT INTO enrollments (class_id, student_id, institution_id, n1, n2, n3) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid(e.class_id.0))
    .bind(uuid(e.student_id.0))
    .bind(uuid(e.institution_id.0))
    .bind(n1)
    .bind(n2)
    .bind(n3)
    .execute(&mut **tx)
    .await
    .map_err(|err| {
        if is_unique_violation(&err, "enrollments_pkey") {
            PortError::Domain(DomainError::AlreadyEnrolled)
        } else {
            db_err(err)
        }
    })?;
    Ok(())
}

#[async_trait]
impl AcademicRepository for PgStore {
    async fn create_discipline(
        &self,
        discipline: &mut Discipline,
        ctx: &EventContext,
    ) -> Result<(), PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        insert_discipline(&mut tx, discipline).await?;
        self.commit_with_events(tx, discipline.take_events(), ctx)
            .await
    }

    async fn find_discipline(
        &self,
        institution: InstitutionId,
        id: DisciplineId,
    ) -> Result<Option<Discipline>, PortError> {
        let row = sqlx::query("SELECT id, institution_id, name FROM disciplines WHERE id = $1 AND institution_id = $2")
            .bind(uuid(id.0))
            .bind(uuid(institution.0))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(discipline_from_row).transpose()
    }

    async fn list_disciplines(
        &self,
        institution: InstitutionId,
        page: PageRequest,
    ) -> Result<Vec<Discipline>, PortError> {
        let rows = sqlx::query(
            "SELECT id, institution_id, name FROM disciplines
             WHERE institution_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(uuid(institution.0))
        .bind(page.after.map(uuid))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(discipline_from_row).collect()
    }

    async fn create_class(&self, class: &mut Class, ctx: &EventContext) -> Result<(), PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        insert_class(&mut tx, class).await?;
        self.commit_with_events(tx, class.take_events(), ctx).await
    }

    async fn find_class(
        &self,
        institution: InstitutionId,
        id: ClassId,
    ) -> Result<Option<ClassSummary>, PortError> {
        let row = sqlx::query(&format!(
            "{CLASS_SELECT} WHERE c.id = $1 AND c.institution_id = $2"
        ))
        .bind(uuid(id.0))
        .bind(uuid(institution.0))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.as_ref().map(class_from_row))
    }

    async fn list_classes(
        &self,
        institution: InstitutionId,
        page: PageRequest,
    ) -> Result<Vec<ClassSummary>, PortError> {
        let rows = sqlx::query(&format!(
            "{CLASS_SELECT} WHERE c.institution_id = $1 AND ($2::uuid IS NULL OR c.id > $2) ORDER BY c.id LIMIT $3"
        ))
        .bind(uuid(institution.0))
        .bind(page.after.map(uuid))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.iter().map(class_from_row).collect())
    }

    async fn enroll(
        &self,
        enrollment: &mut Enrollment,
        ctx: &EventContext,
    ) -> Result<(), PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        insert_enrollment(&mut tx, enrollment).await?;
        self.commit_with_events(tx, enrollment.take_events(), ctx)
            .await
    }

    async fn set_note(
        &self,
        class: ClassId,
        student: UserId,
        exam: Exam,
        note: Note,
        ctx: &EventContext,
    ) -> Result<Option<bool>, PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let row = sqlx::query(
            "SELECT institution_id, n1, n2, n3 FROM enrollments
             WHERE class_id = $1 AND student_id = $2 FOR UPDATE",
        )
        .bind(uuid(class.0))
        .bind(uuid(student.0))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(r) = row else { return Ok(None) };
        let stored = |col: &str| {
            r.get::<Option<f64>, _>(col)
                .and_then(|v| Note::parse(v).ok())
        };
        let mut enrollment = Enrollment::restore(
            class,
            student,
            InstitutionId(id(&r, "institution_id")),
            [stored("n1"), stored("n2"), stored("n3")],
        );
        if !enrollment.set_note(exam, note) {
            return Ok(Some(false));
        }
        let column = ["n1", "n2", "n3"][exam.index()];
        sqlx::query(&format!(
            "UPDATE enrollments SET {column} = $3 WHERE class_id = $1 AND student_id = $2"
        ))
        .bind(uuid(class.0))
        .bind(uuid(student.0))
        .bind(note.value())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit_with_events(tx, enrollment.take_events(), ctx)
            .await?;
        Ok(Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::testing::{drop_database, fresh_database};
    use crate::pg::Notifier;

    /// Many requests grade the three exams of one student at once: they take turns on the
    /// row, no note is reverted, and each event's `previous` is the note it replaced.
    #[tokio::test]
    async fn concurrent_notes_take_turns_and_none_is_lost() {
        let (url, pool) = fresh_database("campus_adapter_test").await.unwrap();
        let store = PgStore::new(pool.clone(), Notifier::disabled());
        let [inst, teacher, student, discipline, class] =
            [1u128, 2, 3, 4, 5].map(uuid::Uuid::from_u128);
        for sql in [
            "INSERT INTO institutions (id, name) VALUES ($1, 'U')",
            "INSERT INTO users (id, institution_id, role, name, email, password_hash) VALUES ($2, $1, 'teacher', 'T', 't@x.org', 'h')",
            "INSERT INTO users (id, institution_id, role, name, email, password_hash) VALUES ($3, $1, 'student', 'S', 's@x.org', 'h')",
            "INSERT INTO disciplines (id, institution_id, name) VALUES ($4, $1, 'D')",
            "INSERT INTO classes (id, institution_id, discipline_id, teacher_id, period) VALUES ($5, $1, $4, $2, '2026.1')",
            "INSERT INTO enrollments (class_id, student_id, institution_id) VALUES ($5, $3, $1)",
        ] {
            sqlx::query(sql)
                .bind(inst)
                .bind(teacher)
                .bind(student)
                .bind(discipline)
                .bind(class)
                .execute(&pool)
                .await
                .unwrap();
        }
        let (class, student) = (ClassId(5), UserId(3));
        let ctx = EventContext::default();
        let writes = (0..30).map(|i| {
            let (store, ctx) = (store.clone(), ctx.clone());
            let exam = Exam::ALL[i % 3];
            let note = Note::parse(1.0 + (i / 3) as f64 / 2.0).unwrap();
            tokio::spawn(async move { store.set_note(class, student, exam, note, &ctx).await })
        });
        for w in writes.collect::<Vec<_>>() {
            assert_eq!(w.await.unwrap().unwrap(), Some(true));
        }
        let notes: (f64, f64, f64) =
            sqlx::query_as("SELECT n1, n2, n3 FROM enrollments WHERE class_id = $1")
                .bind(uuid(5))
                .fetch_one(&pool)
                .await
                .unwrap();
        // The writes of one exam may land in any order, but every exam has a note, and the
        // events of each exam chain: each `previous` is the note of the event before it.
        let chains: Vec<(String, Option<f64>, f64)> = sqlx::query_as(
            "SELECT payload->>'exam', (payload->>'previous')::float8, (payload->>'note')::float8
             FROM domain_events WHERE event_type = 'ExamGradeNoteAdded' ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(chains.len(), 30);
        for (n, exam) in [(notes.0, "N1"), (notes.1, "N2"), (notes.2, "N3")] {
            let chain: Vec<_> = chains.iter().filter(|c| c.0 == exam).collect();
            assert_eq!(chain[0].1, None, "{exam} starts empty");
            for pair in chain.windows(2) {
                assert_eq!(
                    pair[1].1,
                    Some(pair[0].2),
                    "{exam}: previous is the last note"
                );
            }
            assert_eq!(
                chain.last().unwrap().2,
                n,
                "{exam} holds its last event's note"
            );
        }
        pool.close().await;
        drop_database(&url).await.unwrap();
    }
}
