//! A TCP listener of text lines (Flink's `socketTextStream`, but listening): shard 0
//! accepts connections one after another and reads lines; the other shards read nothing
//! and receive their keys through the shuffle. Never ends by itself; a stop ends it.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::io::{AsyncBufReadExt, BufReader};

use super::{trim_eol, LineParser, LocalBoxFuture, Source, SourceContext, SourceReader};
use crate::badrecord::BadRecords;
use crate::error::Error;

/// How often a blocked accept or read hands control back to the producer (which looks
/// at the stop flag and answers checkpoint requests).
const STOP_POLL: Duration = Duration::from_millis(100);
/// Longest line accepted from a socket; a longer one is a bad record.
const LINE_BYTES_MAX: usize = 1 << 20;

pub struct TcpSource<T> {
    addr: SocketAddr,
    parse: LineParser<T>,
}

impl<T> TcpSource<T> {
    pub fn new(addr: SocketAddr, parse: LineParser<T>) -> Self {
        TcpSource { addr, parse }
    }
}

impl<T: Send + 'static> Source<T> for TcpSource<T> {
    fn name(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    fn check(&self) -> Result<(), Error> {
        // Fail before start-up if the address cannot be bound at all.
        std::net::TcpListener::bind(self.addr).map(drop).map_err(|e| Error::io(self.name(), e))
    }

    fn open(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, Error> {
        let listener = if ctx.shard.0 == 0 {
            let l = glommio::net::TcpListener::bind(self.addr)
                .map_err(|e| Error::io(self.name(), std::io::Error::other(e.to_string())))?;
            tracing::info!(address = %self.addr, "listening for lines");
            Some(l)
        } else {
            None
        };
        Ok(Box::new(TcpReader {
            name: self.name(),
            listener,
            conn: None,
            parse: self.parse.clone(),
            bad: ctx.bad.clone(),
            ctx: ctx.clone(),
            line: Vec::new(),
            offset: 0,
        }))
    }
}

struct TcpReader<T> {
    name: String,
    listener: Option<glommio::net::TcpListener>,
    conn: Option<(SocketAddr, BufReader<glommio::net::TcpStream>)>,
    parse: LineParser<T>,
    bad: Arc<BadRecords>,
    ctx: SourceContext,
    line: Vec<u8>,
    offset: u64,
}

enum Step<T> {
    Ready(T),
    Tick,
}

async fn or_tick<T>(f: impl std::future::Future<Output = T>) -> Step<T> {
    futures_lite::future::or(async { Step::Ready(f.await) }, async {
        glommio::timer::sleep(STOP_POLL).await;
        Step::Tick
    })
    .await
}

impl<T> SourceReader<T> for TcpReader<T> {
    fn read<'a>(&'a mut self, out: &'a mut Vec<T>, max: usize) -> LocalBoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let Some(listener) = &self.listener else { return Ok(false) };
            let start_len = out.len();
            while out.len() - start_len < max {
                if self.ctx.stopping() {
                    return Ok(false);
                }
                let Some((peer, conn)) = &mut self.conn else {
                    match or_tick(listener.accept()).await {
                        // A tick hands control back (an empty read, the source goes on),
                        // so the producer answers checkpoint and savepoint requests while
                        // no one is connected.
                        Step::Tick => return Ok(true),
                        Step::Ready(Err(e)) => return Err(Error::io(&self.name, std::io::Error::other(e.to_string()))),
                        Step::Ready(Ok(s)) => {
                            let peer = s
                                .peer_addr()
                                .map_err(|e| Error::io(&self.name, std::io::Error::other(e.to_string())))?;
                            tracing::info!(%peer, "connection accepted");
                            self.offset = 0;
                            self.conn = Some((peer, BufReader::new(s)));
                            continue;
                        }
                    }
                };
                // read_until appends what it consumed to `self.line`, so a read cut short
                // by the stop tick loses nothing: the next call continues the same line.
                match or_tick(conn.read_until(b'\n', &mut self.line)).await {
                    // Likewise while a connection is idle: barriers must not wait for data.
                    Step::Tick => return Ok(true),
                    Step::Ready(Ok(0)) => {
                        tracing::info!(peer = %peer, "connection closed");
                        self.conn = None;
                        self.line.clear();
                    }
                    Step::Ready(Ok(_)) if self.line.ends_with(b"\n") || self.line.len() > LINE_BYTES_MAX => {
                        let position = format!("{peer} byte offset {}", self.offset);
                        self.offset += self.line.len() as u64;
                        let line = trim_eol(&self.line);
                        if line.len() > LINE_BYTES_MAX {
                            self.bad.report(&self.name, &position, "line too long", line)?;
                        } else if !line.is_empty() {
                            if let Err(reason) = (self.parse)(line, out) {
                                self.bad.report(&self.name, &position, &reason, line)?;
                            }
                        }
                        self.line.clear();
                    }
                    Step::Ready(Ok(_)) => {}
                    Step::Ready(Err(e)) => {
                        tracing::warn!(peer = %peer, error = %e, "connection failed");
                        self.conn = None;
                        self.line.clear();
                    }
                }
            }
            Ok(true)
        })
    }
}
