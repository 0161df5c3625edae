//! The throwaway PostgreSQL: migrations, fresh databases, and the queue's locking guarantee.

use std::collections::HashSet;

use sqlx::{Connection, Executor};
use wh_testkit::postgres;

#[tokio::test]
async fn each_test_gets_its_own_migrated_database() {
    let a = postgres::fresh_db().await.unwrap();
    let b = postgres::fresh_db().await.unwrap();
    assert_ne!(a.name, b.name);
    // Migrated: the seeded plans are there.
    let plans: i64 =
        sqlx::query_scalar("SELECT count(*) FROM plans").fetch_one(&a.pool).await.unwrap();
    assert!(plans >= 1, "seeded plans missing");
    // Isolated: a write in one is not seen in the other.
    sqlx::query("DELETE FROM plans").execute(&a.pool).await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM plans").fetch_one(&b.pool).await.unwrap();
    assert_eq!(left, plans);
}

async fn tables(c: &mut sqlx::PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(c)
    .await
    .unwrap()
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_twice_is_a_no_op() {
    let admin = postgres::server_options().await.unwrap();
    let name = format!("empty_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect_with(&admin).await.unwrap();
    conn.execute(format!(r#"DROP DATABASE IF EXISTS "{name}""#).as_str()).await.unwrap();
    conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.unwrap();
    let mut db = sqlx::PgConnection::connect_with(&admin.clone().database(&name)).await.unwrap();
    let migrator = sqlx::migrate::Migrator::new(postgres::migrations_dir()).await.unwrap();
    migrator.run(&mut db).await.unwrap();
    let first = tables(&mut db).await;
    for t in ["apps", "deployments", "jobs", "plans", "users", "workers"] {
        assert!(first.iter().any(|x| x == t), "table {t} missing after migrations: {first:?}");
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let plans: i64 =
        sqlx::query_scalar("SELECT count(*) FROM plans").fetch_one(&mut db).await.unwrap();
    migrator.run(&mut db).await.unwrap();
    assert_eq!(tables(&mut db).await, first);
    let applied_again: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let plans_again: i64 =
        sqlx::query_scalar("SELECT count(*) FROM plans").fetch_one(&mut db).await.unwrap();
    assert_eq!((applied, plans), (applied_again, plans_again), "second run changed something");
    db.close().await.unwrap();
    conn.execute(format!(r#"DROP DATABASE "{name}""#).as_str()).await.unwrap();
}

/// Two connections claiming concurrently with FOR UPDATE SKIP LOCKED never get the same row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_locked_claims_never_overlap() {
    let db = postgres::fresh_db().await.unwrap();
    const JOBS: i64 = 500;
    sqlx::query("INSERT INTO jobs (kind) SELECT 'retire' FROM generate_series(1, $1)")
        .bind(JOBS)
        .execute(&db.pool)
        .await
        .unwrap();
    let claimer = |name: &'static str| {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            let mut got = Vec::new();
            loop {
                let mut tx = conn.begin().await.unwrap();
                let id: Option<i64> = sqlx::query_scalar(
                    "UPDATE jobs SET state = 'claimed', claimed_by = $1, attempt = attempt + 1 \
                     WHERE id = (SELECT id FROM jobs WHERE state = 'pending' ORDER BY id \
                                 FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id",
                )
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .unwrap();
                // Hold the row lock across a yield so the other claimer runs meanwhile.
                tokio::task::yield_now().await;
                tx.commit().await.unwrap();
                match id {
                    Some(id) => got.push(id),
                    None => break got,
                }
            }
        })
    };
    let (a, b) = tokio::join!(claimer("a"), claimer("b"));
    let (a, b) = (a.unwrap(), b.unwrap());
    let sa: HashSet<i64> = a.iter().copied().collect();
    let sb: HashSet<i64> = b.iter().copied().collect();
    assert_eq!(sa.len(), a.len(), "claimer a got a row twice");
    assert_eq!(sb.len(), b.len(), "claimer b got a row twice");
    assert!(sa.is_disjoint(&sb), "a row was claimed by both");
    assert_eq!((sa.len() + sb.len()) as i64, JOBS, "some rows were never claimed");
    assert!(
        !a.is_empty() && !b.is_empty(),
        "claims did not interleave: a={} b={}",
        a.len(),
        b.len()
    );
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT DISTINCT attempt FROM jobs").fetch_all(&db.pool).await.unwrap();
    assert_eq!(attempts, vec![1]);
}
