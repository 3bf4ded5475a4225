use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use jit_ssh_audit::Actor;
use jit_ssh_ca::config::{self, dev};
use jit_ssh_ca::names::UserName;
use jit_ssh_ca::server;

#[derive(Args)]
pub struct ServeArgs {
    /// The configuration file (see docs/ca.example.toml).
    #[arg(long, required_unless_present = "dev", conflicts_with = "dev")]
    config: Option<PathBuf>,
    /// Development mode: a CA key, data and a sample policy (ca.toml, edit
    /// it and restart) under --dev-dir, on http://localhost, with an
    /// enrollment link for --dev-user.
    #[arg(long)]
    dev: bool,
    /// The user to print an enrollment link for in development mode (the
    /// first user of a new ca.toml; must be in an existing one).
    #[arg(long, default_value = "admin", requires = "dev")]
    dev_user: String,
    /// Where development mode keeps its CA key and data (made once, reused).
    #[arg(long, default_value = ".jit-ssh-dev", requires = "dev")]
    dev_dir: PathBuf,
    /// Listen address in development mode (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8722", requires = "dev")]
    listen: SocketAddr,
    /// Log as JSON lines (for journald or a SIEM) instead of text.
    #[arg(long)]
    log_json: bool,
}

pub fn init_logging(json: bool) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    jit_ssh_ca::logging::init(
        jit_ssh_ca::logging::env_filter(),
        json,
        ansi,
        std::io::stderr,
    );
}

pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(a.log_json);
    let (config, listener) = if a.dev {
        let user = UserName::parse(&a.dev_user)?;
        anyhow::ensure!(
            a.listen.ip().is_loopback(),
            "--listen must be a loopback address in --dev mode"
        );
        server::create_private_dir(&a.dev_dir)?;
        let ca_dir = a.dev_dir.join("ca");
        if !ca_dir.join(jit_ssh_ca::ca_key::KEY_FILE).exists() {
            jit_ssh_ca::ca_key::init(&ca_dir, None).context("creating the dev CA key")?;
        }
        if !ca_dir.join(jit_ssh_ca::ca_key::HOST_KEY_FILE).exists() {
            jit_ssh_ca::ca_key::init_host(&ca_dir, None).context("creating the dev host CA key")?;
        }
        let listener =
            TcpListener::bind(a.listen).with_context(|| format!("binding {}", a.listen))?;
        let bound = listener.local_addr()?;
        let config = dev::config(&a.dev_dir, bound, &user)?;
        println!(
            "policy: {} (edit it and restart to add users or rules)",
            a.dev_dir.join(dev::DEV_CONFIG).display()
        );
        (config, listener)
    } else {
        let path = a.config.context("--config is required")?;
        let mut config = config::load(&path)?;
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        // `listen = "127.0.0.1:0"` with `public_url = "http://localhost:0"`:
        // the port the system picked (tests, local try-outs).
        if config.public_url.port() == Some(0) && config.public_url.host_str() == Some("localhost")
        {
            let port = listener.local_addr()?.port();
            config
                .public_url
                .set_port(Some(port))
                .map_err(|()| anyhow::anyhow!("setting the public URL's port"))?;
        }
        (config, listener)
    };
    let ca = server::open_ca(config)?;
    let bound = listener.local_addr()?;
    let dev_user = a.dev.then_some(a.dev_user);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(server::serve(ca, listener, |ca| {
        println!(
            "jit-ssh-ca listening on {}",
            ca.config.public_url.as_str().trim_end_matches('/')
        );
        println!("bound to {bound}");
        if let Some(metrics) = ca.metrics.bound() {
            println!("metrics bound to {metrics}");
        }
        if let Some(user) = &dev_user {
            match ca.is_enrolled(user) {
                Ok(true) => println!(
                    "{user} is enrolled (delete {} to start over)",
                    ca.config.data_dir.display()
                ),
                _ => match ca.invite(user, &[], Actor::System) {
                    Ok(link) => println!("enroll {}: {}", link.user, link.url),
                    Err(e) => eprintln!("could not make an enrollment link for {user}: {e}"),
                },
            }
        }
    }))?;
    Ok(ExitCode::SUCCESS)
}
