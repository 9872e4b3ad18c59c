//! Forwarding between two hosts in this process (real HTTP on 127.0.0.1, the Graph
//! emulator without media): what a host answers for calls it does not own.

use std::time::Duration;

use emulator::{Emulator, EmulatorConfig};
use host::{Host, HostConfig};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn notification(call_id: &str) -> String {
    format!(
        r##"{{"@odata.type":"#microsoft.graph.commsNotifications","value":[{{"changeType":"updated","resourceUrl":"/communications/calls/{call_id}","resourceData":{{"@odata.type":"#microsoft.graph.call","state":"established"}}}}]}}"##
    )
}

async fn metric(http: &reqwest::Client, host: &Host, name: &str, outcome: &str) -> f64 {
    let body = http
        .get(format!("http://{}/metrics", host.admin_addr()))
        .send()
        .await
        .expect("admin port")
        .text()
        .await
        .expect("text");
    let samples = host::metrics::parse::parse(&body).expect("parses");
    host::metrics::parse::value(&samples, name, Some(("outcome", outcome)))
        .unwrap_or_else(|| panic!("no {name}{{outcome={outcome}}}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_once_owner_answers_and_unowned_is_404() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let app = emu.apps()[0].clone();
    let ports = [free_port(), free_port()];
    let mut hosts = Vec::new();
    for (i, name) in ["b", "c"].iter().enumerate() {
        let text = format!(
            r#"
[graph]
base_url = "{graph}"
token_url = "{token}"
client_id = "{client}"
[callback]
bind = "127.0.0.1:{port}"
openid_url = "{openid}"
[admin]
bind = "127.0.0.1:0"
[calls]
place = [{place}]
[drain]
deadline_s = 0
linger_ms = 0
[routing]
instance_id = "{name}"
peers = ["http://127.0.0.1:{peer}"]
"#,
            graph = emu.graph_v1_url(),
            token = emu.token_url_for(&app.tenant_id),
            client = app.client_id,
            port = ports[i],
            openid = emu.openid_url(),
            place = if *name == "c" { "\"p2p-voip-app\"" } else { "" },
            peer = ports[1 - i],
        );
        let config = HostConfig::from_toml(
            &text,
            [(
                "MP_GRAPH_CLIENT_SECRET".to_owned(),
                app.client_secret.clone(),
            )],
            "host.toml",
        )
        .expect("config");
        hosts.push(Host::start(config).await.expect("host starts"));
    }
    let (b, c) = (&hosts[0], &hosts[1]);
    assert_eq!(
        c.instance_callback_url(),
        format!("http://127.0.0.1:{}/callbacks/c", ports[1])
    );
    let calls = emu.calls();
    assert_eq!(calls.len(), 1, "c placed its call");
    let c_call = calls[0].id.clone();
    assert_eq!(calls[0].callback_uri, c.instance_callback_url());

    let http = reqwest::Client::new();
    let post = |url: String, body: String, forwarded: bool| {
        let mut r = http
            .post(url)
            .header("content-type", "application/json")
            .header("authorization", "Bearer not-a-jwt")
            .body(body);
        if forwarded {
            r = r.header(host::routing::FORWARDED_BY, "test");
        }
        r.send()
    };
    let b_shared = format!("http://127.0.0.1:{}/callback", ports[0]);

    // c's call at b's shared path: forwarded to c, whose JWT check refuses the
    // forged token; b answers with c's 401.
    let r = post(b_shared.clone(), notification(&c_call), false)
        .await
        .expect("b answers");
    assert_eq!(r.status().as_u16(), 401, "{:?}", r.text().await);
    assert_eq!(
        metric(&http, b, "mp_callbacks_forwarded_total", "refused").await,
        1.0
    );
    // A call nobody follows: 404 after asking c.
    let r = post(b_shared.clone(), notification("nobody"), false)
        .await
        .expect("b answers");
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        metric(&http, b, "mp_callbacks_forwarded_total", "unowned").await,
        1.0
    );
    // Already forwarded: never forwarded again, 404 at once.
    let r = post(b_shared.clone(), notification(&c_call), true)
        .await
        .expect("b answers");
    assert_eq!(r.status().as_u16(), 404);
    for outcome in ["owner", "refused", "unowned"] {
        let want = if outcome == "owner" { 0.0 } else { 1.0 };
        assert_eq!(
            metric(&http, b, "mp_callbacks_forwarded_total", outcome).await,
            want,
            "{outcome}"
        );
    }
    // At the owner's own path the owner applies it (its JWT check answers).
    let r = post(
        c.instance_callback_url().to_owned(),
        notification(&c_call),
        true,
    )
    .await
    .expect("c answers");
    assert_eq!(r.status().as_u16(), 401);
    // Not JSON at another instance's path: the receiver's runtime refuses it (after
    // the JWT check), nothing is forwarded.
    let r = post(
        format!("http://127.0.0.1:{}/callbacks/c", ports[0]),
        "{".to_owned(),
        false,
    )
    .await
    .expect("b answers");
    assert_eq!(r.status().as_u16(), 401);

    for h in hosts {
        let report = h.run(async {}).await;
        assert_eq!(report.left, 0);
    }
    tokio::time::timeout(Duration::from_secs(10), emu.shutdown())
        .await
        .expect("emulator stops");
}
