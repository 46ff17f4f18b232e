//! The proxy route's floor: the least a tokio program can do to proxy `GET /api/users/{id}`
//! to the users backend over keep-alive, for `bench/run.py` to measure beside nginx and
//! Manifold. It makes the system calls a reverse proxy must (read the request, write it
//! upstream, read the answer, write it back) and nothing else: no header map, no routing
//! beyond a prefix, no limits, logs, metrics or ids. What it costs a request is what the
//! runtime and the kernel cost, so it tells how much of a gateway's CPU is its own.
//!
//! Not a proxy to run: it trusts both peers (a head is at most 16 KiB, the backend answers
//! with a `content-length`), and is only ever started by the benchmark on 127.0.0.1.
//!
//! `floor-proxy LISTEN UPSTREAM [work-stealing|thread-per-core] [WORKERS]`; it prints
//! `listening on ADDR` once it listens (LISTEN's port 0: a free one).

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const PREFIX: &[u8] = b"GET /api/users/";
const MAX_HEAD: usize = 16 * 1024;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, rest @ ..] = args.as_slice() else {
        eprintln!("usage: floor-proxy LISTEN UPSTREAM [work-stealing|thread-per-core] [WORKERS]");
        std::process::exit(64);
    };
    let listen: SocketAddr = listen.parse().map_err(io::Error::other)?;
    let upstream: SocketAddr = upstream.parse().map_err(io::Error::other)?;
    let per_core = rest.first().is_some_and(|r| r == "thread-per-core");
    let workers = rest
        .get(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if per_core {
        // The first worker binds `listen` (port 0: any free one) and says where; the others
        // bind the same address beside it.
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let mut threads = vec![worker(listen, upstream, Some(bound_tx))];
        let bound = bound_rx
            .recv()
            .map_err(|_| io::Error::other("the first worker did not bind"))?;
        println!("listening on {bound}");
        threads.extend((1..workers).map(|_| worker(bound, upstream, None)));
        for thread in threads {
            thread
                .join()
                .map_err(|_| io::Error::other("a worker panicked"))??;
        }
        Ok(())
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_io()
            .build()?
            .block_on(async {
                let listener = listener(listen)?;
                println!("listening on {}", listener.local_addr()?);
                accept(listener, upstream).await
            })
    }
}

/// One thread-per-core worker: a runtime of its own on a listener of its own at `listen`;
/// `bound` learns the address it bound.
fn worker(
    listen: SocketAddr,
    upstream: SocketAddr,
    bound: Option<std::sync::mpsc::Sender<SocketAddr>>,
) -> std::thread::JoinHandle<io::Result<()>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        runtime.block_on(async {
            let listener = listener(listen)?;
            if let Some(bound) = bound {
                let _ = bound.send(listener.local_addr()?);
            }
            accept(listener, upstream).await
        })
    })
}

/// A listener on `addr` that the other workers bind too (`SO_REUSEPORT`).
fn listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn accept(listener: TcpListener, upstream: SocketAddr) -> io::Result<()> {
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            client.set_nodelay(true)?;
            serve(client, upstream).await
        });
    }
}

/// One client connection, with one upstream connection of its own (opened at its first
/// request, kept alive with it).
async fn serve(mut client: TcpStream, upstream_addr: SocketAddr) -> io::Result<()> {
    let mut upstream: Option<TcpStream> = None;
    let mut request = Vec::with_capacity(4096);
    let mut outgoing = Vec::with_capacity(4096);
    let mut answer = Vec::with_capacity(8192);
    loop {
        let Some(head) = read_head(&mut client, &mut request).await? else {
            return Ok(());
        };
        let Some(path_end) = request[..head]
            .starts_with(PREFIX)
            .then(|| request[PREFIX.len()..head].iter().position(|&b| b == b' '))
            .flatten()
        else {
            client
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await?;
            request.drain(..head);
            continue;
        };
        let id = &request[PREFIX.len()..PREFIX.len() + path_end];
        outgoing.clear();
        outgoing.extend_from_slice(b"GET /users/");
        outgoing.extend_from_slice(id);
        outgoing.extend_from_slice(b" HTTP/1.1\r\nhost: users\r\naccept: application/json\r\n\r\n");
        request.drain(..head);
        let backend = match &mut upstream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(upstream_addr).await?;
                stream.set_nodelay(true)?;
                upstream.insert(stream)
            }
        };
        backend.write_all(&outgoing).await?;
        answer.clear();
        let Some(head) = read_head(backend, &mut answer).await? else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        let length = content_length(&answer[..head]).ok_or(io::ErrorKind::InvalidData)?;
        while answer.len() < head + length {
            if backend.read_buf(&mut answer).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        client.write_all(&answer[..head + length]).await?;
    }
}

/// Reads until `buffer` holds a whole head; its length with the blank line, or `None` at
/// the end of the stream before one began.
async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<Option<usize>> {
    loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(at + 4));
        }
        if buffer.len() > MAX_HEAD {
            return Err(io::ErrorKind::InvalidData.into());
        }
        if buffer.capacity() - buffer.len() < 1024 {
            buffer.reserve(4096);
        }
        if stream.read_buf(buffer).await? == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
    }
}

/// The `content-length` of a response head.
fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
        name.eq_ignore_ascii_case(b"content-length")
            .then(|| std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok())
            .flatten()
    })
}
