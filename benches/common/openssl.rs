//! The machine's RSA-2048 signing rate by `openssl speed`, the yardstick both
//! benches put the service's signing next to.

use std::process::Command;

/// `openssl speed [-multi <cores>] -seconds <seconds> rsa2048`: signatures
/// per second on `cores` cores (one: no `-multi`).
pub fn openssl_rsa2048(cores: usize, seconds: u32) -> Result<f64, String> {
    let mut command = Command::new("openssl");
    command.arg("speed");
    if cores > 1 {
        command.args(["-multi", &cores.to_string()]);
    }
    command.args(["-seconds", &seconds.to_string(), "rsa2048"]);
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("`openssl` is not on PATH".into());
        }
        Err(e) => return Err(format!("cannot run openssl: {e}")),
    };
    if !output.status.success() {
        return Err(format!("openssl speed exited with {}", output.status));
    }
    parse_openssl_sign_rate(&String::from_utf8_lossy(&output.stdout))
        .ok_or_else(|| "cannot parse its output".into())
}

/// The last line is `rsa 2048 bits <sign>s <verify>s [...] <sign/s> <verify/s> [...]`,
/// under a header line naming the columns (`sign verify [...] sign/s verify/s [...]`).
fn parse_openssl_sign_rate(stdout: &str) -> Option<f64> {
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("rsa"))?;
    let values: Vec<&str> = lines[last]
        .split_whitespace()
        .skip_while(|t| *t != "bits")
        .skip(1)
        .collect();
    let column = last
        .checked_sub(1)
        .and_then(|i| lines[i].split_whitespace().position(|t| t == "sign/s"));
    let value = match column {
        Some(i) => values.get(i)?,
        // No header: the first value that is a rate rather than a time.
        None => values.iter().find(|v| !v.ends_with('s'))?,
    };
    value.parse().ok()
}
