//! The in-memory host keeps the promises of the `Host` trait.

use super::*;

#[test]
fn memory_host_keeps_the_kv_promises() {
    let host = MemoryHost::new();
    check_host_kv(&host.boxed()).unwrap_or_else(|e| panic!("{e}"));
    assert!(host.entries().is_empty());
}

#[test]
fn two_writers_racing_with_compare_and_swap_never_lose_an_update() {
    let host = MemoryHost::new();
    host.set_entry("counter", 0u32.to_le_bytes().to_vec());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let host = host.boxed();
            scope.spawn(move || {
                for _ in 0..100 {
                    loop {
                        let old = host.kv_get("counter".into()).unwrap().unwrap();
                        let n = u32::from_le_bytes(old.as_slice().try_into().unwrap());
                        let new = (n + 1).to_le_bytes();
                        let swapped = host
                            .kv_compare_and_swap(
                                "counter".into(),
                                ROption::RSome(old.as_slice().into()),
                                ROption::RSome(new[..].into()),
                            )
                            .unwrap();
                        if swapped {
                            break;
                        }
                    }
                }
            });
        }
    });
    assert_eq!(host.entries()["counter"], 400u32.to_le_bytes());
}
