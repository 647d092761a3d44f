//! The connection leg's load: a storm of raw TCP connections opened at once,
//! each asking `GET /healthz`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::load::Outcome;

/// Opens `count` TCP connections at once; each sends `GET /healthz` with
/// `Connection: close` and reads the answer to its end. A connection counts
/// when it got `200`; its latency runs from the connection attempt.
pub async fn connection_storm(address: &str, count: usize, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let address = address.to_owned();
            tokio::spawn(async move {
                let sent = Instant::now();
                let attempt = async {
                    let mut stream = tokio::net::TcpStream::connect(&address).await?;
                    stream
                        .write_all(
                            b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n",
                        )
                        .await?;
                    let mut answer = Vec::new();
                    stream.read_to_end(&mut answer).await?;
                    std::io::Result::Ok(answer)
                };
                match tokio::time::timeout(timeout, attempt).await {
                    Ok(Ok(answer)) if answer.starts_with(b"HTTP/1.1 200") => Ok(sent.elapsed()),
                    Ok(Ok(answer)) => Err(format!(
                        "answered {:?}",
                        String::from_utf8_lossy(&answer[..answer.len().min(40)])
                    )),
                    Ok(Err(e)) => Err(format!("connection failed: {e}")),
                    Err(_) => Err(format!("no answer within {timeout:?}")),
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    let (mut failures, mut first_failure) = (0, None);
    for joined in futures::future::join_all(tasks).await {
        match joined {
            Ok(Ok(latency)) => latencies.push(latency),
            Ok(Err(e)) => {
                failures += 1;
                first_failure.get_or_insert(e);
            }
            Err(_) => failures += 1,
        }
    }
    Outcome::from(&mut latencies, failures, first_failure, start.elapsed())
}
