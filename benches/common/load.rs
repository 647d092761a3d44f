//! The load generator of the `perf` and `throughput` benches: `clients`
//! concurrent reqwest clients in this process, each sending one request after
//! the other for a fixed time (or one per tick, as a probe); p50 and p99.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery";

/// What one client holds: its user's credentials and latest tokens.
#[derive(Clone)]
pub struct ClientState {
    pub email: String,
    pub id_token: String,
    pub refresh_token: String,
}

/// The requests a leg sends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /me` with the client's ID token.
    Me,
    /// `POST /tokens` with the client's latest refresh token (its own chain).
    Refresh,
    /// `POST /signin` with the client's email and password.
    Signin,
    /// The todo service's `GET /api/todos` with the client's ID token.
    TodoGet,
}

/// What a leg measured.
#[derive(Default, Clone)]
pub struct Outcome {
    pub ok: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn from(
        latencies: &mut [Duration],
        failures: u64,
        first: Option<String>,
        elapsed: Duration,
    ) -> Self {
        latencies.sort_unstable();
        Self {
            ok: latencies.len() as u64,
            failures,
            first_failure: first,
            elapsed,
            p50: percentile(latencies, 0.50),
            p99: percentile(latencies, 0.99),
        }
    }
}

pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Where the requests go.
#[derive(Clone)]
pub struct Targets {
    pub http: reqwest::Client,
    /// `http://…/api/account`
    pub account: Arc<str>,
    /// `http://…/api/todos`, where a todo service runs.
    pub todos: Option<Arc<str>>,
}

pub fn tokens_of(body: &Value) -> Option<(String, String)> {
    Some((
        body["tokens"]["idToken"].as_str()?.to_owned(),
        body["tokens"]["refreshToken"].as_str()?.to_owned(),
    ))
}

/// One request; `Err` describes a non-2xx answer or a failed request.
async fn one_request(targets: &Targets, op: Op, state: &mut ClientState) -> Result<(), String> {
    let http = &targets.http;
    let account = &targets.account;
    let response = match op {
        Op::Me => {
            http.get(format!("{account}/me"))
                .bearer_auth(&state.id_token)
                .send()
                .await
        }
        Op::Refresh => {
            http.post(format!("{account}/tokens"))
                .json(&json!({"refreshToken": state.refresh_token}))
                .send()
                .await
        }
        Op::Signin => {
            http.post(format!("{account}/signin"))
                .json(&json!({"email": state.email, "password": PASSWORD}))
                .send()
                .await
        }
        Op::TodoGet => {
            let todos = targets.todos.as_deref().ok_or("no todo service to ask")?;
            http.get(todos).bearer_auth(&state.id_token).send().await
        }
    }
    .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    if op == Op::Refresh {
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| format!("refresh body is not JSON: {e}"))?;
        let (id_token, refresh_token) =
            tokens_of(&value).ok_or("refresh body has no token pair")?;
        state.id_token = id_token;
        state.refresh_token = refresh_token;
    }
    Ok(())
}

/// Every client sends `op` requests one after the other until `seconds`
/// have passed. A refresh client whose chain broke stops.
pub async fn drive(
    targets: &Targets,
    op: Op,
    clients: &mut Vec<ClientState>,
    seconds: f64,
) -> Outcome {
    run_clients(
        targets,
        clients,
        seconds,
        move |targets, mut state, deadline| async move {
            let mut latencies = Vec::with_capacity(4096);
            let (mut failures, mut first) = (0, None);
            while Instant::now() < deadline {
                let sent = Instant::now();
                match one_request(&targets, op, &mut state).await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(e) => {
                        failures += 1;
                        first.get_or_insert(e);
                        if op == Op::Refresh {
                            break;
                        }
                    }
                }
            }
            (latencies, failures, first, state)
        },
    )
    .await
}

/// Every client sends one `op` request per `every` (a late answer delays the
/// next, never piles them up) until `seconds` have passed: a steady probe of
/// latency that leaves the CPU to the load it runs beside, where [`drive`]
/// would take all of it.
pub async fn probe(
    targets: &Targets,
    op: Op,
    clients: &mut Vec<ClientState>,
    seconds: f64,
    every: Duration,
) -> Outcome {
    run_clients(
        targets,
        clients,
        seconds,
        move |targets, mut state, deadline| async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut latencies = Vec::new();
            let (mut failures, mut first) = (0, None);
            loop {
                ticks.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                let sent = Instant::now();
                match one_request(&targets, op, &mut state).await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(e) => {
                        failures += 1;
                        first.get_or_insert(e);
                    }
                }
            }
            (latencies, failures, first, state)
        },
    )
    .await
}

/// What one client's task hands back: its latencies, failures, first
/// failure, and its state for the next leg.
type ClientRun = (Vec<Duration>, u64, Option<String>, ClientState);

/// Runs `client` for every client, each its own task, until the deadline
/// `seconds` from now; waits for them all, puts the clients back, and sums up
/// what they measured.
async fn run_clients<F, Fut>(
    targets: &Targets,
    clients: &mut Vec<ClientState>,
    seconds: f64,
    client: F,
) -> Outcome
where
    F: Fn(Targets, ClientState, Instant) -> Fut,
    Fut: Future<Output = ClientRun> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = clients
        .drain(..)
        .map(|state| tokio::spawn(client(targets.clone(), state, deadline)))
        .collect();
    let mut latencies = Vec::new();
    let (mut failures, mut first_failure) = (0, None);
    for joined in futures::future::join_all(tasks).await {
        let Ok((lat, f, first, state)) = joined else {
            failures += 1;
            first_failure.get_or_insert_with(|| "a client task panicked".to_owned());
            continue;
        };
        latencies.extend(lat);
        failures += f;
        if first_failure.is_none() {
            first_failure = first;
        }
        clients.push(state);
    }
    Outcome::from(&mut latencies, failures, first_failure, start.elapsed())
}
