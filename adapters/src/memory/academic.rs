//! In-memory disciplines, classes, enrollments and grade notes, notifications, demo data and
//! the log of sent e-mails (the rules of `pg::academic` and `pg::demo`).

use super::rows::{NotificationRow, State};
use super::MemoryStore;
use async_trait::async_trait;
use campus_core::academic::{Class, Discipline, Enrollment};
use campus_core::events::RecordsEvents;
use campus_core::ids::*;
use campus_core::notification::Notification;
use campus_core::values::{Exam, Note};
use campus_core::DomainError;
use campus_ports::*;

impl State {
    /// Errors: `Conflict` when the institution already has a discipline with this name.
    fn check_discipline(&self, d: &Discipline, batch: &[Discipline]) -> Result<(), PortError> {
        let same = |o: &Discipline| {
            o.institution_id == d.institution_id && o.name.as_str() == d.name.as_str()
        };
        if self.disciplines.values().any(same) || batch.iter().any(same) {
            return Err(PortError::Conflict(
                "the institution already has a discipline with this name".into(),
            ));
        }
        Ok(())
    }

    /// Errors: `Domain(AlreadyEnrolled)`.
    fn check_enrollment(&self, e: &Enrollment, batch: &[Enrollment]) -> Result<(), PortError> {
        let key = (e.class_id.0, e.student_id.0);
        if self.enrollments.contains_key(&key)
            || batch.iter().any(|o| (o.class_id.0, o.student_id.0) == key)
        {
            return Err(PortError::Domain(DomainError::AlreadyEnrolled));
        }
        Ok(())
    }

    fn class_summary(&self, c: &Class) -> ClassSummary {
        ClassSummary {
            id: c.id,
            institution_id: c.institution_id,
            discipline_id: c.discipline_id,
            discipline_name: self
                .disciplines
                .get(&c.discipline_id.0)
                .map(|d| d.name.as_str().to_string())
                .unwrap_or_default(),
            teacher_id: c.teacher_id,
            teacher_name: self
                .users
                .get(&c.teacher_id.0)
                .map(|u| u.user.name.as_str().to_string())
                .unwrap_or_default(),
            period: c.period.as_str().to_string(),
        }
    }
}

fn limit(page: PageRequest) -> usize {
    usize::try_from(page.limit).unwrap_or(usize::MAX)
}

#[async_trait]
impl AcademicRepository for MemoryStore {
    async fn create_discipline(
        &self,
        discipline: &mut Discipline,
        ctx: &EventContext,
    ) -> Result<(), PortError> {
        let now = self.now();
        let mut s = self.lock();
        s.check_discipline(discipline, &[])?;
        let events = discipline.take_events();
        s.disciplines.insert(discipline.id.0, discipline.clone());
        s.record(events, ctx, now);
        drop(s);
        self.wake();
        Ok(())
    }

    async fn find_discipline(
        &self,
        institution: InstitutionId,
        id: DisciplineId,
    ) -> Result<Option<Discipline>, PortError> {
        Ok(self
            .lock()
            .disciplines
            .get(&id.0)
            .filter(|d| d.institution_id == institution)
            .cloned())
    }

    async fn list_disciplines(
        &self,
        institution: InstitutionId,
        page: PageRequest,
    ) -> Result<Vec<Discipline>, PortError> {
        let from = page.after.map_or(0, |a| a.saturating_add(1));
        Ok(self
            .lock()
            .disciplines
            .range(from..)
            .map(|(_, d)| d)
            .filter(|d| d.institution_id == institution)
            .take(limit(page))
            .cloned()
            .collect())
    }

    async fn create_class(&self, class: &mut Class, ctx: &EventContext) -> Result<(), PortError> {
        let now = self.now();
        let mut s = self.lock();
        let events = class.take_events();
        s.classes.insert(class.id.0, class.clone());
        s.record(events, ctx, now);
        drop(s);
        self.wake();
        Ok(())
    }

    async fn find_class(
        &self,
        institution: InstitutionId,
        id: ClassId,
    ) -> Result<Option<ClassSummary>, PortError> {
        let s = self.lock();
        Ok(s.classes
            .get(&id.0)
            .filter(|c| c.institution_id == institution)
            .map(|c| s.class_summary(c)))
    }

    async fn list_classes(
        &self,
        institution: InstitutionId,
        page: PageRequest,
    ) -> Result<Vec<ClassSummary>, PortError> {
        let s = self.lock();
        let from = page.after.map_or(0, |a| a.saturating_add(1));
        Ok(s.classes
            .range(from..)
            .map(|(_, c)| c)
            .filter(|c| c.institution_id == institution)
            .take(limit(page))
            .map(|c| s.class_summary(c))
            .collect())
    }

    async fn enroll(
        &self,
        enrollment: &mut Enrollment,
        ctx: &EventContext,
    ) -> Result<(), PortError> {
        let now = self.now();
        let mut s = self.lock();
        s.check_enrollment(enrollment, &[])?;
        let events = enrollment.take_events();
        s.enrollments.insert(
            (enrollment.class_id.0, enrollment.student_id.0),
            enrollment.clone(),
        );
        s.record(events, ctx, now);
        drop(s);
        self.wake();
        Ok(())
    }

    async fn set_note(
        &self,
        class: ClassId,
        student: UserId,
        exam: Exam,
        note: Note,
        ctx: &EventContext,
    ) -> Result<Option<bool>, PortError> {
        let now = self.now();
        let mut s = self.lock();
        let Some(stored) = s.enrollments.get(&(class.0, student.0)) else {
            return Ok(None);
        };
        let mut enrollment =
            Enrollment::restore(class, student, stored.institution_id, stored.notes());
        if !enrollment.set_note(exam, note) {
            return Ok(Some(false));
        }
        let events = enrollment.take_events();
        s.enrollments.insert((class.0, student.0), enrollment);
        s.record(events, ctx, now);
        drop(s);
        self.wake();
        Ok(Some(true))
    }
}

#[async_trait]
impl NotificationRepository for MemoryStore {
    async fn create_once(
        &self,
        n: &mut Notification,
        dedup_key: &str,
        ctx: &EventContext,
    ) -> Result<bool, PortError> {
        let now = self.now();
        let mut s = self.lock();
        if !s.notification_keys.insert(dedup_key.to_string()) {
            return Ok(false);
        }
        s.notifications.insert(
            n.id.0,
            NotificationRow {
                id: n.id,
                user_id: n.user_id,
                kind: n.kind.clone(),
                message: n.message.clone(),
                created_at: n.created_at,
                correlation_id: ctx.correlation_id.clone(),
            },
        );
        s.record(n.take_events(), ctx, now);
        drop(s);
        self.wake();
        Ok(true)
    }

    async fn list_for_user(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Vec<NotificationView>, PortError> {
        let s = self.lock();
        let below = page.after.unwrap_or(u128::MAX);
        Ok(s.notifications
            .range(..below)
            .rev()
            .map(|(_, n)| n)
            .filter(|n| n.user_id == user)
            .take(limit(page))
            .map(|n| NotificationView {
                id: n.id,
                kind: n.kind.clone(),
                message: n.message.clone(),
                created_at: n.created_at,
                read_at: None,
                correlation_id: n.correlation_id.clone(),
            })
            .collect())
    }
}

#[async_trait]
impl DemoDataRepository for MemoryStore {
    async fn save_demo_data(
        &self,
        institution: InstitutionId,
        task: TaskId,
        mut data: DemoData,
        ctx: &EventContext,
    ) -> Result<bool, PortError> {
        let now = self.now();
        let mut s = self.lock();
        if s.demo_seeds.contains_key(&institution.0) {
            return Ok(false);
        }
        // Every rule first: the seed is saved whole or not at all.
        s.check_new_users(&data.users.iter().collect::<Vec<_>>())?;
        for (i, d) in data.disciplines.iter().enumerate() {
            s.check_discipline(d, &data.disciplines[..i])?;
        }
        for (i, e) in data.enrollments.iter().enumerate() {
            s.check_enrollment(e, &data.enrollments[..i])?;
        }
        s.demo_seeds.insert(institution.0, task);
        let mut events = Vec::new();
        for u in &mut data.users {
            events.extend(u.take_events());
            s.insert_user(u);
        }
        for d in &mut data.disciplines {
            events.extend(d.take_events());
            s.disciplines.insert(d.id.0, d.clone());
        }
        for c in &mut data.classes {
            events.extend(c.take_events());
            s.classes.insert(c.id.0, c.clone());
        }
        for e in &mut data.enrollments {
            events.extend(e.take_events());
            s.enrollments
                .insert((e.class_id.0, e.student_id.0), e.clone());
        }
        s.record(events, ctx, now);
        drop(s);
        self.wake();
        Ok(true)
    }
}

#[async_trait]
impl SentEmailLog for MemoryStore {
    async fn was_sent(&self, lineage: TaskId) -> Result<bool, PortError> {
        Ok(self.lock().sent_emails.contains_key(&lineage))
    }

    async fn record_sent(
        &self,
        lineage: TaskId,
        message_id: &str,
        recipient: &str,
    ) -> Result<bool, PortError> {
        let now = self.now();
        let mut s = self.lock();
        if s.sent_emails.contains_key(&lineage) {
            return Ok(false);
        }
        s.sent_emails.insert(
            lineage,
            (message_id.to_string(), recipient.to_string(), now),
        );
        Ok(true)
    }
}
