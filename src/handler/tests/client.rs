//! The client extractor, through `POST /signin`: the `User-Agent` header and
//! the connection's peer address reach the use case, each empty when absent;
//! a forwarded-for header is never read.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;

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
    let (tx, rx) = std::sync::mpsc::channel();
    let mut account = MockAccountService::new();
    account.expect_sign_in().times(1).returning(
        move |_: Email, _: Password, client: ClientInfo| {
            tx.send(client).expect("receiver");
            Ok(pair())
        },
    );

    let (status, _, _) = send(app(account), request).await;

    assert_eq!(status, StatusCode::OK);
    rx.recv().expect("the use case was called")
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
async fn a_forwarded_for_header_is_not_taken_for_the_peer_address() {
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
