//! A real HTTP receiver of webhook deliveries: it records every request (path, headers,
//! body, when) and answers each path from a script (then 204 No Content once the script is
//! used up).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// A scripted answer: status and optional `Retry-After` (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<HashMap<String, VecDeque<Answer>>>,
}

/// The receiver, serving on 127.0.0.1 until dropped.
pub struct WebhookReceiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl WebhookReceiver {
    pub async fn start() -> WebhookReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = poem::listener::TcpAcceptor::from_std(listener).unwrap();
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let endpoint = poem::endpoint::make(move |req: poem::Request| {
            let state = state.clone();
            async move {
                let path = req.uri().path().to_string();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_ascii_lowercase(),
                            v.to_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                let body = req.into_body().into_string().await.unwrap_or_default();
                let answer = state
                    .script
                    .lock()
                    .unwrap()
                    .get_mut(&path)
                    .and_then(VecDeque::pop_front)
                    .unwrap_or(Answer {
                        status: 204,
                        retry_after: None,
                    });
                state.received.lock().unwrap().push(Received {
                    path,
                    headers,
                    body,
                    at: Instant::now(),
                });
                let mut resp = poem::Response::builder()
                    .status(poem::http::StatusCode::from_u16(answer.status).unwrap());
                if let Some(s) = answer.retry_after {
                    resp = resp.header("retry-after", s.to_string());
                }
                resp.body("received")
            }
        });
        let server = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run(endpoint)
                .await;
        });
        WebhookReceiver {
            addr,
            shared,
            server,
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next requests to `path` get these answers, in order.
    pub fn script(&self, path: &str, answers: &[Answer]) {
        self.shared
            .script
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .extend(answers.iter().copied());
    }

    /// The requests to `path` so far.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` got at least `n` requests; returns them.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        crate::eventually(
            &format!("{n} deliveries to {path}"),
            Duration::from_secs(30),
            || async {
                let got = self.received(path);
                (got.len() >= n).then_some(got)
            },
        )
        .await
    }
}
