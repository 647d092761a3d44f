//! The Argon2 memory of the hashing threads (19 MiB each) goes back to the
//! operating system once they have been idle for two seconds — and keeps
//! doing so after the first time, which glibc's malloc does not do for a
//! block freed the plain way (its mmap threshold rises to the block's size).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{AccountService, PASSWORD, http};
use crate::process::status_kib;

/// Resident memory of process `pid`, in KiB (`VmRSS`).
fn resident_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS").expect("VmRSS of the running service")
}

/// Two sign-ups at once (each hashes a password), then two sign-ins.
async fn hash_on_both_threads(service: &AccountService) {
    let emails = [0, 1].map(|_| format!("memory-{}@example.com", Uuid::new_v4()));
    for path in ["/signup", "/signin"] {
        let requests = emails.iter().map(|email| {
            http()
                .post(format!("{}/api/account{path}", service.base))
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
        });
        for response in futures::future::join_all(requests).await {
            let status = response.expect("request").status();
            assert!(
                status == StatusCode::CREATED || status == StatusCode::OK,
                "{path}: {status}"
            );
        }
    }
}

/// Waits until the process's resident memory is at most `kib`, for `within`.
async fn wait_until_resident_at_most(pid: u32, kib: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let now = resident_kib(pid);
        if now <= kib {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "resident {now} KiB after {within:?} idle, expected at most {kib} KiB"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn hashing_memory_is_given_back_when_idle_every_time() {
    if !cfg!(target_os = "linux") {
        eprintln!("skipped: reads /proc");
        return;
    }
    let service = AccountService::start().await;
    let pid = service.pid();
    for round in 1..=3 {
        hash_on_both_threads(&service).await;
        let busy = resident_kib(pid);
        // At least one thread's 19 MiB goes back; 15 MiB leaves room for
        // what the requests themselves left behind.
        let idle = wait_until_resident_at_most(pid, busy - 15 * 1024, Duration::from_secs(8)).await;
        eprintln!("round {round}: {busy} KiB just after hashing, {idle} KiB once idle");
    }
}
