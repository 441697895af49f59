//! Batched UDP send and receive (`sendmmsg` / `recvmmsg`) on connected sockets. The only
//! unsafe code of the benchmarks, kept here.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// One message header per iovec, each a single datagram with no address or control data.
fn headers(iovecs: &mut [libc::iovec]) -> Vec<libc::mmsghdr> {
    iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero mmsghdr is valid (no name, no control data).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect()
}

/// Sends every buffer as one datagram in one system call; returns how many went out.
pub fn send_batch(socket: &UdpSocket, bufs: &[&[u8]]) -> io::Result<usize> {
    let mut iovecs: Vec<libc::iovec> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let mut msgs = headers(&mut iovecs);
    // SAFETY: msgs points to msgs.len() initialized headers whose iovecs point into `bufs`,
    // which outlive the call; the socket fd is valid for the borrow.
    let n = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            0,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Receives up to `bufs.len()` datagrams in one system call (waiting for the first one, up to
/// the socket's read timeout); returns how many arrived.
pub fn recv_batch(socket: &UdpSocket, bufs: &mut [Vec<u8>]) -> io::Result<usize> {
    let mut iovecs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let mut msgs = headers(&mut iovecs);
    // SAFETY: msgs points to initialized headers whose iovecs point into the exclusively
    // borrowed `bufs`; MSG_WAITFORONE returns after the first datagram plus what is queued.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
