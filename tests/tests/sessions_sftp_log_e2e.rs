//! sftp through the session wrapper is logged as operations (sftp-server's
//! own INFO lines: open, close with byte counts, rename, remove, with
//! paths), not recorded as bytes; and the bytes still pass unchanged.
//!
//! sftp-server logs with syslog(3), which writes to /dev/log. This machine
//! has no syslog daemon (no /dev/log), and a test must not create one for
//! the whole machine; so the wrapper's `--sftp-server` points at a
//! two-line shim that runs the real `/usr/lib/openssh/sftp-server` with
//! the arguments the wrapper gives it plus `-e` (sftp-server's "log to
//! stderr instead of syslog"), its stderr going to a file. The lines are
//! then exactly the ones syslog would get (docs/sessions.md).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use jit_ssh_e2e::session_host::SessionHost;
use jit_ssh_e2e::{have_tools, run, SSH, SSHD, SSH_KEYGEN};

const SFTP: &str = "/usr/bin/sftp";
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

#[test]
fn an_sftp_put_rename_and_remove_are_logged_by_sftp_server_at_info() {
    if !have_tools(
        "sessions_sftp_log_e2e",
        &[SSHD, SSH, SSH_KEYGEN, SFTP, SFTP_SERVER],
    ) {
        return;
    }
    let h = SessionHost::start();
    let log = h.root.join("sftp-server.log");
    let argv = h.root.join("sftp-server.argv");
    let shim = h.root.join("sftp-server-to-stderr");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\necho \"$@\" >> {argv}\nexec {SFTP_SERVER} -e \"$@\" 2>> {log}\n",
            argv = argv.display(),
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (cert, _, _) = h.certificate(
        "10m",
        &format!("--record off --sftp-server {}", shim.display()),
    );

    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let src = h.root.join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let (put, moved) = (h.root.join("put.bin"), h.root.join("moved.bin"));
    let batch = h.root.join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {src} {put}\nrename {put} {moved}\nget {moved} {back}\nrm {moved}\n",
            src = src.display(),
            put = put.display(),
            moved = moved.display(),
            back = h.root.join("back.bin").display(),
        ),
    )
    .unwrap();
    let out = run(Command::new(SFTP)
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ])
        .args(h.ssh_options(&cert))
        .args(["-P", &h.sshd.port().to_string(), "-b"])
        .arg(&batch)
        .arg(format!("{}@127.0.0.1", h.account)));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        h.sshd.log()
    );
    // The bytes went through the wrapper's pipes unchanged.
    assert!(std::fs::read(h.root.join("back.bin")).unwrap() == data);
    assert!(!moved.exists());

    let args = std::fs::read_to_string(&argv).unwrap_or_default();
    assert!(args.contains("-l INFO -f AUTH"), "the wrapper ran: {args}");
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let (put, moved) = (put.display(), moved.display());
    for want in [
        format!("session opened for local user {}", h.account),
        format!("open \"{put}\" flags WRITE,CREATE,TRUNCATE"),
        format!("close \"{put}\" bytes read 0 written {}", data.len()),
        format!("rename old \"{put}\" new \"{moved}\""),
        format!("close \"{moved}\" bytes read {} written 0", data.len()),
        format!("remove name \"{moved}\""),
        format!("session closed for local user {}", h.account),
    ] {
        assert!(
            lines.contains(&want),
            "no {want:?} in sftp-server's log:\n{lines}"
        );
    }
    eprintln!("sftp-server logged:\n{lines}");
}
