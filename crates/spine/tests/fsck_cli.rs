//! `spine fsck` through the binary, on a private cluster and the default local blob store under
//! the data dir: a missing blob and an old orphan give exit 1 and a JSON report; `--repair`
//! removes the orphan (the missing blob remains a problem); once nothing references the missing
//! blob, fsck is clean and exits 0.

mod common;

use std::time::{Duration, SystemTime};

use common::{Env, text};
use spine_store::blob::{BlobConfig, BlobStore};
use spine_store::embedded::{Cluster, ClusterConfig};

fn fsck(env: &Env, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["fsck", "--json"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("fsck --json printed no JSON ({e}): {}\n{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), report)
}

#[test]
fn fsck_reports_repairs_and_exits_by_what_remains() {
    let env = Env::new();
    assert!(env.run(&["migrate"]).status.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (cluster, pool, orphan) = rt.block_on(async {
        let cluster = Cluster::attach_or_start(ClusterConfig::new(env.data_dir().join("pg"))).await.unwrap();
        let pool = sqlx::PgPool::connect_with(cluster.connect_options()).await.unwrap();
        let root = env.data_dir().join("blobs");
        let blobs = BlobStore::from_config(&BlobConfig::Local { root: root.clone() }).await.unwrap();
        let kept = blobs.put(&b"registered content"[..], None).await.unwrap();
        let orphan = blobs.put(&b"nobody wants me"[..], None).await.unwrap();
        let h = &orphan.sha256;
        let path = root.join("sha256").join(&h[..2]).join(&h[2..4]).join(h);
        std::fs::File::open(path).unwrap().set_modified(SystemTime::now() - Duration::from_secs(2 * 86400)).unwrap();
        sqlx::query(
            "WITH t AS (INSERT INTO core.tenants (slug, display_name) VALUES ('fsck', 'Fsck') RETURNING id),
                  s AS (INSERT INTO qinexus.sources (tenant_id, source_key, source_kind, display_name)
                        SELECT id, 'upload', 'upload', 'Uploads' FROM t RETURNING tenant_id, id)
             INSERT INTO qinexus.files (tenant_id, source_id, original_name, storage_name, content_sha256, size_bytes, media_type)
             SELECT s.tenant_id, s.id, v.name, v.name, v.h, 1, 'text/plain' FROM s, (VALUES ('kept.txt', $1), ('gone.txt', $2)) v(name, h)",
        )
        .bind(&kept.sha256)
        .bind("0".repeat(64))
        .execute(&pool)
        .await
        .unwrap();
        (cluster, pool, orphan)
    });

    let (code, r) = fsck(&env, &[]);
    assert_eq!(code, Some(1), "{r:#}");
    assert_eq!(r["missing"], serde_json::json!(["0".repeat(64)]));
    assert_eq!(r["blobs_checked"], 2);
    assert_eq!(r["orphans"][0]["sha256"], orphan.sha256.as_str());
    assert_eq!(r["orphans"][0]["past_grace"], true);
    assert_eq!(r["orphans"][0]["removed"], false);

    let (code, r) = fsck(&env, &["--repair"]);
    assert_eq!(code, Some(1), "the missing blob remains: {r:#}");
    assert_eq!(r["orphans"][0]["removed"], true);

    rt.block_on(sqlx::query("DELETE FROM qinexus.files WHERE original_name = 'gone.txt'").execute(&pool)).unwrap();
    let out = env.run(&["fsck"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("ok: no problems"), "{}", text(&out.stdout));
    let (_, r) = fsck(&env, &["--grace-secs", "0"]);
    assert_eq!((r["referenced"].as_u64(), r["orphans"].as_array().map(Vec::len)), (Some(1), Some(0)));
    assert!(r["store"].as_str().unwrap().starts_with("local:"), "{r}");
    assert_eq!((r["blobs_checked"].as_u64(), r["corrupt"].as_array().map(Vec::len)), (Some(1), Some(0)));

    rt.block_on(async {
        pool.close().await;
        cluster.stop().await.unwrap();
    });
    assert_eq!(env.cluster_pids(), Vec::<u32>::new());
}
