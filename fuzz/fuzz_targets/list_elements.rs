//! Invariants: iterating list framing over arbitrary bytes never panics, yields at most
//! one error and then stops, and elements that decode re-frame to the consumed prefix.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reframed = Vec::new();
    let mut errors = 0;
    for e in formats::value::list_elements(data) {
        match e {
            Ok(el) => formats::value::put_list_element(&mut reframed, el),
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1);
    assert!(data.starts_with(&reframed));
    if errors == 0 {
        assert_eq!(reframed, data);
    }
});
