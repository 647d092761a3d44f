//! One source must not hold every connection: `MAX_CONNECTIONS_PER_IP` per
//! peer address (trusted proxies exempt), and at `MAX_CONNECTIONS` a new
//! connection takes the slot of one waiting for its head (or idle), never of
//! one with a request in flight. Request heads over 16 KiB or 100 fields get
//! 431 in the error shape.
//!
//! Clients on loopback bind their own source address (127.0.0.2 holds
//! connections, 127.0.0.3 asks `/healthz`; 127.0.0.10 and up are more
//! holders), so the server sees distinct peers, as it would distinct hosts.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use crate::helpers::{Backend, spawn_app};
use crate::raw_http::{
    RawResponse, closed_within, connect_from, get, heads_over_16_kib_or_100_fields_get_431,
    read_response, send,
};

const SECOND: Duration = Duration::from_secs(1);

fn loopback(last_octet: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet))
}

/// Half a request head: never completed, so the connection waits for its
/// head until `HEADER_READ_TIMEOUT` (a minute here) or a newcomer cuts it.
const HALF_A_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";

/// Keeps `sockets` connections from `source` half-open until `stop`: each
/// sends half a head and, once the server closes it, is opened again 50 ms
/// later. Counts the connections the server cut.
fn hold(
    base: &str,
    source: IpAddr,
    sockets: usize,
    stop: &Arc<AtomicBool>,
    cut: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..sockets)
        .map(|_| {
            let (base, stop, cut) = (base.to_owned(), Arc::clone(stop), Arc::clone(cut));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut conn) = connect_from(&base, source).await
                        && send(&mut conn, HALF_A_HEAD).await.is_ok()
                    {
                        // Until the server closes it (or the test ends).
                        let mut buf = [0_u8; 512];
                        loop {
                            tokio::select! {
                                read = conn.read(&mut buf) => {
                                    if matches!(read, Ok(0) | Err(_)) {
                                        cut.fetch_add(1, Ordering::Relaxed);
                                        break;
                                    }
                                }
                                () = tokio::time::sleep(Duration::from_millis(100)) => {
                                    if stop.load(Ordering::Relaxed) {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect()
}

/// `GET /healthz` on a new connection from `source`: the response, and how
/// long it took from the connection attempt.
async fn probe(base: &str, source: IpAddr, within: Duration) -> (Option<RawResponse>, Duration) {
    let started = Instant::now();
    let attempt = async {
        let mut conn = connect_from(base, source).await.ok()?;
        send(&mut conn, &get("/healthz")).await.ok()?;
        Some(read_response(&mut conn, within).await)
    };
    let response = tokio::time::timeout(within, attempt).await.ok().flatten();
    (response, started.elapsed())
}

/// While `holders` keep their sockets half-open, 20 probes from another
/// address are each answered within a second.
async fn holders_do_not_delay_another_source(holders: &[(u8, usize)]) {
    let app = spawn_app!(
        Backend::Embedded,
        &[("MAX_CONNECTIONS", "50"), ("HEADER_READ_TIMEOUT", "60"),]
    );
    let total: usize = holders.iter().map(|(_, n)| n).sum();
    let _ = rlimit::increase_nofile_limit(total as u64 * 2 + 1024);
    let (stop, cut) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let tasks: Vec<_> = holders
        .iter()
        .flat_map(|&(octet, sockets)| hold(&app.address, loopback(octet), sockets, &stop, &cut))
        .collect();
    // Until the holders have taken every slot and are being cut.
    let deadline = Instant::now() + 30 * SECOND;
    while cut.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        cut.load(Ordering::Relaxed) >= total,
        "the holders never filled the slots"
    );
    let mut slow = Vec::new();
    for i in 0..20 {
        let (response, took) = probe(&app.address, loopback(3), SECOND).await;
        match response {
            Some(response) if response.status == 200 && took < SECOND => {}
            other => slow.push(format!("probe {i}: {other:?} after {took:?}")),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    assert!(
        slow.is_empty(),
        "while {holders:?} held connections: {slow:#?}"
    );
}

#[tokio::test]
async fn one_source_holding_300_half_open_connections_does_not_delay_another() {
    holders_do_not_delay_another_source(&[(2, 300)]).await;
}

#[tokio::test]
async fn ten_sources_holding_20_half_open_connections_each_do_not_delay_another() {
    let holders: Vec<(u8, usize)> = (10..20).map(|octet| (octet, 20)).collect();
    holders_do_not_delay_another_source(&holders).await;
}

/// Opens `count` connections from `source`, each with half a head sent.
async fn half_open(base: &str, source: IpAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..count {
        let mut conn = connect_from(base, source).await.unwrap();
        send(&mut conn, HALF_A_HEAD).await.unwrap();
        held.push(conn);
    }
    held
}

#[tokio::test]
async fn past_max_connections_per_ip_a_new_connection_from_that_address_is_closed_at_once() {
    let app = spawn_app!(
        Backend::Embedded,
        &[
            ("MAX_CONNECTIONS_PER_IP", "3"),
            ("HEADER_READ_TIMEOUT", "60")
        ]
    );
    let mut held = half_open(&app.address, loopback(2), 3).await;
    let started = Instant::now();
    let mut fourth = connect_from(&app.address, loopback(2)).await.unwrap();
    let closed = closed_within(&mut fourth, started, 5 * SECOND).await;
    assert!(
        closed.is_some_and(|after| after < 2 * SECOND),
        "the fourth connection from one address: closed after {closed:?}"
    );
    // Another address is served; the three held are still open.
    let (response, _) = probe(&app.address, loopback(3), 10 * SECOND).await;
    assert_eq!(response.map(|r| r.status), Some(200));
    for conn in &mut held {
        assert_eq!(closed_within(conn, Instant::now(), SECOND / 5).await, None);
    }
    // A slot given back is free again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (response, _) = probe(&app.address, loopback(2), 10 * SECOND).await;
    assert_eq!(response.map(|r| r.status), Some(200));
}

#[tokio::test]
async fn a_trusted_proxy_is_exempt_from_max_connections_per_ip() {
    let app = spawn_app!(
        Backend::Embedded,
        &[
            ("MAX_CONNECTIONS_PER_IP", "3"),
            ("HEADER_READ_TIMEOUT", "60"),
            ("TRUSTED_PROXIES", "127.0.0.2/32"),
        ]
    );
    let _held = half_open(&app.address, loopback(2), 6).await;
    let (response, _) = probe(&app.address, loopback(2), 10 * SECOND).await;
    assert_eq!(
        response.map(|r| r.status),
        Some(200),
        "the proxy's seventh connection is served"
    );
}

/// At the cap a newcomer takes the slot of a connection waiting for its
/// head; one whose request is in flight (here: its body still arriving) is
/// never cut, and is answered once its body is complete.
#[tokio::test]
async fn reclaim_never_cuts_a_request_in_flight() {
    let app = spawn_app!(
        Backend::Embedded,
        &[
            ("MAX_CONNECTIONS", "2"),
            ("HEADER_READ_TIMEOUT", "60"),
            ("BODY_READ_TIMEOUT", "60"),
        ]
    );
    let body = br#"{"email":"inflight@example.com","password":"correct horse battery"}"#;
    let mut in_flight = connect_from(&app.address, loopback(2)).await.unwrap();
    let head = format!(
        "POST /api/account/signup HTTP/1.1\r\nHost: test\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    send(&mut in_flight, head.as_bytes()).await.unwrap();
    send(&mut in_flight, &body[..10]).await.unwrap();
    let mut waiting = half_open(&app.address, loopback(2), 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Newcomers at the cap: each takes the slot of one waiting for a head.
    for i in 0..10 {
        let (response, took) = probe(&app.address, loopback(3), 10 * SECOND).await;
        assert_eq!(response.map(|r| r.status), Some(200), "newcomer {i}");
        assert!(took < 5 * SECOND, "newcomer {i} took {took:?}");
    }
    assert!(
        closed_within(&mut waiting[0], Instant::now(), 5 * SECOND)
            .await
            .is_some(),
        "the connection waiting for its head was cut"
    );
    send(&mut in_flight, &body[10..]).await.unwrap();
    let response = read_response(&mut in_flight, 30 * SECOND).await;
    assert_eq!(
        response.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
}

#[tokio::test]
async fn the_account_service_answers_431_in_its_shape_for_too_large_a_head() {
    let app = spawn_app!(Backend::Embedded, &[]);
    heads_over_16_kib_or_100_fields_get_431(&app.address).await;
}
