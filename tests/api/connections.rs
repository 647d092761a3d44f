//! Connections: a client that sends nothing, half a request head, a head one
//! line at a time or a body too slowly, or that holds a kept-alive connection
//! idle, is cut off on time; at `MAX_CONNECTIONS` a new client takes the slot
//! of one waiting for its head instead of the process using up its files
//! (`connection_caps.rs` has the caps under attack). None of it touches the
//! stores: one backend is enough.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Backend, spawn_app};
use crate::raw_http::{closed_within, connect, get, read_response, send};

const SECOND: Duration = Duration::from_secs(1);

/// How long to wait for a close that should come after a timeout of a
/// second or a few: far past it, so a loaded machine keeps it.
const CLOSE_WAIT: Duration = Duration::from_secs(15);

/// Asserts `closed` (from [`closed_within`], started before the server's own
/// clock) is about `expected` after the start: not earlier, and within a
/// margin after that a loaded machine keeps, still short of the other
/// timeouts that could have closed it (`BODY_READ_TIMEOUT`, 10 s; keep-alive).
fn assert_closed_after(closed: Option<Duration>, expected: Duration, what: &str) {
    let closed = closed.unwrap_or_else(|| panic!("{what}: still open"));
    assert!(
        closed >= expected.mul_f64(0.9) && closed < expected + 5 * SECOND,
        "{what}: closed after {closed:?}, expected about {expected:?}"
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_header_read_timeout() {
    let app = spawn_app!(Backend::Embedded, &[("HEADER_READ_TIMEOUT", "1")]);
    let started = Instant::now();
    let mut conn = connect(&app.address).await;
    let closed = closed_within(&mut conn, started, CLOSE_WAIT).await;
    assert_closed_after(closed, SECOND, "silent connection");
}

#[tokio::test]
async fn half_a_request_head_is_closed_after_header_read_timeout() {
    let app = spawn_app!(Backend::Embedded, &[("HEADER_READ_TIMEOUT", "1")]);
    let started = Instant::now();
    let mut conn = connect(&app.address).await;
    send(&mut conn, b"GET /healthz HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let closed = closed_within(&mut conn, started, CLOSE_WAIT).await;
    assert_closed_after(closed, SECOND, "half a head");
}

/// Slowloris: every line arrives in time, the head never completes. The
/// timeout is for the whole head, not between bytes.
#[tokio::test]
async fn a_head_sent_one_line_at_a_time_is_cut_off_after_header_read_timeout() {
    let app = spawn_app!(Backend::Embedded, &[("HEADER_READ_TIMEOUT", "1")]);
    let started = Instant::now();
    let (mut reader, mut writer) = connect(&app.address).await.into_split();
    let trickle = tokio::spawn(async move {
        let _ = send(&mut writer, b"GET /healthz HTTP/1.1\r\n").await;
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if send(&mut writer, format!("X-Line-{i}: x\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let closed = closed_within(&mut reader, started, CLOSE_WAIT).await;
    trickle.abort();
    assert_closed_after(closed, SECOND, "a head one line at a time");
}

/// The head timer restarts with the first byte of the next request on a
/// kept-alive connection, not only at the connection's start.
#[tokio::test]
async fn half_a_head_after_a_kept_alive_request_is_closed_after_header_read_timeout() {
    let app = spawn_app!(
        Backend::Embedded,
        &[("HEADER_READ_TIMEOUT", "1"), ("KEEP_ALIVE_TIMEOUT", "30")]
    );
    let mut conn = connect(&app.address).await;
    send(&mut conn, &get("/healthz")).await.unwrap();
    assert_eq!(read_response(&mut conn, CLOSE_WAIT).await.status, 200);
    let started = Instant::now();
    send(&mut conn, b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let closed = closed_within(&mut conn, started, CLOSE_WAIT).await;
    assert_closed_after(closed, SECOND, "half a second head");
}

/// Idle between requests is not reading a head: the connection outlives
/// `HEADER_READ_TIMEOUT` and is closed after `KEEP_ALIVE_TIMEOUT`.
#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_keep_alive_timeout_and_not_before() {
    let app = spawn_app!(
        Backend::Embedded,
        &[("HEADER_READ_TIMEOUT", "1"), ("KEEP_ALIVE_TIMEOUT", "5")]
    );
    let mut conn = connect(&app.address).await;
    send(&mut conn, &get("/healthz")).await.unwrap();
    assert_eq!(read_response(&mut conn, CLOSE_WAIT).await.status, 200);
    // Past the head timeout, well before the keep-alive one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(&mut conn, &get("/healthz")).await.unwrap();
    let second = read_response(&mut conn, CLOSE_WAIT).await;
    assert_eq!(
        second.status, 200,
        "the connection was kept past HEADER_READ_TIMEOUT"
    );
    // The server's idle clock starts when it has written the answer, before
    // this reading of the clock: a late reader sees the close early, by as
    // much as it was late. 3.5 s is still far past the 1 s head timeout.
    let idle_since = Instant::now();
    let closed = closed_within(&mut conn, idle_since, CLOSE_WAIT)
        .await
        .expect("idle kept-alive connection: still open");
    assert!(
        closed >= Duration::from_millis(3_500) && closed < 10 * SECOND,
        "idle kept-alive connection: closed after {closed:?}, expected about 5 s"
    );
}

/// A body trickling in (a byte at a time, each in time) must be complete
/// within `BODY_READ_TIMEOUT`: 408 in the JSON shape, then the server closes.
/// The handler timeout counts from the complete body, so a slow body is the
/// client's 408, not the server's 503.
#[tokio::test]
async fn a_body_sent_too_slowly_is_answered_408_and_the_connection_closed() {
    let app = spawn_app!(
        Backend::Embedded,
        &[("BODY_READ_TIMEOUT", "2"), ("HANDLER_TIMEOUT", "1")]
    );
    let (mut reader, mut writer) = connect(&app.address).await.into_split();
    let head = "POST /api/account/signup HTTP/1.1\r\nHost: test\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    // Before the head is sent: the server's body clock starts later.
    let started = Instant::now();
    send(&mut writer, head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for byte in br#"{"email":"slow@example.com","password":"correct horse battery"#.iter() {
            if send(&mut writer, &[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        writer
    });
    // The trickle never completes the body: without the body timeout no
    // answer would come at all.
    let response = read_response(&mut reader, CLOSE_WAIT).await;
    let answered = started.elapsed();
    assert_eq!(response.status, 408, "{response:?}");
    assert!(
        answered >= 2 * SECOND && answered < 7 * SECOND,
        "answered after {answered:?}"
    );
    let body: Value = response.json();
    assert_eq!(body["error"]["type"], "REQUEST_TIMEOUT", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(response.header("connection"), Some("close"));
    let closed = closed_within(&mut reader, Instant::now(), CLOSE_WAIT).await;
    assert!(closed.is_some(), "the connection stays open after the 408");
    trickle.abort();
}

/// A body that arrives in time is served as usual, however it is split.
#[tokio::test]
async fn a_body_sent_in_pieces_within_body_read_timeout_is_served() {
    let app = spawn_app!(Backend::Embedded, &[("BODY_READ_TIMEOUT", "10")]);
    let body = br#"{"email":"pieces@example.com","password":"correct horse battery"}"#;
    let mut conn = connect(&app.address).await;
    let head = format!(
        "POST /api/account/signup HTTP/1.1\r\nHost: test\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    send(&mut conn, head.as_bytes()).await.unwrap();
    for piece in body.chunks(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        send(&mut conn, piece).await.unwrap();
    }
    let response = read_response(&mut conn, 10 * SECOND).await;
    assert_eq!(
        response.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
}

/// At the cap a new client takes the slot of the connection that has waited
/// longest for its head, at once: it does not wait for that connection's
/// timeout (a minute here).
#[tokio::test]
async fn at_max_connections_a_new_client_takes_the_slot_of_the_longest_head_wait() {
    let app = spawn_app!(
        Backend::Embedded,
        &[("MAX_CONNECTIONS", "4"), ("HEADER_READ_TIMEOUT", "60")]
    );
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(&app.address).await);
        // In order, and each read once by the server (a connection not read
        // yet may hold a whole head: it is not cut).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("/healthz is answered at the cap");
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < 10 * SECOND,
        "answered after {:?}: it should not wait for a head timeout",
        started.elapsed()
    );
    let mut still_open = Vec::new();
    for (i, conn) in idle.iter_mut().enumerate() {
        if closed_within(conn, Instant::now(), SECOND / 2)
            .await
            .is_none()
        {
            still_open.push(i);
        }
    }
    assert_eq!(still_open, [1, 2, 3], "only the oldest was cut");
}

/// Past the cap a burst of connections completes its handshakes (in the
/// kernel's backlog while the server admits them one by one), instead of
/// losing SYNs and retrying a second later: with the default backlog of 128
/// most of these connects never completed. One address opens them all.
#[tokio::test]
async fn past_the_cap_a_burst_of_connections_completes_its_handshakes_in_the_backlog() {
    const BURST: usize = 600;
    let app = spawn_app!(
        Backend::Embedded,
        &[("MAX_CONNECTIONS", "2"), ("MAX_CONNECTIONS_PER_IP", "1000")]
    );
    let _ = rlimit::increase_nofile_limit(BURST as u64 * 2 + 1024);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect(&app.address).await);
    }
    let address = app.address.trim_start_matches("http://").to_owned();
    let attempts: Vec<_> = (0..BURST)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move {
                tokio::time::timeout(10 * SECOND, tokio::net::TcpStream::connect(address)).await
            })
        })
        .collect();
    let mut connected = Vec::new();
    let mut failed = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(Ok(stream)) => connected.push(stream),
            _ => failed += 1,
        }
    }
    assert_eq!(
        failed, 0,
        "{failed} of {BURST} connects did not complete within 10 s while the server was at its cap"
    );
    drop(held);
}

/// Below the cap nothing waits: slow clients do not delay the others.
#[tokio::test]
async fn below_max_connections_slow_clients_do_not_delay_others() {
    // A request that waited for a slot would wait for the slow clients' head
    // timeout: a minute.
    let app = spawn_app!(
        Backend::Embedded,
        &[("MAX_CONNECTIONS", "8"), ("HEADER_READ_TIMEOUT", "60")]
    );
    let mut slow = Vec::new();
    for _ in 0..6 {
        let mut conn = connect(&app.address).await;
        send(&mut conn, b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        slow.push(conn);
    }
    let started = Instant::now();
    let response = tokio::time::timeout(
        30 * SECOND,
        app.client.get(format!("{}/healthz", app.address)).send(),
    )
    .await
    .expect("answered while the slow clients hold their connections")
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < 20 * SECOND, "{:?}", started.elapsed());
}

/// A graceful stop closes idle connections (kept-alive, or that never sent a
/// byte) at once instead of waiting for their timeouts.
#[tokio::test]
async fn stopping_does_not_wait_for_idle_connections() {
    let app = spawn_app!(
        Backend::Embedded,
        &[("HEADER_READ_TIMEOUT", "30"), ("KEEP_ALIVE_TIMEOUT", "60")]
    );
    let mut kept_alive = connect(&app.address).await;
    send(&mut kept_alive, &get("/healthz")).await.unwrap();
    assert_eq!(read_response(&mut kept_alive, CLOSE_WAIT).await.status, 200);
    let mut silent = connect(&app.address).await;
    // Let the server accept the silent one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let app = app.restart().await;
    // Waiting for them would take their timeouts, 30 s and more.
    assert!(
        started.elapsed() < 20 * SECOND,
        "the stop waited {:?}",
        started.elapsed()
    );
    for (what, conn) in [("kept-alive", &mut kept_alive), ("silent", &mut silent)] {
        let closed = closed_within(conn, Instant::now(), CLOSE_WAIT).await;
        assert!(
            closed.is_some(),
            "{what} connection still open after the stop"
        );
    }
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// A graceful stop lets a request whose body is still arriving finish.
#[tokio::test]
async fn stopping_finishes_a_request_in_flight() {
    let app = spawn_app!(Backend::Embedded, &[("BODY_READ_TIMEOUT", "10")]);
    let body = br#"{"email":"in-flight@example.com","password":"correct horse battery"}"#;
    let mut conn = connect(&app.address).await;
    let head = format!(
        "POST /api/account/signup HTTP/1.1\r\nHost: test\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        body.len()
    );
    send(&mut conn, head.as_bytes()).await.unwrap();
    // The server says 100 Continue once the handler reads the body: from
    // then on the request is in flight, however slow the machine.
    let interim = read_response(&mut conn, CLOSE_WAIT).await;
    assert_eq!(interim.status, 100, "{interim:?}");
    let request = tokio::spawn(async move {
        for piece in body.chunks(10) {
            send(&mut conn, piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        read_response(&mut conn, CLOSE_WAIT).await
    });
    let app = app.restart().await;
    let response = request.await.unwrap();
    assert_eq!(
        response.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(app.count_users_with_email("in-flight@example.com").await, 1);
}
