//! [`Calls`]: the calls of one reactor thread, run against its QUIC [`Core`].
//!
//! Sans-IO: the shell calls [`Calls::dispatch`] after every input to the core, and
//! [`Calls::run_due`] when [`Calls::next_deadline`] has come. Every event of the core
//! goes to its call's [`CallHandler`] with a [`QuicLink`] for what the call sends;
//! joins go to the [`CallApp`]; dials to their [`Dialer`]. Each call runs inside a
//! `call` tracing span with its call and session ids.

use std::time::{Duration, Instant};

use media_core::codec::Codec;
use media_core::link::{CallHandler, CloseReason, LinkEvent};
use media_core::packet::AudioPacket;

use super::timers::Deadlines;
use super::{CallApp, CallWaker, Dial, Dialer, NewCall, Wake};
use crate::quic::{ClosedLink, ConnId, Core, Event, QuicLink, packet_from_datagram};
use crate::wire::Join;

enum Slot {
    /// Dialled; waiting for `Accept`.
    Dialing { dialer: Box<dyn Dialer>, join: Join },
    /// The call runs.
    Running(Running),
}

struct Running {
    handler: Box<dyn CallHandler>,
    /// The admitted join of a server-side call (released when it ends).
    admitted: Option<Join>,
    span: tracing::Span,
}

/// The calls of one reactor thread. See the [module documentation](self).
pub struct Calls {
    app: Box<dyn CallApp>,
    slots: Vec<Option<(u64, Slot)>>,
    running: usize,
    timers: Deadlines,
    packet: AudioPacket,
    wake: Wake,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

/// The running call of `conn`, if any.
fn running(slots: &mut [Option<(u64, Slot)>], conn: ConnId) -> Option<&mut Running> {
    match slots.get_mut(conn.index) {
        Some(Some((id, Slot::Running(r)))) if *id == conn.id => Some(r),
        _ => None,
    }
}

fn span_of(join: &Join) -> tracing::Span {
    tracing::info_span!("call", call_id = %join.call_id, session = %join.mp_media_session_id)
}

impl Calls {
    /// The calls of `app` (a dialling-only thread passes an app that refuses joins);
    /// `wake` queues a call for [`Calls::wake`] on this thread (its [`CallWaker`]s
    /// call it from anywhere).
    pub fn new(app: Box<dyn CallApp>, wake: Wake) -> Self {
        Calls {
            app,
            slots: Vec::new(),
            running: 0,
            timers: Deadlines::default(),
            packet: AudioPacket::empty(Codec::Pcm16k),
            wake,
        }
    }

    fn waker(&self, conn: ConnId) -> CallWaker {
        CallWaker {
            conn,
            wake: self.wake.clone(),
        }
    }

    /// Runs the [`CallHandler::handle_wake`] of `conn`'s call, if it still runs.
    pub fn wake(&mut self, core: &mut Core, now: Instant, conn: ConnId) {
        let Some(r) = running(&mut self.slots, conn) else {
            return;
        };
        r.span.in_scope(|| {
            let mut link = QuicLink::new(core, conn, now);
            r.handler.handle_wake(now, &mut link);
        });
        self.timers
            .set(conn.index, conn.id, r.handler.poll_timeout());
        self.dispatch(core, now);
    }

    /// Calls running.
    pub fn running(&self) -> usize {
        self.running
    }

    /// The earliest deadline of a call.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.timers.next()
    }

    fn take(&mut self, conn: ConnId) -> Option<Slot> {
        let cell = self.slots.get_mut(conn.index)?;
        if cell.as_ref().is_some_and(|(id, _)| *id == conn.id) {
            self.timers.set(conn.index, conn.id, None);
            return cell.take().map(|(_, s)| s);
        }
        None
    }

    fn put(&mut self, conn: ConnId, slot: Slot) {
        if self.slots.len() <= conn.index {
            self.slots.resize_with(conn.index + 1, || None);
        }
        self.slots[conn.index] = Some((conn.id, slot));
    }

    /// Dials through `core`; the dialer hears the outcome from [`Calls::dispatch`].
    pub(crate) fn dial(&mut self, core: &mut Core, now: Instant, dial: Dial) {
        let Dial {
            config,
            remote,
            server_name,
            join,
            dialer,
        } = dial;
        match core.connect(now, config, remote, &server_name, join.clone()) {
            Ok(conn) => self.put(conn, Slot::Dialing { dialer, join }),
            Err(e) => dialer.failed(e),
        }
    }

    fn start(
        &mut self,
        conn: ConnId,
        handler: Box<dyn CallHandler>,
        admitted: Option<Join>,
        span: tracing::Span,
    ) {
        self.running += 1;
        self.timers.set(conn.index, conn.id, handler.poll_timeout());
        let running = Running {
            handler,
            admitted,
            span,
        };
        self.put(conn, Slot::Running(running));
    }

    /// Drains `core`'s events: answers joins, starts and feeds calls, ends them.
    pub fn dispatch(&mut self, core: &mut Core, now: Instant) {
        while let Some(event) = core.poll_event() {
            match event {
                Event::Join { conn, join, remote } => self.on_join(core, now, conn, join, remote),
                Event::Accepted {
                    conn,
                    accept,
                    remote,
                } => {
                    let Some(Slot::Dialing { dialer, join }) = self.take(conn) else {
                        continue;
                    };
                    let span = span_of(&join);
                    let handler = span.in_scope(|| {
                        dialer.accepted(NewCall {
                            conn,
                            join: &join,
                            accept: &accept,
                            remote,
                            now,
                            waker: self.waker(conn),
                        })
                    });
                    self.start(conn, handler, None, span);
                }
                Event::DialFailed { conn, error } => {
                    if let Some(Slot::Dialing { dialer, .. }) = self.take(conn) {
                        dialer.failed(error);
                    }
                }
                Event::Packet {
                    conn,
                    header,
                    payload,
                    received_at,
                } => {
                    if packet_from_datagram(&mut self.packet, &header, &payload)
                        && let Some(r) = running(&mut self.slots, conn)
                    {
                        r.span.in_scope(|| {
                            let mut link = QuicLink::new(core, conn, now);
                            r.handler.handle_event(
                                received_at,
                                LinkEvent::Packet(&self.packet),
                                &mut link,
                            );
                        });
                        self.timers
                            .set(conn.index, conn.id, r.handler.poll_timeout());
                    }
                }
                Event::Control { conn, control } => {
                    if let Some(r) = running(&mut self.slots, conn) {
                        r.span.in_scope(|| {
                            let mut link = QuicLink::new(core, conn, now);
                            r.handler
                                .handle_event(now, LinkEvent::Control(control), &mut link);
                        });
                        self.timers
                            .set(conn.index, conn.id, r.handler.poll_timeout());
                    }
                }
                Event::Closed {
                    conn,
                    reason,
                    stats,
                } => {
                    if let Some(Slot::Running(mut r)) = self.take(conn) {
                        self.running -= 1;
                        let _g = r.span.clone().entered();
                        r.handler.handle_event(
                            now,
                            LinkEvent::Closed(&reason),
                            &mut ClosedLink(stats),
                        );
                        if let Some(join) = r.admitted.take() {
                            self.app.release(&join, &reason);
                        }
                    }
                }
            }
        }
    }

    fn on_join(
        &mut self,
        core: &mut Core,
        now: Instant,
        conn: ConnId,
        join: Join,
        remote: std::net::SocketAddr,
    ) {
        let span = span_of(&join);
        let _g = span.enter();
        let admission = match self.app.admit(&join) {
            Ok(a) => a,
            Err(reject) => return core.reject(conn, now, reject),
        };
        let Some(accept) = core.accept(conn, now, admission) else {
            let reason = CloseReason::Closed {
                reason: "not admitted".into(),
            };
            return self.app.release(&join, &reason);
        };
        let waker = self.waker(conn);
        let started = self.app.start(NewCall {
            conn,
            join: &join,
            accept: &accept,
            remote,
            now,
            waker,
        });
        match started {
            Ok(handler) => {
                drop(_g);
                self.start(conn, handler, Some(join), span);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the call");
                let reason = e.to_string();
                core.close(conn, now, &reason);
                self.app.release(&join, &CloseReason::Closed { reason });
            }
        }
    }

    /// Runs every call whose deadline has come at `now` (and what that causes).
    pub fn run_due(&mut self, core: &mut Core, now: Instant) {
        while let Some((index, id, _)) = self.timers.pop_due(now) {
            let conn = ConnId { index, id };
            let Some(r) = running(&mut self.slots, conn) else {
                continue;
            };
            r.span.in_scope(|| {
                let mut link = QuicLink::new(core, conn, now);
                r.handler.handle_timeout(now, &mut link);
            });
            // Never again at or before `now` in this turn: a handler that keeps
            // asking for the present runs once per turn instead of freezing the thread.
            let next = r
                .handler
                .poll_timeout()
                .map(|t| t.max(now + Duration::from_nanos(1)));
            self.timers.set(index, id, next);
            self.dispatch(core, now);
        }
    }
}
