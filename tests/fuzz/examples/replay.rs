//! Run one target on files, reporting each: `cargo run -p chorus-fuzz --example replay -- TARGET FILE…`.
fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("a target name");
    let (_, check) = chorus_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    for file in args {
        let data = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        println!("{file}: {}", if outcome.is_ok() { "ok" } else { "FAILED" });
    }
}
