//! Start-up raises the open-files limit to its hard limit, and both services
//! refuse to start when `MAX_CONNECTIONS` does not fit in it: better than
//! failing `accept` with "Too many open files" under load. Their `--help`
//! lists every setting.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `program` under a hard open-files limit of 256 (set by the shell)
/// with `env`; its exit status and standard error, once it exited (30 s at
/// most: a service that started instead is killed).
fn run_with_256_open_files(program: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 256 && exec "$0""#)
        .arg(program)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{program} is still running with MAX_CONNECTIONS over the limit:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("output");
    (
        status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn both_services_refuse_a_max_connections_over_the_open_files_limit() {
    let common = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("TODO_PORT", "0"),
        ("MAX_CONNECTIONS", "1024"),
        ("JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json"),
    ];
    for program in [
        env!("CARGO_BIN_EXE_account"),
        env!("CARGO_BIN_EXE_todo-service"),
    ] {
        let (success, stderr) = run_with_256_open_files(program, &common);
        assert!(!success, "{program} started:\n{stderr}");
        assert!(
            stderr.contains("error: MAX_CONNECTIONS: ") && stderr.contains("256"),
            "{program}: the error names MAX_CONNECTIONS and the limit:\n{stderr}"
        );
    }
}

/// `--help` of both binaries prints every setting of their tables with its
/// default, without starting anything.
#[test]
fn both_services_list_every_setting_in_their_help() {
    for (program, args, settings) in [
        (
            env!("CARGO_BIN_EXE_account"),
            &["serve", "--help"][..],
            account::config::settings::service(),
        ),
        (
            env!("CARGO_BIN_EXE_todo-service"),
            &["--help"],
            account::todo::settings(),
        ),
    ] {
        let output = Command::new(program)
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        assert!(output.status.success(), "{program} {args:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        for setting in &settings {
            let line = format!("  {}  [default: {}]", setting.name, setting.default_text());
            assert!(help.contains(&line), "{program}: {line:?} in {help}");
        }
    }
}
