//! IVs drawn from the per-thread batch of OS randomness.

use std::collections::HashSet;

use super::*;

#[test]
fn batched_ivs_are_all_different_across_refills() {
    let mut seen = HashSet::new();
    // Several batches' worth, so refills are crossed.
    for _ in 0..(IV_BATCH / IV_LEN) * 5 + 3 {
        let mut iv = [0u8; IV_LEN];
        random_iv(&mut iv).unwrap();
        assert!(seen.insert(iv), "an IV came out twice");
    }
    // Sizes that do not divide the batch, and one larger than it.
    let mut odd = [0u8; 16];
    random_iv(&mut odd).unwrap();
    let mut big = vec![0u8; IV_BATCH + 1];
    random_iv(&mut big).unwrap();
    assert!(big.iter().any(|b| *b != 0));
}

#[test]
fn threads_draw_different_ivs() {
    let draw = || {
        std::thread::spawn(|| {
            let mut iv = [0u8; IV_LEN];
            random_iv(&mut iv).unwrap();
            iv
        })
    };
    let (a, b) = (draw(), draw());
    assert_ne!(a.join().unwrap(), b.join().unwrap());
}
