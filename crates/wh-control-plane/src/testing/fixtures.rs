//! Rows as the API would leave them, for tests: users (with a password and, when asked, an API
//! token), apps and deployments. Builders start from sensible defaults and change what a test
//! cares about. They panic on a database error: a fixture that cannot be made fails its test.

use sqlx::PgPool;
use uuid::Uuid;

use crate::deployments::DeploymentState;

/// The password every fixture user has.
pub const PASSWORD: &str = "a long enough password";

/// A user `email` with [`PASSWORD`]; returns its id.
pub async fn user(pool: &PgPool, email: &str) -> i64 {
    crate::auth::create_user(pool, email, PASSWORD, false).await.expect("fixture user").id
}

/// A user with a personal API token; returns (id, `Bearer …` header value).
pub async fn user_with_token(pool: &PgPool, email: &str) -> (i64, String) {
    let id = user(pool, email).await;
    let token = crate::auth::create_api_token(pool, id, "fixture").await.expect("fixture token");
    (id, format!("Bearer {token}"))
}

/// An app; see [`app`].
#[must_use = "an app is inserted by `insert`"]
pub struct AppBuilder<'p> {
    pool: &'p PgPool,
    owner: i64,
    slug: String,
    repo_url: String,
    plan: &'static str,
    port: i32,
    worker: Option<Uuid>,
}

/// An app `slug` of `owner`: built from `https://git.example/x.git`, on the first plan,
/// listening on 8080, on no worker yet.
pub fn app<'p>(pool: &'p PgPool, owner: i64, slug: &str) -> AppBuilder<'p> {
    AppBuilder {
        pool,
        owner,
        slug: slug.to_owned(),
        repo_url: "https://git.example/x.git".to_owned(),
        plan: "",
        port: 8080,
        worker: None,
    }
}

impl AppBuilder<'_> {
    /// Built from this repository (a URL or, for tests that clone, a local path).
    pub fn repo(mut self, url: &str) -> Self {
        self.repo_url = url.to_owned();
        self
    }

    /// On the plan named so (`hobby`, …).
    pub fn plan(mut self, name: &'static str) -> Self {
        self.plan = name;
        self
    }

    /// Listening on `port` in its container.
    pub fn port(mut self, port: u16) -> Self {
        self.port = i32::from(port);
        self
    }

    /// Placed on `worker`.
    pub fn worker(mut self, worker: Uuid) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Inserts it; returns its id.
    pub async fn insert(self) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO apps (owner_id, slug, repo_url, plan_id, port, worker_id)
             VALUES ($1, $2, $3,
                     COALESCE((SELECT id FROM plans WHERE name = $4),
                              (SELECT id FROM plans ORDER BY id LIMIT 1)),
                     $5, $6)
             RETURNING id",
        )
        .bind(self.owner)
        .bind(&self.slug)
        .bind(&self.repo_url)
        .bind(self.plan)
        .bind(self.port)
        .bind(self.worker)
        .fetch_one(self.pool)
        .await
        .expect("fixture app")
    }
}

/// A deployment; see [`deployment`].
#[must_use = "a deployment is inserted by `insert`"]
pub struct DeploymentBuilder<'p> {
    pool: &'p PgPool,
    app: i64,
    git_ref: String,
    state: DeploymentState,
    worker: Option<Uuid>,
    host_port: Option<i32>,
}

/// A deployment of `app` from `main`, queued, on no worker.
pub fn deployment(pool: &PgPool, app: i64) -> DeploymentBuilder<'_> {
    DeploymentBuilder {
        pool,
        app,
        git_ref: "main".to_owned(),
        state: DeploymentState::Queued,
        worker: None,
        host_port: None,
    }
}

impl DeploymentBuilder<'_> {
    pub fn git_ref(mut self, git_ref: &str) -> Self {
        self.git_ref = git_ref.to_owned();
        self
    }

    pub fn state(mut self, state: DeploymentState) -> Self {
        self.state = state;
        self
    }

    /// Running (or to run) on `worker`.
    pub fn worker(mut self, worker: Uuid) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Published on the worker at `port`.
    pub fn host_port(mut self, port: u16) -> Self {
        self.host_port = Some(i32::from(port));
        self
    }

    /// Inserts it; returns its id.
    pub async fn insert(self) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO deployments (app_id, git_ref, state, worker_id, host_port)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(self.app)
        .bind(&self.git_ref)
        .bind(self.state)
        .bind(self.worker)
        .bind(self.host_port)
        .fetch_one(self.pool)
        .await
        .expect("fixture deployment")
    }
}

/// A running container `id` of `app`'s `deployment` on `worker`, as a worker reports one.
pub async fn running_container(pool: &PgPool, id: &str, worker: Uuid, app: i64, deployment: i64) {
    sqlx::query(
        "INSERT INTO containers (container_id, worker_id, app_id, deployment_id, state) VALUES ($1, $2, $3, $4, 'running')",
    )
    .bind(id)
    .bind(worker)
    .bind(app)
    .bind(deployment)
    .execute(pool)
    .await
    .expect("fixture container");
}
