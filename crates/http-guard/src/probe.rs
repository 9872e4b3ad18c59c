//! Client-side probes for checking a guarded server from the outside (the tests of
//! every server that uses [`HttpServer`](crate::HttpServer) ask the same questions).

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Whether the server closed `stream` within `within` (EOF or reset), reading and
/// dropping whatever it sends before (a `408`, say).
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use std::time::Duration;
/// let mut slow = tokio::net::TcpStream::connect("127.0.0.1:8080").await?;
/// // Half a request head, then nothing: closed after the header read timeout.
/// tokio::io::AsyncWriteExt::write_all(&mut slow, b"POST / HTTP/1.1\r\nHost: x\r\n").await?;
/// assert!(http_guard::probe::closed_within(&mut slow, Duration::from_secs(11)).await);
/// # Ok(()) }
/// ```
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    });
    read.await.is_ok()
}
