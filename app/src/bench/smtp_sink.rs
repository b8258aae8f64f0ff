//! An SMTP server inside the bench process that accepts every message and keeps only a count,
//! so the daemon's e-mail handler takes its production path (SMTP over TCP through lettre's
//! connection pool) during the bench, instead of creating one `.eml` file per message in the
//! dev mailbox, whose cost is the file system's rather than Campus's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A running sink; it stops with the bench process.
pub struct SmtpSink {
    pub url: String,
    received: Arc<AtomicUsize>,
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("smtp://{}", listener.local_addr()?);
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = session(stream, &counter).await;
                });
            }
        });
        Ok(SmtpSink { url, received })
    }

    /// Messages accepted so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }
}

/// One SMTP session: every command is accepted; a message ends at a line holding only ".".
async fn session(stream: TcpStream, received: &AtomicUsize) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 campus-bench sink\r\n").await?;
    let mut line = String::new();
    let mut in_data = false;
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if in_data {
            if text == "." {
                in_data = false;
                received.fetch_add(1, Ordering::Relaxed);
                write.write_all(b"250 accepted\r\n").await?;
            }
            continue;
        }
        let verb = text.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 campus-bench\r\n",
            "DATA" => {
                in_data = true;
                b"354 end with <CRLF>.<CRLF>\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"250 OK\r\n",
        };
        write.write_all(reply).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_adapters::mail::SmtpMailer;
    use campus_ports::{Mailer, OutgoingEmail};

    #[tokio::test]
    async fn counts_what_lettre_sends() {
        let sink = SmtpSink::start().await.unwrap();
        let mailer = SmtpMailer::new(&sink.url, "bench@campus.localhost").unwrap();
        for i in 0..3 {
            let email = OutgoingEmail {
                to: "someone@example.org".into(),
                subject: format!("n{i}"),
                text: "body\n.\nstill the body".into(),
                message_id: format!("<{i}@bench>"),
                correlation_id: Some(format!("bench-{i}")),
            };
            mailer.send(&email).await.unwrap();
        }
        assert_eq!(sink.received(), 3);
    }
}
