//! The HTTP side of a running Campus (JSON requests, the usual sign-up and log-in steps, the
//! reset flow through the SMTP server), whatever adapters the app runs on.

use crate::{reset_link, token_of, SmtpServer};
use serde_json::{json, Value};

/// The HTTP side of a running Campus and the SMTP server it sends to, whatever adapters it
/// runs on.
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub smtp: SmtpServer,
}

/// A JSON response: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub correlation_id: Option<String>,
}

impl Client {
    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status().as_u16();
        let correlation_id = resp
            .headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            body,
            correlation_id,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        let mut r = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        self.send(r).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(self.http.put(self.url(path)).bearer_auth(token).json(&body))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        self.send(r).await
    }

    /// Creates an institution; returns `(institution_id, academic_user_id)`.
    pub async fn create_institution(
        &self,
        name: &str,
        email: &str,
        password: &str,
    ) -> (String, String) {
        let r = self
            .post("/institutions", None, json!({"name": name, "academic": {"name": "Academic", "email": email, "password": password}}))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        (
            r.body["institution_id"].as_str().unwrap().into(),
            r.body["user_id"].as_str().unwrap().into(),
        )
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .post(
                "/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "login of {email}: {r:?}");
        r.body["access_token"].as_str().unwrap().to_string()
    }

    /// Sets a user's password through the real reset flow (request → e-mail → link).
    pub async fn set_password_by_email(&self, email: &str, password: &str) {
        let before = self.smtp.messages_to(email).len();
        let r = self
            .post("/auth/reset-password-token", None, json!({"email": email}))
            .await;
        assert_eq!(r.status, 202, "{r:?}");
        // Earlier messages carry used tokens; the new one is the only token that works.
        for m in self.smtp.wait_for_messages(email, before + 1).await {
            let r = self
                .post(
                    "/auth/reset-password",
                    None,
                    json!({"token": token_of(&reset_link(&m)), "password": password}),
                )
                .await;
            if r.status == 204 {
                return;
            }
        }
        panic!("no e-mailed token could set the password of {email}");
    }
}
