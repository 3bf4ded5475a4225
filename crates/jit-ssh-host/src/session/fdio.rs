//! Plain read and write on a descriptor, for the threads that copy a pty
//! session's bytes without going through the async runtime. They block
//! whatever mode the descriptor is in: on a non-blocking one (sshd's pty
//! can be either; its mode is shared with every copy of it) `EAGAIN`
//! waits in `poll` for the descriptor to be ready; `EINTR` retries.

use std::io;
use std::os::fd::AsFd;

use rustix::event::{poll, PollFd, PollFlags};

fn wait_for<Fd: AsFd>(fd: &Fd, flags: PollFlags) -> io::Result<()> {
    let mut fds = [PollFd::new(fd, flags)];
    match poll(&mut fds, None) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// One read: what is there (at least one byte), 0 at end of file. A pty
/// master whose slave is closed everywhere says EIO, an error here.
pub fn read<Fd: AsFd>(fd: &Fd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => wait_for(fd, PollFlags::IN)?,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes all of `bytes`.
pub fn write_all<Fd: AsFd>(fd: &Fd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => wait_for(fd, PollFlags::OUT)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// [`read`], then on without waiting while more is ready, until `buf` is
/// full: a pty hands out at most 4 KiB a read, and under bulk output more
/// is often there already. Needs a non-blocking descriptor (else the
/// second read would wait).
pub fn read_burst<Fd: AsFd>(fd: &Fd, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = read(fd, buf)?;
    while n > 0 && n < buf.len() {
        match rustix::io::read(fd, &mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(m) => n += m,
        }
    }
    Ok(n)
}
