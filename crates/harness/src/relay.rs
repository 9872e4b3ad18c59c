//! [`UdpRelay`]: a loopback UDP relay between one client and one server that a test
//! can cut, so a far end vanishes without a goodbye, as on a real network loss.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A running relay. Dropping it stops it.
#[derive(Debug)]
pub struct UdpRelay {
    front: SocketAddr,
    cut: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpRelay {
    /// A relay to `server`; clients send to [`UdpRelay::address`]. Must be called
    /// inside a tokio runtime. It stops after 10 s without traffic.
    pub async fn start(server: SocketAddr) -> std::io::Result<UdpRelay> {
        let front = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let back = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        back.connect(server).await?;
        let addr = front.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(front, back, cut.clone(), dropped.clone()));
        Ok(UdpRelay {
            front: addr,
            cut,
            dropped,
            task,
        })
    }

    /// Where clients send.
    pub fn address(&self) -> SocketAddr {
        self.front
    }

    /// From now on no packet passes either way.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
    }

    /// Packets dropped since the cut.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    front: tokio::net::UdpSocket,
    back: tokio::net::UdpSocket,
    cut: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) {
    let mut client: Option<SocketAddr> = None;
    let mut a = vec![0u8; 65_536];
    let mut b = vec![0u8; 65_536];
    let idle = Duration::from_secs(10);
    let mut errors = 0u32;
    loop {
        tokio::select! {
            r = front.recv_from(&mut a) => match r {
                Ok((n, from)) => {
                    client = Some(from);
                    if cut.load(Ordering::Acquire) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let _ = back.send(&a[..n]).await;
                    }
                }
                Err(_) => break,
            },
            r = back.recv(&mut b) => match r {
                Ok(n) => match (client, cut.load(Ordering::Acquire)) {
                    (Some(c), false) => {
                        let _ = front.send_to(&b[..n], c).await;
                    }
                    _ => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                },
                // ICMP "port unreachable" from a server that is gone: give up after a
                // while.
                Err(_) => {
                    errors += 1;
                    if errors > 100 {
                        break;
                    }
                }
            },
            // Ends once nothing has passed for a while (the call is over).
            _ = tokio::time::sleep(idle) => break,
        }
    }
}
