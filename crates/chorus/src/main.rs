//! # chorus — the command-line entry point
//!
//! `chorus serve` runs the service; `chorus token` mints a signed JWT for
//! development and scripts. Everything substantial lives in the library crates;
//! this file parses flags, sets up logging and signals, and hands over.

use anyhow::{bail, Context};
use chorus_auth::{mint_host, mint_session, HostClaims, Mode, Secret, SessionClaims};
use chorus_server::{Config, LogFormat};
use clap::{Parser, Subcommand, ValueEnum};
use figment::providers::Serialized;
use figment::Figment;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "chorus",
    version,
    about = "Real-time collaborative draft sync service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve(ServeArgs),
    /// Print a signed JWT (session token, or host token with --scope host).
    Token(TokenArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "CHORUS_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:10123].
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Where documents are stored: "sled" (embedded, under the data directory) or
    /// postgres://USER@HOST:PORT/DB, with ?sslmode=verify-full&sslrootcert=FILE for
    /// TLS [default: sled].
    #[arg(long)]
    store: Option<String>,
    /// Cluster mode: the Redis the nodes share, redis://HOST:PORT, or
    /// rediss://HOST:PORT for TLS.
    #[arg(long)]
    bus: Option<String>,
    /// Cluster mode, with a rediss:// bus: the CA certificates (PEM) the Redis's
    /// certificate must chain to [default: the system's roots].
    #[arg(long)]
    bus_ca_file: Option<PathBuf>,
    /// Cluster mode: this node's id [default: host name and port].
    #[arg(long)]
    node_id: Option<String>,
    /// Data directory [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Register the `demo` app and serve the demo editor at /demo.
    #[arg(long)]
    demo: bool,
    /// Start even with an app secret shorter than 32 bytes (a warning per weak app).
    #[arg(long)]
    allow_weak_secrets: bool,
    /// Log format [default: human].
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Edit,
    View,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScopeArg {
    Host,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// App id (`iss`).
    #[arg(long)]
    app: String,
    /// The app secret to sign with (visible to other users in the process list:
    /// prefer --secret-file or CHORUS_TOKEN_SECRET).
    #[arg(
        long,
        env = "CHORUS_TOKEN_SECRET",
        hide_env_values = true,
        conflicts_with = "secret_file",
        required_unless_present = "secret_file"
    )]
    secret: Option<String>,
    /// A file whose first secret (first line that is neither blank nor a `#`
    /// comment, as in an app's `secrets_file`) signs.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Content id (`doc`); required for session tokens, optional restriction for host tokens.
    #[arg(long)]
    doc: Option<String>,
    /// User id (`sub`); required for session tokens.
    #[arg(long)]
    user: Option<String>,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Cursor colour, e.g. "#3366ff".
    #[arg(long)]
    color: Option<String>,
    /// Edit or view.
    #[arg(long, value_enum, default_value = "edit")]
    mode: ModeArg,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// `host` mints a host (REST) token instead of a session token.
    #[arg(long, value_enum)]
    scope: Option<ScopeArg>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(args) => {
            println!("{}", token(args)?);
            Ok(())
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut overrides = Figment::new();
    if let Some(bind) = args.bind {
        overrides = overrides.merge(Serialized::default("bind", bind.to_string()));
    }
    if let Some(store) = &args.store {
        overrides = overrides.merge(Serialized::default("store", store));
    }
    if let Some(bus) = &args.bus {
        overrides = overrides.merge(Serialized::default("bus", bus));
    }
    if let Some(ca) = &args.bus_ca_file {
        overrides = overrides.merge(Serialized::default("bus_ca_file", ca));
    }
    if let Some(node) = &args.node_id {
        overrides = overrides.merge(Serialized::default("node_id", node));
    }
    if let Some(dir) = &args.data_dir {
        overrides = overrides.merge(Serialized::default("data_dir", dir));
    }
    if args.demo {
        overrides = overrides.merge(Serialized::default("demo", true));
    }
    if args.allow_weak_secrets {
        overrides = overrides.merge(Serialized::default("allow_weak_secrets", true));
    }
    if let Some(f) = args.log_format {
        let f = match f {
            LogFormatArg::Human => "human",
            LogFormatArg::Json => "json",
        };
        overrides = overrides.merge(Serialized::default("log_format", f));
    }
    let mut config = Config::load(args.config.as_deref(), overrides)?;
    init_logging(config.log_format);

    let generated_demo_secret = config.demo && config.demo_secret.is_none();
    if generated_demo_secret {
        config.demo_secret = Some(random_secret());
    }
    tracing::info!(config = %config.redacted(), "effective configuration");
    if generated_demo_secret {
        // Printed on purpose: the demo secret is throwaway and the developer needs it
        // to mint tokens with `chorus token --app demo --secret …`.
        tracing::info!(
            secret = config.demo_secret.as_deref().unwrap_or_default(),
            "demo app registered with a generated secret (set demo_secret to fix it)"
        );
    }
    for app in config.weak_secrets() {
        tracing::warn!(
            app,
            min_bytes = chorus_server::config::MIN_SECRET_BYTES,
            "app secret shorter than the minimum, admitted by allow_weak_secrets: replace it \
             (openssl rand -base64 32)"
        );
    }
    if config.apps.is_empty() && !config.demo {
        tracing::warn!("no apps configured: every connection will be refused");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let server = chorus_server::Server::bind(config.clone())
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        server.run(shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHORUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A log nobody reads any more (a supervisor that died with the pipe) must not
    // stop anything: by default a failed write is reported with `eprintln!`, which
    // panics when stderr is that broken pipe too, killing whichever task logged
    // (a connection, the shutdown itself). Lost lines are the lesser harm.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.with_ansi(std::io::stdout().is_terminal()).init(),
    }
}

fn random_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token(args: TokenArgs) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let secret = match (args.secret, args.secret_file) {
        (Some(secret), _) => Secret::new(secret),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading --secret-file {}", path.display()))?;
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .with_context(|| format!("--secret-file {} holds no secret", path.display()))?;
            Secret::new(first)
        }
        (None, None) => bail!("give --secret-file FILE, CHORUS_TOKEN_SECRET or --secret"),
    };
    let exp = now + args.ttl;
    if args.scope.is_some() {
        let mut claims = HostClaims::new(args.app, exp);
        claims.iat = Some(now);
        claims.doc = args.doc;
        return Ok(mint_host(&secret, &claims)?);
    }
    let (Some(doc), Some(user)) = (args.doc, args.user) else {
        bail!("a session token needs --doc and --user (or pass --scope host)");
    };
    let mode = match args.mode {
        ModeArg::Edit => Mode::Edit,
        ModeArg::View => Mode::View,
    };
    let mut claims = SessionClaims::new(args.app, user, doc, mode, exp);
    claims.iat = Some(now);
    claims.name = args.name;
    claims.color = args.color;
    Ok(mint_session(&secret, &claims)?)
}
