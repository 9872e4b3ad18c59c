//! Readiness follows the media platform's measured health: with load on the reactor
//! (the platform's own drill, evaluated like real load) `/readyz` turns 503 naming
//! the state, an offered call is rejected and a placed one refused, both counted
//! `refused{reason="overloaded"}`; without it the host is ready again. Real Graph
//! emulator, real HTTP on 127.0.0.1, the host in this process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use emulator::{Emulator, EmulatorConfig, IncomingCall};
use host::{Host, HostConfig};

/// `GET path` on `addr`: status and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || host::admin_get(addr, &path))
        .await
        .expect("probe task")
        .expect("admin port answers")
}

async fn refused_overloaded(admin: SocketAddr) -> f64 {
    let body = get(admin, "/metrics").await.1;
    let samples = host::metrics::parse::parse(&body).expect("exposition parses");
    host::metrics::parse::value(
        &samples,
        "mp_calls_refused_total",
        Some(("reason", "overloaded")),
    )
    .expect("refused counter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_health_and_overload_refuses_calls() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let app = emu.apps()[0].clone();
    let toml = format!(
        "[graph]\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\n\
         [callback]\nbind = \"127.0.0.1:0\"\nopenid_url = \"{}\"\n\
         [media]\nreactor_threads = 1\n[admin]\nbind = \"127.0.0.1:0\"\n",
        emu.graph_v1_url(),
        emu.token_url_for(&app.tenant_id),
        app.client_id,
        emu.openid_url(),
    );
    let env = [(
        "MP_GRAPH_CLIENT_SECRET".to_string(),
        app.client_secret.clone(),
    )];
    let config = HostConfig::from_toml(&toml, env, "test.toml").expect("config");
    let host = Host::start(config).await.expect("host starts");
    let admin = host.admin_addr();
    assert_eq!(get(admin, "/readyz").await, (200, "ready\n".into()));

    // Load: more busy time than the one reactor thread has, every 200 ms.
    let sessions = host.sessions();
    let load = tokio::spawn(async move {
        loop {
            sessions.platform().inject_load(Duration::from_millis(400));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let t0 = Instant::now();
    let body = loop {
        let (status, body) = get(admin, "/readyz").await;
        if status == 503 {
            break body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "still ready under load"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body, "not ready: media platform Overloaded\n");
    // Offered while overloaded: rejected, with a reason the service records.
    let offered = emu
        .ring(&IncomingCall::to(host.callback_url()))
        .expect("ring");
    let t0 = Instant::now();
    loop {
        let t = emu.call(&offered).and_then(|c| c.termination);
        if let Some(t) = t {
            assert_eq!(t.reason, "Rejected", "{t:?}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "offered call not rejected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Placed while overloaded: the media session is refused, no call is created.
    host.place(signaling::Scenario::P2pVoipApp).await;
    assert_eq!(refused_overloaded(admin).await, 2.0);
    assert_eq!(emu.calls().len(), 1, "no call was created");

    // Without the load the host is ready again (health falls after calm windows).
    load.abort();
    let t0 = Instant::now();
    while get(admin, "/readyz").await.0 != 200 {
        assert!(t0.elapsed() < Duration::from_secs(10), "not ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = host.run(async {}).await;
    assert_eq!(report, host::DrainReport::default());
    emu.shutdown().await;
}
