//! An internal error is logged inside its request's span (method, route template, request id),
//! while the client sees only a generic 500.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use wh_control_plane::testing::{fixtures, Options, TestControlPlane};

/// Log lines, written where the test can read them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_internal_error_is_logged_with_its_request() {
    let db = wh_testkit::postgres::fresh_db().await.unwrap();
    let cp = TestControlPlane::start(&db.pool, Options::bare()).await;
    let (_, auth) = fixtures::user_with_token(&db.pool, "e@example.test").await;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    // The process-wide subscriber, in a test binary of its own: a scoped one raced with tests
    // on other threads over tracing's per-callsite interest cache (the span went unrecorded).
    tracing::subscriber::set_global_default(subscriber).unwrap();
    // A broken database is an internal error the client only sees as a 500.
    sqlx::query("ALTER TABLE apps RENAME TO apps_gone").execute(&db.pool).await.unwrap();
    let req = Request::get("/api/v1/apps").header("authorization", &auth).body(Body::empty());
    let resp = cp.router().oneshot(req.unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().find(|l| l.contains("internal error")).unwrap_or_else(|| {
        panic!("the internal error was not logged:\n{text}");
    });
    assert!(
        line.contains("request{method=GET route=/api/v1/apps request_id="),
        "logged outside its request's span: {line}"
    );
    assert!(line.contains("apps"), "the cause is logged: {line}");
}
