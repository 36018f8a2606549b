//! The export macro's hand-written pieces stay in step with `abi_stable`.

#[test]
fn the_exported_symbol_is_the_one_abi_stable_looks_up() {
    // export_plugin! spells the symbol name out (an attribute cannot take a constant).
    assert_eq!(
        abi_stable::library::ROOT_MODULE_LOADER_NAME,
        "_1as_0lib_1header_0root_bmodule_bloader"
    );
}
