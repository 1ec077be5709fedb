//! App secrets as the binary takes them (issue 28): a secret shorter than 32 bytes
//! stops `chorus serve` unless `--allow-weak-secrets` (or its config key / env)
//! says otherwise; `chorus token` signs with a secret from `--secret`,
//! `--secret-file` or `CHORUS_TOKEN_SECRET`.

use chorus_auth::{App, AppRegistry, Secret};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_chorus");
const WEAK: &str = "hunter2-short";
const STRONG: &str = "a-secret-of-at-least-32-bytes-0123456789";

/// `chorus serve` with an app whose secret is `WEAK`: its exit code and output, or
/// `None` and the output so far once it logs its address (then it is killed).
fn serve(extra: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chorus.toml");
    std::fs::write(
        &config,
        format!("[[apps]]\nid = \"wiki\"\nsecrets = [\"{STRONG}\"]\n\n[[apps]]\nid = \"blog\"\nsecrets = [\"{WEAK}\"]\n"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(extra)
        .envs(env.iter().copied())
        .env("CHORUS_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let mut output = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                let listening = line.contains("listening on");
                output.push_str(&line);
                output.push('\n');
                if listening {
                    let _ = child.kill();
                    let _ = child.wait();
                    return (None, output);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    (status.code(), output)
}

#[test]
fn a_short_app_secret_stops_the_start_naming_the_app_not_the_secret() {
    let (code, output) = serve(&[], &[]);
    assert_eq!(code, Some(1), "exit code; output:\n{output}");
    assert!(output.contains("\"blog\""), "names the app:\n{output}");
    assert!(output.contains("32 bytes"), "says the rule:\n{output}");
    assert!(!output.contains(WEAK), "prints the secret:\n{output}");
}

#[test]
fn allow_weak_secrets_starts_with_a_warning_per_weak_app() {
    for (flags, env) in [
        (&["--allow-weak-secrets"][..], &[][..]),
        (&[][..], &[("CHORUS_ALLOW_WEAK_SECRETS", "true")][..]),
    ] {
        let (code, output) = serve(flags, env);
        assert_eq!(code, None, "did not start; output:\n{output}");
        let warnings: Vec<&str> = output
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("allow_weak_secrets"))
            .collect();
        assert_eq!(warnings.len(), 1, "one warning, for blog:\n{output}");
        assert!(warnings[0].contains("blog"), "{output}");
        assert!(!output.contains(WEAK), "prints the secret:\n{output}");
    }
}

/// `chorus token` for a session on `wiki`/`doc-1`, with these arguments and
/// environment; its stdout, or its stderr when it fails.
fn token(args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let out = Command::new(BIN)
        .args(["token", "--app", "wiki", "--doc", "doc-1", "--user", "ada"])
        .args(args)
        .env_remove("CHORUS_TOKEN_SECRET")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap().trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn verifies(token: &str) -> bool {
    let registry = AppRegistry::new(vec![App::new("wiki", vec![Secret::new(STRONG)], true)]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    registry.verify_session("wiki", "doc-1", token, now).is_ok()
}

#[test]
fn chorus_token_takes_its_secret_from_a_file_the_environment_or_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wiki.secret");
    std::fs::write(
        &file,
        format!("# the wiki's current secret\n\n{STRONG}\nan-older-one\n"),
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let from_file = token(&["--secret-file", file], &[]).unwrap();
    assert!(
        verifies(&from_file),
        "--secret-file signs with its first secret"
    );
    let from_env = token(&[], &[("CHORUS_TOKEN_SECRET", STRONG)]).unwrap();
    assert!(verifies(&from_env), "CHORUS_TOKEN_SECRET");
    let from_flag = token(&["--secret", STRONG], &[]).unwrap();
    assert!(
        verifies(&from_flag),
        "--secret (the contract's form) still works"
    );

    let none = token(&[], &[]).unwrap_err();
    assert!(none.contains("secret"), "{none}");
    let both = token(&["--secret", STRONG, "--secret-file", file], &[]).unwrap_err();
    assert!(both.contains("cannot be used with"), "{both}");
    let missing = token(&["--secret-file", "/nonexistent/secret"], &[]).unwrap_err();
    assert!(missing.contains("/nonexistent/secret"), "{missing}");
}
