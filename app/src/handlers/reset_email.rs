//! `ResetPasswordTokenCreated` → e-mail the reset link to the user.

use super::HandlerDeps;
use crate::engine::{Handler, TaskError, TaskOptions};
use async_trait::async_trait;
use campus_core::events::EventType;
use campus_core::events::SealedSecret;
use campus_core::ids::UserId;
use campus_ports::payloads::EventPayload;
use campus_ports::{
    ClaimedTask, Clock, Mailer, OutgoingEmail, SentEmailLog, TokenVault, UserRepository,
};
use std::sync::Arc;

/// The payload of `ResetPasswordTokenCreated`, as this handler reads it. `sealed_token` is the
/// token encrypted with the server key: the database alone never reveals a usable token.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ResetPasswordTokenCreatedPayload {
    pub token_id: uuid::Uuid,
    pub user_id: uuid::Uuid,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub sealed_token: String,
}

impl EventPayload for ResetPasswordTokenCreatedPayload {
    const EVENT: EventType = EventType::ResetPasswordTokenCreated;
}

/// Sends the reset link once per task lineage (a stable Message-ID marks resends).
pub struct SendResetPasswordEmail {
    users: Arc<dyn UserRepository>,
    sent: Arc<dyn SentEmailLog>,
    mailer: Arc<dyn Mailer>,
    vault: Arc<dyn TokenVault>,
    clock: Arc<dyn Clock>,
    public_url: String,
}

impl SendResetPasswordEmail {
    pub fn new(d: &HandlerDeps) -> Self {
        SendResetPasswordEmail {
            users: d.users.clone(),
            sent: d.sent_emails.clone(),
            mailer: d.mailer.clone(),
            vault: d.vault.clone(),
            clock: d.clock.clone(),
            public_url: d.public_url.clone(),
        }
    }
}

#[async_trait]
impl Handler for SendResetPasswordEmail {
    const TASK_TYPE: &'static str = "send_reset_password_email";
    type Input = ResetPasswordTokenCreatedPayload;

    fn options(&self) -> TaskOptions {
        // Someone waits for the e-mail on the reset page.
        TaskOptions {
            priority: campus_core::engine::Priority::Interactive,
            ..TaskOptions::default()
        }
    }

    async fn handle(&self, p: Self::Input, task: &ClaimedTask) -> Result<(), TaskError> {
        if self.sent.was_sent(task.lineage_id).await? {
            return Ok(());
        }
        if p.expires_at.timestamp_millis() <= self.clock.now().0 {
            return Err(TaskError::permanent(
                "the token expired before the e-mail could be sent",
            ));
        }
        let user = self
            .users
            .find_user(UserId(p.user_id.as_u128()))
            .await?
            .ok_or_else(|| TaskError::permanent("the user no longer exists"))?;
        let token = self.vault.unseal(&SealedSecret(p.sealed_token))?;
        let link = format!("{}/reset-password?token={token}", self.public_url);
        let email = OutgoingEmail {
            to: user.email.as_str().to_string(),
            subject: "Reset your Campus password".into(),
            text: format!(
                "Hello {},\n\nSomeone asked to reset the password of your Campus account.\n\
                 To choose a new password, open this link (valid until {} UTC, usable once):\n\n{link}\n\n\
                 If you did not ask for this, ignore this e-mail.\n",
                user.name.as_str(),
                p.expires_at.format("%Y-%m-%d %H:%M"),
            ),
            message_id: format!("<reset-{:032x}@campus>", task.lineage_id.0),
            // The request that asked for the link, followed into the message's headers.
            correlation_id: task.correlation_id.clone(),
        };
        self.mailer.send(&email).await?;
        self.sent
            .record_sent(task.lineage_id, &email.message_id, &email.to)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::typed::Typed;
    use crate::engine::TaskHandler;
    use campus_core::ids::*;
    use campus_core::user::{PasswordHash, User};
    use campus_core::values::{Email, Name, Role};
    use campus_core::Timestamp;
    use campus_ports::*;

    fn task(expires_ms: i64) -> ClaimedTask {
        let p = ResetPasswordTokenCreatedPayload {
            token_id: uuid::Uuid::from_u128(1),
            user_id: uuid::Uuid::from_u128(2),
            expires_at: chrono::DateTime::from_timestamp_millis(expires_ms).unwrap(),
            sealed_token: "SEALED".into(),
        };
        ClaimedTask {
            id: TaskId(10),
            task_type: SendResetPasswordEmail::TASK_TYPE.into(),
            payload: serde_json::to_string(&p).unwrap(),
            institution_id: None,
            event_id: None,
            correlation_id: Some("req-reset-1".into()),
            lineage_id: TaskId(10),
            attempt: 1,
            max_attempts: 5,
            created_at: Timestamp(0),
        }
    }

    fn ana(id: UserId) -> User {
        User::restore(
            id,
            None,
            Role::Adm,
            Name::parse("n", "Ana").unwrap(),
            Email::parse("ana@x.org").unwrap(),
            PasswordHash("h".into()),
        )
    }

    fn handler(
        users: MockUserRepository,
        sent: MockSentEmailLog,
        mailer: MockMailer,
    ) -> Typed<SendResetPasswordEmail> {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(Timestamp(1_000));
        let mut vault = MockTokenVault::new();
        vault
            .expect_unseal()
            .returning(|_| Ok("PLAIN-TOKEN".into()));
        Typed(SendResetPasswordEmail {
            users: Arc::new(users),
            sent: Arc::new(sent),
            mailer: Arc::new(mailer),
            vault: Arc::new(vault),
            clock: Arc::new(clock),
            public_url: "http://campus.test".into(),
        })
    }

    #[tokio::test]
    async fn sends_the_link_once_and_records_it() {
        let mut users = MockUserRepository::new();
        users.expect_find_user().returning(|id| Ok(Some(ana(id))));
        let mut sent = MockSentEmailLog::new();
        sent.expect_was_sent().returning(|_| Ok(false));
        sent.expect_record_sent()
            .times(1)
            .returning(|_, _, _| Ok(true));
        let mut mailer = MockMailer::new();
        mailer
            .expect_send()
            .withf(|e| {
                e.to == "ana@x.org"
                    && e.text
                        .contains("http://campus.test/reset-password?token=PLAIN-TOKEN")
                    && e.correlation_id.as_deref() == Some("req-reset-1")
            })
            .times(1)
            .returning(|_| Ok(()));
        handler(users, sent, mailer)
            .run(&task(60_000))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_already_sent_lineage_sends_nothing() {
        let mut sent = MockSentEmailLog::new();
        sent.expect_was_sent().returning(|_| Ok(true));
        let mut mailer = MockMailer::new();
        mailer.expect_send().never();
        handler(MockUserRepository::new(), sent, mailer)
            .run(&task(60_000))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn smtp_down_is_retried_and_expired_tokens_are_permanent() {
        let mut users = MockUserRepository::new();
        users.expect_find_user().returning(|id| Ok(Some(ana(id))));
        let mut sent = MockSentEmailLog::new();
        sent.expect_was_sent().returning(|_| Ok(false));
        let mut mailer = MockMailer::new();
        mailer
            .expect_send()
            .returning(|_| Err(PortError::Unavailable("connection refused".into())));
        let h = handler(users, sent, mailer);
        assert!(!h.run(&task(60_000)).await.unwrap_err().permanent);
        assert!(h.run(&task(500)).await.unwrap_err().permanent);
    }
}
