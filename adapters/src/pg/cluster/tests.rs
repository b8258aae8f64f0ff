//! Tests of the private cluster on scratch clusters made from this machine's server binaries:
//! a new cluster, and an old `trust` cluster upgraded in place. They need root (or a user
//! who may run initdb) and the PostgreSQL server binaries. Also the order in which a start
//! without configuration tries the local server (its socket first).

use super::connect::{close, ensure_database, has_sqlstate, redact_url};
use super::embedded::{prepare_directories, server_options, start_embedded};
use super::passwords::ClusterPasswords;
use super::process::{run_checked, RunAs, ServerTools};
use super::provision::{app_url, cluster_options};
use super::{local_server_urls, LOCAL_SERVER_URL, LOCAL_SOCKET_DIRS};
use super::{DatabaseError, EMBEDDED_CONNECT_TIMEOUT, INVALID_PASSWORD, POSTGRES_USER};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A free TCP port on 127.0.0.1 for a scratch cluster.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port()
}

/// A scratch data directory whose cluster is stopped (immediately) and whose files are
/// removed when the test ends, pass or fail.
struct ScratchCluster {
    data_dir: PathBuf,
    tools: ServerTools,
}

impl ScratchCluster {
    fn new(prefix: &str) -> ScratchCluster {
        let tools = ServerTools::find().expect(
            "these tests need the PostgreSQL server binaries (initdb, pg_ctl) of this machine",
        );
        let data_dir =
            std::env::temp_dir().join(format!("{prefix}_{}", uuid::Uuid::new_v4().simple()));
        ScratchCluster { data_dir, tools }
    }

    fn pgdata(&self) -> PathBuf {
        self.data_dir.join("pgdata")
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        let args = [
            OsString::from("-D"),
            self.pgdata().into_os_string(),
            OsString::from("-m"),
            OsString::from("immediate"),
            OsString::from("stop"),
        ];
        let _ = RunAs::detect().command(&self.tools.pg_ctl, &args).output();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Options for `user` on the scratch cluster at `port`, without a password.
fn passwordless(port: u16, user: &str, database: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username(user)
        .database(database)
}

/// Asserts that the server refuses `user` without a password (SQLSTATE 28P01 or 28000).
async fn assert_refused_without_password(port: u16, user: &str, database: &str) {
    match PgConnection::connect_with(&passwordless(port, user, database)).await {
        Ok(connection) => {
            close(connection).await;
            panic!("{user} connected to {database} without a password");
        }
        Err(error) => assert!(
            has_sqlstate(&error, INVALID_PASSWORD) || has_sqlstate(&error, "28000"),
            "{user} without a password: expected an authentication failure, got {error}"
        ),
    }
}

/// Checks what the app's URL gives: a role that is not superuser, owns the database and
/// every table in it, and can run the migrations; and a banner that hides the password.
async fn assert_app_role_is_least_privileged(url: &str) -> PgConnection {
    assert!(
        !redact_url(url).contains(&password_of(url)),
        "the banner would show the password"
    );
    let mut connection = PgConnection::connect(url)
        .await
        .expect("connect as the app");
    let (user, superuser, owner): (String, bool, String) = sqlx::query_as(
        "SELECT current_user::text, r.rolsuper, pg_get_userbyid(d.datdba)::text
         FROM pg_roles r, pg_database d
         WHERE r.rolname = current_user AND d.datname = current_database()",
    )
    .fetch_one(&mut connection)
    .await
    .expect("read the role and the database owner");
    assert_eq!(user, "campus", "the app does not connect as its own role");
    assert!(!superuser, "the app's role is a superuser");
    assert_eq!(owner, "campus", "the app's role does not own the database");
    let foreign: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relowner <> current_user::regrole",
    )
    .fetch_all(&mut connection)
    .await
    .expect("list the tables");
    assert!(
        foreign.is_empty(),
        "tables not owned by the app: {foreign:?}"
    );
    connection
}

/// Asserts that the superuser's password in the password file opens the cluster, and that
/// neither password appears in the server log.
async fn assert_passwords_kept_private(data_dir: &Path, port: u16) {
    let passwords = ClusterPasswords::read(&data_dir.join("pgpass"))
        .expect("read the password file")
        .expect("the password file exists");
    let superuser = cluster_options(port, POSTGRES_USER, "postgres").password(&passwords.superuser);
    let connection = PgConnection::connect_with(&superuser)
        .await
        .expect("the superuser's password in the file opens the cluster");
    close(connection).await;
    let log = std::fs::read_to_string(data_dir.join("postgres.log")).expect("read the log");
    assert!(!log.is_empty(), "the server log is empty");
    assert!(
        !log.contains(&passwords.superuser) && !log.contains(&passwords.app),
        "a password is in the server log"
    );
}

/// The password in the user info of `url`.
fn password_of(url: &str) -> String {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user_info, _)| user_info.split_once(':'))
        .map(|(_, password)| password.to_string())
        .filter(|password| !password.is_empty())
        .expect("the app's URL carries a password")
}

/// A new private cluster: scram-sha-256 for everyone, a password file only its owner can
/// read, and the app connecting as `campus`, which owns its database and is no superuser.
#[tokio::test]
async fn a_new_private_cluster_needs_passwords_and_serves_a_non_superuser() {
    let scratch = ScratchCluster::new("campus_pgtest_new");
    let port = free_port();
    let resolved = start_embedded(&scratch.data_dir, port)
        .await
        .expect("start the private cluster");

    let pgpass = scratch.data_dir.join("pgpass");
    let mode = std::fs::metadata(&pgpass)
        .expect("the password file exists")
        .permissions();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600, "the password file is not 0600");
    }
    let password = password_of(&resolved.url);
    let contents = std::fs::read_to_string(&pgpass).expect("read the password file");
    assert!(
        contents.contains(&format!(":campus:{password}")),
        "the password file does not hold the app's password"
    );

    assert_refused_without_password(port, "campus", "campus").await;
    assert_refused_without_password(port, "postgres", "postgres").await;
    let mut connection = assert_app_role_is_least_privileged(&resolved.url).await;
    // Its data directory's path is short and plain: the app goes through the socket there.
    let server_address: Option<String> = sqlx::query_scalar("SELECT inet_server_addr()::text")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(server_address, None, "the app reaches the cluster over TCP");
    close(connection).await;

    let pool = crate::pg::connect(&resolved.url, 2)
        .await
        .expect("pool as the app");
    crate::pg::migrate(&pool)
        .await
        .expect("the migrations run as the app's role");
    pool.close().await;
    let connection = assert_app_role_is_least_privileged(&resolved.url).await;
    close(connection).await;

    // `campus bench` makes and drops scratch databases on the cluster it resolves.
    let (scratch_url, scratch_pool) =
        crate::pg::testing::fresh_database_on(&resolved.url, "campus_scratch")
            .await
            .expect("the app's role creates and migrates a scratch database");
    scratch_pool.close().await;
    crate::pg::testing::drop_database(&scratch_url)
        .await
        .expect("the app's role drops its scratch database");

    // A second start finds the cluster running and the same credentials.
    let again = start_embedded(&scratch.data_dir, port)
        .await
        .expect("resolve the running cluster again");
    assert_eq!(again.url, resolved.url);
    assert_passwords_kept_private(&scratch.data_dir, port).await;

    // Without its password file, a cluster that asks for passwords is refused, clearly.
    let moved = scratch.data_dir.join("pgpass.moved");
    std::fs::rename(&pgpass, &moved).expect("move the password file away");
    let refused = start_embedded(&scratch.data_dir, port).await;
    std::fs::rename(&moved, &pgpass).expect("put the password file back");
    match refused {
        Err(DatabaseError::MissingPasswordFile { .. }) => {}
        other => panic!("expected a missing password file error, got {other:?}"),
    }
    // With another cluster's password file, it says the passwords are wrong.
    std::fs::rename(&pgpass, &moved).expect("move the password file away");
    ClusterPasswords::create(&pgpass).expect("write other passwords");
    let refused = start_embedded(&scratch.data_dir, port).await;
    std::fs::rename(&moved, &pgpass).expect("put the password file back");
    match refused {
        Err(DatabaseError::WrongPasswords { .. }) => {}
        other => panic!("expected a wrong passwords error, got {other:?}"),
    }
    resolved.embedded.expect("a cluster").stop();
}

/// A data directory made by the old code (`initdb -A trust`, the app connecting as
/// superuser, tables owned by `postgres`) is upgraded in place: passwords set, the app's
/// role made owner of the database and its tables, and trust removed from pg_hba.conf.
#[tokio::test]
async fn an_old_trust_cluster_is_upgraded_in_place() {
    let scratch = ScratchCluster::new("campus_pgtest_old");
    let port = free_port();
    make_old_trust_cluster(&scratch, port).await;

    let resolved = start_embedded(&scratch.data_dir, port)
        .await
        .expect("start and upgrade the old cluster");
    assert_refused_without_password(port, "postgres", "campus").await;
    assert_refused_without_password(port, "campus", "campus").await;
    let mut connection = assert_app_role_is_least_privileged(&resolved.url).await;
    let kept: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'kept'")
        .fetch_one(&mut connection)
        .await
        .expect("the old data is readable by the app");
    assert_eq!(kept, "yes");
    close(connection).await;
    let pool = crate::pg::connect(&resolved.url, 2)
        .await
        .expect("pool as the app");
    crate::pg::migrate(&pool)
        .await
        .expect("the migrations still run as the app's role");
    sqlx::query("UPDATE settings SET value = 'still' WHERE key = 'kept'")
        .execute(&pool)
        .await
        .expect("the app writes the old tables");
    pool.close().await;
    assert_passwords_kept_private(&scratch.data_dir, port).await;
    resolved.embedded.expect("a cluster").stop();
}

/// What the old code left behind in `scratch`, stopped: a cluster made with `initdb -A trust`
/// whose `campus` database (migrated, with a row in `settings`) and tables `postgres` owns.
async fn make_old_trust_cluster(scratch: &ScratchCluster, port: u16) {
    let pgdata = scratch.pgdata();
    let run_as = RunAs::detect();
    let log = scratch.data_dir.join("postgres.log");
    prepare_directories(&scratch.data_dir, &pgdata, &log, &run_as)
        .await
        .expect("prepare the directories");
    let initdb = [
        OsString::from("-D"),
        pgdata.clone().into_os_string(),
        OsString::from("-A"),
        OsString::from("trust"),
        OsString::from("-U"),
        OsString::from(POSTGRES_USER),
        OsString::from("--encoding=UTF8"),
    ];
    run_checked(&run_as, &scratch.tools.initdb, &initdb)
        .await
        .expect("initdb the old way");
    let start = [
        OsString::from("-w"),
        OsString::from("-D"),
        pgdata.clone().into_os_string(),
        OsString::from("-l"),
        log.clone().into_os_string(),
        OsString::from("-o"),
        OsString::from(server_options(&pgdata, port)),
        OsString::from("start"),
    ];
    run_checked(&run_as, &scratch.tools.pg_ctl, &start)
        .await
        .expect("start the old cluster");
    // What the old code left behind: a campus database whose tables postgres owns.
    let old_url = format!("postgres://postgres@127.0.0.1:{port}/campus");
    ensure_database(&old_url, EMBEDDED_CONNECT_TIMEOUT)
        .await
        .expect("create the old database");
    let pool = crate::pg::connect(&old_url, 2).await.expect("old pool");
    crate::pg::migrate(&pool).await.expect("old migrations");
    sqlx::query("INSERT INTO settings (key, value) VALUES ('kept', 'yes')")
        .execute(&pool)
        .await
        .expect("old data");
    pool.close().await;
    let stop = [
        OsString::from("-D"),
        pgdata.clone().into_os_string(),
        OsString::from("-m"),
        OsString::from("fast"),
        OsString::from("stop"),
    ];
    run_checked(&run_as, &scratch.tools.pg_ctl, &stop)
        .await
        .expect("stop the old cluster");
}

/// Without configuration, a local server is tried through its Unix-domain socket first (each
/// directory that holds one, in order), then on localhost:5432; and the socket URL reaches the
/// server through the socket. Needs this machine's server to have its socket in one of
/// [`LOCAL_SOCKET_DIRS`], as Debian's packages (and CI) have it.
#[tokio::test]
async fn a_local_server_is_tried_through_its_socket_before_tcp() {
    let base = std::env::temp_dir().join(format!("campus-sockets-{}", uuid::Uuid::new_v4()));
    let (with, without) = (base.join("with"), base.join("without"));
    for dir in [&with, &without] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(with.join(".s.PGSQL.5432"), "").unwrap();
    let (with, without) = (with.to_str().unwrap(), without.to_str().unwrap());
    let urls: Vec<String> = local_server_urls(&[without, with])
        .into_iter()
        .map(|(url, _)| url)
        .collect();
    std::fs::remove_dir_all(&base).unwrap();
    assert_eq!(
        urls,
        [
            format!("postgres://postgres@localhost/campus?host={with}"),
            LOCAL_SERVER_URL.to_string()
        ]
    );

    let (url, place) = local_server_urls(&LOCAL_SOCKET_DIRS).remove(0);
    assert!(
        url != LOCAL_SERVER_URL,
        "this machine's PostgreSQL has no socket in {LOCAL_SOCKET_DIRS:?}"
    );
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .database("postgres");
    let mut connection = PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| panic!("connect through {place}: {e}"));
    let server_address: Option<String> = sqlx::query_scalar("SELECT inet_server_addr()::text")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        server_address, None,
        "connected over TCP, not through {place}"
    );
    close(connection).await;
}

/// The app's URL on the private cluster goes through its socket only where that works: a
/// directory that is absolute, plain enough for a URL, and short enough for a socket's path.
#[test]
fn the_private_cluster_is_reached_through_its_socket_where_it_has_one() {
    assert_eq!(
        app_url("pw", Path::new("/var/lib/campus/pgdata"), 54329),
        "postgres://campus:pw@localhost:54329/campus?host=/var/lib/campus/pgdata"
    );
    let tcp = "postgres://campus:pw@127.0.0.1:54329/campus";
    let long = format!("/{}/pgdata", "d".repeat(100));
    for pgdata in [
        ".campus/pgdata",
        "/srv/my campus/pgdata",
        "/srv/a&b/pgdata",
        &long,
    ] {
        assert_eq!(app_url("pw", Path::new(pgdata), 54329), tcp, "{pgdata}");
    }
}
