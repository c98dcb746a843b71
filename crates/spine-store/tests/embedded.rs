//! The embedded cluster against real PostgreSQL processes. Each test has its own temp dir (under
//! /tmp, which the `postgres` OS user can traverse when the tests run as root).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use spine_store::embedded::{Cluster, ClusterConfig, EmbeddedError, cluster_pids, find_bin_dir};
use sqlx::{Connection, PgConnection};

fn config(dir: &Path) -> ClusterConfig {
    ClusterConfig { fast: true, ..ClusterConfig::new(dir) }
}

async fn select_one(cluster: &Cluster) -> i32 {
    let mut conn = PgConnection::connect_with(&cluster.connect_options()).await.expect("connect");
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await.expect("SELECT 1");
    conn.close().await.expect("close");
    one
}

async fn stop_and_check_gone(cluster: Cluster) {
    let dir = cluster.dir().to_path_buf();
    assert!(!cluster_pids(&dir).is_empty(), "server processes should be visible while running");
    cluster.stop().await.expect("stop");
    assert_eq!(cluster_pids(&dir), Vec::<u32>::new(), "no server process may remain after stop");
    assert!(!dir.join("data/postmaster.pid").exists());
}

#[tokio::test]
async fn first_start_runs_initdb_and_serves_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::attach_or_start(config(tmp.path())).await.expect("start");
    assert!(cluster.started_here());
    assert!(tmp.path().join("data/PG_VERSION").is_file());
    assert_eq!(cluster.socket_dir(), cluster.dir().join("run"));
    assert!(cluster.socket_dir().join(".s.PGSQL.5432").exists());
    assert!(cluster.log_path().is_file());
    let url = cluster.display_url();
    assert_eq!(url, format!("postgresql:///spine?host={}&user=postgres", cluster.socket_dir().display()));
    assert_eq!(select_one(&cluster).await, 1);
    // The URL works as a DATABASE_URL.
    let conn = PgConnection::connect(&url).await.expect("connect with display_url");
    conn.close().await.unwrap();

    // The configured database exists and connect_options points at it.
    let mut conn = PgConnection::connect_with(&cluster.connect_options()).await.unwrap();
    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&mut conn).await.unwrap();
    assert_eq!(db, "spine");
    conn.close().await.unwrap();
    stop_and_check_gone(cluster).await;
}

#[tokio::test]
async fn second_call_attaches_to_the_running_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Cluster::attach_or_start(config(tmp.path())).await.expect("start");
    let second = Cluster::attach_or_start(config(tmp.path())).await.expect("attach");
    assert!(!second.started_here());
    assert_eq!(second.pid(), first.pid());
    assert_eq!(select_one(&second).await, 1);

    // Stopping an attached handle leaves the server running.
    second.stop().await.expect("stop attached");
    assert_eq!(select_one(&first).await, 1);
    stop_and_check_gone(first).await;
}

#[tokio::test]
async fn the_last_user_stops_a_shared_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    // A short command starts the cluster, a long-running one attaches, the short one finishes.
    let starter = Cluster::attach_or_start(config(tmp.path())).await.expect("start");
    assert!(starter.started_here());
    let pid = starter.pid();
    let attached = Cluster::attach_or_start(config(tmp.path())).await.expect("attach");
    starter.stop().await.expect("stop by the starter");
    assert_eq!(select_one(&attached).await, 1, "the starter must not stop a cluster someone else uses");
    assert_eq!(attached.pid(), pid);
    // The remaining user is the last one out: its stop shuts the server down.
    stop_and_check_gone(attached).await;
}

#[tokio::test]
async fn a_shared_cluster_outlives_a_crashed_starter() {
    let tmp = tempfile::tempdir().unwrap();
    let starter = Cluster::attach_or_start(config(tmp.path())).await.expect("start");
    let pid = starter.pid();
    drop(starter); // as if the process died without stopping: the server stays up
    let next = Cluster::attach_or_start(config(tmp.path())).await.expect("attach");
    assert!(!next.started_here());
    assert_eq!(next.pid(), pid);
    stop_and_check_gone(next).await;
}

#[tokio::test]
async fn a_tied_cluster_is_stopped_only_by_its_starter() {
    let tmp = tempfile::tempdir().unwrap();
    let tied = ClusterConfig { tied_to_process: true, ..config(tmp.path()) };
    let starter = Cluster::attach_or_start(tied.clone()).await.expect("start");
    let attached = Cluster::attach_or_start(tied).await.expect("attach");
    attached.stop().await.expect("stop attached");
    assert_eq!(select_one(&starter).await, 1);
    stop_and_check_gone(starter).await;
}

#[tokio::test]
async fn restart_reuses_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    // Durable mode here, to exercise the default configuration.
    let cluster = Cluster::attach_or_start(ClusterConfig::new(tmp.path())).await.expect("start");
    let mut conn = PgConnection::connect_with(&cluster.connect_options()).await.unwrap();
    sqlx::query("CREATE TABLE kept (v text)").execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO kept VALUES ('still here')").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    stop_and_check_gone(cluster).await;

    let cluster = Cluster::attach_or_start(ClusterConfig::new(tmp.path())).await.expect("restart");
    assert!(cluster.started_here());
    let mut conn = PgConnection::connect_with(&cluster.connect_options()).await.unwrap();
    let v: String = sqlx::query_scalar("SELECT v FROM kept").fetch_one(&mut conn).await.unwrap();
    assert_eq!(v, "still here");
    conn.close().await.unwrap();
    stop_and_check_gone(cluster).await;
}

#[tokio::test]
async fn stale_pid_file_with_dead_pid_does_not_block_start() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::attach_or_start(config(tmp.path())).await.expect("start");
    let pid_file = cluster.data_dir().join("postmaster.pid");
    let real = std::fs::read_to_string(&pid_file).unwrap();
    stop_and_check_gone(cluster).await;

    // A pid file naming a process that has exited (and been reaped).
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale: Vec<String> = std::iter::once(dead.to_string()).chain(real.lines().skip(1).map(str::to_owned)).collect();
    std::fs::write(&pid_file, stale.join("\n") + "\n").unwrap();

    let cluster = Cluster::attach_or_start(config(tmp.path())).await.expect("start over stale pid file");
    assert!(cluster.started_here());
    assert_ne!(cluster.pid(), dead);
    assert_eq!(select_one(&cluster).await, 1);
    stop_and_check_gone(cluster).await;
}

#[tokio::test]
async fn start_after_postmaster_was_killed() {
    let tmp = tempfile::tempdir().unwrap();
    // Durable mode: fast mode (synchronous_commit=off) may lose the last commit in a crash.
    let cluster = Cluster::attach_or_start(ClusterConfig::new(tmp.path())).await.expect("start");
    let mut conn = PgConnection::connect_with(&cluster.connect_options()).await.unwrap();
    sqlx::query("CREATE TABLE survived (v int)").execute(&mut conn).await.unwrap();
    let status = std::process::Command::new("kill").args(["-9", &cluster.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = cluster.exited().await;
    assert!(exit.contains('9'), "postmaster should have died of SIGKILL: {exit}");
    drop(conn); // its backend is orphaned; the next start waits for it to go
    assert!(cluster.data_dir().join("postmaster.pid").exists(), "the pid file is left behind");

    let again = Cluster::attach_or_start(ClusterConfig::new(tmp.path())).await.expect("start after kill -9");
    assert!(again.started_here());
    assert_ne!(again.pid(), cluster.pid());
    let mut conn = PgConnection::connect_with(&again.connect_options()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM survived").fetch_one(&mut conn).await.unwrap();
    assert_eq!(n, 0);
    conn.close().await.unwrap();
    drop(cluster);
    stop_and_check_gone(again).await;
}

#[tokio::test]
async fn deep_directory_uses_a_short_socket_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let deep = tmp.path().join("a-rather-long-directory-name-to-push-the-socket-path-over-the-limit-x");
    let cluster = Cluster::attach_or_start(config(&deep)).await.expect("start");
    let socket_dir = cluster.socket_dir().to_path_buf();
    assert!(socket_dir.file_name().unwrap().to_str().unwrap().starts_with("spine-pg-"), "{socket_dir:?}");
    let recorded = std::fs::read_to_string(deep.join("socket_dir")).unwrap();
    assert_eq!(recorded.trim(), socket_dir.to_str().unwrap());
    assert_eq!(select_one(&cluster).await, 1);

    let attached = Cluster::attach_or_start(config(&deep)).await.expect("attach");
    assert!(!attached.started_here());
    assert_eq!(attached.socket_dir(), socket_dir);
    attached.stop().await.expect("stop attached");
    stop_and_check_gone(cluster).await;
    let _ = std::fs::remove_dir_all(&socket_dir);
}

#[tokio::test]
async fn missing_binaries_give_the_install_hint() {
    let err = find_bin_dir(Some(Path::new("/nonexistent/pg/bin"))).unwrap_err();
    assert!(matches!(err, EmbeddedError::BinariesNotFound { .. }));
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/pg/bin"), "{msg}");
    assert!(msg.contains("apt-get install -y postgresql"), "{msg}");
    assert!(msg.contains("DATABASE_URL"), "{msg}");

    let tmp = tempfile::tempdir().unwrap();
    let cfg = ClusterConfig { bin_dir: Some("/nonexistent/pg/bin".into()), ..config(tmp.path()) };
    let err = Cluster::attach_or_start(cfg).await.unwrap_err();
    assert!(matches!(err, EmbeddedError::BinariesNotFound { .. }), "{err}");

    assert!(find_bin_dir(None).is_ok(), "this machine has PostgreSQL server binaries");
}

#[tokio::test]
async fn unreachable_parent_directory_is_named() {
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        return; // only root switches to another OS user
    }
    let tmp = tempfile::tempdir().unwrap(); // 0700, owned by root
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = Cluster::attach_or_start(config(&tmp.path().join("pg"))).await.unwrap_err();
    assert!(matches!(err, EmbeddedError::NotReachable { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(tmp.path().to_str().unwrap()) && msg.contains("chmod o+x"), "{msg}");
}
