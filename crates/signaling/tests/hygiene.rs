//! Errors quote input only as bounded, escaped excerpts.

use signaling::{Field, Scenario};

#[test]
fn a_huge_callback_uri_gives_a_short_escaped_error() {
    for uri in [
        format!("https://h:99999/{}", "x".repeat(10 << 20)),
        format!("http://example.com/\u{1b}[2J\r\n{}", "y".repeat(10 << 20)),
    ] {
        let mut call = Scenario::P2pVoipService.seed_example(None);
        call.callback_uri = Field::Value(uri.clone());
        let problems = signaling::create_call_problems(&call);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let msg = problems[0].to_string();
        assert!(msg.len() < 400, "{} bytes: {}", msg.len(), &msg[..400]);
        assert!(msg.contains(&format!("…\" ({} bytes)", uri.len())), "{msg}");
        assert!(!msg.contains(['\u{1b}', '\r', '\n']), "{msg}");
    }
}

#[test]
fn an_unknown_scenario_is_quoted_bounded() {
    let err = format!("\u{1b}]0;{}", "s".repeat(1 << 20))
        .parse::<Scenario>()
        .expect_err("unknown");
    let msg = err.to_string();
    assert!(
        msg.starts_with(r#"unknown scenario "\u001b]0;sss"#),
        "{msg}"
    );
    assert!(msg.len() < 600, "{} bytes", msg.len());
}
