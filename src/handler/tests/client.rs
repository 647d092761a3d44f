//! The client extractor, through `POST /signin`: the `User-Agent` header and
//! the client's address reach the use case, each empty when absent. The
//! address is the connection's peer, or the one a trusted proxy forwarded in
//! `X-Forwarded-For` (`TRUSTED_PROXIES`); anyone else's header is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use ipnet::IpNet;

use super::*;
use crate::model::{Email, Password};

fn signin_request() -> Request<Body> {
    post_json(
        &url("/signin"),
        json!({"email": "alice@example.com", "password": "correct horse"}),
    )
}

/// As the server's `into_make_service_with_connect_info` records it.
fn from_peer(mut request: Request<Body>, peer: &str) -> Request<Body> {
    let addr: SocketAddr = peer.parse().expect("socket address");
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

/// Signs in with `request` and returns the client info the use case got.
async fn client_of(request: Request<Body>) -> ClientInfo {
    client_behind(TrustedProxies::default(), request).await
}

/// [`client_of`] on an app that trusts `proxies`.
async fn client_behind(proxies: TrustedProxies, request: Request<Body>) -> ClientInfo {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut account = MockAccountService::new();
    account.expect_sign_in().times(1).returning(
        move |_: Email, _: Password, client: ClientInfo| {
            tx.send(client).expect("receiver");
            Ok(crate::model::SignIn::Tokens(pair()))
        },
    );

    let settings = HttpSettings {
        trusted_proxies: proxies,
        pages: true,
        ..settings(BASE)
    };
    let (status, _, _) = send(app_with(account, &settings), request).await;

    assert_eq!(status, StatusCode::OK);
    rx.recv().expect("the use case was called")
}

fn trusting(networks: &[&str]) -> TrustedProxies {
    TrustedProxies::new(
        networks
            .iter()
            .map(|n| n.parse::<IpNet>().expect("CIDR"))
            .collect(),
    )
}

fn forwarded(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append("x-forwarded-for", value.parse().expect("header value"));
    }
    headers
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

#[test]
fn behind_trusted_proxies_the_client_is_the_right_most_forwarded_address_not_theirs() {
    let proxies = trusting(&["127.0.0.1/32", "10.0.0.0/8", "2001:db8:ffff::/48"]);
    for (peer, headers, client) in [
        // A trusted peer: the address it forwarded.
        ("10.0.0.1", vec!["203.0.113.9"], "203.0.113.9"),
        // Entries left of the client's are whatever the client wrote.
        ("10.0.0.1", vec!["198.51.100.1, 203.0.113.9"], "203.0.113.9"),
        // Proxies in the chain are walked over, right to left.
        (
            "127.0.0.1",
            vec!["198.51.100.1, 203.0.113.9, 10.9.8.7, 2001:db8:ffff::2"],
            "203.0.113.9",
        ),
        // Several header lines read as one list, in order.
        (
            "10.0.0.1",
            vec!["198.51.100.1", "203.0.113.9"],
            "203.0.113.9",
        ),
        // Every entry a proxy: the left-most (the request came from inside).
        ("10.0.0.1", vec!["10.0.0.5, 10.0.0.2"], "10.0.0.5"),
        // With a port, IPv6, IPv4-mapped.
        ("10.0.0.1", vec!["203.0.113.9:443"], "203.0.113.9"),
        ("10.0.0.1", vec!["[2001:db8::7]:443"], "2001:db8::7"),
        ("10.0.0.1", vec![" 2001:db8::7 "], "2001:db8::7"),
        ("10.0.0.1", vec!["::ffff:203.0.113.9"], "203.0.113.9"),
        ("::ffff:10.0.0.1", vec!["203.0.113.9"], "203.0.113.9"),
        // No header: the peer.
        ("10.0.0.1", vec![], "10.0.0.1"),
        // A malformed entry, anywhere it is read: the peer.
        ("10.0.0.1", vec!["203.0.113.9, bogus"], "10.0.0.1"),
        (
            "10.0.0.1",
            vec!["bogus, 203.0.113.9, 10.0.0.2, unknown"],
            "10.0.0.1",
        ),
        ("10.0.0.1", vec!["203.0.113.9,"], "10.0.0.1"),
        ("10.0.0.1", vec![""], "10.0.0.1"),
        ("10.0.0.1", vec!["203.0.113.9/32"], "10.0.0.1"),
        // An untrusted peer: its header is ignored.
        ("192.0.2.1", vec!["203.0.113.9"], "192.0.2.1"),
        ("::ffff:192.0.2.1", vec!["203.0.113.9"], "192.0.2.1"),
        ("2001:db8::1", vec!["203.0.113.9"], "2001:db8::1"),
    ] {
        assert_eq!(
            proxies.client_ip(ip(peer), &forwarded(&headers)),
            ip(client),
            "{peer} {headers:?}"
        );
    }
    // Past the first malformed entry nothing is read: a bogus entry the
    // client wrote left of its own address is never reached.
    assert_eq!(
        proxies.client_ip(ip("10.0.0.1"), &forwarded(&["bogus, 203.0.113.9"])),
        ip("203.0.113.9")
    );
    // Nobody trusted: always the peer.
    assert_eq!(
        TrustedProxies::default().client_ip(ip("10.0.0.1"), &forwarded(&["203.0.113.9"])),
        ip("10.0.0.1")
    );
}

#[test]
fn a_forwarded_header_that_is_not_text_gives_the_peer() {
    let proxies = trusting(&["10.0.0.0/8"]);
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        axum::http::HeaderValue::from_bytes(b"203.0.113.9\xe9").expect("value"),
    );
    assert_eq!(proxies.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.1"));
}

#[tokio::test]
async fn the_router_hands_the_trusted_proxies_to_the_extractor() {
    let mut request = from_peer(signin_request(), "10.0.0.1:1234");
    request.headers_mut().insert(
        "x-forwarded-for",
        "198.51.100.1, 203.0.113.9".parse().expect("value"),
    );

    let client = client_behind(trusting(&["10.0.0.0/8"]), request).await;

    assert_eq!(client.ip, "203.0.113.9");
}

#[tokio::test]
async fn an_ipv4_mapped_peer_is_recorded_as_ipv4() {
    let client = client_of(from_peer(signin_request(), "[::ffff:192.0.2.10]:443")).await;

    assert_eq!(client.ip, "192.0.2.10");
}

#[tokio::test]
async fn the_user_agent_and_the_peer_address_reach_the_use_case() {
    let client = client_of(from_peer(
        with_user_agent(signin_request()),
        "192.0.2.10:54321",
    ))
    .await;

    assert_eq!(
        client,
        ClientInfo {
            user_agent: USER_AGENT.into(),
            ip: "192.0.2.10".into(),
        }
    );
}

#[tokio::test]
async fn an_ipv6_peer_is_recorded_without_brackets_or_port() {
    let client = client_of(from_peer(signin_request(), "[2001:db8::7]:443")).await;

    assert_eq!(client.ip, "2001:db8::7");
}

#[tokio::test]
async fn without_a_user_agent_or_connection_info_both_are_empty() {
    assert_eq!(client_of(signin_request()).await, ClientInfo::default());
}

#[tokio::test]
async fn a_forwarded_for_header_of_an_untrusted_peer_is_not_taken_for_the_client_address() {
    let mut request = from_peer(signin_request(), "10.0.0.1:1234");
    request
        .headers_mut()
        .insert("x-forwarded-for", "203.0.113.9".parse().expect("value"));

    assert_eq!(client_of(request).await.ip, "10.0.0.1");
}

#[tokio::test]
async fn a_long_user_agent_is_cut_to_256_bytes() {
    let mut request = signin_request();
    request
        .headers_mut()
        .insert(header::USER_AGENT, "b".repeat(300).parse().expect("value"));

    assert_eq!(client_of(request).await.user_agent, "b".repeat(256));
}

/// Header bytes beyond visible ASCII are legal (obs-text) but not text: the
/// user agent is left empty and the request goes on.
#[tokio::test]
async fn a_user_agent_that_is_not_visible_ascii_reads_as_empty() {
    let mut request = signin_request();
    request.headers_mut().insert(
        header::USER_AGENT,
        axum::http::HeaderValue::from_bytes(b"caf\xe9/1.0").expect("value"),
    );

    assert_eq!(client_of(request).await.user_agent, "");
}
