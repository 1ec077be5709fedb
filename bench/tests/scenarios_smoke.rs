//! Smoke runs of the `chorus-bench` scenarios that drive a `chorus` process
//! (`storm`, `soak`): tiny, against the debug binary `tests/run` builds
//! (`CHORUS_BIN` to use another). They check that each scenario completes and
//! that what it counts adds up (nothing failed, every probe answered); figures are
//! never asserted.

use std::path::PathBuf;

fn chorus_bin() -> PathBuf {
    std::env::var_os("CHORUS_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/chorus"),
        PathBuf::from,
    )
}

/// Run a scenario against the `chorus` binary (`--bin`).
fn run_bench(args: &[&str]) -> serde_json::Value {
    let bin = chorus_bin();
    assert!(
        bin.exists(),
        "{} not built (cargo build --bin chorus)",
        bin.display()
    );
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push("--bin".into());
    args.push(bin.display().to_string());
    bench_json(&args)
}

/// Run `chorus-bench` with `args`; its last line of output, as JSON.
fn bench_json<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chorus-bench"))
        .args(args)
        .output()
        .expect("run chorus-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chorus-bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().expect("one JSON line");
    println!("{line}");
    serde_json::from_str(line).expect("JSON line")
}

#[test]
fn storm_resyncs_every_client() {
    let r = run_bench(&[
        "storm",
        "--docs",
        "5",
        "--clients",
        "60",
        "--paragraphs",
        "5",
    ]);
    assert_eq!(r["clients"], 60);
    assert!(r["all_resynced_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(r["healthz_not_200"], 0, "{r}");
    assert!(r["healthz_samples"].as_u64().unwrap() > 0);
}

#[test]
fn soak_runs_every_kind_of_load_without_a_failure() {
    let r = run_bench(&[
        "soak",
        "--minutes",
        "0.25",
        "--clients",
        "40",
        "--docs",
        "4",
    ]);
    for key in [
        "typed",
        "cursor_moves",
        "rejoins",
        "host_reads",
        "external_changes",
    ] {
        assert!(r[key].as_u64().unwrap() > 0, "{key}: {r}");
    }
    for key in [
        "rejoin_failures",
        "host_read_failures",
        "external_change_failures",
        "probe_timeouts",
    ] {
        assert_eq!(r[key], 0, "{key}: {r}");
    }
    let windows = r["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 10);
    assert!(
        windows
            .iter()
            .all(|w| w["edit_samples"].as_u64().unwrap() > 0),
        "{r}"
    );
}

#[test]
fn storage_runs_the_three_configurations_and_retention_trims_history() {
    // In-process: no `--bin`.
    let r = bench_json(&["storage", "--secs", "12", "--rate", "10", "--keep", "3"]);
    let runs = r["runs"].as_array().unwrap();
    let modes: Vec<&str> = runs.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["log", "compacted", "retained"]);
    for run in runs {
        assert!(run["edits"].as_u64().unwrap() > 0, "{run}");
        assert!(run["final"]["draft_bytes"].as_u64().unwrap() > 0, "{run}");
        assert!(!run["samples"].as_array().unwrap().is_empty(), "{run}");
    }
    let points = |i: usize| runs[i]["final"]["history_points"].as_u64().unwrap();
    assert!(points(1) > 4, "a point a second without retention: {r}");
    // The sweep keeps 3 auto points; one more may be taken after its last pass.
    assert!(points(2) <= 4, "retention trims the history: {r}");
}
