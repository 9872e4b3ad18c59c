//! Graph call documents (`signaling`): create-call requests, `201 Created` bodies and
//! call resources, their validation, permissions and the CLI's classification, and
//! the strict JSON reader (`signaling::json`) in front of them.

use serde_json::Value;
use signaling::{Call, classify, create_call_problems, summarize};

use super::Verdict;
use crate::check::{MAX_MESSAGE_CHARS, check_message, check_round_trip};

/// Parses `data` as a call (from text as the Graph client does, from a value as the
/// CLI's `inspect` does), validates it, asks its permissions and summary, and checks
/// the round trips.
pub(crate) fn run(data: &[u8]) -> Verdict {
    // Strict JSON (the emulator's and the callback server's reading) reads what
    // serde_json reads, or refuses it with a bounded, printable error.
    let plain = serde_json::from_slice::<Value>(data);
    match signaling::json::from_slice_strict(data) {
        Ok(strict) => assert_eq!(
            plain.as_ref().ok(),
            Some(&strict),
            "from_slice_strict accepted what serde_json reads otherwise"
        ),
        Err(e) => check_message("from_slice_strict", &e.to_string(), MAX_MESSAGE_CHARS),
    }
    // Whatever the document, classification and summaries answer.
    if let Ok(value) = &plain {
        let _ = classify(value);
        let _ = summarize(value);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return Verdict::Rejected;
    };
    let Ok(call) = Call::from_json(text) else {
        return Verdict::Rejected;
    };
    for problem in create_call_problems(&call) {
        check_message(
            "create_call_problems",
            &problem.to_string(),
            MAX_MESSAGE_CHARS,
        );
        let _ = problem.path();
    }
    if let Err(e) = call.validate() {
        check_message("validate", &e.to_string(), MAX_MESSAGE_CHARS);
    }
    let _ = call.required_permissions().to_string();
    let _ = call.summary();
    let _ = call.is_app_hosted();

    // The model keeps every property: value to model to value is exact...
    let value = call.to_value();
    let from_value: Call = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("Call: its own value does not parse: {e}"));
    assert_eq!(from_value, call, "Call: value round trip changed the model");
    // ...and through text equal but for the last place of floats.
    let again = Call::from_json(&call.to_json())
        .unwrap_or_else(|e| panic!("Call: its own JSON does not parse: {e}"));
    check_round_trip("Call", &value, &again.to_value());
    Verdict::Accepted
}

/// Seeds: every request and response of the seed page, and each scenario's request
/// built by the crate with a real blob.
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = super::fixtures::CALLS
        .iter()
        .map(|f| f.as_bytes().to_vec())
        .collect();
    let blob = std::str::from_utf8(super::fixtures::BLOB)
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    for scenario in signaling::Scenario::ALL {
        seeds.push(
            scenario
                .seed_example(Some(blob.clone()))
                .to_json()
                .into_bytes(),
        );
    }
    seeds
}
