//! An unsupported method gets `405` with an `Allow` header naming the methods the path has
//! (RFC 9110 §15.5.6), on the API (from its document) and on the pages outside it; the
//! methods named are really served; the served document is the committed one.

use campus_tests::TestApp;
use reqwest::Method;

#[tokio::test]
async fn an_unsupported_method_gets_405_naming_the_allowed_ones() {
    let app = TestApp::spawn().await;
    let id = "0190c1a2-0000-7000-8000-000000000000";
    let cases = [
        (
            Method::PATCH,
            "/academic/teachers".to_string(),
            "POST, GET, HEAD",
        ),
        (Method::DELETE, "/auth/login".to_string(), "POST"),
        (
            Method::POST,
            format!("/academic/webhooks/{id}"),
            "GET, PUT, DELETE, HEAD",
        ),
        (Method::PUT, "/admin/login".to_string(), "GET, HEAD, POST"),
        (
            Method::DELETE,
            "/reset-password".to_string(),
            "GET, HEAD, POST",
        ),
        (Method::POST, "/openapi.json".to_string(), "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let resp = app
            .http
            .request(method.clone(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(
            resp.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "method_not_allowed", "{method} {path}");
        for named in allow.split(", ") {
            let served = app
                .http
                .request(named.parse().unwrap(), format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            assert_ne!(served.status(), 405, "{named} {path} is named in Allow");
        }
    }

    let served = app.get("/openapi.json", None).await.body;
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../openapi/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        served, committed,
        "/openapi.json serves the committed document"
    );
    app.stop().await;
}
