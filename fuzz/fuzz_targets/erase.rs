//! `Verifier::authorize_erase`: the admin API's signed account erasure,
//! with every argument from the input; see `upslot_fuzz::EraseInput` for
//! the fields (`jid`, `timestamp`, `signature`, `now`). Without a
//! `signature` line the input is signed with DESIGN.md's secret, so any
//! timestamp and clock reach the replay-window check. An accepted request
//! lies inside the replay window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upslot::auth::ERASE_WINDOW_SECS;
use upslot_fuzz::{ALL_PROTOCOLS, EraseInput, verifier};

fuzz_target!(|data: &[u8]| {
    let input = EraseInput::parse(data);
    let verifier = verifier(ALL_PROTOCOLS.to_vec());
    let result = verifier.authorize_erase(&input.jid, &input.query(), input.now);
    if result.is_ok() {
        let skew = (i128::from(input.now) - i128::from(input.timestamp)).abs();
        assert!(skew <= i128::from(ERASE_WINDOW_SECS));
    }
});
