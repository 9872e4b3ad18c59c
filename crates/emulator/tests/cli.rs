//! The CLI module (`src/cmd_emulator.rs` of the root package), compiled here so its
//! options and configuration are tested with the crate.

#[allow(dead_code)]
#[path = "../../../src/cmd_emulator.rs"]
mod cmd_emulator;

#[path = "../../../src/private_file.rs"]
mod private_file;

mod common;

use clap::Parser;
use cmd_emulator::EmulatorArgs;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: EmulatorArgs,
}

#[test]
fn defaults_are_the_demo_on_8080() {
    let cli = Cli::try_parse_from(["emulator"]).expect("parse");
    assert_eq!(cli.args.bind.to_string(), "127.0.0.1:8080");
    let config = cli.args.config().expect("config");
    assert_eq!(config.apps, vec![emulator::RegisteredApp::demo()]);
    assert_eq!(config.keepalive_timeout.as_secs(), 2700);
    assert_eq!(config.token_lifetime.as_secs(), 3599);
}

#[test]
fn options_reach_the_config() {
    let cli = Cli::try_parse_from([
        "emulator",
        "--bind",
        "127.0.0.1:0",
        "--tenant",
        "t1",
        "--app-id",
        "a1",
        "--app-secret",
        "s1",
        "--keepalive-timeout-s",
        "2",
        "--step-delay-ms",
        "10",
        "--max-body-bytes",
        "1000",
    ])
    .expect("parse");
    let config = cli.args.config().expect("config");
    assert_eq!(config.bind.port(), 0);
    assert_eq!(
        (
            config.apps[0].tenant_id.as_str(),
            config.apps[0].client_id.as_str(),
            config.apps[0].client_secret.as_str()
        ),
        ("t1", "a1", "s1")
    );
    assert_eq!(config.keepalive_timeout.as_secs(), 2);
    assert_eq!(config.timing.step_delay.as_millis(), 10);
    assert_eq!(config.max_body_bytes, 1000);
    assert!(Cli::try_parse_from(["emulator", "--bind", "nowhere"]).is_err());
    let zero = Cli::try_parse_from(["emulator", "--keepalive-timeout-s", "0"]).expect("parse");
    assert!(zero.args.config().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banner_names_the_urls_and_credentials() {
    let cli = Cli::try_parse_from(["emulator", "--bind", "127.0.0.1:0"]).expect("parse");
    let config = emulator::EmulatorConfig {
        signing_key: Some(common::key()),
        ..cli.args.config().expect("config")
    };
    let emu = emulator::Emulator::start(config).await.expect("start");
    let banner = cmd_emulator::banner(&emu);
    for needle in [
        emu.token_url(),
        emu.openid_url(),
        emu.graph_v1_url(),
        emulator::RegisteredApp::DEMO_SECRET.to_owned(),
    ] {
        assert!(banner.contains(&needle), "{needle} not in {banner}");
    }
    assert!(!banner.contains(emu.control_token()), "{banner}");
    assert_eq!(emu.shutdown().await.tasks_left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_secret_and_the_control_token_are_never_printed() {
    let cli = Cli::try_parse_from([
        "emulator",
        "--bind",
        "127.0.0.1:0",
        "--app-secret",
        "s3cr3t-of-a-real-app",
        "--control-token",
        "control-token-0123456789",
    ])
    .expect("parse");
    let config = emulator::EmulatorConfig {
        signing_key: Some(common::key()),
        ..cli.args.config().expect("config")
    };
    let emu = emulator::Emulator::start(config).await.expect("start");
    assert_eq!(emu.control_token(), "control-token-0123456789");
    let banner = cmd_emulator::banner(&emu);
    assert!(!banner.contains("s3cr3t-of-a-real-app"), "{banner}");
    assert!(!banner.contains("control-token-0123456789"), "{banner}");
    assert!(
        banner.contains("client_secret=(as given; not shown)"),
        "{banner}"
    );
    assert!(
        banner.contains("Authorization: Bearer <control token>"),
        "{banner}"
    );
    // Written for scripts, the token's file is the owner's only, even over an older,
    // wider file.
    let path = std::env::temp_dir().join(format!("mp-control-{}", std::process::id()));
    std::fs::write(&path, "old").expect("write");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    private_file::write_private(&path, emu.control_token().as_bytes()).expect("write");
    let meta = std::fs::metadata(&path).expect("meta");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "control-token-0123456789"
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(emu.shutdown().await.tasks_left, 0);
}
