//! [`DatagramIo`]: the receive path of UDP datagram transports.

use std::os::fd::RawFd;

use parking_lot::Mutex;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::{PyTraverseError, PyVisit};

use super::recv::{errno, os_error, would_block, MAX_READ};

thread_local! {
    /// Datagrams are received here and copied out at their size.
    static DGRAM_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; MAX_READ]);
}

/// The peer address of a received datagram, as `socket.recvfrom` gives it.
fn sockaddr_to_py<'py>(py: Python<'py>, sa: &libc::sockaddr_storage) -> PyResult<Bound<'py, PyAny>> {
    match i32::from(sa.ss_family) {
        libc::AF_INET => {
            // Safety: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*std::ptr::from_ref(sa).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok((ip.to_string(), u16::from_be(sin.sin_port))
                .into_pyobject(py)?
                .into_any())
        }
        libc::AF_INET6 => {
            // Safety: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*std::ptr::from_ref(sa).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok((
                ip.to_string(),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )
                .into_pyobject(py)?
                .into_any())
        }
        other => Err(pyo3::exceptions::PyOSError::new_err(format!(
            "unexpected address family {other}"
        ))),
    }
}

/// The per-packet receive path of a UDP datagram transport (IPv4 and IPv6): one `recvfrom`,
/// then `protocol.datagram_received(data, addr)`, as asyncio's `_read_ready` does.
#[pyclass(module = "plait._plait", frozen)]
pub struct DatagramIo {
    transport: Mutex<Option<Py<PyAny>>>,
    fd: RawFd,
}

#[pymethods]
impl DatagramIo {
    #[new]
    fn new(transport: Py<PyAny>, fd: RawFd) -> Self {
        Self {
            transport: Mutex::new(Some(transport)),
            fd,
        }
    }

    /// The socket is readable: receive one datagram.
    fn read_ready(&self, py: Python<'_>) -> PyResult<()> {
        let Some(t) = self.transport.lock().as_ref().map(|t| t.bind(py).clone()) else {
            return Ok(());
        };
        if t.getattr(intern!(py, "_conn_lost"))?.is_truthy()? {
            return Ok(());
        }
        // Safety: an all-zero sockaddr_storage is a valid value.
        let mut sa: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let received = DGRAM_BUF.with_borrow_mut(|buf| {
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // Safety: `buf` and `sa` are valid writable regions of the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&raw mut sa).cast(),
                    &raw mut len,
                )
            };
            if n < 0 {
                Err(errno())
            } else {
                Ok(PyBytes::new(py, &buf[..n as usize]))
            }
        });
        let protocol = t.getattr(intern!(py, "_protocol"))?;
        match received {
            Err(e) if would_block(e) => Ok(()),
            Err(e) => {
                protocol.call_method1(intern!(py, "error_received"), (os_error(e).value(py),))?;
                Ok(())
            }
            Ok(data) => {
                let addr = sockaddr_to_py(py, &sa)?;
                // As asyncio's: an exception goes to the loop's exception handler (through the
                // reader's handle); the endpoint stays open.
                protocol.call_method1(intern!(py, "datagram_received"), (data, addr))?;
                Ok(())
            }
        }
    }

    /// Drops the reference to the transport (after `connection_lost`).
    fn detach(&self) {
        let t = self.transport.lock().take();
        drop(t);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(t) = self.transport.try_lock() {
            visit.call(t.as_ref())?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        self.detach();
    }
}
