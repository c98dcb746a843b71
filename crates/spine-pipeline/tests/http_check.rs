//! `spine.http.check` against real servers on loopback: every answer and failure maps to the
//! error class seed 004 gives it.

use std::time::Duration;

use spine_core::jobs::ErrorClass;
use spine_pipeline::builtin::{HttpCheck, http_check};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers every request with `head` (status line and headers), or never answers
/// when `head` is empty.
async fn server(head: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                if head.is_empty() {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let _ =
                    s.write_all(format!("{head}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/probe")
}

fn payload(url: &str) -> HttpCheck {
    HttpCheck::V1 { url: url.to_owned(), expect_status: None, timeout_secs: None }
}

#[tokio::test]
async fn answers_and_failures_are_classified() {
    assert_eq!(http_check(&payload(&server("HTTP/1.1 200 OK").await)).await, Ok(()));
    assert_eq!(http_check(&payload(&server("HTTP/1.1 204 No Content").await)).await, Ok(()));
    for (head, class) in [
        ("HTTP/1.1 500 Internal Server Error", ErrorClass::Server),
        ("HTTP/1.1 503 Service Unavailable", ErrorClass::Server),
        ("HTTP/1.1 401 Unauthorized", ErrorClass::Auth),
        ("HTTP/1.1 403 Forbidden", ErrorClass::Auth),
        ("HTTP/1.1 404 Not Found", ErrorClass::Invalid),
        ("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7", ErrorClass::RateLimited),
    ] {
        let err = http_check(&payload(&server(head).await)).await.unwrap_err();
        assert_eq!(err.class, class, "{head}: {err}");
    }
    let err =
        http_check(&payload(&server("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7").await)).await.unwrap_err();
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));

    let url = server("HTTP/1.1 200 OK").await;
    let want_201 = HttpCheck::V1 { url, expect_status: Some(201), timeout_secs: None };
    let err = http_check(&want_201).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid);
    assert!(err.message.contains("expected 201"), "{err}");
}

#[tokio::test]
async fn unreachable_slow_and_malformed_targets() {
    // A port nobody listens on: bind, learn the port, close.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let err = http_check(&payload(&format!("http://127.0.0.1:{port}/"))).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Network, "{err}");

    let silent = HttpCheck::V1 { url: server("").await, expect_status: None, timeout_secs: Some(1) };
    let err = http_check(&silent).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Timeout, "{err}");

    for bad in ["not a url", "ftp://127.0.0.1/x", "file:///etc/passwd"] {
        let err = http_check(&payload(bad)).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Invalid, "{bad}: {err}");
    }
}

#[test]
fn the_payload_is_a_versioned_tagged_object() {
    let p: HttpCheck = serde_json::from_str(r#"{"type":"http_check.v1","url":"https://example.org/"}"#).unwrap();
    assert_eq!(p, payload("https://example.org/"));
    assert!(serde_json::from_str::<HttpCheck>(r#"{"url":"https://example.org/"}"#).is_err(), "the tag is required");
    assert!(serde_json::from_str::<HttpCheck>(r#"{"type":"http_check.v9","url":"x"}"#).is_err());
    assert!(serde_json::from_str::<HttpCheck>(r#"{"type":"http_check.v1","url":"x","extra":1}"#).is_err());
}
