//! A media port belongs to one processor: a second server on a port already served
//! fails with a clear error (issue 10, item 3), while one server's reactor threads
//! still share their port.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::*;
use media_core::link::CallHandler;
use transport::reactor::{CallApp, NewCall, ReactorServer, StartError};
use transport::wire::{Join, Reject, RejectCode};
use transport::{Admission, ServerConfig, ServerIdentity, TransportError};
use uuid::Uuid;

/// Binds a second server with `threads` threads on `addr` and returns its error.
fn second_server(addr: SocketAddr, threads: usize) -> TransportError {
    let identity = ServerIdentity::self_signed(&["localhost"]).unwrap();
    let mut cfg = ServerConfig::new(addr, identity);
    cfg.settings = settings();
    match ReactorServer::bind_threads(cfg, threads, unreachable_app) {
        Ok(s) => panic!(
            "a second server bound {} ({threads} threads)",
            s.local_addr()
        ),
        Err(e) => e,
    }
}

/// An application that refuses every join (these servers serve none).
fn unreachable_app() -> Box<dyn CallApp> {
    Box::new(RefuseEverything)
}

struct RefuseEverything;

impl CallApp for RefuseEverything {
    fn admit(&mut self, _join: &Join) -> Result<Admission, Reject> {
        Err(Reject::new(RejectCode::UnknownSession, "no sessions here"))
    }

    fn start(&mut self, _call: NewCall<'_>) -> Result<Box<dyn CallHandler>, StartError> {
        Err(StartError::Withdrawn)
    }
}

fn assert_port_in_use(e: &TransportError, addr: SocketAddr) {
    let msg = e.to_string();
    assert!(
        matches!(e, TransportError::PortInUse { addr: a } if a.port() == addr.port()),
        "not PortInUse: {e:?}"
    );
    assert!(
        msg.contains(&format!("UDP port {}", addr.port()))
            && msg.contains("already in use by another process"),
        "unclear message: {msg}"
    );
}

#[tokio::test]
async fn a_second_server_on_a_served_port_fails_and_the_first_keeps_serving() {
    let session = Uuid::new_v4();
    // The first processor shares its port among its own two reactor threads.
    let first = Reactor::start_threads(settings(), &[session], 2);
    let addr = first.addr();
    for threads in [1, 2, 4] {
        let e = second_server(addr, threads);
        assert_port_in_use(&e, addr);
    }
    // Every call still reaches the first (none is hashed to a stolen socket).
    let peer = first.join(join_for(session)).await;
    peer.prove_echo(0, 5).await;
}

#[test]
fn a_port_held_by_a_foreign_reuse_port_socket_is_refused() {
    // Another process of the same user with SO_REUSEPORT: Linux would let any new
    // SO_REUSEPORT socket join its group and take part of the traffic.
    let foreign = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    foreign.set_reuse_port(true).unwrap();
    foreign
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let addr = foreign.local_addr().unwrap().as_socket().unwrap();
    for threads in [1, 2] {
        let e = second_server(addr, threads);
        assert_port_in_use(&e, addr);
    }
    drop(foreign);
    // Once the port is free it is taken by one server, all its threads.
    let identity = ServerIdentity::self_signed(&["localhost"]).unwrap();
    let mut cfg = ServerConfig::new(addr, identity);
    cfg.settings = settings();
    let server = ReactorServer::bind_threads(cfg, 2, unreachable_app).unwrap();
    assert_eq!(server.local_addr(), addr);
    assert_eq!(server.threads(), 2);
}
