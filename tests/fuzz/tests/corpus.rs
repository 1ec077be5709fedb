//! Every committed seed and every input that ever crashed a target, through the
//! target's checks on the stable toolchain: a fixed crash stays fixed.

use std::path::Path;

#[test]
fn every_seed_and_every_past_crash_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ran = 0;
    for (name, check) in chorus_fuzz::TARGETS {
        let mut inputs = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(dir) = std::fs::read_dir(root.join(kind).join(name)) else {
                continue;
            };
            for entry in dir {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                eprintln!("{name}: {}", path.display());
                check(&data);
                inputs += 1;
            }
        }
        assert!(inputs > 0, "{name} has no seed corpus");
        ran += inputs;
    }
    eprintln!("{ran} inputs passed");
}
