//! The conformance kit on the template: on the built library, loaded exactly as keyhold
//! loads it, and on the source in-process. Copy this file with the template.

use keyhold_sdk::{
    conformance::{self, CHECKS},
    guard,
    testing::{MemoryHost, built_cdylib},
};
use plugin_template::TemplateSource;

#[test]
fn the_built_library_passes_the_conformance_kit() {
    // `cargo test` builds the cdylib next to the test binaries' directory.
    let library = built_cdylib("libplugin_template.so");
    let report = conformance::run_library(&library, "{}").unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(report.passed, CHECKS);
}

#[test]
fn the_source_passes_the_conformance_kit_in_process() {
    let source = TemplateSource::open("{}", MemoryHost::new().boxed()).unwrap();
    conformance::run(&guard(source)).unwrap_or_else(|f| panic!("{f}"));
}

#[test]
fn a_configuration_is_refused_at_open() {
    let library = built_cdylib("libplugin_template.so");
    let failure = conformance::run_library(&library, r#"{"unexpected": 1}"#).unwrap_err();
    assert_eq!(failure.check, "open");
    assert!(
        failure.detail.contains("takes no configuration"),
        "{failure}"
    );
}
