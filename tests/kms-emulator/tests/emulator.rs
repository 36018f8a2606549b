//! The KMS emulator driven by the real `aws-sdk-kms` client, with the real keyhold
//! binary as the XKS proxy (one test binary: aws-sdk-kms is linked once).

#[path = "emulator/failures.rs"]
mod failures;
#[path = "emulator/harness.rs"]
mod harness;
#[path = "emulator/keys.rs"]
mod keys;
#[path = "emulator/protocol.rs"]
mod protocol;
#[path = "emulator/stores.rs"]
mod stores;
