//! E-mail: SMTP through lettre on tokio, or a dev mailbox directory of `.eml` files. Every
//! message carries the correlation id of the task that sent it as `X-Correlation-Id`.

use async_trait::async_trait;
use campus_core::engine::valid_correlation_id;
use campus_ports::{Mailer, OutgoingEmail, PortError};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::{Path, PathBuf};

/// The header naming the correlation id of the request behind a message.
const CORRELATION_HEADER: HeaderName = HeaderName::new_from_ascii_str("X-Correlation-Id");

fn build(from: &Mailbox, email: &OutgoingEmail) -> Result<Message, PortError> {
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|e| PortError::Conflict(format!("invalid recipient address: {e}")))?;
    let mut message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(email.message_id.clone()))
        .header(ContentType::TEXT_PLAIN);
    // Only a well-formed id (letters, digits, `-_.:`, at most 64): nothing a stored value
    // holds can fold or inject a header, and lettre encodes the value besides. A task
    // enqueued with another kind of id sends its e-mail without the header.
    match email.correlation_id.as_deref() {
        Some(id) if valid_correlation_id(id) => {
            message = message.raw_header(HeaderValue::new(CORRELATION_HEADER, id.to_string()));
        }
        Some(id) => tracing::debug!(
            correlation_id = id,
            "correlation id left out of the e-mail: not header-safe"
        ),
        None => {}
    }
    message
        .body(eight_bit(&email.text)?)
        .map_err(|e| PortError::Conflict(format!("cannot build e-mail: {e}")))
}

/// The text as an 8bit body, so links stay on one line and readable in the raw message
/// (lettre would pick quoted-printable for lines over 76 characters, which splits links with
/// `=`). RFC 5322 allows 8bit lines up to 998 characters; longer text is refused.
fn eight_bit(text: &str) -> Result<Body, PortError> {
    if text.lines().any(|l| l.len() > 998) {
        return Err(PortError::Conflict(
            "e-mail lines must be at most 998 characters".into(),
        ));
    }
    let crlf = text.lines().collect::<Vec<_>>().join("\r\n");
    Ok(Body::dangerous_pre_encoded(
        crlf.into_bytes(),
        ContentTransferEncoding::EightBit,
    ))
}

fn parse_from(from: &str) -> Result<Mailbox, String> {
    from.parse()
        .map_err(|e| format!("invalid sender address {from:?}: {e}"))
}

/// Sends through an SMTP server given as a lettre URL (`smtp://host:port`, `smtps://…`).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// Errors with a readable message when the URL or the sender is malformed.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("invalid SMTP_URL: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        Ok(SmtpMailer {
            transport,
            from: parse_from(from)?,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), PortError> {
        let message = build(&self.from, email)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(PortError::Conflict(format!(
                "SMTP server refused the message: {e}"
            ))),
            Err(e) => Err(PortError::Unavailable(format!("SMTP: {e}"))),
        }
    }
}

/// Writes every e-mail as an `.eml` file into a directory a person can open.
pub struct DevMailbox {
    transport: AsyncFileTransport<Tokio1Executor>,
    dir: PathBuf,
    from: Mailbox,
}

impl DevMailbox {
    /// Creates the directory if needed.
    pub fn new(dir: &Path, from: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create mailbox {}: {e}", dir.display()))?;
        Ok(DevMailbox {
            transport: AsyncFileTransport::new(dir),
            dir: dir.to_path_buf(),
            from: parse_from(from)?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for DevMailbox {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), PortError> {
        let message = build(&self.from, email)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| PortError::Unavailable(format!("dev mailbox: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dev_mailbox_writes_a_readable_file() {
        let dir = std::env::temp_dir().join(format!("campus-mailbox-{}", uuid::Uuid::new_v4()));
        let mailbox = DevMailbox::new(&dir, "Campus <no-reply@campus.localhost>").unwrap();
        let email = OutgoingEmail {
            to: "ana@example.org".into(),
            subject: "Hello".into(),
            text: "Body line".into(),
            message_id: "<m1@campus.localhost>".into(),
            correlation_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
        };
        mailbox.send(&email).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1);
        let content = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(content.contains("To: ana@example.org"), "{content}");
        assert!(
            content.contains("Message-ID: <m1@campus.localhost>"),
            "{content}"
        );
        assert!(content.contains("Body line"));
        assert!(
            content.contains("X-Correlation-Id: 0af7651916cd43dd8448eb211c80319c\r\n"),
            "{content}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_a_header_safe_correlation_id_becomes_a_header() {
        let from = parse_from("Campus <no-reply@campus.localhost>").unwrap();
        let email = |correlation_id: Option<&str>| OutgoingEmail {
            to: "ana@example.org".into(),
            subject: "s".into(),
            text: "t".into(),
            message_id: "<x@y>".into(),
            correlation_id: correlation_id.map(str::to_string),
        };
        let raw =
            |e: &OutgoingEmail| String::from_utf8(build(&from, e).unwrap().formatted()).unwrap();
        let with = raw(&email(Some("req-1_a.b:c")));
        assert!(
            with.contains("\r\nX-Correlation-Id: req-1_a.b:c\r\n"),
            "{with}"
        );
        for id in [
            None,
            Some("evil\r\nBcc: victim@example.org"),
            Some("has space"),
        ] {
            let without = raw(&email(id));
            assert!(!without.contains("X-Correlation-Id"), "{id:?}: {without}");
            assert!(!without.contains("Bcc"), "{id:?}: {without}");
        }
    }

    #[tokio::test]
    async fn bad_recipient_is_a_permanent_error() {
        let dir = std::env::temp_dir().join(format!("campus-mailbox-{}", uuid::Uuid::new_v4()));
        let mailbox = DevMailbox::new(&dir, "no-reply@campus.localhost").unwrap();
        let email = OutgoingEmail {
            to: "not an address".into(),
            subject: "s".into(),
            text: "t".into(),
            message_id: "<x@y>".into(),
            correlation_id: None,
        };
        assert!(matches!(
            mailbox.send(&email).await,
            Err(PortError::Conflict(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
