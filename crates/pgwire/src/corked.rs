//! [`Corked`]: a client connection whose responses wait for Sync.
//!
//! In the extended protocol a client sends Bind, Execute and Sync together
//! and reads the answers after Sync. PostgreSQL buffers BindComplete, the
//! rows and CommandComplete and writes them with ReadyForQuery, in one
//! packet, at Sync (or at an explicit Flush). pgwire flushes after each of
//! BindComplete and CommandComplete instead: three `send` system calls per
//! statement, each of which wakes the client on loopback — measured as
//! about 40% of a node's CPU under sysbench's prepared point selects.
//!
//! `Corked` wraps the connection for the Parse, Bind, Describe, Execute
//! and Close handlers (pgwire's own, run through it: `handler.rs`): every
//! message goes into the connection's write buffer, and a flush asked for
//! in between does nothing. Sync (pgwire's `on_sync`, on the real
//! connection) writes everything with ReadyForQuery, and Flush still
//! flushes. A long result is not held back: the buffer writes itself out
//! whenever it passes its limit (`poll_ready` is the connection's own).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Sink;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, SessionExtensions};
use pgwire::messages::ProtocolVersion;
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::SecretKey;

/// A connection whose flushes are left to Sync (module docs).
pub(crate) struct Corked<'a, C>(pub(crate) &'a mut C);

impl<C: ClientInfo> ClientInfo for Corked<'_, C> {
    fn socket_addr(&self) -> SocketAddr {
        self.0.socket_addr()
    }

    fn is_secure(&self) -> bool {
        self.0.is_secure()
    }

    fn protocol_version(&self) -> ProtocolVersion {
        self.0.protocol_version()
    }

    fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.0.set_protocol_version(version);
    }

    fn pid_and_secret_key(&self) -> (i32, SecretKey) {
        self.0.pid_and_secret_key()
    }

    fn set_pid_and_secret_key(&mut self, pid: i32, secret_key: SecretKey) {
        self.0.set_pid_and_secret_key(pid, secret_key);
    }

    fn state(&self) -> PgWireConnectionState {
        self.0.state()
    }

    fn set_state(&mut self, new_state: PgWireConnectionState) {
        self.0.set_state(new_state);
    }

    fn transaction_status(&self) -> TransactionStatus {
        self.0.transaction_status()
    }

    fn set_transaction_status(&mut self, new_status: TransactionStatus) {
        self.0.set_transaction_status(new_status);
    }

    fn metadata(&self) -> &HashMap<String, String> {
        self.0.metadata()
    }

    fn metadata_mut(&mut self) -> &mut HashMap<String, String> {
        self.0.metadata_mut()
    }

    fn session_extensions(&self) -> &SessionExtensions {
        self.0.session_extensions()
    }
}

impl<C: ClientPortalStore> ClientPortalStore for Corked<'_, C> {
    type PortalStore = C::PortalStore;

    fn portal_store(&self) -> &Self::PortalStore {
        self.0.portal_store()
    }
}

impl<M, C: Sink<M> + Unpin> Sink<M> for Corked<'_, C> {
    type Error = C::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.get_mut().0).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), Self::Error> {
        Pin::new(&mut *self.get_mut().0).start_send(item)
    }

    /// Left to Sync or Flush (module docs).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut *self.get_mut().0).poll_close(cx)
    }
}
