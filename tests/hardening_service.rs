//! What a hostile or broken service can make the client do: every answer body is read up
//! to a bound, a trickling answer is cut by the request timeout, redirects are not
//! followed and no Referer is sent. Each against a raw server of the test's own on
//! 127.0.0.1, through the real `wandash::dashscope::Client`.

mod hardening_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hardening_support::{Hostile, Seen, answer, answer_endless, answer_json};
use wandash::dashscope::{ApiKey, Client, ClientError, JobSpec, ListQuery, Model, TaskStatus};

const PENDING_TASK: &str =
    r#"{"request_id":"r","output":{"task_id":"ok","task_status":"PENDING"}}"#;

fn client(server: &Hostile, request_timeout: Duration) -> Client {
    Client::with_timeouts(
        &server.base_url(),
        ApiKey::new("sk-test".into()),
        Duration::from_secs(2),
        request_timeout,
    )
    .expect("a client")
}

fn protocol_message(result: Result<impl std::fmt::Debug, ClientError>) -> String {
    match result {
        Err(ClientError::Protocol(message)) => message,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// Answers `/tasks/ok` properly and everything else with a body that never ends, and
/// counts what it wrote of the endless ones.
fn endless_server(status: &'static str) -> (Hostile, Arc<AtomicU64>) {
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let server = Hostile::start(move |seen: &Seen, stream| {
        if seen.line().contains("/tasks/ok") {
            answer_json(stream, PENDING_TASK);
        } else {
            counter.fetch_add(answer_endless(stream, status), Ordering::SeqCst);
        }
    });
    (server, written)
}

#[tokio::test]
async fn endless_answers_are_cut_at_the_bound_and_the_client_still_works() {
    let (server, written) = endless_server("200 OK");
    let client = client(&server, Duration::from_secs(20));
    let started = Instant::now();

    let message = protocol_message(client.fetch("endless").await);
    assert!(
        message.contains("over the limit of 1048576 bytes"),
        "{message}"
    );
    let message = protocol_message(
        client
            .list(&ListQuery {
                page_no: 1,
                page_size: 10,
                ..ListQuery::default()
            })
            .await,
    );
    assert!(message.contains("over the limit"), "{message}");
    let message = protocol_message(
        client
            .create(&JobSpec::new(Model::Wanx21T2iTurbo, "a fox"))
            .await,
    );
    assert!(message.contains("over the limit"), "{message}");
    // The upload policy, asked for before a local image is uploaded.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("base.png");
    image::RgbImage::from_pixel(512, 512, image::Rgb([40, 90, 160]))
        .save(&local)
        .unwrap();
    let message = protocol_message(client.upload(Model::Wanx21ImageEdit, &local).await);
    assert!(message.contains("over the limit"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    // Nothing else was lost: the same client reads the next, well-formed answer.
    let info = client
        .fetch("ok")
        .await
        .expect("a good answer after bad ones");
    assert_eq!(info.status, TaskStatus::Pending);
    // What the server got out before the client hung up: the bound plus socket buffers,
    // never the hundreds of megabytes an unbounded read would have taken.
    std::thread::sleep(Duration::from_millis(200));
    let total = written.load(Ordering::SeqCst);
    assert!(total < 3 * 64 * 1024 * 1024, "{total} bytes were sent");
}

#[tokio::test]
async fn an_endless_error_answer_is_cut_too() {
    let (server, _) = endless_server("500 Internal Server Error");
    let client = client(&server, Duration::from_secs(20));
    let message = protocol_message(client.fetch("endless").await);
    assert!(
        message.contains("over the limit of 1048576 bytes"),
        "{message}"
    );
}

#[tokio::test]
async fn a_content_length_over_the_bound_is_refused_before_reading() {
    let server = Hostile::start(|_: &Seen, stream| {
        use std::io::Write;
        // Claims 400 MB and sends a little: the claim alone is refused.
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 419430400\r\n\r\n{}",
        );
    });
    let client = client(&server, Duration::from_secs(20));
    let started = Instant::now();
    let message = protocol_message(client.fetch("big").await);
    assert!(message.contains("419430400 bytes or more"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_trickling_answer_is_cut_by_the_request_timeout() {
    let server = Hostile::start(|seen: &Seen, stream| {
        use std::io::Write;
        if seen.line().contains("/tasks/ok") {
            return answer_json(stream, PENDING_TASK);
        }
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        );
        // A byte every 100 ms: never idle long enough for a read timeout, forever overall.
        for _ in 0..1000 {
            if stream
                .write_all(b" ")
                .and_then(|()| stream.flush())
                .is_err()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let client = client(&server, Duration::from_secs(1));
    let started = Instant::now();
    let result = client.fetch("trickle").await;
    let took = started.elapsed();
    match &result {
        Err(ClientError::Transport(message)) => assert!(message.contains("timed out"), "{message}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(4), "took {took:?}");
    client
        .fetch("ok")
        .await
        .expect("the client works after a timeout");
}

#[tokio::test]
async fn redirects_are_not_followed_and_no_referer_is_sent() {
    let elsewhere = Hostile::start(|_: &Seen, stream| answer_json(stream, PENDING_TASK));
    let target = elsewhere.origin();
    let server = Hostile::start(move |seen: &Seen, stream| {
        let location = format!("{target}{}", seen.line().split(' ').nth(1).unwrap_or("/"));
        answer(
            stream,
            "307 Temporary Redirect",
            &[("Location", &location)],
            b"",
        );
    });
    let client = client(&server, Duration::from_secs(10));

    let message = protocol_message(
        client
            .create(&JobSpec::new(Model::Wanx21T2iTurbo, "a secret prompt"))
            .await,
    );
    assert!(
        message.contains("307") && message.contains("does not follow redirects"),
        "{message}"
    );
    let message = protocol_message(client.fetch("t1").await);
    assert!(message.contains("redirect"), "{message}");
    // A result download (a signed URL in its query) is not followed either.
    let signed = format!("{}/result.png?Signature=s3cr3t&Expires=1", server.origin());
    let message = protocol_message(client.download(&signed, 1024 * 1024).await);
    assert!(message.contains("redirect"), "{message}");

    assert!(
        elsewhere.seen().is_empty(),
        "the redirect target got {:?}",
        elsewhere.seen()
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for request in &seen {
        assert_eq!(request.header("referer"), None, "{}", request.head);
    }
    // The create did reach the one origin it was meant for, with its prompt.
    assert!(String::from_utf8_lossy(&seen[0].body).contains("a secret prompt"));
}
