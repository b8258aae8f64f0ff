//! TLS to PostgreSQL: a managed server that requires `sslmode=require` must be reachable
//! through the adapter's pool. Needs the PostgreSQL server of this machine on 127.0.0.1:5432
//! (user postgres, `ssl = on`, Debian's snakeoil certificate).

use campus_adapters::pg;

/// `sslmode=require` encrypts the session (the certificate is not verified, as libpq does for
/// `require`); `pg_stat_ssl` is the server's own word on it.
#[tokio::test]
async fn sslmode_require_gives_an_encrypted_session() {
    let url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=require";
    let pool = pg::connect(url, 1)
        .await
        .expect("connect with sslmode=require (is sqlx built with TLS?)");
    let (ssl, version): (bool, Option<String>) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .expect("read pg_stat_ssl");
    pool.close().await;
    assert!(ssl, "the session is not encrypted");
    assert!(
        version.is_some_and(|v| v.starts_with("TLS")),
        "no TLS protocol version reported"
    );
}

/// The control: `sslmode=disable` gives a clear-text session, so the check above can fail.
#[tokio::test]
async fn sslmode_disable_gives_a_clear_text_session() {
    let url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
    let pool = pg::connect(url, 1).await.expect("connect without TLS");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("read pg_stat_ssl");
    pool.close().await;
    assert!(!ssl, "sslmode=disable still encrypted the session");
}
