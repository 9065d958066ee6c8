//! Replays the committed fuzz corpus (seeds and past findings, e.g. a 1439-layer header that once
//! took 98 s to plan) through the fuzz target's code, so a regression fails CI, not only a fuzz run.

use std::path::Path;

#[test]
fn every_corpus_input_ends_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/gguf_header");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        // Each input is a past or possible stall (a 1439-layer header once took 98 s): a bound that a
        // quadratic planner or reader would miss by far, with room for a loaded 2-core machine.
        let started = std::time::Instant::now();
        run_fit::fuzz_header(&bytes);
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(2), "{}: {took:?}", path.display());
        count += 1;
    }
    assert!(count >= 6, "the seed corpus in {} is missing", dir.display());
    // the seeds that are whole models must get through to a plan
    let micro = std::fs::read(dir.join("micro-q8_0.gguf")).unwrap();
    let header = run_fit::dev::gguf::parse(&micro[..], micro.len() as u64).unwrap();
    assert_eq!(header.get("general.architecture").unwrap().as_str(), Some("llama"));
}
