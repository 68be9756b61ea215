//! # shoal-pgwire — the PostgreSQL front end
//!
//! Speaks the PostgreSQL wire protocol (v3) with the `pgwire` crate: startup
//! without authentication (any user name connects, for now), the simple and
//! the extended query protocol, cancel requests, and results in text or
//! binary format.
//!
//! ```text
//!  TCP accept ─▶ Connection (per socket) ─▶ Session (shoal-sql)
//!                 ├ Startup: opens the session for (database, user)
//!                 ├ simple query: parse → execute each statement → rows / tags
//!                 └ extended: Parse → prepare (types) ; Bind → decode params ;
//!                             Execute → execute → encode rows in the asked format
//! ```
//!
//! This crate is where errors get their SQLSTATE ([`sqlstate`]) and where
//! Arrow values become PostgreSQL's text and binary representations
//! ([`encode`]); nothing below it knows about the wire.

pub mod copy_binary;
mod corked;
pub mod encode;
mod execute;
pub mod handler;
pub mod params;
mod pipeline;
pub mod sqlstate;

use std::sync::Arc;

use pgwire::api::ConnectionManager;
use shoal_sql::Database;
use tokio::net::TcpListener;

/// Accepts connections until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    db: Arc<Database>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let connections = Arc::new(ConnectionManager::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let conn = handler::Connection::new(db.clone(), connections.clone());
                    tokio::spawn(async move {
                        if let Err(e) = pgwire::tokio::process_socket(socket, None, conn).await {
                            tracing::debug!(%peer, "connection ended with error: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}
