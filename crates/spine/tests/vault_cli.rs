//! The vault through the binary: `spine up` on a fresh data dir creates `vault.keys` (0600) and
//! says so; secrets sealed with that key are moved by `spine keys rotate` to a second key given in
//! the environment; `spine keys status` counts them; `spine keys retire` refuses a key in use.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Env, Up, text};
use spine_core::secret::Secret;
use spine_core::vault::{Keyring, MasterKey};
use spine_store::Store;
use spine_store::embedded::{Cluster, ClusterConfig};
use spine_store::vault::{self, Access, SecretOwner};

const K2: &str = "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

#[test]
fn up_creates_a_key_and_keys_rotate_moves_every_secret() {
    let env = Env::new();
    let out = env.run(&["keys", "rotate"]);
    assert_eq!(out.status.code(), Some(3), "no key configured is a configuration error: {}", text(&out.stderr));

    let up = Up::start(&env, &[]);
    let (_, log) = up.terminate();
    let key_file = env.data_dir().join("vault.keys");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(log.contains("generated a vault master key"), "{log}");
    let line = std::fs::read_to_string(&key_file).unwrap();
    let k1 = line.lines().find(|l| l.starts_with("k1:")).unwrap().to_owned();
    assert!(!log.contains(&k1[3..]), "the key is never logged");

    // Seal 250 secrets with k1 directly through the store, on the private cluster.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cluster = rt.block_on(Cluster::attach_or_start(ClusterConfig::new(env.data_dir().join("pg")))).unwrap();
    let pool = rt.block_on(sqlx::PgPool::connect_with(cluster.connect_options())).unwrap();
    let store = Store::new(pool.clone());
    let ring1 = Keyring::new(vec![MasterKey::parse(&k1).unwrap()], "k1").unwrap();
    let tenant: uuid::Uuid =
        rt.block_on(sqlx::query_scalar("SELECT id FROM core.tenants WHERE slug = 'default'").fetch_one(&pool)).unwrap();
    let tenant = spine_core::ids::TenantId::from(tenant);
    let owners: Vec<uuid::Uuid> = (0..250).map(|_| uuid::Uuid::now_v7()).collect();
    rt.block_on(async {
        let mut tx = store.tenant_tx(tenant).await.unwrap();
        for (i, id) in owners.iter().enumerate() {
            let o = SecretOwner { kind: "connection", id: *id, field: "api_token" };
            vault::put(&mut tx, &ring1, o, &Secret::new(format!("value-{i}")), None).await.unwrap();
        }
        tx.commit().await.unwrap();
    });

    let status = json(&env.run(&["keys", "status", "--json"]));
    assert_eq!(status["configured_active_key"], "k1");
    assert_eq!(status["keys"][0]["key_id"], "k1");
    assert_eq!(status["keys"][0]["secrets"], 250);
    assert_eq!(status["keys"][0]["configured"], true);

    let with_k2 = |args: &[&str]| {
        env.spine()
            .args(args)
            .env("SPINE_VAULT__MASTER_KEYS", format!("[\"{K2}\"]"))
            .env("SPINE_VAULT__ACTIVE_KEY", "k2")
            .output()
            .unwrap()
    };
    let paused = json(&with_k2(&["keys", "rotate", "--batch", "100", "--max-batches", "1", "--json"]));
    assert_eq!((paused["finished"].as_bool(), paused["rotated"].as_i64()), (Some(false), Some(100)));
    let out = with_k2(&["keys", "rotate", "--batch", "100"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("rotated 200/250") && shown.contains("finished: 250 secrets"), "{shown}");
    assert!(shown.contains("resumed"), "{shown}");

    let status = json(&with_k2(&["keys", "status", "--json"]));
    let counts: Vec<(String, i64, String)> = status["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (k["key_id"].as_str().unwrap().into(), k["secrets"].as_i64().unwrap(), k["state"].as_str().unwrap().into())
        })
        .collect();
    assert_eq!(counts, vec![("k2".into(), 250, "active".into()), ("k1".into(), 0, "decrypt_only".into())]);
    assert_eq!(status["rotation"]["state"], "finished");

    let out = with_k2(&["keys", "retire", "k2"]);
    assert_eq!(out.status.code(), Some(1), "the active key cannot be retired");
    let retired = json(&with_k2(&["keys", "retire", "k1", "--json"]));
    assert_eq!(retired["state"], "retired");

    // The secrets open with k2 alone.
    let ring2 = Keyring::new(vec![MasterKey::parse(K2).unwrap()], "k2").unwrap();
    let why = Access { purpose: "cli test", actor: "test", connection_id: None, job_id: None, request_id: None };
    rt.block_on(async {
        for (i, id) in owners.iter().enumerate() {
            let o = SecretOwner { kind: "connection", id: *id, field: "api_token" };
            let v = vault::read(&store, &ring2, tenant, o, None, &why).await.unwrap();
            assert_eq!(&v.expose()[..], format!("value-{i}").as_bytes());
        }
        pool.close().await;
        cluster.stop().await.unwrap();
    });
}
