//! A user's command run on this machine (the controller): `sh -c` in the
//! repository, its output kept for the report.

use std::path::Path;
use std::process::Stdio;

/// Why a command run here failed: its exit code (none when it was killed
/// or could not start) and what it said.
pub struct Failed {
    pub code: Option<i32>,
    pub detail: String,
}

/// Runs `command` with `sh -c` in `dir`, with `env` added to this process's
/// environment.
pub async fn run(command: &str, dir: &Path, env: &[(String, String)]) -> Result<(), Failed> {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let detail = match out.status.code() {
                Some(c) => format!("`{command}` (on this machine) exited with status {c}\n{text}"),
                None => format!("`{command}` (on this machine) was killed by a signal\n{text}"),
            };
            Err(Failed {
                code: out.status.code(),
                detail: detail.trim_end().to_string(),
            })
        }
        Err(e) => Err(Failed {
            code: None,
            detail: format!("`{command}` could not start on this machine: {e}"),
        }),
    }
}
