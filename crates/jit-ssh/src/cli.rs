//! The command line as clap sees it: every command, argument and its help.
//! `main.rs` turns a parsed [`Cli`] into calls.

use clap::{Args, Parser, Subcommand};

/// Just-in-time SSH certificates for on-call engineers.
#[derive(Parser)]
#[command(name = "jit-ssh", version, about)]
pub struct Cli {
    /// Machine-readable output (JSON) on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings that flags can override (see `~/.config/jit-ssh/config.toml`).
#[derive(Args, Clone, Default)]
pub struct Common {
    /// The CA URL (JIT_SSH_CA_URL, ca_url).
    #[arg(long)]
    pub ca_url: Option<String>,
    /// Your jit-ssh user name (JIT_SSH_USER, user; default: login name).
    #[arg(long)]
    pub user: Option<String>,
}

/// What a login asks for: shared by `login` and `ssh`.
#[derive(Args, Clone)]
pub struct AccessArgs {
    /// Account on the host (JIT_SSH_ACCOUNT, account; default: your user name).
    #[arg(long = "as", value_name = "ACCOUNT")]
    pub account: Option<String>,
    /// Certificate lifetime, e.g. 10m (JIT_SSH_TTL, ttl; default 10m).
    #[arg(long)]
    pub ttl: Option<String>,
    /// Why you need access (recorded in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Break-glass: where policy allows it, issued at once after your
    /// touch, with a shorter cap, marked and always notified. Needs --reason.
    #[arg(long)]
    pub break_glass: bool,
    /// Only print the link (for jump hosts: touch the key on your laptop).
    #[arg(long)]
    pub no_browser: bool,
    /// Give up (and withdraw the request) after this long.
    #[arg(long, default_value = "10m")]
    pub timeout: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Subcommand)]
pub enum Command {
    /// Get a short-lived certificate for HOST into your ssh-agent.
    Login {
        /// The host, as you will ssh to it (e.g. db-1.prod).
        host: String,
        #[command(flatten)]
        access: AccessArgs,
        /// Do nothing if a certificate with over a minute left is loaded.
        #[arg(long)]
        if_needed: bool,
        /// Print only the link and errors.
        #[arg(long)]
        quiet: bool,
    },
    /// List jit-ssh certificates in the agent and their time left.
    Status,
    /// Remove jit-ssh certificates from the agent (all, or for HOST), and
    /// end saved sign-ins at the CA and delete them.
    Logout {
        /// Only this host's certificates (default: all).
        host: Option<String>,
    },
    /// Pending requests you may approve or deny (signs you in).
    Requests {
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// Approve someone's request, confirmed with your security key.
    Approve {
        /// The request id (from `jit-ssh requests` or the notification).
        id: String,
        /// A note for the requester and the audit log.
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// Deny someone's request, confirmed with your security key.
    Deny {
        /// The request id (from `jit-ssh requests` or the notification).
        id: String,
        /// Why (the requester sees it).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// What you may reach: host groups, accounts, the TTL cap and the
    /// approval each would need right now (signs you in).
    Hosts {
        /// Only host groups whose name or host patterns match this
        /// pattern (`*`, `?`), or that cover it as a host name.
        pattern: Option<String>,
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// Read the CA's audit log (signs you in with your security key):
    /// engineers see their own records, auditors everyone's.
    Audit(Box<AuditArgs>),
    /// Log in if needed, then run ssh ACCOUNT@HOST [ARGS]. Once ssh runs,
    /// the exit status is ssh's (the remote command's, 255 for ssh's own
    /// errors); if jit-ssh fails before that, it exits 200 + its own code.
    Ssh {
        /// The host, as you would ssh to it.
        host: String,
        #[command(flatten)]
        access: AccessArgs,
        /// Arguments for ssh (after --).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Revoke certificates (security role; confirmed with your security key).
    /// Hosts enforce it at their next `jit-ssh host sync`.
    Revoke {
        /// One certificate, by the serial sshd logs (`serial N`).
        #[arg(long, group = "what")]
        serial: Option<u64>,
        /// Every certificate issued under this grant (request id).
        #[arg(long, group = "what")]
        grant: Option<String>,
        /// Every unexpired certificate of this user, and no new ones until
        /// an admin runs `jit-ssh-ca enable-user`.
        /// (You, the revoker, come from JIT_SSH_USER or the settings file.)
        #[arg(long = "user", value_name = "NAME", group = "what")]
        target_user: Option<String>,
        /// One certificate, by the key id sshd logs (`ID jit-ssh:USER:GRANT:SERIAL`).
        #[arg(long, group = "what")]
        key_id: Option<String>,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Only print the confirmation link (do not open a browser).
        #[arg(long)]
        no_browser: bool,
        /// Give up waiting for your confirmation after this long.
        #[arg(long, default_value = "5m")]
        timeout: String,
        /// The CA URL (JIT_SSH_CA_URL, ca_url).
        #[arg(long)]
        ca_url: Option<String>,
    },
    /// On an SSH host: keep CA keys and KRL current, write principals files.
    #[command(subcommand)]
    Host(jit_ssh_host::cli::HostCommand),
    /// Print an ssh_config snippet so plain `ssh HOST` logs in first.
    SshConfig {
        /// Host patterns jit-ssh covers, e.g. "*.prod".
        #[arg(long = "host", value_name = "PATTERN", required = true)]
        hosts: Vec<String>,
        /// First use: the SHA256 fingerprint of the CA key (from its
        /// operator), so jit-ssh can trust the CA's host CA keys and write
        /// its known_hosts; later runs use the key it holds.
        #[arg(long, env = "JIT_SSH_CA_FINGERPRINT")]
        ca_fingerprint: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: Option<AuditAction>,
    #[command(flatten)]
    pub filters: AuditFilters,
}

#[derive(Args, Clone)]
pub struct AuditFilters {
    /// Records about this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Records about this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Records about this account (login name on the host).
    #[arg(long)]
    pub account: Option<String>,
    /// The issuance and revocation of this certificate serial (sshd logs
    /// it on every login).
    #[arg(long)]
    pub serial: Option<u64>,
    /// Everything about this grant (request id).
    #[arg(long)]
    pub grant: Option<String>,
    /// Event kinds, comma-separated (certificate_issued, revoked, …).
    #[arg(long)]
    pub kind: Option<String>,
    /// From this long ago (1h, 2d) or this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Before this long ago or this RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
    /// Print at most this many records.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Show times in this machine's time zone (default: UTC).
    #[arg(long)]
    pub local: bool,
    #[command(flatten)]
    pub sign_in: SignInArgs,
}

#[derive(Args, Clone)]
pub struct SignInArgs {
    /// Only print the sign-in link.
    #[arg(long)]
    pub no_browser: bool,
    /// Give up signing in after this long.
    #[arg(long, default_value = "5m")]
    pub timeout: String,
    /// The CA (JIT_SSH_CA_URL, ca_url).
    #[arg(long)]
    pub ca_url: Option<String>,
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Write the chain as JSON lines (auditors): from --since to a
    /// checkpoint the CA signs for this export.
    Export {
        /// From this long ago (30d) or this RFC 3339 time (default: all).
        #[arg(long)]
        since: Option<String>,
        /// The file to write (with --sessions: a new directory).
        #[arg(short = 'o', long = "output")]
        output: std::path::PathBuf,
        /// Also export the recording of every session whose
        /// session_started record is in the exported range: OUTPUT is then
        /// a directory (audit.jsonl, sessions/; see docs/audit.md).
        #[arg(long)]
        sessions: bool,
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// Session recordings the CA holds (auditors): who, where, which
    /// grant and certificate, when, how it ended.
    Sessions {
        /// Sessions of this user.
        #[arg(long)]
        user: Option<String>,
        /// Sessions on this host.
        #[arg(long)]
        host: Option<String>,
        /// Sessions under this grant (request id).
        #[arg(long)]
        grant: Option<String>,
        /// Started this long ago (1h, 2d) or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// Play a recorded session after checking the host's signature on
    /// every chunk, the hash chain and the audit log's final hash;
    /// a tampered recording is refused, naming the chunk.
    Play {
        /// The session id (from `jit-ssh audit sessions`).
        session: String,
        /// Play this many times as fast.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Shorten pauses longer than this many seconds.
        #[arg(long, value_name = "SECONDS")]
        idle_limit: Option<f64>,
        /// Write the plain asciicast v2 file to stdout instead of playing
        /// (what `asciinema cat`/`play` read).
        #[arg(long, conflicts_with = "to")]
        cat: bool,
        /// Write the plain asciicast v2 file to FILE instead of playing.
        #[arg(long, value_name = "FILE")]
        to: Option<std::path::PathBuf>,
        #[command(flatten)]
        sign_in: SignInArgs,
    },
    /// Check an export offline: every hash link and every checkpoint
    /// signature; names the first record that fails. For a sessions
    /// export (a directory), also every recording: host key vouched for by
    /// the chain, every chunk, the final hash; names the chunk that fails.
    Verify {
        /// The export (`jit-ssh audit export -o FILE`, or the directory
        /// `--sessions` wrote).
        file: std::path::PathBuf,
        /// The CA public key(s): a .pub file or a TrustedUserCAKeys file.
        #[arg(long)]
        ca_key: std::path::PathBuf,
    },
}
