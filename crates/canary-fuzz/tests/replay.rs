//! Every committed corpus input runs through its target without a panic
//! (CI's share of the fuzzing; `make fuzz` does the long runs).

use canary_fuzz::mutate::Mutator;
use canary_fuzz::Target;

#[test]
fn every_target_has_a_corpus() {
    for target in Target::ALL {
        let corpus = target.corpus().expect("corpus folder");
        assert!(
            !corpus.is_empty(),
            "{} has no corpus",
            target.corpus_dir().display()
        );
    }
}

#[test]
fn the_corpus_replays_without_a_panic() {
    for target in Target::ALL {
        for (path, bytes) in target.corpus().expect("corpus folder") {
            let result = std::panic::catch_unwind(|| target.run(&bytes));
            assert!(
                result.is_ok(),
                "{} panicked on {}",
                target.name(),
                path.display()
            );
        }
    }
}

#[test]
fn the_seed_inputs_are_accepted() {
    // Inputs named `ok-*` are valid documents: a parser that refuses them
    // would make the fuzzing shallow.
    for target in Target::ALL {
        for (path, bytes) in target.corpus().expect("corpus folder") {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("ok-") {
                assert!(
                    target.run(&bytes),
                    "{} refused {}",
                    target.name(),
                    path.display()
                );
            }
        }
    }
}

#[test]
fn a_short_mutation_run_finds_no_panic() {
    for target in Target::ALL {
        let corpus: Vec<Vec<u8>> = target
            .corpus()
            .expect("corpus folder")
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
        let mut mutator = Mutator::new(42, 8192);
        for n in 0..300 {
            let input = mutator.next(&corpus);
            let result = std::panic::catch_unwind(|| target.run(&input));
            assert!(
                result.is_ok(),
                "{} panicked on mutated input {n}: {:?}",
                target.name(),
                String::from_utf8_lossy(&input)
            );
        }
    }
}
