//! Long-poll consume (`wait_ms`): a caught-up read waits for the next
//! record instead of answering empty, answers empty when the wait runs out,
//! answers at once when shutdown starts, and refuses a wait that is too long.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use super::tests::{code, request};
use crate::{Host, Record, Settings};

async fn host(dir: &std::path::Path) -> Host {
    let settings = Settings {
        data_dir: dir.to_path_buf(),
        ..Settings::default()
    };
    Host::open(settings).await.unwrap()
}

fn rec(v: &str) -> Record {
    Record {
        value: Some(bytes::Bytes::from(v.to_string())),
        ..Record::default()
    }
}

const URI: &str = "/streams/s/partitions/0/records";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_read_waits_for_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path()).await;
    h.create_stream("s", 1).await.unwrap();
    h.append("s", 0, &[rec("a")]).await.unwrap();
    let app = crate::http::router(h.clone());
    // Caught up at offset 1: the answer comes with the record appended
    // while the request waits (had it answered at once, it would be empty).
    let waiting = tokio::spawn({
        let app = app.clone();
        async move {
            request(
                &app,
                Method::GET,
                &format!("{URI}?offset=1&wait_ms=30000"),
                Body::empty(),
                None,
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the read must wait while nothing is there");
    h.append("s", 0, &[rec("b")]).await.unwrap();
    let (status, page) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["records"][0]["value"], "b", "{page}");
    assert_eq!(page["records"][0]["offset"], 1, "{page}");
    // Data already there: no wait at all, whatever wait_ms says.
    let (status, page) = request(
        &app,
        Method::GET,
        &format!("{URI}?offset=0&wait_ms=60000"),
        Body::empty(),
        None,
    )
    .await;
    assert_eq!(
        (status, page["records"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2))
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_runs_out_empty_ends_at_shutdown_and_has_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path()).await;
    h.create_stream("s", 1).await.unwrap();
    let app = crate::http::router(h.clone());
    let (status, page) = request(
        &app,
        Method::GET,
        &format!("{URI}?offset=0&wait_ms=200"),
        Body::empty(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["records"], json!([]), "{page}");
    assert_eq!(page["next_offset"], 0, "{page}");
    // Past the end: the out-of-range answer comes without waiting.
    let (status, page) = request(
        &app,
        Method::GET,
        &format!("{URI}?offset=5&wait_ms=60000"),
        Body::empty(),
        None,
    )
    .await;
    assert_eq!((status, code(&page)), (StatusCode::BAD_REQUEST, "offset_out_of_range"));
    let (status, page) = request(
        &app,
        Method::GET,
        &format!("{URI}?offset=0&wait_ms=60001"),
        Body::empty(),
        None,
    )
    .await;
    assert_eq!(
        (status, code(&page)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{page}"
    );
    // A long-poll in progress answers when shutdown starts.
    let waiting = tokio::spawn({
        let app = app.clone();
        async move {
            request(
                &app,
                Method::GET,
                &format!("{URI}?offset=0&wait_ms=60000"),
                Body::empty(),
                None,
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    let stop = h.clone();
    tokio::spawn(async move { stop.shutdown().await });
    let answered = tokio::time::timeout(Duration::from_secs(20), waiting).await;
    assert!(answered.is_ok(), "shutdown must end a long-poll, not wait out its 60 s");
}
