//! Feeds arbitrary bytes to the manifest decoder; a decoded manifest must
//! encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syssync_proto::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::decode(data) {
        let mut buffer = [0u8; 2048];
        let encoded = manifest
            .encode(&mut buffer)
            .expect("a decoded manifest encodes");
        // postcard accepts non-minimal varints, so only the decoded values must agree.
        assert_eq!(Manifest::decode(encoded).expect("re-decode"), manifest);
    }
});
