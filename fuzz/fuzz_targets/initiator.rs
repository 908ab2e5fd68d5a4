//! The initiator's state machine against a genuine responder (native,
//! JavaScript or raw), with frames forged, tampered with, replayed, lost and
//! reordered between them. The invariants are in `session`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mychips_noise_fuzz::script::Script;
use mychips_noise_fuzz::session::{run, Role};

fuzz_target!(|script: Script| {
    run(Role::Initiator, &script);
});
