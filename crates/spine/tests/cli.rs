//! The `spine` binary end to end on its private PostgreSQL cluster: first run, restart, clean
//! stop on SIGTERM, attaching, concurrent migrations, governance exit codes, clear errors.

mod common;

use common::{Env, Up, http, text};

#[test]
fn up_bootstraps_once_reuses_the_cluster_and_stops_cleanly() {
    let env = Env::new();
    let up = Up::start(&env, &[]);
    let key = up.bootstrap_key().expect("first run prints an admin key");
    assert!(up.banner.iter().any(|l| l.contains("First run")), "{:?}", up.banner);
    assert_eq!(http(&up.host, "GET", "/readyz", None, None).status, 200);
    assert_eq!(http(&up.host, "GET", "/healthz", None, None).status, 200);
    let who = http(&up.host, "GET", "/v1/whoami", Some(&key), None);
    assert_eq!(who.status, 200, "{}", who.body);
    assert!(who.json()["scopes"].as_array().unwrap().iter().any(|s| s == "admin"));

    // Another command attaches to the running cluster and leaves it running.
    let list = env.run(&["tenant", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let tenants: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(tenants[0]["slug"], "default");
    assert_eq!(http(&up.host, "GET", "/readyz", None, None).status, 200, "tenant list must not stop the cluster");

    let (status, log) = up.terminate();
    assert!(status.success(), "spine up exit: {status}\n{log}");
    assert!(log.contains("PostgreSQL stopped"), "{log}");
    assert_eq!(env.cluster_pids(), Vec::<u32>::new(), "no PostgreSQL process may outlive spine up");

    // Second run: same data, no bootstrap, the old key still works.
    let up = Up::start(&env, &[]);
    assert!(up.bootstrap_key().is_none(), "bootstrap must run once: {:?}", up.banner);
    assert_eq!(http(&up.host, "GET", "/v1/whoami", Some(&key), None).status, 200);
    let (status, _) = up.terminate();
    assert!(status.success());
    assert_eq!(env.cluster_pids(), Vec::<u32>::new());
}

#[test]
fn commands_start_and_stop_the_cluster_when_up_is_not_running() {
    let env = Env::new();
    let out = env.run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("migrations applied"));
    assert_eq!(env.cluster_pids(), Vec::<u32>::new(), "migrate must stop the cluster it started");

    let out = env.run(&["governance", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).starts_with("0 violations"), "{}", text(&out.stdout));

    let out = env.run(&["tenant", "create", "acme", "--name", "Acme Ltd", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = env.run(&["tenant", "update", "acme", "--integrations", "true", "--suspend", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((t[0]["integrations_enabled"].as_bool(), t[0]["status"].as_str()), (Some(true), Some("suspended")));
    let out = env.run(&["key", "create", "--tenant", "acme", "--name", "ops", "--scope", "records:read", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let k: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(k["key"].as_str().unwrap().starts_with("sak_"));
    let out = env.run(&["key", "list", "--tenant", "acme", "--json"]);
    let listed = text(&out.stdout);
    assert!(listed.contains(k["prefix"].as_str().unwrap()) && !listed.contains(k["key"].as_str().unwrap()));
    let out = env.run(&["key", "revoke", k["prefix"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = env.run(&["key", "create", "--tenant", "acme", "--name", "x", "--scope", "write"]);
    assert_eq!(out.status.code(), Some(2), "unknown scope is a usage error");
    assert!(text(&out.stderr).contains("known scopes"), "{}", text(&out.stderr));
    let out = env
        .spine()
        .args(["user", "create", "--tenant", "acme", "--email", "ann@example.org", "--name", "Ann"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"a long enough password\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = env.run(&["governance", "check", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["violations"].as_array().unwrap().len(), 0);
    assert_eq!(env.cluster_pids(), Vec::<u32>::new());
}

#[test]
fn concurrent_migrations_wait_instead_of_racing() {
    let env = Env::new();
    let children: Vec<_> = (0..3)
        .map(|_| {
            env.spine()
                .arg("migrate")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "a concurrent migrate failed: {}", text(&out.stderr));
    }
    assert_eq!(env.cluster_pids(), Vec::<u32>::new());
    let out = env.run(&["governance", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn governance_check_exits_1_and_names_the_violation() {
    let env = Env::new();
    assert!(env.run(&["migrate"]).status.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt.block_on(async {
        let cluster = spine_store::embedded::Cluster::attach_or_start(spine_store::embedded::ClusterConfig::new(
            env.data_dir().join("pg"),
        ))
        .await
        .unwrap();
        let pool = sqlx::PgPool::connect_with(cluster.connect_options()).await.unwrap();
        sqlx::query("CREATE TABLE core.widget (id uuid PRIMARY KEY, api_key text)").execute(&pool).await.unwrap();
        pool.close().await;
        cluster
    });
    let out = env.run(&["governance", "check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("core.widget: unregistered-table:"), "{stdout}");
    assert!(stdout.contains("core.widget.api_key: plaintext-secret:"), "{stdout}");
    rt.block_on(cluster.stop()).unwrap();
    assert_eq!(env.cluster_pids(), Vec::<u32>::new());
}

#[test]
fn missing_server_binaries_give_one_clear_error() {
    let env = Env::new();
    let out = env.spine().arg("migrate").env("SPINE_POSTGRES__BIN_DIR", "/nonexistent/pg/bin").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(err.contains("apt-get install"), "{err}");
    assert!(err.contains("DATABASE_URL"), "{err}");
}

#[test]
fn usage_and_config_errors_have_their_exit_codes() {
    let env = Env::new();
    let out = env.run(&["tenant", "create"]);
    assert_eq!(out.status.code(), Some(2), "missing argument is a usage error");
    let out = env.spine().args(["config", "show"]).env("SPINE_LOG__FORMAT", "sideways").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).starts_with("error: log.format"), "{}", text(&out.stderr));
    let out = env.spine().args(["config", "show"]).env("DATABASE_URL", "not a url").output().unwrap();
    assert!(out.status.success(), "config show needs no database");
    let out = env.spine().arg("migrate").env("DATABASE_URL", "not a url").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}
